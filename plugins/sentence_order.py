"""Sentence-level objectives on consecutive sentences of documents:

- ``sop``: ALBERT's sentence-order prediction. Two consecutive segments of one document, in their
  order or swapped (half of the time); the model says which.
- ``nsp``: BERT's next-sentence prediction. A segment and the segment that follows it, or (half
  of the time) a segment of another document; the model says which.

Segments are runs of whole sentences (``peft_hub.split_sentences``) filling a ``data.block_size``
pair, cut at a random sentence boundary, as BERT and ALBERT built them. The head is a fresh 2-way
classifier on the pooled first token (``AutoModelForSequenceClassification``), so any encoder
works; ``adapt --model`` on the output re-initialises it. Held-out metric: accuracy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import peft_hub
from peft_hub import DataError, load_with_head, model_outputs, option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

IN_ORDER, OTHER = 0, 1  # label 1: swapped (sop) / not the next segment (nsp)


@dataclass
class SentenceOrderOptions(peft_hub.Options):
    short_segment_prob: float = option(0.1, "Share of pairs built to a random shorter length (BERT: 0.1), so that short inputs are seen too.", low=0, high=1)


class SentenceOrder(peft_hub.Objective):
    name = "sop"
    description = "Sentence-order prediction (ALBERT): are two consecutive segments in order or swapped? Accuracy."
    Options = SentenceOrderOptions
    input_unit = "sentences"
    peft_task_type = "SEQ_CLS"
    keep_full_precision = ["classifier"]
    default_method = "full"
    primary_metric = "accuracy"
    greater_is_better = True
    labels = ["in order", "swapped"]

    def build_model(self, model_path, **load_kwargs):
        from transformers import AutoModelForSequenceClassification

        model, info = load_with_head(AutoModelForSequenceClassification, model_path, self.labels, output_loading_info=True, **load_kwargs)
        return model, sorted(info.get("missing_keys", []))

    def build_examples(self, units, tokenizer, options, seed, block_size):
        rng = random.Random(seed)
        documents: dict[int, list[dict]] = {}
        for unit in units:
            documents.setdefault(unit["document"], []).append(unit)
        documents = {k: v for k, v in documents.items() if len(v) >= 2}
        if not documents:
            raise DataError(f"{self.name} needs documents of at least 2 sentences; the {len(units)} sentences here come one per "
                            "document. Give text with several sentences per line (or data.paragraphs=true for blank-line separated paragraphs).")
        budget = max(8, block_size - 3)  # [CLS] a [SEP] b [SEP]
        examples = []
        for index, sentences in documents.items():
            target = rng.randint(8, budget) if rng.random() < options.short_segment_prob else budget
            chunk, length = [], 0
            for position, sentence in enumerate(sentences):
                chunk.append(sentence["text"])
                length += len(sentence["input_ids"]) - 2
                if (length >= target or position == len(sentences) - 1) and len(chunk) >= 2:
                    cut = rng.randint(1, len(chunk) - 1)
                    examples.append(self.pair(chunk[:cut], chunk[cut:], documents, index, rng))
                    chunk, length = [], 0
                    target = rng.randint(8, budget) if rng.random() < options.short_segment_prob else budget
        enc = tokenizer([a for a, _, _ in examples], [b for _, b, _ in examples], truncation="longest_first", max_length=block_size)
        return [{**{key: enc[key][i] for key in enc.keys()}, "sentence_label": label} for i, (_, _, label) in enumerate(examples)]

    def pair(self, first, second, documents, index, rng):
        """(text a, text b, label) from two consecutive runs of sentences of document ``index``."""
        if rng.random() < 0.5:
            return " ".join(first), " ".join(second), IN_ORDER
        return " ".join(second), " ".join(first), OTHER

    def collator(self, tokenizer, options, seed=None):
        from transformers import DataCollatorWithPadding

        pad = DataCollatorWithPadding(tokenizer)

        def collate(features):
            batch = pad([{k: v for k, v in f.items() if k != "sentence_label"} for f in features])
            import torch

            batch["labels"] = torch.tensor([f["sentence_label"] for f in features])
            return batch

        return collate

    def heldout(self, blocks, tokenizer, options, seed):
        return blocks  # the pairs and their labels were drawn once, with the held-out seed

    def evaluate(self, model, heldout, tokenizer, options, batch_size=32):
        import torch

        collate = self.collator(tokenizer, options)
        batches = [collate(heldout[start : start + batch_size]) for start in range(0, len(heldout), batch_size)]
        correct, loss = 0, 0.0
        for batch, out in zip(batches, model_outputs(model, batches)):
            correct += int((out.logits.argmax(-1).cpu() == batch["labels"]).sum())
            loss += float(torch.nn.functional.cross_entropy(out.logits.float().cpu(), batch["labels"], reduction="sum"))
        return {"accuracy": correct / max(1, len(heldout)), "loss": loss / max(1, len(heldout))}


class NextSentence(SentenceOrder):
    name = "nsp"
    description = "Next-sentence prediction (BERT): is the second segment the one that follows, or from another document? Accuracy."
    labels = ["next", "random"]

    def pair(self, first, second, documents, index, rng):
        others = [i for i in documents if i != index]
        if rng.random() < 0.5 or not others:
            return " ".join(first), " ".join(second), IN_ORDER
        other = documents[rng.choice(others)]  # as many sentences of another document, from a random one
        start = rng.randrange(max(1, len(other) - len(second) + 1))
        return " ".join(first), " ".join(s["text"] for s in other[start : start + len(second)]), OTHER


@peft_hub.hookimpl
def register_objectives(register):
    register(SentenceOrder())
    register(NextSentence())
