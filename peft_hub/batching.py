"""Length-grouped batches in random order: little padding without a length curriculum.

transformers' ``group_by_length`` sorts each window of 50 batches longest first and keeps that
order, so every 50 steps training slides from the longest sentences to the shortest (on CoNLL-2003:
headlines, dates and score tables). Measured on 2,400 CoNLL sentences (150 LoRA steps, dev F1):
random order 0.778, transformers' grouping 0.716. Here the batches are made the same way, but
their order is shuffled, and the incomplete batch comes last so every batch has ``batch_size``
examples.

Imported only inside functions (it imports torch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class LengthBucketSampler(torch.utils.data.Sampler):
    """Indices such that consecutive runs of ``batch_size`` are length-grouped batches, in random
    order. Deterministic for a (seed, epoch), so a resumed run sees the same order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = lengths, batch_size, seed, window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), size):
            group = sorted(order[start : start + size], key=lambda i: self.lengths[i], reverse=True)
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [b for b in batches if len(b) < self.batch_size]  # at most one
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return shuffled + rest

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch
