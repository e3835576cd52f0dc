"""Named-entity recognition: token classification scored with entity-level seqeval.

Data: a directory of split files (``train*``, ``dev*``/``valid*``, ``test*``) or single files in
CoNLL column format (any column count, the tag last, ``-DOCSTART-`` skipped), TSV ``token<TAB>tag``,
JSONL (``{"tokens": [...], "tags": [...]}``), a saved ``datasets`` directory or a hub id.
Tags in IOB1, IOB2 or BIOES/BILOU are recognised and converted to IOB2. Only the first sub-token
of each word carries a label; sentences longer than ``max_length`` are split into windows.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import peft_hub
from peft_hub import (
    DataError,
    TaggedSentence,
    is_saved_dataset,
    load_dataset_splits,
    load_with_head,
    model_outputs,
    option,
    read_columns,
    read_jsonl,
    split_files,
)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.ner")
TAG_RE = re.compile(r"^(?:O|([BIESLU])-(.+))$")
GIANT_SENTENCE = 1000  # words; CoNLL-2003's longest sentence has 124
WORD_RE = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]", re.UNICODE)


@dataclass
class NerOptions(peft_hub.Options):
    max_length: int = option(256, "Most sub-tokens per example; longer sentences are split into windows (never truncated).", low=8)
    batch_size: int = option(64, "Sentences per forward pass in `predict`.")
    decoding: Literal["constrained", "argmax"] = option(
        "constrained", "How words get their tags: 'constrained': the most probable tag sequence that is valid IOB2 (no I-X "
        "after O or after another type; Viterbi over each word's tag probabilities); 'argmax': each word's most "
        "probable tag alone (a stray I- then opens an entity).")


# -- tag schemes ----------------------------------------------------------------------------------


def _parse_tag(tag: str, where: str) -> tuple[str, str | None]:
    match = TAG_RE.match(tag)
    if not match:
        raise DataError(
            f"{where}: tag {tag!r} is not an entity tag. Expected O, or B-/I-/E-/S- followed by a type "
            "(IOB1, IOB2 or BIOES), e.g. B-PER. Is the tag the last column?"
        )
    return (match.group(1) or "O"), match.group(2)


def _warn_mixed(sentences: list[TaggedSentence], parsed: list[list[tuple[str, str | None]]], source: str) -> None:
    """In a BIOES file, an entity that ends on B- or I- is written as IOB writes it: the file mixes
    tag schemes (concatenated corpora). Entities are still read; say how many and where."""
    lines = []
    for s, tags in zip(sentences, parsed):
        for i, (prefix, kind) in enumerate(tags):
            following = tags[i + 1] if i + 1 < len(tags) else ("O", None)
            if prefix in "BI" and not (following[0] in "IEL" and following[1] == kind):
                lines.append(s.line + i)
    if lines:
        shown = ", ".join(str(n) for n in lines[:5]) + (" ..." if len(lines) > 5 else "")
        log.warning("%s: the tags are BIOES (E-/S- are used), but %d entities end on a B- or I- tag as IOB "
                    "writes them (lines %s): the file mixes tag schemes. They are read as entities; check the file.",
                    source, len(lines), shown)


def to_iob2(sentences: list[TaggedSentence], source: str) -> tuple[str, int]:
    """Convert tags in place to IOB2; returns (detected scheme, number of repaired tags)."""
    parsed = []
    prefixes = set()
    for s in sentences:
        tags = [_parse_tag(tag, f"{source}, line {s.line + i}") for i, tag in enumerate(s.tags)]
        prefixes.update(p for p, _ in tags)
        parsed.append(tags)
    if prefixes & set("ESLU"):
        scheme = "BIOES"
        _warn_mixed(sentences, parsed, source)
    else:  # IOB1 uses B- only between two adjacent entities of the same type
        b_only_between = all(
            i > 0 and tags[i - 1][1] == kind
            for tags in parsed for i, (prefix, kind) in enumerate(tags) if prefix == "B"
        )
        scheme = "IOB1" if b_only_between and "I" in prefixes else "IOB2"
    bare_starts = 0
    for s, tags in zip(sentences, parsed):
        out = []
        prev_type = None
        for prefix, kind in tags:
            if prefix == "O":
                out.append("O")
                prev_type = None
                continue
            if prefix in "SUB":
                start = True
            elif prefix in "EL":
                start = prev_type != kind
            else:  # "I": starts an entity unless it continues one of the same type
                start = prev_type != kind
                bare_starts += start
            out.append(("B-" if start else "I-") + kind)
            prev_type = None if prefix in "SUEL" else kind
        s.tags = out
    return scheme, (bare_starts if scheme == "IOB2" else 0)


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """IOB2 tags -> (type, first word, last word + 1) spans; a stray I- starts an entity."""
    spans, kind, start = [], None, 0
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, t = tag.partition("-")
        if kind is not None and (prefix != "I" or t != kind):
            spans.append((kind, start, i))
            kind = None
        if prefix in ("B", "I") and kind is None:
            kind, start = t, i
    return spans


def transitions(labels: list[str]) -> tuple[Any, Any]:
    """Valid IOB2 as additive weights (0 allowed, -inf barred): which tags may open a sentence
    (``[labels]``) and which may follow which (``[previous, next]``). ``I-X`` comes only after ``B-X``
    or ``I-X`` (or anywhere, should the labels lack ``B-X``)."""
    import numpy as np

    def opens(tag: str) -> bool:
        return not tag.startswith("I-") or "B-" + tag[2:] not in labels

    first = [opens(tag) for tag in labels]
    follows = [[opens(b) or (a != "O" and a[2:] == b[2:]) for b in labels] for a in labels]
    return np.where(first, 0.0, -np.inf), np.where(follows, 0.0, -np.inf)


def decode(log_probs: Any, rules: tuple[Any, Any] | None) -> list[int]:
    """The tag ids of one sentence's words from their tag log-probabilities (``[words, labels]``):
    the most probable sequence within ``rules`` (:func:`transitions`; Viterbi), or with no rules
    each word's most probable tag alone."""
    import numpy as np

    log_probs = np.asarray(log_probs, dtype=np.float64)
    if rules is None or len(log_probs) == 0:
        return [int(i) for i in log_probs.argmax(-1)]
    first, follows = rules
    score, back = first + log_probs[0], []
    for row in log_probs[1:]:
        candidates = score[:, None] + follows
        back.append(candidates.argmax(0))
        score = candidates.max(0) + row
    path = [int(score.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1]


# -- reading --------------------------------------------------------------------------------------


def _read_file(path: Path, fmt: str, encoding: str) -> list[TaggedSentence]:
    if fmt == "jsonl" or (fmt == "auto" and path.suffix.lower() in (".jsonl", ".json")):
        sentences = []
        for number, obj in read_jsonl(path, encoding):
            tokens = obj.get("tokens", obj.get("words"))
            tags = next((obj[k] for k in ("tags", "ner_tags", "labels") if k in obj), None)
            if not isinstance(tokens, list) or not isinstance(tags, list):
                raise DataError(f"{path}, line {number}: expected keys 'tokens' and 'tags' holding lists; found keys {sorted(obj)}.")
            if len(tokens) != len(tags):
                raise DataError(f"{path}, line {number}: {len(tokens)} tokens but {len(tags)} tags. Give exactly one tag per token.")
            sentences.append(TaggedSentence([str(t) for t in tokens], [str(t) for t in tags], number))
        return sentences
    if fmt not in ("auto", "conll", "tsv"):
        raise DataError(f"data.format {fmt!r} is not a format of the ner task. Use auto, conll, tsv or jsonl.")
    return read_columns(path, encoding)


def _from_datasets(spec: str) -> dict[str, list[TaggedSentence]]:
    splits = {}
    for name, ds in load_dataset_splits(spec).items():
        tok_col = next((c for c in ("tokens", "words") if c in ds.column_names), None)
        tag_col = next((c for c in ("ner_tags", "tags", "labels") if c in ds.column_names), None)
        if tok_col is None or tag_col is None:
            raise DataError(f"{spec} ({name}): needs a 'tokens' and a 'ner_tags' (or 'tags') column; has {ds.column_names}.")
        feature = ds.features[tag_col]
        names = getattr(getattr(feature, "feature", None), "names", None)
        splits[name] = [
            TaggedSentence(list(row[tok_col]), [names[t] if names else str(t) for t in row[tag_col]], i + 1)
            for i, row in enumerate(ds)
        ]
    return splits


class Ner(peft_hub.Task):
    name = "ner"
    description = "Named-entity recognition (token classification); entity-level seqeval P/R/F1."
    Options = NerOptions
    keep_full_precision = ["classifier"]  # the head stays out of 8-bit/4-bit
    peft_task_type = "TOKEN_CLS"
    auto_class = "AutoModelForTokenClassification"
    example_shape = "tokens"
    token_labels = True
    display = "entities"
    primary_metric = "f1"
    summary_metrics = ("precision", "recall", "f1", "accuracy")

    def sample_data(self):
        return Path(__file__).parent / "samples" / "ner"

    def read_data(self, data, options):
        if data.path and not os.path.exists(data.path) or (data.path and is_saved_dataset(data.path)):
            raw = _from_datasets(data.path)
            sources = {name: f"{data.path} ({name})" for name in raw}
        else:
            files = split_files(data)
            raw = {split: _read_file(path, data.format, data.encoding) for split, path in files.items()}
            sources = {split: str(path) for split, path in files.items()}
        for split, sentences in raw.items():
            if not sentences:
                raise DataError(f"{sources[split]}: the {split} split holds no sentences. Remove the file or fill it.")
            scheme, repaired = to_iob2(sentences, sources[split])
            note = f"; {repaired} I- tags that opened an entity were read as B-" if repaired else ""
            log.info("%s: %d sentences, %s tags%s", sources[split], len(sentences), scheme, note)
        return raw

    def labels(self, splits, data=None):
        types = sorted({t[2:] for s in splits.get("train", []) for t in s.tags if t != "O"})
        unseen = sorted({t[2:] for name, sents in splits.items() if name != "train" for s in sents for t in s.tags if t != "O"} - set(types))
        if unseen:
            log.warning("Entity types in dev/test but never in train (the model cannot learn them): %s", ", ".join(unseen))
            types += unseen
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def unlabeled_example(self, text, labels):
        words = WORD_RE.findall(text)  # split as `predict` splits raw text
        return TaggedSentence(words, ["O"] * len(words), 0)

    # -- features ---------------------------------------------------------------------------------

    @staticmethod
    def _windows(lengths: list[int], budget: int) -> list[tuple[int, int]]:
        """Split words into consecutive windows of at most ``budget`` sub-tokens."""
        windows, start, used = [], 0, 0
        for i, n in enumerate(lengths):
            if used + n > budget and i > start:
                windows.append((start, i))
                start, used = i, 0
            used += n
        windows.append((start, len(lengths)))
        return windows

    def _encode_words(self, sentences: list[list[str]], tokenizer, max_length: int):
        """Tokenize word lists; returns ``[(window words offset, encoding index, word_ids)]`` and encodings."""
        unk = tokenizer.unk_token or "[UNK]"
        full = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
        max_length = min(max_length, tokenizer.model_max_length)  # no more than the model has positions
        budget = max_length - tokenizer.num_special_tokens_to_add()
        pieces, origin = [], []
        split_count = 0
        for index, words in enumerate(sentences):
            counts = [0] * len(words)
            for w in full.word_ids(index):
                counts[w] += 1
            # a word that tokenizes to nothing (e.g. a lone zero-width space) would lose its label
            words = [word if counts[i] else unk for i, word in enumerate(words)]
            counts = [c or 1 for c in counts]
            windows = self._windows(counts, budget)
            split_count += len(windows) > 1
            for start, end in windows:
                if sum(counts[start:end]) > budget:
                    raise DataError(f"A single word has {sum(counts[start:end])} sub-tokens, more than max_length={max_length}.")
                pieces.append(words[start:end])
                origin.append((index, start))
        enc = tokenizer(pieces, is_split_into_words=True, truncation=False)
        return enc, origin, split_count

    def encode(self, examples, tokenizer, labels, options):
        label2id = {label: i for i, label in enumerate(labels)}
        enc, origin, split_count = self._encode_words([s.tokens for s in examples], tokenizer, options.max_length)
        if split_count:
            log.info("%d sentence(s) longer than max_length=%d split into windows", split_count,
                     min(options.max_length, tokenizer.model_max_length))
        giant = [s for s in examples if len(s.tokens) > GIANT_SENTENCE]
        if giant:  # e.g. a file that lost its blank lines reads as one endless sentence
            log.warning("%d sentence(s) of more than %d words (the first at line %d: %d words): did the file lose the "
                        "blank lines between sentences? They are read in windows, but sentence boundaries are lost.",
                        len(giant), GIANT_SENTENCE, giant[0].line, len(giant[0].tokens))
        features = []
        for i, (index, offset) in enumerate(origin):
            tags = examples[index].tags
            seen = set()
            label_ids = []
            for w in enc.word_ids(i):
                if w is None or w in seen:
                    label_ids.append(-100)
                else:
                    seen.add(w)
                    label_ids.append(label2id[tags[offset + w]])
            feature = {key: enc[key][i] for key in enc.keys()}
            feature["labels"] = label_ids
            features.append(feature)
        return features

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForTokenClassification

        return load_with_head(AutoModelForTokenClassification, model_path, labels, **load_kwargs)

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def predictions(self, logits):
        """Every sub-token's tag log-probabilities (half precision): the metric decodes whole words'
        sequences (``decoding``), which needs more than each position's arg-max."""
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.float().log_softmax(-1).half()

    def compute_metrics(self, evaluation):
        """Entity-level seqeval scores; ``predictions`` are per-position tag log-probabilities
        (:meth:`predictions`), decoded per sentence as ``decoding`` says, or tag ids as they are."""
        from seqeval.metrics import classification_report

        labels = evaluation.labels
        options = evaluation.options or self.Options()
        rules = transitions(labels) if options.decoding == "constrained" else None
        gold, pred = [], []
        correct = total = 0
        for p_row, l_row in zip(evaluation.predictions, evaluation.label_ids):
            keep = l_row != -100
            g = [labels[i] for i in l_row[keep]]
            p = [labels[i] for i in (decode(p_row[keep], rules) if p_row.ndim == 2 else p_row[keep])]
            gold.append(g)
            pred.append(p)
            correct += sum(a == b for a, b in zip(g, p))
            total += len(g)
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        scores = {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "accuracy": correct / total if total else 0.0,
        }
        for kind, row in report.items():
            if kind.endswith(" avg"):
                continue
            scores[f"f1_{kind}"] = float(row["f1-score"])
        return scores

    # -- prediction -------------------------------------------------------------------------------

    def score_notes(self, scores):
        per_type = {k[3:]: v for k, v in scores.items() if k.startswith("f1_")}
        return ["F1 per type: " + ", ".join(f"{t} {v:.3f}" for t, v in per_type.items())] if per_type else []

    def sample_inputs(self):
        return [{"text": "Anna Schmidt flew from Paris to Tokyo ."}, {"text": "Toyota opened a plant in Lyon ."}]

    def word_log_probs(self, model, tokenizer, words, labels, options):
        """Each sentence's ``[words, labels]`` tag log-probabilities, from each word's first sub-token."""
        import numpy as np

        enc, origin, _ = self._encode_words(words, tokenizer, options.max_length)
        collate = self.collator(tokenizer)
        out_log_probs = [np.zeros((len(w), len(labels)), dtype=np.float32) for w in words]
        windows = [range(b, min(b + options.batch_size, len(origin))) for b in range(0, len(origin), options.batch_size)]
        batches = (collate([{key: enc[key][i] for key in enc.keys()} for i in idx]) for idx in windows)
        for idx, out in zip(windows, model_outputs(model, batches)):
            log_probs = out.logits.float().log_softmax(-1).cpu().numpy()
            for row, i in enumerate(idx):
                text_index, offset = origin[i]
                seen = set()
                for pos, w in enumerate(enc.word_ids(i)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        out_log_probs[text_index][offset + w] = log_probs[row, pos]
        return out_log_probs

    def _tag_words(self, model, tokenizer, words, labels, options):
        """Each word's tag (decoded as ``options.decoding`` says) and that tag's probability."""
        import math

        rules = transitions(labels) if options.decoding == "constrained" else None
        word_tags, word_scores = [], []
        for sentence in self.word_log_probs(model, tokenizer, words, labels, options):
            ids = decode(sentence, rules)
            word_tags.append([labels[i] for i in ids])
            word_scores.append([math.exp(sentence[w, i]) for w, i in enumerate(ids)])
        return word_tags, word_scores

    def pseudo_label(self, model, tokenizer, examples, labels, options):
        tags, scores = self._tag_words(model, tokenizer, [e.tokens for e in examples], labels, options)
        out = []
        for example, sentence_tags, sentence_scores in zip(examples, tags, scores):
            fixed = [t if not t.startswith("I-") or (i and sentence_tags[i - 1][2:] == t[2:] and sentence_tags[i - 1] != "O")
                     else "B-" + t[2:] for i, t in enumerate(sentence_tags)]  # a stray I- starts an entity (IOB2)
            out.append((TaggedSentence(list(example.tokens), fixed, example.line), min(sentence_scores, default=1.0), None))
        return out

    def predict(self, model, tokenizer, inputs, labels, options):
        texts = [i["text"] for i in inputs]
        words, spans = [], []
        for text in texts:
            matches = list(WORD_RE.finditer(text))
            words.append([m.group() for m in matches])
            spans.append([m.span() for m in matches])
        word_tags, word_scores = self._tag_words(model, tokenizer, words, labels, options)
        results = []
        for text, tags, scores, offsets in zip(texts, word_tags, word_scores, spans):
            found = []
            for kind, first, last in entities(tags):
                start, end = offsets[first][0], offsets[last - 1][1]
                score = sum(scores[first:last]) / (last - first)
                found.append({"text": text[start:end], "type": kind, "start": start, "end": end, "score": round(score, 4)})
            results.append({"text": text, "entities": found})
        return results

    def format_prediction(self, inputs, prediction):
        text = inputs["text"]
        if not prediction["entities"]:
            return f"{text}\n  (no entities)"
        rows = [f"  {e['type']:<6} {e['text']!r:<30} chars {e['start']}-{e['end']}  ({e['score']:.2f})" for e in prediction["entities"]]
        return "\n".join([text, *rows])


@peft_hub.hookimpl
def register_tasks(register):
    register(Ner())
