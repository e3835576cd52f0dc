"""Relation classification between two marked entities of a sentence (Baldini Soares et al.,
2019, "entity start" variant): entity markers ``<e1> </e1> <e2> </e2>`` are added tokens; the head
reads the encoder's states at ``<e1>`` and ``<e2>``, concatenated.

The markers' embeddings are a small module of the head (``marker_embeddings``), so they train with
every method (a frozen, freshly resized embedding row would stay random under LoRA), are saved with
the run and merge; the tokenizer with the added markers is saved with the run.

Data:

- SemEval-2010 Task 8's format: blocks of ``<id>\\t"<sentence with <e1>..</e1> and <e2>..</e2>>"``,
  the label (``Cause-Effect(e1,e2)``, ``Other`` ...), a ``Comment:`` line and a blank line;
- JSONL: ``{"text": ..., "e1": [start, end], "e2": [start, end], "label": ...}`` with character
  spans (end exclusive), or ``text`` already holding the markers.

Metric: SemEval-2010 Task 8's official score, the macro-averaged F1 over the relations other than
``Other`` with the direction taken into account (a relation predicted in the wrong direction is
wrong for precision and for recall), plus accuracy over all labels.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import peft_hub
from peft_hub import (
    DataError,
    encoder_class,
    label_set,
    labelled,
    load_with_head,
    model_outputs,
    option,
    read_jsonl,
    read_lines,
    special_tokens,
    split_files,
)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")
ID_LINE = re.compile(r"^\s*(\d+)\t(.*)$")
DIRECTION = re.compile(r"\((e[12]),\s*(e[12])\)$")


@dataclass
class RelationOptions(peft_hub.Options):
    max_length: int = option(128, "Most sub-tokens per sentence; a longer one is cut to a window that keeps both entities.", low=16)
    other_label: str = option("Other", "The 'no relation' label, left out of the macro-F1 (SemEval's rule).")
    batch_size: int = option(64, "Sentences per forward pass in `predict`.")


@dataclass
class Example:
    text: str  # with the four markers
    label: str
    line: int


def check_marked(text: str, where: str) -> str:
    """``text`` if it holds each marker exactly once, e1 and e2 each opened before closed."""
    counts = {m: text.count(m) for m in MARKERS}
    if any(n != 1 for n in counts.values()):
        raise DataError(f"{where}: expected each of {' '.join(MARKERS)} exactly once, found "
                        + ", ".join(f"{m} x{n}" for m, n in counts.items()) + f" in {text[:120]!r}.")
    for open_, close in (("<e1>", "</e1>"), ("<e2>", "</e2>")):
        if text.index(open_) > text.index(close):
            raise DataError(f"{where}: {close} comes before {open_} in {text[:120]!r}.")
    return text


def mark(text: str, e1: list, e2: list, where: str) -> str:
    """Insert the markers around two character spans ``[start, end)``."""
    spans = []
    for name, span in (("e1", e1), ("e2", e2)):
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                and 0 <= span[0] < span[1] <= len(text)):
            raise DataError(f"{where}: {name} must be [start, end] character offsets with 0 <= start < end <= "
                            f"{len(text)} (the text's length), got {span!r}.")
        spans.append((span[0], span[1], name))
    (s1, t1, _), (s2, t2, _) = sorted(spans)
    if s2 < t1:
        raise DataError(f"{where}: the entity spans {e1} and {e2} overlap.")
    inserts = sorted([(s, f"<{n}>") for s, _, n in spans] + [(t, f"</{n}>") for _, t, n in spans],
                     key=lambda x: x[0], reverse=True)
    for at, marker in inserts:
        text = text[:at] + marker + text[at:]
    return text


def read_semeval(path: Path, encoding: str) -> list[Example]:
    lines = read_lines(path, encoding)
    out, number = [], 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        match = ID_LINE.match(lines[number])
        where = f"{path}, line {number + 1}"
        if not match:
            raise DataError(f"{where}: expected '<id><TAB>\"<sentence>\"' (SemEval-2010 Task 8's format), got {lines[number][:80]!r}.")
        sentence = match.group(2).strip()
        if len(sentence) >= 2 and sentence[0] == sentence[-1] == '"':
            sentence = sentence[1:-1]  # the outer quotes only: a sentence may start with its own quote
        if number + 1 >= len(lines) or not lines[number + 1].strip():
            raise DataError(f"{where}: the sentence has no label line after it.")
        label = lines[number + 1].strip()
        out.append(Example(check_marked(sentence, where), label, number + 1))
        number += 2
        while number < len(lines) and lines[number].strip().startswith("Comment"):
            number += 1
    return out


def read_relation_jsonl(path: Path, encoding: str) -> list[Example]:
    out = []
    for number, obj in read_jsonl(path, encoding):
        where = f"{path}, line {number}"
        text, label = obj.get("text"), obj.get("label", obj.get("relation"))
        if not isinstance(text, str) or not isinstance(label, str):
            raise DataError(f"{where}: expected a string 'text' and a string 'label' (or 'relation'); found keys {sorted(obj)}.")
        if "e1" in obj or "e2" in obj:
            text = mark(text, obj.get("e1"), obj.get("e2"), where)
        out.append(Example(check_marked(text, where), label, number))
    return out


def official_scores(gold: list[str], predicted: list[str], other: str) -> dict[str, float]:
    """SemEval-2010 Task 8's official macro-F1 (relations without ``other``, direction counted),
    with its macro precision and recall, and the accuracy over all labels."""
    def base(label: str) -> str:
        return DIRECTION.sub("", label)

    relations = sorted({base(g) for g in gold} - {other})
    f1s, precisions, recalls = [], [], []
    for relation in relations:
        correct = sum(g == p and base(g) == relation for g, p in zip(gold, predicted))
        said = sum(base(p) == relation for p in predicted)
        true = sum(base(g) == relation for g in gold)
        precision, recall = (correct / said if said else 0.0), (correct / true if true else 0.0)
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {"f1": mean(f1s), "precision": mean(precisions), "recall": mean(recalls),
            "accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0}


@functools.cache
def model_class(base: type) -> type:
    """``base`` (a transformers encoder class, e.g. ``BertModel``) with the marker embeddings and
    the entity-start head. A subclass, so loading, 8-bit/4-bit, peft and ``save_pretrained`` work
    as for the encoder itself."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class EntityRelation(base):
        def __init__(self, config):
            super().__init__(config)
            # markers stand in for word embeddings (ALBERT's and ELECTRA's are narrower than the layers)
            self.marker_embeddings = torch.nn.Embedding(len(MARKERS), self.get_input_embeddings().embedding_dim)
            self.relation_dropout = torch.nn.Dropout(next((getattr(config, key) for key in ("hidden_dropout_prob", "dropout")
                                                           if isinstance(getattr(config, key, None), float)), 0.1))
            self.relation_head = torch.nn.Linear(2 * config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, marker_ids=None,
                    e1_index=None, e2_index=None, labels=None, inputs_embeds=None, past_key_values=None, **kwargs):
            if inputs_embeds is None:
                words = self.get_input_embeddings()
                # added marker ids lie past the base vocabulary: look up a real row, then replace it
                inputs_embeds = words(input_ids.clamp(max=words.num_embeddings - 1))
                if marker_ids is not None:
                    markers = self.marker_embeddings((marker_ids - 1).clamp(min=0)).to(inputs_embeds.dtype)
                    inputs_embeds = torch.where((marker_ids > 0).unsqueeze(-1), markers, inputs_embeds)
            kwargs = {k: v for k, v in kwargs.items() if k in ("output_attentions", "output_hidden_states")}
            # only what was given: several families take no token types or past key values
            given = {k: v for k, v in (("token_type_ids", token_type_ids), ("past_key_values", past_key_values)) if v is not None}
            states = super().forward(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **given, **kwargs).last_hidden_state
            rows = torch.arange(states.shape[0], device=states.device)
            pair = torch.cat([states[rows, e1_index], states[rows, e2_index]], dim=-1)
            logits = self.relation_head(self.relation_dropout(pair).to(self.relation_head.weight.dtype))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    EntityRelation.__name__ = EntityRelation.__qualname__ = f"{base.__name__}ForEntityRelation"
    return EntityRelation


