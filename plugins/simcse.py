"""SimCSE (Gao et al., 2021): contrastive sentence embeddings.

- Unsupervised (default): every sentence of the text goes through the encoder twice; the two
  dropout masks make a positive pair and the rest of the batch are negatives.
- Supervised (``pairs: nli``): NLI pairs. Entailment hypotheses are the positives,
  contradiction hypotheses of the same premise hard negatives, the rest of the batch negatives.
  Any pair file ``peft_hub.read_pairs`` reads (SICK, SNLI/MNLI as TSV or JSONL); a split column
  (SICK's ``SemEval_set``) gives the held-out pairs, else every k-th premise is held out.
- From labels (``pairs: labels``): the contrastive step of SetFit's few-shot recipe. The labelled
  examples of a task (``task: classify``, read by that task's reader) are paired with other
  examples of the same label; texts of the same label are never each other's negatives. A
  classification stage on the same few labels follows (recipe ``simcse/setfit_sst2``).

Held-out metric: Spearman correlation of cosine similarity with the gold scores of an STS file
(``sts``: STS-B, SICK relatedness) when one is given, else the uniformity of held-out sentence
embeddings (plus the alignment of held-out positive pairs when there are pairs). The output is a plain
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
    get_task,
    load_pretrained,
    option,
    parse_options,
    read_pairs,
    read_scored_pairs,
    split_files,
    sts_scores,
)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.simcse")
ENTAILMENT, CONTRADICTION = "entailment", "contradiction"
NLI_LABELS = {"entailment": ENTAILMENT, "contradiction": CONTRADICTION, "neutral": "neutral",
              "entails": ENTAILMENT, "contradicts": CONTRADICTION}


@dataclass
class SimcseOptions(peft_hub.Options):
    pairs: Literal["dropout", "nli", "labels"] = option(
        "dropout", "Where positive pairs come from: dropout (each sentence of plain text twice), nli (entailment pairs of an NLI "
        "file; contradictions are hard negatives) or labels (two examples of the same label, read by `task`; SetFit).")
    task: str = option("classify", "pairs=labels: the task whose reader reads the labelled data.")
    task_options: dict = option({}, "pairs=labels: options of that task's reader (e.g. {label_column: intent}).")
    positives_per_example: int = option(20, "pairs=labels: positive pairs drawn per labelled example (SetFit: 20).", low=1)
    temperature: float = option(0.05, "Softmax temperature of the cosine similarities (SimCSE: 0.05).", above=0, high=10)
    pooling: Literal["mean", "cls", "pooler"] = option(
        "mean", "Sentence vector: mean of the last hidden states over real tokens, the first token's, or the encoder's pooler "
        "(dense + tanh on the first token: what a classification head reads; SimCSE's cls with MLP).")
    sts: str | None = option(None, "An STS file (sentence1, sentence2, score in [0, 5], e.g. ../shared/data/stsb/sts-dev.csv) scored before and after training.")
    hard_negatives: bool = option(True, "pairs=nli: use contradiction hypotheses as hard negatives.")
    max_length: int = option(64, "pairs=nli or labels: most sub-tokens per sentence (plain text is cut at data.block_size).", low=4)

    def check(self) -> list[str]:
        if self.sts is not None and not Path(self.sts).is_file():
            return [f"sts: {self.sts} is not a file (an STS file: sentence1, sentence2, score)"]
        return []


class SimCSE(peft_hub.Objective):
    name = "simcse"
    description = "SimCSE: contrastive sentence embeddings from dropout views, NLI pairs or same-label pairs (SetFit); STS Spearman."
    Options = SimcseOptions
    input_unit = "sentences"
    peft_task_type = "FEATURE_EXTRACTION"
    default_method = "full"
    min_batch_size = 2  # the rest of the batch are the negatives
    next_steps = ("peft-hub evaluate {out} --sts ../shared/data/stsb/sts-test.csv",
                  "peft-hub embed {out} --input texts.txt --output vectors.npy",
                  "peft-hub adapt --model {out} --method lora --task classify --data DIR")
    primary_metric = "spearman"
    greater_is_better = True

    def __init__(self):
        self._sts: dict[str, list] = {}

    #: without an STS file: what the held-out data can score (higher is better for the first)
    UNSCORED = {"labels": ("centroid_accuracy", True), "nli": ("alignment", False), "dropout": ("uniformity", False)}

    def primary_metric_for(self, options):
        return "spearman" if options.sts else self.UNSCORED[options.pairs][0]

    def greater_is_better_for(self, options):
        return True if options.sts else self.UNSCORED[options.pairs][1]

    def head_modules(self, model):
        return []  # the encoder is all there is

    def sentence_pooling(self, options):
        return options.pooling

    def build_model(self, model_path, **load_kwargs):
        base = encoder_class(model_path, load_kwargs.get("trust_remote_code", False))
        return load_pretrained(bi_encoder_class(base), model_path, **load_kwargs), []

    # -- data -------------------------------------------------------------------------------------

    def read_data(self, data, tokenizer, options):
        if options.pairs == "labels":
            return self._label_pairs(data, tokenizer, options)
        if options.pairs != "nli":
            return None
        train, held = _nli_pairs(data)
        triplets = self._triplets(train, options)
        if not triplets:
            raise DataError(f"{data.paths[0]}: no entailment pairs to train on (labels found: {_labels(train)}). "
                            "Supervised SimCSE needs NLI pairs labelled entailment / contradiction.")
        held_triplets = self._triplets(held, options)
        log.info("SimCSE supervised: %d training premises, %d with a hard negative", len(triplets),
                 sum("negative" in t for t in triplets))
        return [self._encode_triplet(t, tokenizer, options) for t in triplets], [self._encode_triplet(t, tokenizer, options) for t in held_triplets]

    def _label_pairs(self, data, tokenizer, options):
        """Anchor / same-label positive pairs from the labelled examples of ``options.task``."""
        import random

        task = get_task(options.task)
        parsed, errors = parse_options(task.Options, options.task_options, "objective.options.task_options")
        if errors:
            raise DataError("; ".join(errors))
        splits = task.read_data(_as_split_data(data), parsed)
        train = splits.get("train", [])
        held = splits.get("validation") or []  # never the test split: the held-out metric picks the checkpoint
        if not held:  # hold out every 10th example
            held, train = train[9::10], [e for i, e in enumerate(train) if i % 10 != 9]
        labels = {label: i for i, label in enumerate(sorted({str(e.label) for e in train}))}
        length = min(options.max_length, tokenizer.model_max_length)

        def pairs(examples, per_example, seed):
            rng = random.Random(seed)
            ids = tokenizer([e.text for e in examples], truncation=True, max_length=length)["input_ids"]
            by_label: dict[str, list[int]] = {}
            for index, example in enumerate(examples):
                by_label.setdefault(str(example.label), []).append(index)
            out = []
            for index, example in enumerate(examples):
                mates = [j for j in by_label[str(example.label)] if j != index]
                for mate in (rng.choice(mates) for _ in range(per_example if mates else 0)):
                    out.append({"input_ids": ids[index], "positive_ids": ids[mate], "group": labels.get(str(example.label), -1)})
            rng.shuffle(out)
            return out

        made = pairs(train, options.positives_per_example, 0)
        if not made:
            raise DataError(f"{data.paths[0]}: no label has two training examples, so no same-label pairs can be drawn "
                            f"({len(train)} examples, labels {sorted(labels)[:10]}). Give at least 2 examples per label.")
        return made, [p for p in pairs(held, 1, 1) if p["group"] >= 0]

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
        if heldout and "group" in heldout[0]:
            scores["centroid_accuracy"] = centroid_accuracy(anchors, [e["group"] for e in heldout[:1000]])
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
            if "group" in features[0]:
                import torch

                batch["groups"] = torch.tensor([f["group"] for f in features])
            negatives = [f["negative_ids"] for f in features if "negative_ids" in f]
            if negatives:
                batch.update(zip(("negative_input_ids", "negative_attention_mask"), self._pad(negatives)))
        return {**batch, "temperature": self.options.temperature, "pooling": self.options.pooling, "return_loss": True}


def centroid_accuracy(vectors, groups) -> float:
    """Share of examples whose nearest class centroid (cosine; their own left out of it) is their
    own class: how well the embeddings separate the labels, as a head on them would need."""
    import numpy as np

    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    groups = np.asarray(groups)
    classes = sorted(set(groups.tolist()))
    sums = {c: x[groups == c].sum(0) for c in classes}
    counts = {c: int((groups == c).sum()) for c in classes}
    correct = 0
    for row, group in zip(x, groups):
        best, best_score = None, -np.inf
        for c in classes:
            total, count = (sums[c] - row, counts[c] - 1) if c == group else (sums[c], counts[c])
            if count == 0:
                continue
            score = float(row @ (total / count)) / max(float(np.linalg.norm(total / count)), 1e-12)
            if score > best_score:
                best, best_score = c, score
        correct += best == group
    return correct / max(1, len(groups))


def _labels(pairs) -> list[str]:
    return sorted({str(p.label) for p in pairs})[:10]


def _nli_pairs(data):
    """(training pairs, held-out pairs) with labels normalised to entailment / contradiction /
    neutral: held out are the file's own validation rows (SICK's TRIAL), data.validation, or every
    k-th premise (data.validation_split)."""
    files = split_files(_as_split_data(data))
    columns = PairColumns()
    found: dict[str, list] = {}
    for split, path in files.items():
        read = read_pairs(path, "auto", columns, data.encoding, prefix="objective.options.")
        for name, pairs in read.items():
            for pair in pairs:
                label = NLI_LABELS.get(str(pair.label).strip().lower())
                if label is None:
                    raise DataError(f"{path}, line {pair.line}: NLI label {pair.label!r} is none of entailment, neutral, "
                                    f"contradiction (labels in the file: {_labels(pairs)}). pairs=nli needs NLI pairs.")
                pair.label = label
            found.setdefault(split if name == "all" else name, []).extend(pairs)
    train = found.get("train", [])
    held = found.get("validation")  # never the test split: the held-out metric picks the checkpoint
    if held is None:  # hold out every k-th premise, with all of its hypotheses
        every = max(2, round(1 / (data.validation_split or 0.1)))
        premises = sorted({p.text for p in train})
        kept = {p for i, p in enumerate(premises) if i % every == every - 1}
        held, train = [p for p in train if p.text in kept], [p for p in train if p.text not in kept]
    if not train:
        raise DataError(f"{data.paths[0]}: no training pairs (a file of sentence1, sentence2, NLI label; found splits {sorted(found)}).")
    return train, held


class _as_split_data:
    """A pretrain data section seen as a task's (path, splits, format, encoding) by ``split_files``
    and a task's reader; what a pretrain section lacks reads as unset."""

    def __init__(self, data):
        self.path, self.train, self.validation, self.test = data.paths[0], None, data.validation, None
        self.format, self.encoding = "auto", data.encoding

    def __getattr__(self, name):
        return None


@peft_hub.hookimpl
def register_objectives(register):
    register(SimCSE())
