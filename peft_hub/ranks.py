"""Which process this is in a multi-process run (torchrun / accelerate launch), and waiting for
the others. Cheap to import: torch is only looked at once something else imported it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import first_line


#: The time stamp of a run's default directory name, set once for all its processes by whatever
#: starts them (``--num-processes``, ``--engine ray``): each process would read its own clock.
RUN_STAMP = "PEFT_HUB_RUN_STAMP"


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a multi-process run (torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0


def _process_group():
    """torch.distributed when this process is one of several (set up by Trainer), else None."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def several_nodes() -> bool:
    """True in a run whose processes are spread over several machines (torchrun --nnodes N)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > int(os.environ.get("LOCAL_WORLD_SIZE", world))


def sees_main_storage(directory: Path) -> bool:
    """Whether this process sees the files rank 0 writes under ``directory`` (the same storage, or
    a shared file system), found by rank 0 writing a marker that every rank looks for. Every rank
    must call it; the process group must be up."""
    import uuid

    dist = _process_group()
    if dist is None:
        return True
    token = [uuid.uuid4().hex if is_main_process() else None]
    dist.broadcast_object_list(token, src=0)
    marker = Path(directory) / f".peft-hub-storage-{token[0]}"
    if is_main_process():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("")
    dist.barrier()
    seen = marker.exists()
    dist.barrier()
    if is_main_process():
        marker.unlink()
    return seen


def steps_everywhere(steps: set[int]) -> set[int]:
    """The checkpoint ``steps`` that every process has (each gives its own); ``steps`` alone in a
    single process."""
    dist = _process_group()
    if dist is None:
        return steps
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, sorted(steps))
    return set.intersection(*(set(s) for s in every))


def peer_lost(exc: BaseException, timeout: float) -> str | None:
    """What to tell the user when ``exc`` (raised in a collective operation) says another process
    of the run died or stopped answering; None for any other error."""
    text = str(exc)
    signs = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "timed out", "Timed out",
             "Socket Timeout", "NCCL communicator was aborted")  # (not any gloo error: an unsupported op is not a lost peer)
    distributed = _process_group() is not None or "DistBackendError" in type(exc).__name__
    if not distributed or not any(sign in text for sign in signs):
        return None
    first = first_line(exc).split(" This is typically")[0].split(" Check the logs")[0]  # (gloo's own advice follows)
    return (f"Another process of this {os.environ.get('WORLD_SIZE', 'multi')}-process run died, or did not answer "
            f"within training.ddp_timeout ({timeout:g} s): {first} Its own output says why. Once it is fixed, start "
            "the same command again on every node with --resume.")


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
    import time

    env = {**os.environ, RUN_STAMP: os.environ.get(RUN_STAMP) or time.strftime("%Y%m%d-%H%M%S")}
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"  # Trainer then runs DDP over gloo
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
               "-m", "peft_hub", *argv]
    echo(f"Starting {num_processes} processes: {' '.join(command[2:])}")
    sys.exit(subprocess.run(command, env=env).returncode)
