"""The encoded examples a Trainer reads: a list of feature dicts as a map-style dataset, with the
raw examples they came from."""

from __future__ import annotations


class FeatureDataset:
    """A list of tokenized examples (dicts of lists) as a map-style torch dataset, with the raw
    examples they were encoded from (what a task's metric may need beside the predictions)."""

    def __init__(self, features: list[dict], examples: list | None = None):
        self.features = features
        self.examples = examples if examples is not None else []

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]

    def num_tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)

    def num_labeled(self) -> int:
        """Entries of ``labels`` that are not -100, over all features: what the Trainer's
        ``training.loss: token`` counts in each batch's label tensor, whatever the label shape
        (a tag per token, one class, a 0/1 per label), so a batch weighs in proportion to it."""
        import numpy as np

        return int(sum((np.asarray(f["labels"]) != -100).sum() for f in self.features))
