"""Several processes over gloo on CPU train in sync and reach exactly what one process reaches with
the same global batch: two processes under --num-processes (torchrun on one machine), and two
"nodes" on 127.0.0.1 (two separate torchrun launchers, each with its own working and output
directory, as on machines that share no storage). A killed node fails the other with a message
within seconds, and --resume on both continues to the single-process result."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

#: 8 or more steps cross epochs of the 61 sample sentences at a global batch of 32
ARGS = ["--method", "lora", "--task", "ner", "--lr", "5e-3", "--quiet", "--json", "training.batching=sequential",
        "method.options.dropout=0", "training.warmup_ratio=0", "training.logging_steps=1"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def tiny_no_dropout(tiny_model, tmp_path):
    """The tiny model without dropout, so that one and two processes can match closely."""
    directory = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model, directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _adapt(model, out, *extra):
    command = [sys.executable, "-m", "peft_hub", "adapt", *ARGS, "--model", str(model), "--output", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _curve(metrics: dict) -> list[tuple]:
    """Every logged training loss and dev loss, by step."""
    return [(e["step"], round(e["loss"] if "loss" in e else e["eval_loss"], 4)) for e in metrics["history"]
            if "loss" in e or "eval_loss" in e]


def _same_run(got: dict, want: dict) -> None:
    """The same losses at the same steps: the Trainer logs them rounded to 4 decimals, so two
    values a float's noise apart may round to neighbours (1.1809 and 1.181)."""
    mine, theirs = _curve(got), _curve(want)
    assert [step for step, _ in mine] == [step for step, _ in theirs]
    assert [loss for _, loss in mine] == pytest.approx([loss for _, loss in theirs], abs=1.5e-4)
    assert got["train_tokens"] == want["train_tokens"] and got["best_step"] == want["best_step"]
    for split in ("dev", "test"):
        assert got[split]["loss"] == pytest.approx(want[split]["loss"], rel=1e-5)
        assert got[split]["f1"] == want[split]["f1"]


@pytest.fixture
def one_process(tiny_no_dropout, tmp_path):
    """One process, global batch 32, for ``steps`` steps."""
    def run(steps: int) -> dict:
        out = tmp_path / f"one-{steps}"
        _adapt(tiny_no_dropout, out, "--batch-size", "32", "--max-steps", str(steps))
        return json.loads((out / "metrics.json").read_text())
    return run


def test_two_processes_match_one_with_the_same_global_batch(tiny_no_dropout, one_process, tmp_path):
    """Across epoch ends too: each process takes its share of the global batch one process makes
    (accelerate's own sharding repeats examples at the end of an epoch)."""
    two = _adapt(tiny_no_dropout, tmp_path / "two", "--batch-size", "16", "--num-processes", "2", "--max-steps", "8")
    assert "Starting 2 processes" in two.stderr
    assert two.stdout.count('"output"') == 1  # rank 0 alone prints
    _same_run(json.loads((tmp_path / "two" / "metrics.json").read_text()), one_process(8))
    assert (tmp_path / "two" / "run.json").exists() and not (tmp_path / "two" / "checkpoints").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(kind: str, rank: int, port: str) -> list[str]:
    """The command that starts node ``rank`` of two meeting at 127.0.0.1:``port``, one process each."""
    if kind == "accelerate":  # on CPU accelerate needs --multi_gpu with ACCELERATE_USE_CPU (see the README)
        return [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_machines", "2",
                "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port",
                port, "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
            "--master-addr", "127.0.0.1", "--master-port", port]


def _nodes(model: Path, root: Path, steps: int, *extra: str, launcher: str = "torchrun") -> list[subprocess.Popen]:
    """Two launchers, node 0 and node 1, each in its own working directory with the output ``run``
    there, meeting at 127.0.0.1."""
    port = str(_free_port())
    launched = []
    for rank in (0, 1):
        cwd = root / f"node-{rank}"
        cwd.mkdir(exist_ok=True)
        command = [*_launcher(launcher, rank, port), "-m", "peft_hub", "adapt", *ARGS, "--model", str(model), "--batch-size",
                   "16", "--max-steps", str(steps), "--output", "run", *extra]
        env = {**ENV, "ACCELERATE_USE_CPU": "true"} if launcher == "accelerate" else ENV
        launched.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return launched


