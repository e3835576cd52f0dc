"""`peft-hub` with one of the candidate fixes of issue 17 that did not become a default switched
on, to measure it (benchmarks/RESULTS.md, "Defaults across datasets"). The head's own rate is a
product option (training.head_learning_rate) and needs no patch.

    CANDIDATE=mean     the classifier reads the masked mean of the last hidden states instead of
                       BERT's [CLS] pooler (all-MiniLM-L6-v2 was trained with mean pooling)
    CANDIDATE=zero     the classifier starts at zero instead of N(0, 0.02)
    CANDIDATE=pooler   the pooler (dense + tanh) trains fully with the head, at the head's rate

    CANDIDATE=mean .venv/bin/python benchmarks/head_candidates.py adapt --task classify --method lora \\
        --data ../shared/data/trec data.encoding=latin-1 --epochs 1 training.head_learning_rate=2e-3

Experiment code: it patches the classification plugin and the method's head list at run time.
"""

from __future__ import annotations

import os
import sys

CANDIDATE = os.environ.get("CANDIDATE", "")


def _patch() -> None:
    import torch

    import peft_hub_plugins.classify as classify

    original = classify.load_with_head

    def load_with_head(auto_class, path, labels, **kwargs):
        model = original(auto_class, path, labels, **kwargs)
        if CANDIDATE == "mean":
            state = {}
            model.bert.register_forward_pre_hook(lambda m, a, kw: state.update(mask=kw.get("attention_mask")), with_kwargs=True)

            class MeanPool(torch.nn.Module):
                def forward(self, hidden):
                    mask = state["mask"].unsqueeze(-1).to(hidden.dtype)
                    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

            model.bert.pooler = MeanPool()
        if CANDIDATE == "zero":
            torch.nn.init.zeros_(model.classifier.weight)
            torch.nn.init.zeros_(model.classifier.bias)
        return model

    classify.load_with_head = load_with_head
    if CANDIDATE == "pooler":
        head_modules = classify.Classify.head_modules
        classify.Classify.head_modules = lambda self, model: head_modules(self, model) + (
            ["bert.pooler"] if hasattr(model, "bert") else [])  # every method trains what head_modules names


if __name__ == "__main__":
    if CANDIDATE not in ("mean", "zero", "pooler"):
        raise SystemExit("set CANDIDATE=mean, zero or pooler")
    _patch()
    from peft_hub.cli import cli

    cli(sys.argv[1:])
