"""Several objectives trained together on one encoder, as BERT (masked LM + next-sentence
prediction) and ALBERT (masked LM + sentence order) were: ``--objective mlm+sop``.

Every part builds its own model; they then share one encoder (the largest of theirs, so a pooler
that a sentence-level head reads is kept), and the loss is the weighted sum of the parts' losses
(``objective.options.weights``). At most one part shapes the examples (reads its own records or
builds examples from sentences: ``sop``); the other parts see the token fields of those examples
(``mlm`` masks the sentence pairs). Each part evaluates itself; scores are prefixed with its name
(``mlm_perplexity``, ``sop_accuracy``) and the first part's is the primary metric. The output is
the first part's model, with the shared encoder.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from .errors import PeftHubError
from .objectives import Objective
from .options import Options, option

#: what a part that does not shape the examples sees of them
TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "word_ids")


def _unwrap(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class Combined(Objective):
    def __init__(self, parts: list[Objective]):
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise PeftHubError(f"objective {'+'.join(names)!r} names an objective twice.")
        shapers = [p for p in parts if p.shapes_examples()]
        if len(shapers) > 1:
            raise PeftHubError(f"objective {'+'.join(names)!r}: {' and '.join(p.name for p in shapers)} both build their own "
                              "examples; combine at most one of them with objectives that read plain text blocks (mlm).")
        wordy = [p.name for p in parts if p.needs_word_ids and shapers and p is not shapers[0]]
        if wordy:
            raise PeftHubError(f"objective {'+'.join(names)!r}: {', '.join(wordy)} needs word ids, which the examples "
                               f"{shapers[0].name} builds do not carry; combine {shapers[0].name} with mlm instead.")
        self.parts = parts
        self.shaper = shapers[0] if shapers else parts[0]
        self.name = "+".join(names)
        self.description = "Trained together on one encoder: " + "; ".join(f"{p.name}: {p.description}" for p in parts)
        self.input_unit = self.shaper.input_unit
        self.needs_word_ids = any(p.needs_word_ids for p in parts)
        self.keep_full_precision = sorted({m for p in parts for m in p.keep_full_precision})
        self.min_batch_size = max(p.min_batch_size for p in parts)
        self.default_method = parts[0].default_method
        self.next_steps = parts[0].next_steps
        self.primary_metric = f"{parts[0].name}_{parts[0].primary_metric}"
        self.greater_is_better = parts[0].greater_is_better
        weights = {p.name: 1.0 for p in parts}

        def check(options: Any) -> list[str]:
            if set(options.weights) != set(names):
                return [f"weights: give one per objective ({', '.join(names)}), got {sorted(options.weights)}"]
            return [f"weights: {k} must be positive, got {v}" for k, v in options.weights.items() if not v > 0]

        fields = [("weights", dict[str, float], option(weights, "Loss weight of each objective."))]
        fields += [(p.name, p.Options, option(p.Options, f"Options of {p.name}.")) for p in parts]
        self.Options = dataclasses.make_dataclass(f"{self.name.replace('+', '_')}_options", fields, bases=(Options,),
                                                  namespace={"check": check})

    def _options(self, options: Any, part: Objective) -> Any:
        return getattr(options, part.name)

    def shapes_examples(self):
        return self.shaper.shapes_examples()

    def sentence_pooling(self, options):
        return self.parts[0].sentence_pooling(self._options(options, self.parts[0]))

    def primary_metric_for(self, options):
        return f"{self.parts[0].name}_{self.parts[0].primary_metric_for(self._options(options, self.parts[0]))}"

    def greater_is_better_for(self, options):
        return self.parts[0].greater_is_better_for(self._options(options, self.parts[0]))

    def _view(self, part: Objective, examples: list[dict], tokenizer: Any) -> list[dict]:
        """The examples as ``part`` reads them: all of them for the part that built them, else
        their token fields (with the special-tokens mask masking collators expect)."""
        if part is self.shaper:
            return examples
        special = set(tokenizer.all_special_ids)
        return [{"special_tokens_mask": [int(i in special) for i in e["input_ids"]],
                 **{k: e[k] for k in TOKEN_FIELDS if k in e}} for e in examples]

    def read_data(self, data, tokenizer, options):
        return self.shaper.read_data(data, tokenizer, self._options(options, self.shaper))

    def build_examples(self, units, tokenizer, options, seed, block_size):
        return self.shaper.build_examples(units, tokenizer, self._options(options, self.shaper), seed, block_size)

    def build_model(self, model_path, **load_kwargs):
        built = {p.name: p.build_model(model_path, **load_kwargs) for p in self.parts}
        encoders = [getattr(model, model.base_model_prefix) for model, _ in built.values()]
        shared = max(encoders, key=lambda e: sum(p.numel() for p in e.parameters()))
        for index, (model, _) in enumerate(built.values()):
            prefix = model.base_model_prefix
            if index == 0:
                setattr(model, prefix, shared)
            else:  # the same encoder, registered once (under the first part): saved, adapted and moved once
                del model._modules[prefix]
                object.__setattr__(model, prefix, shared)
            if hasattr(model, "tie_weights"):
                model.tie_weights()  # an output layer tied to the input embeddings follows the shared encoder
        fresh = [f"parts.{name}.{weight}" for name, (_, weights) in built.items() for weight in weights]
        return _model_class()({name: model for name, (model, _) in built.items()}), fresh

    def head_modules(self, model):
        parts = _unwrap(model).parts
        return [f"parts.{p.name}.{head}" for p in self.parts for head in p.head_modules(parts[p.name])]

    def collator(self, tokenizer, options, seed=None):
        collators = {p.name: p.collator(tokenizer, self._options(options, p), seed) for p in self.parts}

        def collate(features: list[dict]) -> dict:
            batches = {p.name: collators[p.name](self._view(p, features, tokenizer)) for p in self.parts}
            first = batches[self.parts[0].name]
            return {"parts": batches, "weights": dict(options.weights), "input_ids": first["input_ids"]}  # input_ids: tokens seen

        return collate

    def heldout(self, blocks, tokenizer, options, seed):
        fixed = {p.name: p.heldout(self._view(p, blocks, tokenizer), tokenizer, self._options(options, p), seed) for p in self.parts}
        count = min(len(rows) for rows in fixed.values())
        return [{"input_ids": blocks[i]["input_ids"], "parts": {name: rows[i] for name, rows in fixed.items()}} for i in range(count)]

    def evaluate(self, model, heldout, tokenizer, options, batch_size=32):
        combined = _unwrap(model)
        was_training = combined.training
        combined.eval()  # the shared encoder too, which only the first part holds as a submodule
        scores = {}
        for p in self.parts:
            own = p.evaluate(combined.parts[p.name], [e["parts"][p.name] for e in heldout], tokenizer, self._options(options, p), batch_size)
            scores.update({f"{p.name}_{key}": value for key, value in own.items()})
            combined.eval()
        combined.train(was_training)
        return scores

    def prepare_training(self, model, options):
        parts = _unwrap(model).parts
        transforms = {p.name: p.prepare_training(parts[p.name], self._options(options, p)) for p in self.parts}
        if not any(transforms.values()):
            return None

        def transform(batch: dict) -> dict:
            return {**batch, "parts": {name: transforms[name](b) if transforms[name] else b for name, b in batch["parts"].items()}}

        return transform


@functools.cache
def _model_class() -> type:
    import torch

    class CombinedModel(torch.nn.Module):
        """The parts' models (one shared encoder); the loss is the weighted sum of theirs."""

        _keys_to_ignore_on_save = None  # what Trainer asks of a transformers model after reloading the best checkpoint

        def __init__(self, parts: dict[str, Any]):
            super().__init__()
            self.parts = torch.nn.ModuleDict(parts)
            self.first = next(iter(parts))
            self.config = parts[self.first].config

        def forward(self, parts: dict[str, dict] | None = None, weights: dict[str, float] | None = None, **ignored: Any) -> dict:
            losses = {name: self.parts[name](**batch).loss for name, batch in (parts or {}).items()}
            total = sum((weights or {}).get(name, 1.0) * loss for name, loss in losses.items())
            return {"loss": total, **{f"{name}_loss": loss.detach() for name, loss in losses.items()}}

        def get_input_embeddings(self):
            return self.parts[self.first].get_input_embeddings()

        def save_pretrained(self, *args: Any, **kwargs: Any) -> None:
            """The first part's model (it holds the shared encoder): a model ``adapt --model`` takes."""
            self.parts[self.first].save_pretrained(*args, **kwargs)

    return CombinedModel


@functools.cache
def combine(parts: tuple[Objective, ...]) -> Combined:
    """The objective ``a+b``: the registered objectives ``a`` and ``b`` together (one instance per
    combination, so that its options class stays the same)."""
    return Combined(list(parts))
