"""Masked language modelling objectives: ``mlm`` (BERT's dynamic token masking, reusing
transformers' collator) and ``wwm`` (whole-word masking by the tokenizer's word ids, so WordPiece,
BPE and SentencePiece tokenizers are handled alike, with the same 80/10/10 rule per word).

Both compute the output layer (hidden size x vocabulary, as costly as a small encoder) only at the
masked positions during training (``sparse_head``); the loss is the same."""

from __future__ import annotations

from dataclasses import dataclass

import logging
import math
import os

import peft_hub
from peft_hub import load_pretrained, option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.mlm")


@dataclass
class MlmOptions(peft_hub.Options):
    mlm_probability: float = option(0.15, "Share of tokens (mlm) or words (wwm) selected for prediction.", above=0, below=1)
    mask_replace_prob: float = option(0.8, "Of the selected: share replaced by [MASK].", low=0, high=1)
    random_replace_prob: float = option(0.1, "Of the selected: share replaced by a random token (the rest stay unchanged).", low=0, high=1)
    sparse_head: bool = option(True, "Train with the head computed only at masked positions (same loss, less work).")

    def check(self) -> list[str]:
        if self.mask_replace_prob + self.random_replace_prob > 1:
            return ["mask_replace_prob and random_replace_prob: must add up to at most 1"]
        return []


class WholeWordMaskCollator:
    """Pads blocks and masks whole words: every token of a selected word gets the same fate."""

    def __init__(self, tokenizer, options: MlmOptions, seed: int | None = None):
        import torch

        self.tokenizer = tokenizer
        self.options = options
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, features: list[dict]) -> dict:
        import torch

        word_ids = [f["word_ids"] for f in features]
        batch = self.tokenizer.pad(
            [{"input_ids": f["input_ids"]} for f in features], return_tensors="pt"
        )
        length = batch["input_ids"].shape[1]
        words = torch.full((len(features), length), -1, dtype=torch.long)
        for row, ids in enumerate(word_ids):
            words[row, : len(ids)] = torch.tensor(ids)
        inputs, labels = batch["input_ids"], batch["input_ids"].clone()
        count = int(words.max()) + 1 if words.numel() else 0
        rand = lambda *shape: torch.rand(*shape, generator=self.generator)  # noqa: E731
        # one draw per (row, word): selected? then [MASK] / random / keep for the whole word
        selected = rand(len(features), count) < self.options.mlm_probability
        fate = rand(len(features), count)
        valid = words >= 0
        index = words.clamp(min=0)
        token_selected = torch.gather(selected, 1, index) & valid
        token_fate = torch.gather(fate, 1, index)
        labels[~token_selected] = -100
        to_mask = token_selected & (token_fate < self.options.mask_replace_prob)
        to_random = token_selected & ~to_mask & (token_fate < self.options.mask_replace_prob + self.options.random_replace_prob)
        inputs[to_mask] = self.tokenizer.mask_token_id
        random_ids = torch.randint(len(self.tokenizer), inputs.shape, generator=self.generator)
        inputs[to_random] = random_ids[to_random]
        return {"input_ids": inputs, "attention_mask": batch["attention_mask"], "labels": labels}


class SparseHead:
    """Runs an MLM head only where a token was selected for prediction.

    Called on each batch before the forward pass: keeps the labels of the selected positions only
    (a 1-D tensor) and remembers where they are; a pre-hook on the head then gathers the encoder's
    output at those positions. The model's own cross-entropy, a mean over selected tokens, sees the
    same rows in the same order, so the loss and gradients are those of the dense head.
    The model object is unchanged (no wrapper), so DDP, peft, checkpoints and saving work as usual.
    """

    def __init__(self, head):
        self.selected = None
        head.register_forward_pre_hook(self._gather)

    def _gather(self, module, args):
        if self.selected is None:
            return None
        selected, self.selected = self.selected, None
        if not args:
            raise peft_hub.ModelError(f"{type(module).__name__} takes its input by keyword; train with mlm option sparse_head=false.")
        return (args[0][selected], *args[1:])

    def __call__(self, batch: dict) -> dict:
        labels = batch.get("labels")
        if labels is None:
            self.selected = None
            return batch
        self.selected = labels != -100
        return {**batch, "labels": labels[self.selected]}

    @classmethod
    def attach(cls, model):
        """A SparseHead for ``model`` (maybe wrapped by peft), or None when its head is not one
        module that holds the output layer (e.g. DistilBERT's loose head layers)."""
        import torch

        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        output = inner.get_output_embeddings()
        heads = [
            child for name, child in inner.named_children()
            if name != inner.base_model_prefix and any(m is output for m in child.modules())
        ]
        others = [n for n, c in inner.named_children() if n != inner.base_model_prefix and any(True for _ in c.parameters())]
        if len(heads) != 1 or len(others) != 1 or output is None:
            log.info("sparse_head: %s has no single head module; the head runs at every position", type(inner).__name__)
            return None
        if torch.cuda.device_count() > 1 and "WORLD_SIZE" not in os.environ:  # nn.DataParallel splits batches
            return None
        return cls(heads[0])


