"""The linear-probe floor: a logistic regression on frozen embeddings of the base model.

Any adaptation method must beat this: it trains nothing but one linear layer on features the
base model already gives. The data is read, split and encoded exactly as `peft-hub adapt` does
(the same task plugin, options, dev carving and sample limits), so the score is comparable.

- sequence tasks (one label per example): the mean-pooled last hidden state (all-MiniLM-L6-v2
  was trained with mean pooling);
- token tasks (a label per sub-token, -100 elsewhere): the last hidden state of each labelled
  sub-token.

The L2 strength is chosen on dev among a few values; dev and test are scored with the task's own
metric. Prints one JSON line.

    .venv/bin/python benchmarks/linear_probe.py --task classify data.path=../shared/data/trec data.encoding=latin-1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

L2 = (1e-4, 1e-3, 1e-2)  # weight decay of the probe, picked on dev


def _features(model, features: list[dict], batch: int = 64):
    """(embeddings, labels, shape of the label arrays) of encoded features, frozen model."""
    import numpy as np
    import torch

    xs, ys, rows = [], [], []
    width = max(len(f["input_ids"]) for f in features)
    token_level = isinstance(features[0]["labels"], list)
    for start in range(0, len(features), batch):
        chunk = features[start : start + batch]
        length = max(len(f["input_ids"]) for f in chunk)
        ids = torch.zeros(len(chunk), length, dtype=torch.long)
        mask = torch.zeros(len(chunk), length, dtype=torch.long)
        for i, f in enumerate(chunk):
            ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[i, : len(f["input_ids"])] = 1
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        if token_level:
            for i, f in enumerate(chunk):
                labels = np.full(width, -100)
                labels[: len(f["labels"])] = f["labels"]
                rows.append(labels)
                keep = labels[: len(f["labels"])] != -100
                xs.append(hidden[i, : len(f["labels"])][torch.from_numpy(keep)])
                ys.append(torch.from_numpy(labels[: len(f["labels"])][keep]))
        else:
            m = mask.unsqueeze(-1).float()
            xs.append((hidden * m).sum(1) / m.sum(1))
            ys.append(torch.tensor([f["labels"] for f in chunk]))
    return torch.cat(xs), torch.cat(ys), (np.stack(rows) if token_level else None)


def _fit(x, y, classes: int, l2: float, steps: int = 300):
    """Multinomial logistic regression, full batch, L-BFGS on standardised inputs."""
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(layer.parameters(), lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y) + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer


def _predict(layer, x, rows):
    """Predicted ids shaped as the task's compute_metrics expects them."""
    import numpy as np
    import torch

    with torch.no_grad():
        ids = layer(x).argmax(-1).numpy()
    if rows is None:
        return ids, None
    out = np.zeros_like(rows)
    out[rows != -100] = ids  # row-major order, as the features were gathered
    return out, rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--name", help="a name for the JSON line (default: data.path)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("overrides", nargs="+", help="recipe KEY=VALUE overrides: data.path=DIR (or data.train=FILE ...), data.encoding=latin-1, task.options.coarse_labels=true")
    args = parser.parse_args(argv)

    from peft_hub import models, recipes
    from peft_hub.adapt import hold_out_dev, limit_samples
    from peft_hub.tasks import Evaluation
    from peft_hub.features import FeatureDataset

    flags = {"task.name": args.task, "method.name": "full", "model.name": args.model,
             "data.max_train_samples": args.max_train_samples}
    data, source = recipes.compose(None, {k: v for k, v in flags.items() if v is not None}, args.overrides)
    resolved = recipes.validate(data, source)
    recipe, task = resolved.recipe, resolved.task
    models.quiet_libraries()
    import torch
    from transformers import AutoModel

    torch.manual_seed(recipe.training.seed)
    started = time.perf_counter()
    path = models.resolve(recipe.model.name)
    tokenizer = models.load_tokenizer(path)
    def echo(message: str) -> None:
        print(message, file=sys.stderr)

    splits = hold_out_dev(task.read_data(recipe.data, resolved.task_options), recipe.data.validation_split, recipe.training.seed, echo)
    splits = limit_samples(task, splits, recipe.data, echo)
    labels = task.labels(splits)
    encoder = models.load_pretrained(AutoModel, path).eval()
    encoded = {name: FeatureDataset(task.encode(ex, tokenizer, labels, resolved.task_options)).features for name, ex in splits.items()}
    feats = {name: _features(encoder, f) for name, f in encoded.items()}

    x, y, _ = feats["train"]
    mean, std = x.mean(0), x.std(0) + 1e-6
    norm = {name: ((fx - mean) / std, fy, rows) for name, (fx, fy, rows) in feats.items()}

    def score(layer, name: str) -> dict:
        fx, fy, rows = norm[name]
        pred, label_rows = _predict(layer, fx, rows)
        return task.compute_metrics(Evaluation(pred, label_rows if label_rows is not None else fy.numpy(), labels, [], []))

    metric = task.primary_metric
    best = None
    for l2 in L2:
        layer = _fit(norm["train"][0], y, len(labels), l2)
        dev = score(layer, "validation")
        if best is None or dev[metric] > best[1][metric]:
            best = (l2, dev, layer)
    l2, dev, layer = best
    result = {"name": args.name or recipe.data.path, "task": args.task, "overrides": args.overrides, "metric": metric, "l2": l2,
              "dev": dev, "test": score(layer, "test") if "test" in norm else None,
              "train_examples": len(splits["train"]), "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
