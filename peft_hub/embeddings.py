"""Sentence embeddings: one vector per text from an encoder (mean of its last hidden states over
the real tokens, or the first token's), the contrastive loss that trains them (SimCSE, in-batch
negatives), and their STS score (Spearman correlation of cosine similarity with gold scores).

Shared by the ``simcse`` objective, the ``embed`` command and ``evaluate --sts``; any encoder
directory works (a ``pretrain`` output, a merged ``adapt`` run, a sentence-transformers model's
transformer folder).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import DataError, ModelError

if TYPE_CHECKING:
    import numpy as np
    import torch

POOLINGS = ("mean", "cls", "pooler")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, pooler_output: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, hidden) sentence vectors from (batch, tokens, hidden) states: their mean over real
    tokens, the first token's, or the encoder's own pooler (BERT: dense + tanh on the first token,
    what a sequence-classification head reads)."""
    if pooling == "pooler":
        if pooler_output is None:
            raise ModelError("pooling=pooler: this encoder has no pooler; use pooling mean or cls.")
        return pooler_output
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise DataError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def contrastive_loss(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float,
                     groups: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE over cosine similarities: anchor i's positive is candidate i; every other candidate
    (the batch's other positives, then any hard negatives appended after them) is a negative.
    With ``groups`` (one id per anchor, e.g. its class), another positive of the anchor's own group
    is no negative: it is left out of that anchor's softmax."""
    import torch

    anchors = torch.nn.functional.normalize(anchors.float(), dim=-1)
    candidates = torch.nn.functional.normalize(candidates.float(), dim=-1)
    logits = anchors @ candidates.T / temperature
    n = len(anchors)
    if groups is not None:
        same = torch.zeros_like(logits, dtype=torch.bool)
        same[:, :n] = groups[:, None] == groups[None, :]
        same[:, :n].fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(n, device=anchors.device))


@functools.cache
def bi_encoder_class(base: type) -> type:
    """``base`` (a transformers encoder class, e.g. ``BertModel``) whose forward also trains
    sentence embeddings contrastively when a batch asks for it (``temperature`` given, and
    ``return_loss`` so that Trainer evaluates the loss of batches without labels):

    - ``input_ids`` only: unsupervised SimCSE. Every sentence goes through twice in one pass; the
      two dropout masks make the positive pair, the rest of the batch the negatives;
    - with ``positive_input_ids`` (and maybe ``negative_input_ids``): supervised pairs, hard
      negatives appended to the in-batch candidates; ``groups`` keeps same-class pairs apart from
      the negatives (pairs drawn from labels).

    Without ``temperature`` it is the encoder itself. A subclass with the encoder's own name, so
    loading, 8-bit/4-bit, peft and ``save_pretrained`` (which writes a plain encoder that ``adapt
    --model`` loads) work as for the encoder."""
    class BiEncoder(base):
        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, positive_input_ids=None,
                    positive_attention_mask=None, negative_input_ids=None, negative_attention_mask=None,
                    temperature=None, pooling="mean", groups=None, return_loss=None, **kwargs):
            if temperature is None:
                return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs)
            import torch

            def embed(ids, mask):
                out = super(BiEncoder, self).forward(input_ids=ids, attention_mask=mask)
                return pool(out.last_hidden_state, mask, pooling, getattr(out, "pooler_output", None))

            n = len(input_ids)
            if positive_input_ids is None:  # the same sentences twice: two dropout views
                both = embed(torch.cat([input_ids, input_ids]), torch.cat([attention_mask, attention_mask]))
                anchors, candidates = both[:n], both[n:]
            else:
                anchors, candidates = embed(input_ids, attention_mask), embed(positive_input_ids, positive_attention_mask)
                if negative_input_ids is not None and len(negative_input_ids):
                    candidates = torch.cat([candidates, embed(negative_input_ids, negative_attention_mask)])
            return {"loss": contrastive_loss(anchors, candidates, float(temperature), groups)}

    BiEncoder.__name__ = BiEncoder.__qualname__ = base.__name__
    return BiEncoder