def _finish(node: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = node.communicate(timeout=timeout)
    return node.returncode, out, err


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_nodes_match_one_process_and_only_node_0_writes(launcher, tiny_no_dropout, one_process, tmp_path):
    nodes = _nodes(tiny_no_dropout, tmp_path, 8, launcher=launcher)
    (code0, out0, err0), (code1, out1, err1) = (_finish(n) for n in nodes)
    assert code0 == 0 and code1 == 0, err0[-2000:] + err1[-2000:]
    assert out0.count('"output"') == 1 and '"output"' not in out1
    _same_run(json.loads((tmp_path / "node-0" / "run" / "metrics.json").read_text()), one_process(8))
    # node 1 kept checkpoints of its own while training (it sees none of node 0's files), and left nothing
    assert list((tmp_path / "node-1").iterdir()) == []


def _kill_tree(process: subprocess.Popen) -> None:
    parent = psutil.Process(process.pid)
    for child in [*parent.children(recursive=True), parent]:
        child.kill()


def test_a_killed_node_fails_the_other_clearly_and_both_resume(tiny_no_dropout, one_process, tmp_path):
    steps = 60
    node0, node1 = _nodes(tiny_no_dropout, tmp_path, steps)
    checkpoints = tmp_path / "node-0" / "run" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(int(p.name.split("-")[1]) >= 20 for p in checkpoints.glob("checkpoint-*")):
        assert time.monotonic() < deadline and node0.poll() is None, "node 0 saved no checkpoint past step 20"
        time.sleep(0.1)
    _kill_tree(node1)
    killed = time.monotonic()
    code, _, err = _finish(node0, timeout=120)
    assert code != 0 and time.monotonic() - killed < 60
    assert "Another process of this 2-process run died, or did not answer within training.ddp_timeout" in err
    assert "--resume" in err
    node1.communicate()

    nodes = _nodes(tiny_no_dropout, tmp_path, steps, "--resume")
    results = [_finish(n) for n in nodes]
    assert [r[0] for r in results] == [0, 0], results[0][2][-2000:] + results[1][2][-2000:]
    _same_run(json.loads((tmp_path / "node-0" / "run" / "metrics.json").read_text()), one_process(steps))


def test_fsdp_without_a_gpu_is_refused_not_run_as_ddp(tiny_model, tmp_path, monkeypatch):
    """accelerate runs an FSDP config on CPU as plain DDP (its distributed type is MULTI_CPU):
    refused with the reason, before training."""
    from peft_hub import adapt, recipes
    from peft_hub.errors import PeftHubError

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                          "output.dir": str(tmp_path / "run"), "training.max_steps": 1})
    with pytest.raises(PeftHubError, match="accelerate shards models with FSDP on GPUs only"):
        adapt.run(recipes.validate(data, source), quiet=True, echo=lambda m: None)
    assert not (tmp_path / "run" / "checkpoints").exists()


def _ray_workers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "RayTrainWorker" in " ".join(process.info["cmdline"] or []):
                found.append(process)
    return found


def test_ray_workers_train_as_one_process_and_resume_after_a_worker_dies(tiny_no_dropout, one_process, tmp_path):
    """--engine ray: 2 Ray Train workers on a local Ray reach one process's losses and scores; one
    worker killed mid-run, Ray restarts the group and the workers continue from the newest
    checkpoint to the same end."""
    steps, out = 60, tmp_path / "ray"
    loud = [arg for arg in ARGS if arg != "--quiet"]  # the workers' messages say that they resumed
    command = [sys.executable, "-m", "peft_hub", "adapt", *loud, "--model", str(tiny_no_dropout), "--batch-size", "16",
               "--max-steps", str(steps), "--num-processes", "2", "--engine", "ray", "--output", str(out)]
    log, err = (tmp_path / "ray.out").open("w"), (tmp_path / "ray.err").open("w")  # (pipes could fill and stall it)
    ray = subprocess.Popen(command, env={**ENV, "RAY_ADDRESS": ""}, stdout=log, stderr=err, text=True)
    deadline, killed = time.monotonic() + 300, None
    while killed is None and ray.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint past step 20"
        if any(int(p.name.split("-")[1]) >= 20 for p in (out / "checkpoints").glob("checkpoint-*")) and _ray_workers():
            killed = _ray_workers()[-1]
            killed.kill()
        time.sleep(0.1)
    ray.wait(timeout=600)
    stdout, stderr = (tmp_path / "ray.out").read_text(), (tmp_path / "ray.err").read_text()
    assert ray.returncode == 0, stderr[-3000:]
    assert killed is not None, "the run ended before a worker could be killed"
    assert "Resuming from" in stderr, stderr[-3000:]
    assert json.loads(stdout)["output"] == str(out)
    _same_run(json.loads((out / "metrics.json").read_text()), one_process(steps))
    layout = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if "tensorboard" not in p.parts)
    one = tmp_path / f"one-{steps}"
    assert layout == sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if "tensorboard" not in p.parts)


def test_the_ray_engine_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    from peft_hub import ray_engine, recipes
    from peft_hub.errors import PeftHubError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "output.dir": str(tmp_path / "run")})
    with pytest.raises(PeftHubError, match=r"pip install 'peft-hub\[ray\]'"):
        ray_engine.train(data, source, 2)


def test_a_node_that_never_joins_is_reported_within_the_rendezvous_timeout(tiny_no_dropout, tmp_path):
    """The README's multi-node command sets torchrun's --rdzv-conf timeout (static rendezvous: 600 s
    by default): node 0 alone stops with the count of nodes that joined."""
    port = str(_free_port())
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", "0",
               "--master-addr", "127.0.0.1", "--master-port", port, "--rdzv-conf", "timeout=10", "-m", "peft_hub", "adapt",
               *ARGS, "--model", str(tiny_no_dropout), "--max-steps", "2", "--output", str(tmp_path / "run")]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode != 0 and time.monotonic() - started < 60
    assert "1/2 clients joined" in result.stderr


def test_every_process_of_a_run_names_the_same_default_directory(monkeypatch):
    """Without --output each process would name runs/<task>-<method>-<time> from its own clock:
    --num-processes hands them one time stamp; processes started otherwise must give --output."""
    from peft_hub import ranks, rundir
    from peft_hub.errors import RunDirError

    seen = {}
    monkeypatch.setattr(subprocess, "run", lambda command, env: seen.update(env) or subprocess.CompletedProcess(command, 0))
    monkeypatch.delenv(ranks.RUN_STAMP, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(SystemExit):
        ranks.relaunch(2, lambda message: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(ranks.RUN_STAMP, seen[ranks.RUN_STAMP])
    assert rundir.default_dir("ner-lora") == Path(f"runs/ner-lora-{seen[ranks.RUN_STAMP]}")
    monkeypatch.delenv(ranks.RUN_STAMP)
    with pytest.raises(RunDirError, match="A run of several processes needs --output"):
        rundir.default_dir("ner-lora")
