"""SimCSE (Gao et al., 2021): contrastive sentence embeddings.

- Unsupervised (default): every sentence of the text goes through the encoder twice; the two
  dropout masks make a positive pair and the rest of the batch are negatives.
- Supervised (``supervised: true``): NLI pairs. Entailment hypotheses are the positives,
  contradiction hypotheses of the same premise hard negatives, the rest of the batch negatives.
  Any pair file ``peft_hub.read_pairs`` reads (SICK, SNLI/MNLI as TSV or JSONL); a split column
  (SICK's ``SemEval_set``) gives the held-out pairs, else every k-th premise is held out.

Held-out metric: Spearman correlation of cosine similarity with the gold scores of an STS file
(``sts``: STS-B, SICK relatedness) when one is given, else the uniformity of held-out sentence
embeddings (plus the alignment of held-out entailment pairs when supervised). The output is a plain
encoder (no head): ``peft-hub embed`` and ``adapt --model`` take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import peft_hub
from peft_hub import (
    DataError,
    PairColumns,
    alignment_uniformity,
    bi_encoder_class,
    encode,
    encoder_class,
    load_pretrained,
    option,
    read_pairs,
    read_scored_pairs,
    split_files,
    sts_scores,
)

log = logging.getLogger("peft_hub.simcse")
ENTAILMENT, CONTRADICTION = "entailment", "contradiction"
NLI_LABELS = {"entailment": ENTAILMENT, "contradiction": CONTRADICTION, "neutral": "neutral",
              "entails": ENTAILMENT, "contradicts": CONTRADICTION}


@dataclass
class SimcseOptions(peft_hub.Options):
    supervised: bool = option(False, "Train on NLI pairs (entailment: positive, contradiction: hard negative) instead of plain sentences.")
    temperature: float = option(0.05, "Softmax temperature of the cosine similarities (SimCSE: 0.05).")
    pooling: Literal["mean", "cls"] = option("mean", "Sentence vector: mean of the last hidden states over real tokens, or the first token's.")
    sts: str | None = option(None, "An STS file (sentence1, sentence2, score in [0, 5], e.g. ../shared/data/stsb/sts-dev.csv) scored before and after training.")
    hard_negatives: bool = option(True, "Supervised: use contradiction hypotheses as hard negatives.")
    max_length: int = option(64, "Supervised: most sub-tokens per sentence.")

    def check(self) -> list[str]:
        errors = []
        if not 0 < self.temperature <= 10:
            errors.append(f"temperature: must be in (0, 10], got {self.temperature}")
        if self.sts is not None and not Path(self.sts).is_file():
            errors.append(f"sts: {self.sts} is not a file (an STS file: sentence1, sentence2, score)")
        if self.max_length < 4:
            errors.append(f"max_length: must be at least 4, got {self.max_length}")
        return errors


class SimCSE(peft_hub.Objective):
    name = "simcse"
    description = "SimCSE: contrastive sentence embeddings (dropout views, or NLI pairs with supervised=true); STS Spearman."
    Options = SimcseOptions
    input_unit = "sentences"
    peft_task_type = "FEATURE_EXTRACTION"
    default_method = "full"
    min_batch_size = 2  # the rest of the batch are the negatives
    primary_metric = "spearman"
    greater_is_better = True

    def __init__(self):
        self._sts: dict[str, list] = {}

    def primary_metric_for(self, options):
        return "spearman" if options.sts else "uniformity"

    def greater_is_better_for(self, options):
        return bool(options.sts)

    def head_modules(self, model):
        return []  # the encoder is all there is

    def build_model(self, model_path, **load_kwargs):
        base = encoder_class(model_path, load_kwargs.get("trust_remote_code", False))
        return load_pretrained(bi_encoder_class(base), model_path, **load_kwargs), []

    # -- data -------------------------------------------------------------------------------------

    def read_data(self, data, tokenizer, options):
        if not options.supervised:
            return None
        train, held = _nli_pairs(data)
        triplets = self._triplets(train, options)
        if not triplets:
            raise DataError(f"{data.path}: no entailment pairs to train on (labels found: {_labels(train)}). "
                            "Supervised SimCSE needs NLI pairs labelled entailment / contradiction.")
        held_triplets = self._triplets(held, options)
        log.info("SimCSE supervised: %d training premises, %d with a hard negative", len(triplets),
                 sum("negative" in t for t in triplets))
        return [self._encode_triplet(t, tokenizer, options) for t in triplets], [self._encode_triplet(t, tokenizer, options) for t in held_triplets]

    def _triplets(self, pairs, options):
        """One (premise, entailment, maybe contradiction) per entailment pair."""
        contradictions: dict[str, str] = {}
        for pair in pairs:
            if pair.label == CONTRADICTION:
                contradictions.setdefault(pair.text, pair.text_pair)
        triplets = []
        for pair in pairs:
            if pair.label == ENTAILMENT:
                triplet = {"anchor": pair.text, "positive": pair.text_pair}
                if options.hard_negatives and pair.text in contradictions:
                    triplet["negative"] = contradictions[pair.text]
                triplets.append(triplet)
        return triplets

    def _encode_triplet(self, triplet, tokenizer, options):
        length = min(options.max_length, tokenizer.model_max_length)
        enc = {key: tokenizer(text, truncation=True, max_length=length)["input_ids"] for key, text in triplet.items()}
        return {"input_ids": enc["anchor"], "positive_ids": enc["positive"], **({"negative_ids": enc["negative"]} if "negative" in enc else {})}

    def collator(self, tokenizer, options, seed=None):
        return _Collator(tokenizer.pad_token_id or 0, options)

    def heldout(self, blocks, tokenizer, options, seed):
        return blocks  # nothing random to fix: the same sentences (or pairs) each time

    # -- evaluation -------------------------------------------------------------------------------

    def _sts_pairs(self, path):
        if path not in self._sts:
            self._sts[path] = read_scored_pairs(path, prefix="objective.options.sts: ")
        return self._sts[path]

    def evaluate(self, model, heldout, tokenizer, options, batch_size=32):
        scores = {}
        if options.sts:
            scores.update(sts_scores(model, tokenizer, self._sts_pairs(options.sts), options.pooling, batch_size))
        text = lambda e, key: e.get("text") if key == "input_ids" and "text" in e else tokenizer.decode(e[key], skip_special_tokens=True)  # noqa: E731
        anchors = encode(model, tokenizer, [text(e, "input_ids") for e in heldout[:1000]], options.pooling, batch_size)
        positives = None
        if heldout and "positive_ids" in heldout[0]:
            positives = encode(model, tokenizer, [text(e, "positive_ids") for e in heldout[:1000]], options.pooling, batch_size)
        scores.update(alignment_uniformity(anchors, positives))
        return scores


class _Collator:
    """Pads anchors (and positives, hard negatives) into the batch ``bi_encoder_class`` trains on."""

    def __init__(self, pad_id: int, options: SimcseOptions):
        self.pad_id, self.options = pad_id, options

    def _pad(self, rows):
        import torch

        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return ids, mask

    def __call__(self, features):
        batch = dict(zip(("input_ids", "attention_mask"), self._pad([f["input_ids"] for f in features])))
        if "positive_ids" in features[0]:
            batch.update(zip(("positive_input_ids", "positive_attention_mask"), self._pad([f["positive_ids"] for f in features])))
            negatives = [f["negative_ids"] for f in features if "negative_ids" in f]
            if negatives:
                batch.update(zip(("negative_input_ids", "negative_attention_mask"), self._pad(negatives)))
        return {**batch, "temperature": self.options.temperature, "pooling": self.options.pooling, "return_loss": True}


def _labels(pairs) -> list[str]:
    return sorted({str(p.label) for p in pairs})[:10]


def _nli_pairs(data):
    """(training pairs, held-out pairs) with labels normalised to entailment / contradiction /
    neutral: the file's own split column, data.validation, or every 10th premise held out."""
    files = split_files(_as_split_data(data))
    columns = PairColumns()
    found: dict[str, list] = {}
    for split, path in files.items():
        read = read_pairs(path, "auto", columns, data.encoding, prefix="objective.options.")
        for name, pairs in read.items():
            found.setdefault(split if name == "all" else name, []).extend(pairs)
    for pairs in found.values():
        for pair in pairs:
            label = NLI_LABELS.get(str(pair.label).strip().lower())
            if label is None:
                raise DataError(f"line {pair.line}: NLI label {pair.label!r} is none of entailment, neutral, contradiction "
                                f"(labels in the data: {_labels(pairs)}). Supervised SimCSE needs NLI pairs.")
            pair.label = label
    train = found.get("train", [])
    held = found.get("validation") or found.get("test")
    if held is None:  # hold out every k-th premise, with all of its hypotheses
        every = max(2, round(1 / (data.validation_split or 0.1)))
        premises = sorted({p.text for p in train})
        kept = {p for i, p in enumerate(premises) if i % every == every - 1}
        held, train = [p for p in train if p.text in kept], [p for p in train if p.text not in kept]
    if not train:
        raise DataError(f"{data.path}: no training pairs (a file of sentence1, sentence2, NLI label; found splits {sorted(found)}).")
    return train, held


class _as_split_data:
    """A pretrain data section seen as a task's (path + validation) for ``split_files``."""

    def __init__(self, data):
        self.path, self.train, self.validation, self.test = data.paths[0], None, data.validation, None


@peft_hub.hookimpl
def register_objectives(register):
    register(SimCSE())