def encoder_class(model_path: str, trust_remote_code: bool = False) -> type:
    """The bare encoder class (``AutoModel``'s) of the model in ``model_path``."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    try:
        return AutoModel._model_mapping[type(config)]
    except KeyError:
        raise ModelError(f"{model_path}: no encoder class for model type {config.model_type!r}.") from None


def encode(model: Any, tokenizer: Any, texts: Sequence[str], pooling: str = "mean", batch_size: int = 64,
           max_length: int = 256, normalize: bool = False) -> np.ndarray:
    """(len(texts), hidden) float32 embeddings, in eval mode, batched by length for speed."""
    import numpy as np
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoder = getattr(inner, inner.base_model_prefix, inner) if hasattr(inner, "base_model_prefix") else inner
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                              max_length=min(max_length, tokenizer.model_max_length), return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            states = encoder(**batch)
            vectors = pool(states.last_hidden_state, batch["attention_mask"], pooling, getattr(states, "pooler_output", None)).float()
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[rows] = vectors.cpu().numpy()
    model.train(was_training)
    return out


def sts_scores(model: Any, tokenizer: Any, pairs: Sequence[Any], pooling: str = "mean", batch_size: int = 64) -> dict[str, float]:
    """Spearman and Pearson correlation of the cosine similarity of each pair's embeddings with its
    gold score (``pairs``: :class:`peft_hub.PairExample` with float labels)."""
    import numpy as np

    from .pairs import pearson, spearman

    first = encode(model, tokenizer, [p.text for p in pairs], pooling, batch_size, normalize=True)
    second = encode(model, tokenizer, [p.text_pair for p in pairs], pooling, batch_size, normalize=True)
    cosine = (first * second).sum(-1)
    gold = np.asarray([p.label for p in pairs], dtype=float)
    return {"spearman": spearman(cosine, gold), "pearson": pearson(cosine, gold), "sts_pairs": len(pairs)}


def alignment_uniformity(anchors: np.ndarray, positives: np.ndarray | None = None) -> dict[str, float]:
    """Wang and Isola's measures on L2-normalised embeddings: uniformity log E exp(-2 |x - y|^2)
    over pairs of sentences (lower: spread more evenly), and alignment E |x - x+|^2 over positive
    pairs when given (lower: positives closer)."""
    import numpy as np

    x = anchors / np.linalg.norm(anchors, axis=1, keepdims=True).clip(min=1e-12)
    squared = np.clip(2 - 2 * (x @ x.T), 0, None)
    off = ~np.eye(len(x), dtype=bool)
    scores = {"uniformity": float(np.log(np.exp(-2 * squared[off]).mean()))}
    if positives is not None:
        y = positives / np.linalg.norm(positives, axis=1, keepdims=True).clip(min=1e-12)
        scores["alignment"] = float(((x - y) ** 2).sum(-1).mean())
    return scores


def load_encoder(source: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, pooling) for sentence embeddings from ``source``: a finished ``adapt``
    run of a task with sentence representations (its adapter applied), a ``pretrain`` output (the
    pooling its objective recorded in ``run.json``), a model directory, an alias or a hub id (mean
    pooling)."""
    import json

    from . import models, rundir
    from .errors import RunDirError
    from .locations import locate

    directory = locate(source)
    info = rundir.read_run_file(directory, "run.json", json.loads) if (directory / "run.json").is_file() else None
    if isinstance(info, dict) and info.get("kind") == "adapt":
        from .finished import load_run
        from .registry import tasks

        task = tasks().get(info.get("task"))
        if task is not None and not task.obj.sentence_embeddings:
            raise RunDirError(f"{directory} is a {task.name!r} run: that task has no sentence representation "
                              f"(tasks that have one: {', '.join(sorted(n for n, t in tasks().items() if t.obj.sentence_embeddings))}). "
                              "Embed with its base model, or a run of such a task.")
        loaded = load_run(directory)
        return loaded.model, loaded.tokenizer, "mean"
    path = models.resolve(source)
    models.quiet_libraries()
    pooling = info.get("pooling") if isinstance(info, dict) and info.get("pooling") in POOLINGS else "mean"
    tokenizer = models.load_tokenizer(path)
    model = models.load_pretrained(encoder_class(path), path)
    model.eval()
    return model, tokenizer, pooling


def check_output(output: str) -> str:
    """The format of an embeddings file, from its suffix: ``.npy`` or ``.jsonl``."""
    suffix = output.lower().rsplit(".", 1)[-1]
    if suffix not in ("npy", "jsonl"):
        raise DataError(f"--output {output}: write .npy (a matrix) or .jsonl (text and embedding per line).")
    return suffix


def write_embeddings(vectors: np.ndarray, texts: list[str], output: str) -> None:
    """``.npy`` (the matrix, row i = text i) or ``.jsonl`` (``{"text", "embedding"}`` per line)."""
    import json

    import numpy as np

    if check_output(output) == "npy":
        np.save(output, vectors)
        return
    with open(output, "w", encoding="utf-8") as stream:
        for text, vector in zip(texts, vectors):
            stream.write(json.dumps({"text": text, "embedding": [round(float(x), 6) for x in vector]}, ensure_ascii=False) + "\n")
