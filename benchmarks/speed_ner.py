"""NER LoRA training speed, side by side: peft-hub against the script a user would write.

    (a)  peft-hub adapt (the CLI, in a subprocess)
    (b)  benchmarks/baselines/run_ner_peft.py: Trainer + peft like run_ner.py, random batch order
    (b') the same script with --group-by-length
    (c)  a bare PyTorch loop over exactly the batches (a) uses: peft-hub's model, sampler, optimizer
         and schedule, without Trainer's loop (so a/c is peft-hub's own overhead)

Same model (offline MiniLM), data (the first N CoNLL-2003 training sentences, one epoch, so every
variant runs the same N/batch optimizer steps and sees the same real tokens), LoRA r=16 / alpha 32 /
dropout 0.1 on query,key,value,dense, lr 2e-3, 10% warm-up, batch 16, seed 42. Each variant runs in
its own process; the variants interleave and repeat; medians are reported.

    .venv/bin/python benchmarks/speed_ner.py --samples 2400 --reps 3    # ~20 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "conll2003"
PY = sys.executable
PEFT_HUB = str(Path(PY).parent / "peft-hub")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def side_by_side(ours: list[str], plain: list[str]) -> dict:
    """Run ``peft-hub *ours`` and the baseline ``python *plain`` at the same time, one thread
    each, so that both see the same load on a shared machine; returns the baseline's JSON line."""
    env = {**ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    a = subprocess.Popen([PEFT_HUB, *ours], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([PY, *plain], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b_out, b_err = b.communicate()
    _, a_err = a.communicate()
    if a.returncode or b.returncode:
        raise SystemExit(f"a run failed:\n{a_err[-2000:]}\n{b_err[-2000:]}")
    return json.loads(b_out.strip().splitlines()[-1])


def _subprocess_json(command: list[str]) -> dict:
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _flags(samples: int, out: Path) -> list[str]:
    return ["adapt", "--method", "lora", "--task", "ner", "--max-train-samples", str(samples), "--epochs", "1",
            "--output", str(out), "--overwrite", "--quiet",
            f"data.train={DATA / 'train.txt'}", f"data.validation={DATA / 'valid.txt'}"]


def run_a(samples: int, tmp: Path) -> dict:
    out = tmp / "a"
    done = subprocess.run([PEFT_HUB, *_flags(samples, out)], env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"peft-hub adapt failed:\n{done.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"seconds": m["train_runtime_s"], "real_tokens": m["train_tokens"], "steps": m["train_steps"], "dev_f1": m["dev"]["f1"]}


def run_b(samples: int, tmp: Path, group: bool) -> dict:
    script = ROOT / "benchmarks" / "baselines" / "run_ner_peft.py"
    from peft_hub import models

    command = [PY, str(script), "--model", models.resolve("minilm"), "--data", str(DATA), "--output", str(tmp / "b"),
               "--max-train-samples", str(samples), "--epochs", "1"] + (["--group-by-length"] if group else [])
    m = _subprocess_json(command)
    return {"seconds": m["train_runtime_s"], "real_tokens": m["real_tokens"], "steps": m["train_steps"], "dev_f1": m["dev_f1"]}


def run_c(samples: int, tmp: Path) -> dict:
    return _subprocess_json([PY, __file__, "--bare-loop", "--samples", str(samples), "--tmp", str(tmp)])


def bare_loop(samples: int, tmp: Path) -> dict:
    """(c): build what `adapt` builds, take its Trainer's dataloader, optimizer and schedule, and
    train with a plain loop."""
    import transformers

    from peft_hub import models, recipes
    from peft_hub.adapt import data_config_or_sample
    from peft_hub.train import FeatureDataset, task_trainer

    argv = _flags(samples, tmp / "c")[1:]
    data, _ = recipes.compose(None, {"method.name": "lora", "task.name": "ner", "data.max_train_samples": samples,
                                     "training.epochs": 1}, argv[argv.index("--quiet") + 1:])
    resolved = recipes.validate(data)
    models.quiet_libraries()
    transformers.set_seed(resolved.recipe.training.seed)
    task, method = resolved.task, resolved.method
    path = models.resolve(resolved.recipe.model.name)
    tokenizer = models.load_tokenizer(path)
    splits = task.read_data(data_config_or_sample(resolved, lambda *_: None), resolved.task_options)
    labels = task.labels(splits)
    train = FeatureDataset(task.encode(splits["train"][:samples], tokenizer, labels, resolved.task_options))
    model = method.apply(task.build_model(path, labels), resolved.method_options, task)
    trainer = task_trainer(resolved, model, tokenizer, train, None, labels, tmp / "c", quiet=True)
    batches = list(trainer.get_train_dataloader())
    seconds, real = loop(model, trainer, batches)
    return {"seconds": seconds, "real_tokens": real, "steps": len(batches), "dev_f1": None}


def loop(model, trainer, batches: list[dict], transform=None) -> tuple[float, int]:
    """Train on ``batches`` with the Trainer's optimizer, schedule and clipping but a plain loop;
    returns (seconds, real tokens)."""
    import torch

    trainer.create_optimizer_and_scheduler(num_training_steps=len(batches))
    optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    real = 0
    start = time.perf_counter()
    for batch in batches:
        real += int(batch["attention_mask"].sum())
        loss = model(**(transform(batch) if transform else batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, trainer.args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, real


def parse_args(doc: str, size: str, default: int, help: str, name: str) -> argparse.Namespace:
    """The options both speed scripts take: ``--SIZE``, ``--reps``, ``--out`` (and the hidden
    ``--bare-loop --tmp`` with which a script runs its variant (c) in a subprocess)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--{size}", type=int, default=default, help=help)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / f"{name}.json"))
    parser.add_argument("--bare-loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args(__doc__, "samples", 2400, "training sentences (one epoch of samples/16 steps)", "speed_ner")
    if args.bare_loop:
        print(json.dumps(bare_loop(args.samples, Path(args.tmp))))
        return
    variants = {"a": lambda t: run_a(args.samples, t), "b": lambda t: run_b(args.samples, t, False),
                "b'": lambda t: run_b(args.samples, t, True), "c": lambda t: run_c(args.samples, t)}
    write_report(measure(variants, args.reps), args, f"NER LoRA, {args.samples} samples", ["a/b", "a/b'", "a/c"])


def measure(variants: dict, reps: int) -> dict[str, list[dict]]:
    """Run every variant (a function of a scratch directory) ``reps`` times, interleaved."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for name, run in variants.items():
                result = run(Path(tmp))
                result["tokens_per_s"] = result["real_tokens"] / result["seconds"]
                runs[name].append(result)
                print(f"rep {rep + 1} {name:>2}: {result['steps']} steps, {result['real_tokens']:,} real tokens, "
                      f"{result['seconds']:.1f} s, {result['tokens_per_s']:,.0f} tokens/s, dev F1 {result.get('dev_f1')}", flush=True)
    return runs


def write_report(runs: dict, args, title: str, ratios: list[str]) -> None:
    import peft
    import torch
    import transformers

    median = {name: statistics.median(r["tokens_per_s"] for r in rs) for name, rs in runs.items()}
    report = {
        "title": title, "reps": args.reps, "date": time.strftime("%Y-%m-%d"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "threads": torch.get_num_threads(), "runs": runs, "median_tokens_per_s": median,
        "ratios": {r: median[r.split("/")[0]] / median[r.split("/")[1]] for r in ratios},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"\n{title}, median of {args.reps}:")
    print("| variant | real tokens/s (median) | seconds (median) | dev F1 (median) |\n|---|---:|---:|---:|")
    for name, rs in runs.items():
        f1 = [r["dev_f1"] for r in rs if r.get("dev_f1") is not None]
        print(f"| {name} | {median[name]:,.0f} | {statistics.median(r['seconds'] for r in rs):.1f} | "
              f"{f'{statistics.median(f1):.4f}' if f1 else '-'} |")
    print(" ".join(f"{r} = {v:.2f}" for r, v in report["ratios"].items()))


if __name__ == "__main__":
    main()