class Relation(peft_hub.Task):
    name = "relation"
    description = "Relation classification between two marked entities; SemEval-2010 Task 8's official macro-F1."
    Options = RelationOptions
    keep_full_precision = ["marker_embeddings", "relation_head"]
    peft_task_type = "SEQ_CLS"
    display = "label"  # its head (entity-start states) is no transformers class: the card loads AutoModel
    primary_metric = "f1"
    summary_metrics = ("precision", "recall", "f1", "accuracy")

    def sample_data(self):
        return Path(__file__).parent / "samples" / "relation"

    def sample_inputs(self):
        return [{"text": "The <e1>author</e1> of the book uses a <e2>pen</e2>."},
                {"text": "The <e1>wine</e1> came from the <e2>cellar</e2>."}]

    def head_modules(self, model):
        return ["marker_embeddings", "relation_head"]

    def read_data(self, data, options):
        if data.format not in ("auto", "semeval", "jsonl"):
            raise DataError(f"data.format {data.format!r} is not a format of the relation task. Use auto, semeval or jsonl.")
        splits = {}
        for split, path in split_files(data).items():
            jsonl = data.format == "jsonl" or (data.format == "auto" and path.suffix.lower() in (".jsonl", ".json"))
            examples = read_relation_jsonl(path, data.encoding) if jsonl else read_semeval(path, data.encoding)
            if not examples:
                raise DataError(f"{path}: the {split} split holds no examples. Remove the file or fill it.")
            splits[split] = examples
        return splits

    def labels(self, splits, data=None):
        return label_set(splits)

    def prepare_tokenizer(self, tokenizer, options):
        tokenizer.add_tokens([m for m in MARKERS if m not in tokenizer.get_vocab()], special_tokens=True)

    def _features(self, texts: list[str], tokenizer, max_length: int, where: list[str]) -> list[dict]:
        marker_ids = tokenizer.convert_tokens_to_ids(list(MARKERS))
        if tokenizer.unk_token_id in marker_ids:
            raise peft_hub.ModelError("The tokenizer lacks the entity markers: it was not prepared by the relation task.")
        code = {token: i + 1 for i, token in enumerate(marker_ids)}
        enc = tokenizer(texts, add_special_tokens=False)
        prefix, suffix = special_tokens(tokenizer)
        budget = min(max_length, tokenizer.model_max_length) - len(prefix) - len(suffix)
        features = []
        for ids, at in zip(enc["input_ids"], where):
            first, last = min(ids.index(marker_ids[0]), ids.index(marker_ids[2])), max(ids.index(marker_ids[1]), ids.index(marker_ids[3]))
            if last - first + 1 > budget:
                raise DataError(f"{at}: the two entities span {last - first + 1} sub-tokens, more than max_length={max_length} "
                                "allows. Raise the task option max_length.")
            start = max(0, min(first - (budget - (last - first + 1)) // 2, len(ids) - budget))
            window = prefix + ids[start : start + budget] + suffix
            markers = [code.get(i, 0) for i in window]
            features.append({"input_ids": window, "attention_mask": [1] * len(window), "marker_ids": markers,
                             "e1_index": markers.index(1), "e2_index": markers.index(3)})
        return features

    def encode(self, examples, tokenizer, labels, options):
        label2id = {label: i for i, label in enumerate(labels)}
        features = self._features([e.text for e in examples], tokenizer, options.max_length, [f"line {e.line}" for e in examples])
        return [{**f, "labels": label2id[e.label]} for f, e in zip(features, examples)]

    def build_model(self, model_path, labels, **load_kwargs):
        base = encoder_class(model_path, load_kwargs.get("trust_remote_code", False))
        return load_with_head(model_class(base), model_path, labels, **load_kwargs)

    def collator(self, tokenizer):
        return _Collator(tokenizer.pad_token_id or 0)

    def compute_metrics(self, evaluation):
        import numpy as np

        labels = evaluation.labels
        gold = [labels[i] for i in np.asarray(evaluation.label_ids).reshape(-1)]
        predicted = [labels[i] for i in np.asarray(evaluation.predictions).reshape(-1)]
        return official_scores(gold, predicted, evaluation.options.other_label)

    def predict(self, model, tokenizer, inputs, labels, options):
        where = [f"input {n + 1}" for n in range(len(inputs))]
        texts = [check_marked(i["text"], at) for i, at in zip(inputs, where)]
        starts = range(0, len(texts), options.batch_size)
        collate = self.collator(tokenizer)
        batches = (collate(self._features(texts[b : b + options.batch_size], tokenizer, options.max_length,
                                          where[b : b + options.batch_size])) for b in starts)
        return [{"text": text, **labelled(labels, row)}
                for b, out in zip(starts, model_outputs(model, batches))
                for text, row in zip(texts[b : b + options.batch_size], out.logits.float().softmax(-1))]

    def format_prediction(self, inputs, prediction):
        return f"{prediction['label']}\t{prediction['score']:.2f}\t{inputs['text']}"


class _Collator:
    """Pads ``input_ids`` (pad id), ``attention_mask`` and ``marker_ids`` (0) to the longest row."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        batch = {key: torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features])
                 for key, pad in (("input_ids", self.pad_id), ("attention_mask", 0), ("marker_ids", 0))}
        for key in ("e1_index", "e2_index", "labels"):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch


@peft_hub.hookimpl
def register_tasks(register):
    register(Relation())
