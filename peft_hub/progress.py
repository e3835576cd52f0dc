"""Progress of long work on stderr: a tqdm bar on a terminal, a plain line every few seconds when
stderr is a file or a pipe (logs, CI, ``nohup``), nothing with ``--quiet``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: seconds between two plain progress lines
PLAIN_EVERY_S = 10.0


def interactive() -> bool:
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: int | None = None, quiet: bool = False,
          unit: str = "it") -> Iterator[T]:
    """Yield ``items``, showing how far along they are."""
    if quiet:
        yield from items
        return
    if interactive():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=description, total=total, unit=unit, leave=False)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_S:
            last = now
            of = f"/{total:,} ({100 * done / total:.0f}%)" if total else ""
            print(f"{description}: {done:,}{of} {unit}, {now - start:.0f} s", file=sys.stderr, flush=True)
    if time.monotonic() - start >= PLAIN_EVERY_S:
        print(f"{description}: {done:,} {unit} in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
