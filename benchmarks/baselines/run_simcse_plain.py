"""The script a user writes without peft-hub: unsupervised SimCSE the sentence-transformers way.

sentence-transformers trains SimCSE as MultipleNegativesRankingLoss on (sentence, sentence) pairs:
each column is encoded by its own forward pass (dropout differs), embeddings are mean-pooled,
cosine similarities scaled by 20 (temperature 0.05) and scored with cross-entropy against the
diagonal. This is that loop, condensed: random batches padded to their longest sentence (at most
``--max-seq-length`` tokens), AdamW with a linear warm-up of 10% then linear decay, no
peft_hub import anywhere. It prints one JSON line: sentences/s and STS-B test Spearman after.

    python benchmarks/baselines/run_simcse_plain.py --model DIR --sentences FILE --sts ../shared/data/stsb/sts-test.csv
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v):
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(1, len(v) + 1)
        for value in np.unique(v):  # ties share their mean rank
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    a, b = ranks(np.asarray(x, dtype=float)), ranks(np.asarray(y, dtype=float))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def sts(model, tokenizer, path: str, batch_size: int = 64) -> float:
    rows = [line.split("\t") for line in open(path, encoding="utf-8").read().splitlines() if line.strip()]
    first, second, gold = [r[5] for r in rows], [r[6] for r in rows], np.array([float(r[4]) for r in rows])

    def embed(texts):
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
                out.append(torch.nn.functional.normalize(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]), dim=-1))
        return torch.cat(out)

    model.eval()
    cosine = (embed(first) * embed(second)).sum(-1).numpy()
    return spearman(cosine, gold)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sentences", required=True, help="one training sentence per line")
    parser.add_argument("--sts", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--max-seq-length", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model)
    sentences = [line.strip() for line in open(args.sentences, encoding="utf-8") if line.strip()]
    random.shuffle(sentences)
    batches = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * len(batches)), len(batches))
    model.train()
    real_tokens, start = 0, time.monotonic()
    for texts in batches:
        features = tokenizer(texts, padding=True, truncation=True, max_length=args.max_seq_length, return_tensors="pt")
        real_tokens += int(features["attention_mask"].sum())
        a = mean_pool(model(**features).last_hidden_state, features["attention_mask"])  # column 1
        b = mean_pool(model(**features).last_hidden_state, features["attention_mask"])  # column 2: same sentences
        scores = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T * 20.0
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(texts)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    seconds = time.monotonic() - start
    result = {"train_runtime_s": seconds, "sentences": len(sentences), "steps": len(batches), "real_tokens": real_tokens,
              "sts_test_spearman": sts(model, tokenizer, args.sts)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
