"""Extractive question answering: the answer is a span of the context (SQuAD v1.1).

Long contexts are read in overlapping windows (``max_length`` sub-tokens, ``doc_stride`` shared
between neighbours); the best span of all windows wins (start + end logit, at most
``max_answer_length`` sub-tokens). Scores are SQuAD's official exact match and F1 (answers
normalised: lower case, no punctuation, no articles, single spaces; best over the gold answers),
as fractions of 1.

Data:

- SQuAD v1.1 JSON: ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
  "answers": [{"text", "answer_start"}]}]}]}]}``;
- JSONL: ``{"question", "context", "answers"}`` with ``answers`` a list of ``{"text",
  "answer_start"}`` or the ``datasets`` layout ``{"text": [...], "answer_start": [...]}``.

A single file (SQuAD's dev set is the only one at hand here) can be split by article with the
``article_split`` option: shares of the articles, in file order, for train / dev / test.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import peft_hub
from peft_hub import DataError, load_pretrained, model_outputs, option, read_jsonl, read_lines, split_files

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.qa")


@dataclass
class QaOptions(peft_hub.Options):
    max_length: int = option(384, "Sub-tokens per window (question + context part).", low=32)
    doc_stride: int = option(128, "Sub-tokens shared by neighbouring windows of a long context.", low=0)
    max_answer_length: int = option(30, "Longest answer, in sub-tokens.", low=1)
    n_best: int = option(20, "Start and end candidates tried per window.", low=1)
    article_split: list[float] | None = option(
        None, "Split one file by article into train / dev / test shares, in file order, e.g. [0.75, 0.083, 0.167].")
    batch_size: int = option(32, "Windows per forward pass in `predict`.", low=1)

    def check(self) -> list[str]:
        errors = []
        if self.doc_stride >= self.max_length // 2:
            errors.append(f"doc_stride: must be below half of max_length ({self.max_length // 2}), got {self.doc_stride}")
        if self.article_split is not None and (len(self.article_split) != 3 or any(s < 0 for s in self.article_split)
                                               or not 0.99 <= sum(self.article_split) <= 1.01 or self.article_split[0] == 0):
            errors.append(f"article_split: three shares (train, dev, test) >= 0 summing to 1, train above 0; got {self.article_split}")
        return errors


@dataclass
class Example:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (text, character start)
    article: str = ""


# -- reading -------------------------------------------------------------------------------------


def _answers(raw, context: str, where: str) -> list[tuple[str, int]]:
    if isinstance(raw, dict):  # the datasets layout: {"text": [...], "answer_start": [...]}
        raw = [{"text": t, "answer_start": s} for t, s in zip(raw.get("text", []), raw.get("answer_start", []))]
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: expected 'answers' as a non-empty list of {{\"text\", \"answer_start\"}}, got {str(raw)[:80]!r}.")
    out = []
    for answer in raw:
        text, start = (answer.get("text"), answer.get("answer_start")) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(start, int):
            raise DataError(f"{where}: an answer needs a string 'text' and an integer 'answer_start', got {str(answer)[:80]!r}.")
        if context[start : start + len(text)] != text:
            raise DataError(f"{where}: answer {text!r} is not at character {start} of the context "
                            f"(found {context[start : start + len(text)]!r}). answer_start counts characters from 0.")
        out.append((text, start))
    return out


def read_squad(path: Path, encoding: str) -> list[Example]:
    text = "\n".join(read_lines(path, encoding))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path}: expected SQuAD's layout {{\"data\": [{{\"title\", \"paragraphs\": [...]}}]}}. "
                        "For one question per line, use a .jsonl file.")
    out = []
    for a, article in enumerate(document["data"]):
        title = str(article.get("title", f"article {a + 1}"))
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            context = paragraph.get("context")
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"{path}: article {title!r}, paragraph {p + 1}, question {q + 1}"
                if not isinstance(context, str) or not isinstance(qa.get("question"), str):
                    raise DataError(f"{where}: needs a string 'context' and 'question'.")
                out.append(Example(str(qa.get("id", f"{a}-{p}-{q}")), qa["question"], context,
                                   _answers(qa.get("answers"), context, where), title))
    return out


def read_qa_jsonl(path: Path, encoding: str) -> list[Example]:
    out = []
    for number, obj in read_jsonl(path, encoding):
        where = f"{path}, line {number}"
        if not isinstance(obj.get("question"), str) or not isinstance(obj.get("context"), str):
            raise DataError(f"{where}: expected string 'question' and 'context' keys; found keys {sorted(obj)}.")
        out.append(Example(str(obj.get("id", f"line-{number}")), obj["question"], obj["context"],
                           _answers(obj.get("answers"), obj["context"], where), str(obj.get("title", ""))))
    return out


def split_by_article(examples: list[Example], shares: list[float], source: str) -> dict[str, list[Example]]:
    articles = list(dict.fromkeys(e.article for e in examples))
    if len(articles) < 3:
        raise DataError(f"{source}: article_split needs at least 3 articles; it has {len(articles)}.")
    n_train = max(1, round(shares[0] * len(articles)))
    n_dev = round(shares[1] * len(articles))
    names = {"train": articles[:n_train], "validation": articles[n_train : n_train + n_dev],
             "test": articles[n_train + n_dev :]}
    where = {a: split for split, group in names.items() for a in group}
    splits: dict[str, list[Example]] = {}
    for e in examples:
        splits.setdefault(where[e.article], []).append(e)
    for split, group in names.items():
        if group:
            log.info("%s: %d articles (%s ... %s), %d questions", split, len(group), group[0], group[-1], len(splits[split]))
    return splits


# -- SQuAD's official scoring -------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    predicted, true = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((collections.Counter(predicted) & collections.Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], examples: list[Example]) -> dict[str, float]:
    """Mean of the best exact match and F1 over each question's gold answers (fractions of 1)."""
    em = f1 = 0.0
    for e in examples:
        answer = predictions.get(e.id, "")
        em += max(exact_match(answer, gold) for gold, _ in e.answers)
        f1 += max(token_f1(answer, gold) for gold, _ in e.answers)
    n = max(1, len(examples))
    return {"exact_match": em / n, "f1": f1 / n}


