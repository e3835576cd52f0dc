"""peft-hub-toy: a third-party plugin with a method, a task and an objective, written against the
public API only (``import peft_hub``), as the README's "Writing a plugin" section shows.

- method ``bitfit``: trains only the biases (Ben Zaken et al., 2022) and the task head;
- task ``textscore``: one text -> a real-valued score, scored by mean absolute error (lower is better);
- objective ``rtd``: replaced-token detection: 15% of tokens are replaced by random ones and
  the model tags every token as original or replaced, one document (line) per example; scored by
  detection accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import peft_hub
from peft_hub import DataError, option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


# -- method -------------------------------------------------------------------------------------


class BitFit(peft_hub.StateDictMethod):
    name = "bitfit"
    description = "BitFit: only the bias terms (and the task head) train."
    default_learning_rate = 1e-2
    cannot_merge = None  # it changes weights in place: the trained model is the merged model

    def apply(self, model, options, task):
        heads = task.head_modules(model)
        peft_hub.train_only(model, lambda name: name.endswith(".bias") or any(name.startswith(h + ".") for h in heads))
        return model

    def merge(self, model):
        return model


# -- task ---------------------------------------------------------------------------------------


@dataclass
class TextScoreOptions(peft_hub.Options):
    max_length: int = option(64, "Most sub-tokens per text.")


@dataclass
class Example:
    text: str
    score: float
    line: int


class TextScore(peft_hub.Task):
    name = "textscore"
    description = "Text regression: one real-valued score per text; mean absolute error."
    Options = TextScoreOptions
    peft_task_type = "SEQ_CLS"
    keep_full_precision = ["classifier"]
    primary_metric = "mae"
    greater_is_better = False
    summary_metrics = ("mae",)

    def sample_data(self):
        return Path(__file__).parent / "samples"

    def sample_inputs(self):
        return [{"text": "the food was great and lovely"}, {"text": "awful dull room"}]

    def read_data(self, data, options):
        splits = {}
        for split, path in peft_hub.split_files(data).items():
            examples = []
            for number, line in enumerate(peft_hub.read_lines(path, data.encoding), 1):
                if not line.strip():
                    continue
                text, _, score = line.rpartition("\t")
                try:
                    examples.append(Example(text, float(score), number))
                except ValueError:
                    raise DataError(f"{path}, line {number}: expected 'text<TAB>score', got {line[:60]!r}.") from None
            splits[split] = examples
        return splits

    def labels(self, splits, data=None):
        return []  # a regression

    def encode(self, examples, tokenizer, labels, options):
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=options.max_length)
        return [{**{k: enc[k][i] for k in enc.keys()}, "labels": e.score} for i, e in enumerate(examples)]

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForSequenceClassification

        return peft_hub.load_pretrained(AutoModelForSequenceClassification, model_path, num_labels=1,
                                        problem_type="regression", **load_kwargs)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def predictions(self, logits):
        return logits[..., 0].float()

    def compute_metrics(self, evaluation):
        import numpy as np

        error = np.abs(np.asarray(evaluation.predictions).reshape(-1) - np.asarray(evaluation.label_ids).reshape(-1))
        return {"mae": float(error.mean())}

    def predict(self, model, tokenizer, inputs, labels, options):
        import torch

        batch = self.collator(tokenizer)(self.encode([Example(i["text"], 0.0, 0) for i in inputs], tokenizer, labels, options))
        batch.pop("labels")
        model.eval()
        with torch.no_grad():
            scores = model(**batch).logits[:, 0].tolist()
        return [{"text": i["text"], "score": round(s, 4)} for i, s in zip(inputs, scores)]

    def format_prediction(self, inputs, prediction):
        return f"{prediction['score']:.2f}\t{inputs['text']}"


# -- objective ----------------------------------------------------------------------------------


@dataclass
class RtdOptions(peft_hub.Options):
    replace_probability: float = option(0.15, "Share of tokens replaced by a random token.")


class ReplacedTokenDetection(peft_hub.Objective):
    name = "rtd"
    description = "Replaced-token detection: tag each token as original or randomly replaced."
    Options = RtdOptions
    keep_full_precision = ["classifier"]
    primary_metric = "accuracy"
    greater_is_better = True
    input_unit = "documents"  # one example per line of text, not packed blocks

    def build_model(self, model_path, **load_kwargs):
        from transformers import AutoModelForTokenClassification

        model = peft_hub.load_pretrained(AutoModelForTokenClassification, model_path, num_labels=2, **load_kwargs)
        return model, ["classifier.weight", "classifier.bias"]

    def collator(self, tokenizer, options, seed=None):
        return _Replace(tokenizer, options.replace_probability, seed)

    def evaluate(self, model, heldout, tokenizer, options, batch_size=32):
        import torch

        pad = _Replace(tokenizer, 0.0, 0).pad
        correct = total = 0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(heldout), batch_size):
                batch = pad(heldout[start : start + batch_size])
                labels = batch.pop("labels")
                predicted = model(**batch).logits.argmax(-1)
                keep = labels != -100
                correct += int((predicted[keep] == labels[keep]).sum())
                total += int(keep.sum())
        return {"accuracy": correct / max(1, total), "tokens": total}


class _Replace:
    def __init__(self, tokenizer, probability, seed):
        import torch

        self.tokenizer, self.probability = tokenizer, probability
        self.generator = torch.Generator().manual_seed(seed if seed is not None else 0)

    def pad(self, features):
        import torch

        width = max(len(f["input_ids"]) for f in features)
        pad_id = self.tokenizer.pad_token_id or 0
        batch = {"input_ids": torch.tensor([f["input_ids"] + [pad_id] * (width - len(f["input_ids"])) for f in features]),
                 "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features])}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in features])
        return batch

    def __call__(self, features):
        import torch

        batch = self.pad([{"input_ids": f["input_ids"]} for f in features])
        ids = batch["input_ids"]
        special = torch.tensor([[int(i in self.tokenizer.all_special_ids) for i in row] for row in ids.tolist()], dtype=torch.bool)
        replace = (torch.rand(ids.shape, generator=self.generator) < self.probability) & ~special
        ids[replace] = torch.randint(len(self.tokenizer), ids.shape, generator=self.generator)[replace]
        batch["labels"] = torch.where(special, torch.tensor(-100), replace.long())
        return batch


# -- registration -------------------------------------------------------------------------------


@peft_hub.hookimpl
def register_methods(register):
    register(BitFit())


@peft_hub.hookimpl
def register_tasks(register):
    register(TextScore())


@peft_hub.hookimpl
def register_objectives(register):
    register(ReplacedTokenDetection())
