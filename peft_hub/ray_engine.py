"""Training on Ray (``--engine ray --num-processes N``): the same run in N Ray Train workers.

Ray's ``TorchTrainer`` starts the workers and their process group (gloo on CPU, NCCL on GPUs);
each worker runs the recipe exactly as a torchrun process does (``peft_hub.runs.run``: rank 0
writes the run directory, the others train beside it). Ray restarts the workers when one of them
dies (once: ``max_failures``); they then continue from the newest checkpoint every worker has, as
``--resume`` does. The run directory must be on storage every worker sees (a shared file system
on a cluster; checked when training starts). Ray is an optional extra: ``pip install
'peft-hub[ray]'``. A local Ray instance starts unless ``RAY_ADDRESS`` names a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import recipes
from .errors import PeftHubError, first_line
from .rundir import Echo

#: what a worker reports when the run failed for a reason Ray cannot fix by restarting it
ERROR_KEY = "peft_hub_error"


def train(data: dict, source: str, workers: int, *, max_failures: int = 1, quiet: bool = False,
          echo: Echo = print) -> tuple[recipes.Resolved, Path, dict]:
    """Run the one-run recipe ``data`` in ``workers`` Ray Train workers; returns (the resolved
    recipe, its run directory, its metrics) once rank 0 has written them."""
    try:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise PeftHubError("--engine ray needs Ray Train, an optional extra: pip install 'peft-hub[ray]' "
                           "(or drop --engine ray: --num-processes N runs torchrun).") from None
    import torch

    from . import rundir
    from .rundir import read_run_file

    resolved = recipes.validate_any(data, source)
    if isinstance(resolved, recipes.Pipeline):
        raise PeftHubError(f"{source} has stages; with --engine ray, run each stage as its own command "
                           "(the next one's --model is the previous one's output).")
    if not resolved.recipe.output.dir:  # named here once: each worker would name its own from its clock
        recipes.set_dotted(data, "output.dir", str(rundir.default_dir(resolved.run_name)))
    out = Path(data["output"]["dir"])
    rundir.prepare(out, resolved.recipe.output.overwrite, resolved.recipe.output.resume)
    recipes.set_dotted(data, "output.overwrite", False)  # done here: a restarted worker must not wipe its checkpoints

    started = not ray.is_initialized()
    if started:
        local = not os.environ.get("RAY_ADDRESS")
        ray.init(**({"num_cpus": max(os.cpu_count() or 1, workers + 1)} if local else {}), include_dashboard=False,
                 log_to_driver=not quiet, logging_level="ERROR", configure_logging=True)
    storage = Path(tempfile.mkdtemp(prefix="peft-hub-ray-"))  # Ray's own bookkeeping, not the run's
    echo(f"Starting {workers} Ray Train worker(s); run directory {out}")
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"data": data, "source": source, "cwd": os.getcwd(), "quiet": quiet},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=torch.cuda.is_available()),
        run_config=RunConfig(name=out.name, storage_path=str(storage), failure_config=FailureConfig(max_failures=max_failures)),
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Ray's own messages: stdout is the run's (--json)
            try:
                result = trainer.fit()
            finally:
                if started:
                    ray.shutdown()
    except Exception as exc:  # Ray's TrainingFailedError: a worker died more often than --max-failures allows
        raise PeftHubError(f"Ray Train gave up after {max_failures} restart(s): {first_line(exc.__cause__ or exc)}. The workers' output "
                           f"above says why; once it is fixed, run the same command with --resume.") from None
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    reported = getattr(result, "metrics", None) or {}
    if ERROR_KEY in reported:
        raise PeftHubError(reported[ERROR_KEY])
    return resolved, out, read_run_file(out, "metrics.json", json.loads)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the run as a torchrun process runs it, from the driver's working
    directory; after a restart, from the newest checkpoint every worker has."""
    import ray.train

    from . import runs
    from .ranks import sees_main_storage
    from .train import newest_complete_checkpoint

    os.chdir(config["cwd"])
    data = config["data"]
    out = Path(data["output"]["dir"])
    try:
        if not sees_main_storage(out):
            raise PeftHubError(f"The run directory {out.resolve()} is not on storage every Ray worker sees (rank 0 "
                               "wrote a file there that another worker cannot read). Put --output on a shared file "
                               "system mounted at the same path on every node.")
        if newest_complete_checkpoint(out / "checkpoints") is not None and not (out / "run.json").exists():
            recipes.set_dotted(data, "output.resume", True)  # a restart after a worker died

        def echo(message: str) -> None:  # to stderr, as the command line's own messages (stdout may carry --json)
            if not config["quiet"]:
                print(message, file=sys.stderr, flush=True)

        for _ in runs.run(recipes.validate_any(data, config["source"]), quiet=config["quiet"], echo=echo):
            pass
    except PeftHubError as exc:  # the user's to fix: restarting would fail the same way
        ray.train.report({ERROR_KEY: str(exc)})
        return
    ray.train.report({"done": 1})