# -- the task -----------------------------------------------------------------------------------


class QuestionAnswering(peft_hub.Task):
    name = "qa"
    description = "Extractive question answering (SQuAD v1.1): windows over long contexts; exact match and F1."
    Options = QaOptions
    input_fields = ("question", "context")
    keep_full_precision = ["qa_outputs"]
    # Not QUESTION_ANS: peft 0.21's PeftModelForQuestionAnswering drops token_type_ids on the way to
    # the model (LoRA/IA3 would then train without segment ids, and a merged model, which gets them,
    # would answer differently). The feature-extraction wrapper passes every input through.
    peft_task_type = "FEATURE_EXTRACTION"
    auto_class = "AutoModelForQuestionAnswering"
    display = "answer"
    primary_metric = "f1"
    summary_metrics = ("exact_match", "f1")

    def sample_data(self):
        return Path(__file__).parent / "samples" / "qa"

    def sample_inputs(self):
        return [{"question": "Where does Anna live?", "context": "Anna lives in Paris and works at a bakery."},
                {"question": "What does Tom sell?", "context": "Tom sells apples at the market every Sunday."}]

    def read_data(self, data, options):
        if data.format not in ("auto", "squad", "jsonl"):
            raise DataError(f"data.format {data.format!r} is not a format of the qa task. Use auto, squad or jsonl.")
        splits = {}
        files = split_files(data)
        for split, path in files.items():
            jsonl = data.format == "jsonl" or (data.format == "auto" and path.suffix.lower() == ".jsonl")
            examples = read_qa_jsonl(path, data.encoding) if jsonl else read_squad(path, data.encoding)
            if not examples:
                raise DataError(f"{path}: the {split} split holds no questions. Remove the file or fill it.")
            splits[split] = examples
        if options.article_split is not None:
            if set(splits) != {"train"}:
                raise DataError(f"article_split splits one file, but the data has {', '.join(sorted(splits))} splits. "
                                "Drop the option, or give one file.")
            splits = split_by_article(splits["train"], options.article_split, str(files["train"]))
        return splits

    def teacher_refusal(self, options):
        return "its model scores a start and an end position per window, not one distribution per label"

    def labels(self, splits, data=None):
        return []  # spans, not labels

    def _windows(self, tokenizer, questions: list[str], contexts: list[str], options):
        """Windows over each context; the stride shrinks when the model's positions or a long
        question leave less room for the context than the options assume."""
        max_length = min(options.max_length, tokenizer.model_max_length)
        longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"])
        room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
        if room < 8:
            raise DataError(f"A question of {longest} sub-tokens leaves {room} of the {max_length} positions for its context. "
                            "Shorten the question or raise the task option max_length.")
        return tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                         stride=min(options.doc_stride, room // 2), return_overflowing_tokens=True, return_offsets_mapping=True)

    def encode(self, examples, tokenizer, labels, options):
        enc = self._windows(tokenizer, [e.question.lstrip() for e in examples], [e.context for e in examples], options)
        features = []
        for i, index in enumerate(enc["overflow_to_sample_mapping"]):
            example = examples[index]
            sequence = enc.sequence_ids(i)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence)]
            text, char_start = example.answers[0]
            char_end = char_start + len(text)
            inside = [t for t, o in enumerate(offsets) if o is not None]
            start = end = 0  # the answer is not in this window: point at the first token
            if text and inside and offsets[inside[0]][0] <= char_start and offsets[inside[-1]][1] >= char_end:
                start = next(t for t in inside if offsets[t][1] > char_start)
                end = next(t for t in reversed(inside) if offsets[t][0] < char_end)
            feature = {key: enc[key][i] for key in ("input_ids", "attention_mask", "token_type_ids") if key in enc}
            features.append({**feature, "start_positions": start, "end_positions": end, "example_id": example.id, "offsets": offsets})
        return features

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForQuestionAnswering

        return load_pretrained(AutoModelForQuestionAnswering, model_path, **load_kwargs)

    def collator(self, tokenizer):
        return _Collator(tokenizer)

    def predictions(self, logits):
        import torch

        start, end = logits[0], logits[1]
        return torch.stack([start, end], dim=-1).float()

    def _best_spans(self, logits, features: list[dict], contexts: dict[str, str], options) -> dict[str, tuple[str, float, int]]:
        """(answer text, score, character start) per example id, the best span over its windows."""
        import numpy as np

        best: dict[str, tuple[str, float, int]] = {}
        for row, feature in zip(logits, features):
            offsets = feature["offsets"]
            start_logits, end_logits = row[: len(offsets), 0], row[: len(offsets), 1]
            starts = np.argsort(start_logits)[::-1][: options.n_best]
            ends = np.argsort(end_logits)[::-1][: options.n_best]
            for s in starts:
                for e in ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > options.max_answer_length:
                        continue
                    score = float(start_logits[s] + end_logits[e])
                    if score > best.get(feature["example_id"], ("", -np.inf, 0))[1]:
                        begin, finish = offsets[s][0], offsets[e][1]
                        best[feature["example_id"]] = (contexts[feature["example_id"]][begin:finish], score, begin)
        return best

    def compute_metrics(self, evaluation):
        examples = evaluation.examples
        spans = self._best_spans(evaluation.predictions, evaluation.features, {e.id: e.context for e in examples}, evaluation.options)
        return squad_scores({key: text for key, (text, _, _) in spans.items()}, examples)

    def predict(self, model, tokenizer, inputs, labels, options):
        import numpy as np

        examples = [Example(str(n), i["question"], i["context"], [("", 0)]) for n, i in enumerate(inputs)]  # no answer known
        features = self.encode(examples, tokenizer, labels, options)
        collate = self.collator(tokenizer)
        batches = ({k: v for k, v in collate(features[b : b + options.batch_size]).items() if k not in ("start_positions", "end_positions")}
                   for b in range(0, len(features), options.batch_size))
        rows = []
        for out in model_outputs(model, batches):
            stacked = self.predictions((out.start_logits, out.end_logits)).cpu().numpy()
            rows += [stacked[n] for n in range(stacked.shape[0])]
        width = max(len(r) for r in rows)
        logits = np.stack([np.pad(r, ((0, width - len(r)), (0, 0)), constant_values=-1e4) for r in rows])
        spans = self._best_spans(logits, features, {e.id: e.context for e in examples}, options)
        results = []
        for example, given in zip(examples, inputs):
            text, score, start = spans.get(example.id, ("", float("-inf"), 0))
            results.append({**given, "answer": text, "start": start, "end": start + len(text),
                            "score": round(score, 4) if text else None})
        return results

    def format_prediction(self, inputs, prediction):
        return f"{inputs['question']}\n  -> {prediction['answer']!r} (chars {prediction['start']}-{prediction['end']})"


class _Collator:
    """Pads the model inputs of QA windows; keeps the answer positions; drops the metric's keys."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict:
        keep = ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions")
        return self.pad([{k: f[k] for k in keep if k in f} for f in features])


@peft_hub.hookimpl
def register_tasks(register):
    register(QuestionAnswering())