def perplexity(model, features: list[dict], collate, batch_size: int = 32) -> tuple[float, int]:
    """exp(mean cross-entropy over every labelled token) and the number of those tokens.

    Token-weighted over the whole set (not a mean of batch means), so it does not depend on how
    the examples are batched."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start : start + batch_size])
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            total += torch.nn.functional.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100, reduction="sum"
            ).item()
            count += int((labels != -100).sum())
    model.train(was_training)
    if count == 0:
        raise peft_hub.DataError("The held-out text produced no masked tokens; give more validation text.")
    return math.exp(total / count), count


class MaskedLM(peft_hub.Objective):
    name = "mlm"
    description = "Masked language modelling: 15% of tokens, dynamic each epoch, 80% [MASK] / 10% random / 10% kept."
    Options = MlmOptions
    keep_full_precision = ["cls", "lm_head"]  # the head (BERT: cls, RoBERTa: lm_head) stays out of 8-bit/4-bit
    default_method = "full"  # continued pretraining updates the whole encoder unless told otherwise

    def build_model(self, model_path, **load_kwargs):
        from transformers import AutoModelForMaskedLM

        model, info = load_pretrained(AutoModelForMaskedLM, model_path, output_loading_info=True, **load_kwargs)
        return model, sorted(info.get("missing_keys", []))

    def head_modules(self, model):
        """The head's modules that do not hold the output embeddings (tied to the input ones)."""
        out = model.get_output_embeddings()
        base = getattr(model, "base_model_prefix", None)
        found = []
        for name, child in model.named_children():
            if name == base:
                continue
            stack = [(name, child)]
            while stack:
                prefix, module = stack.pop()
                if out is not None and any(m is out for m in module.modules()):
                    stack.extend((f"{prefix}.{n}", c) for n, c in module.named_children())
                elif any(True for _ in module.parameters()):
                    found.append(prefix)
        return sorted(found)

    def collator(self, tokenizer, options, seed=None):
        from transformers import DataCollatorForLanguageModeling

        if tokenizer.mask_token is None:
            raise peft_hub.ModelError("This tokenizer has no mask token, so it cannot be used for masked language modelling.")
        return DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=options.mlm_probability, mask_replace_prob=options.mask_replace_prob,
            random_replace_prob=options.random_replace_prob, seed=seed,
        )

    def prepare_training(self, model, options):
        return SparseHead.attach(model) if options.sparse_head else None

    primary_metric = "perplexity"

    def evaluate(self, model, heldout, tokenizer, options, batch_size=32):
        """Perplexity over the held-out blocks, masked once (the default :meth:`heldout`)."""
        from transformers import DataCollatorForTokenClassification

        value, count = perplexity(model, heldout, DataCollatorForTokenClassification(tokenizer), batch_size)
        return {"perplexity": value, "masked_tokens": count}


class WholeWordMasking(MaskedLM):
    name = "wwm"
    description = "Whole-word masking: all sub-tokens of a selected word are masked together (any tokenizer)."
    needs_word_ids = True

    def collator(self, tokenizer, options, seed=None):
        if tokenizer.mask_token is None:
            raise peft_hub.ModelError("This tokenizer has no mask token, so it cannot be used for masked language modelling.")
        return WholeWordMaskCollator(tokenizer, options, seed)


@peft_hub.hookimpl
def register_objectives(register):
    register(MaskedLM())
    register(WholeWordMasking())
