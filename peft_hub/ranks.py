"""Which process this is in a multi-process run (torchrun / accelerate launch), and waiting for
the others. Cheap to import: torch is only looked at once something else imported it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a multi-process run (torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0


def _process_group():
    """torch.distributed when this process is one of several (set up by Trainer), else None."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def wait_for_other_processes() -> None:
    """Block until every rank gets here (no-op in a single process)."""
    if dist := _process_group():
        dist.barrier()


def end_processes() -> None:
    """Close the process group once every rank is done (each stage ends with
    :func:`wait_for_other_processes`). A rank that exits while another still writes or evaluates
    tears gloo down under it ("terminate called without an active exception")."""
    if dist := _process_group():
        dist.destroy_process_group()


def relaunch(num_processes: int | None, echo: Callable[[str], Any]) -> None:
    """With --num-processes N (N > 1), run this same command in N processes through torchrun
    (DDP; gloo on CPU) and exit with its status. Inside such a run, do nothing."""
    if not num_processes or num_processes < 2 or "LOCAL_RANK" in os.environ:
        return
    import subprocess

    import torch

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            argv.append(arg)
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"  # Trainer then runs DDP over gloo
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
               "-m", "peft_hub", *argv]
    echo(f"Starting {num_processes} processes: {' '.join(command[2:])}")
    sys.exit(subprocess.run(command, env=env).returncode)
