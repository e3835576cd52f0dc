"""What a data augmenter is (it declares the example shapes it changes, not task names), and how ``adapt`` applies augmenters: on the fly, to the training
examples only, drawn again every epoch, never changing the data files. Concrete augmenters live in
plugins and register through :func:`peft_hub.hookspecs.register_augmenters`; a recipe lists them::

    augment:
      - {name: eda, options: {p: 0.5, delete: 0.1}}
      - {name: span_cutoff}

Each epoch, each training example passes through the listed augmenters in order; each changes it
with its probability ``p`` (its own option) and the changed example is encoded again by the task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from .options import Options, option
from .features import FeatureDataset


@dataclass
class AugmenterOptions(Options):
    p: float = option(0.5, "Probability that a training example is changed by this augmenter, drawn again each epoch.", low=0, high=1)


class Augmenter:
    """Makes a changed, label-preserving copy of one training example of the tasks it names."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Options of the augmenter (subclass :class:`AugmenterOptions`, which brings ``p``).
    Options: ClassVar[type[Options]] = AugmenterOptions
    #: The example shapes it changes (see :attr:`peft_hub.Task.example_shape`: ``text``, ``tokens``,
    #: ``pair`` ...); a recipe pairing it with a task of another shape is refused by ``validate``.
    shapes: ClassVar[tuple[str, ...]] = ()

    def fit(self, examples: list, options: Any) -> Any:
        """What the augmenter learns from the training examples once, before training (e.g. the
        entity mentions of each type); passed back to :meth:`augment`. Default: nothing."""
        return None

    def augment(self, example: Any, rng: random.Random, options: Any, state: Any) -> Any:
        """A changed copy of ``example`` (never change it in place), its labels still right."""
        raise NotImplementedError


class AugmentedDataset(FeatureDataset):
    """The training features, with each example re-drawn through the augmenters at every access
    (the Trainer reads each example once an epoch), deterministically for a seed."""

    def __init__(self, train: FeatureDataset, task: Any, tokenizer: Any, labels: list[str], task_options: Any,
                 augmenters: list[tuple[Augmenter, Any]], seed: int):
        super().__init__(train.features, train.examples)
        self.task, self.tokenizer, self.labels, self.task_options, self.seed = task, tokenizer, labels, task_options, seed
        self.augmenters = [(augmenter, options, augmenter.fit(self.examples, options)) for augmenter, options in augmenters]
        self.draws: dict[int, int] = {}

    def __getitem__(self, index: int) -> dict:
        if index >= len(self.examples):  # features added after the examples (a teacher's unlabelled text)
            return self.features[index]
        self.draws[index] = self.draws.get(index, 0) + 1
        rng = random.Random(f"{self.seed}-{index}-{self.draws[index]}")
        example, changed = self.examples[index], False
        for augmenter, options, state in self.augmenters:
            if rng.random() < options.p:
                example, changed = augmenter.augment(example, rng, options, state), True
        if not changed:
            return self.features[index]
        encoded = self.task.encode([example], self.tokenizer, self.labels, self.task_options)
        if len(encoded) != 1:  # it no longer fits one window: keep the original
            return self.features[index]
        return encoded[0]


def wrap(train: Any, resolved: Any, tokenizer: Any, labels: list[str], echo: Any) -> Any:
    """The training set of an ``adapt`` run with the recipe's augmenters applied (as it is without)."""
    if not resolved.augmenters:
        return train
    if len(train.features) != len(train.examples):
        echo(f"Augmentation is off: the {len(train.examples):,} training examples made {len(train.features):,} features "
             "(long examples split into windows), and an augmenter changes whole examples.")
        return train
    echo("Augmenting the training examples on the fly: " + ", ".join(f"{a.name} (p {o.p:g})" for a, o in resolved.augmenters))
    return AugmentedDataset(train, resolved.task, tokenizer, labels, resolved.task_options, resolved.augmenters,
                            resolved.recipe.training.seed)
