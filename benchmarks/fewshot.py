"""Few-shot classification: plain `peft-hub adapt` (LoRA) against the SetFit recipe (SimCSE on
same-label pairs, then a head on the frozen encoder: recipe simcse/setfit_sst2), at 8, 16 and 32
labelled examples per class, on SST-2 and AG News, 3 seeds each (mean +- std of test accuracy and
macro-F1 on the first 1,000 test examples).

Each (dataset, k, seed) gets a folder of k examples per class drawn from the training file with
that seed (written outside the repository) and as many other ones as dev examples (both
approaches keep the checkpoint that scores best on them), and both train a fixed number of epochs.

    .venv/bin/python benchmarks/fewshot.py            # ~40 min on 2 CPU cores (two workers)
    .venv/bin/python benchmarks/fewshot.py --table    # the table from finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from speed_ner import PEFT_HUB  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SIZES, SEEDS, TEST = (8, 16, 32), (0, 1, 2), 1000


def _sst2(name: str) -> list[tuple[str, str]]:
    lines = (DATA / "sst2" / f"stsa.binary.{name}").read_text(encoding="utf-8").splitlines()
    return [(line[2:], "positive" if line[0] == "1" else "negative") for line in lines if line.strip()]


def _agnews(name: str) -> list[tuple[str, str]]:
    return [tuple(line.rsplit("\t", 1)) for line in (DATA / "agnews" / f"{name}.tsv").read_text(encoding="utf-8").splitlines() if line.strip()]


DATASETS = {"sst2": (lambda: _sst2("train"), lambda: _sst2("test")), "agnews": (lambda: _agnews("dev"), lambda: _agnews("test"))}


def write_folder(folder: Path, dataset: str, k: int, seed: int) -> None:
    """k training and k dev examples per class (seeded, disjoint) and the first TEST test
    examples, as TSV: a few-shot user has a few labels to pick the checkpoint with, not more."""
    train, test = (read() for read in DATASETS[dataset])
    by_label: dict[str, list[tuple[str, str]]] = {}
    for example in train:
        by_label.setdefault(example[1], []).append(example)
    rng = random.Random(seed)
    drawn = {label: rng.sample(by_label[label], 2 * k) for label in sorted(by_label)}
    chosen = [e for label in drawn for e in drawn[label][:k]]
    dev = [e for label in drawn for e in drawn[label][k:]]
    rng.shuffle(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.tsv", chosen), ("dev.tsv", dev), ("test.tsv", test[:TEST])):
        (folder / name).write_text("text\tlabel\n" + "".join(f"{t.replace(chr(9), ' ')}\t{y}\n" for t, y in rows), encoding="utf-8")


def _run(args: list[str], done: Path) -> None:
    if (done / "run.json").exists():
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([PEFT_HUB, *args, "--quiet"], capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")


def cell(out: Path, data: Path, dataset: str, k: int, seed: int) -> None:
    write_folder(data / f"{dataset}-{k}-{seed}", dataset, k, seed)
    folder = data / f"{dataset}-{k}-{seed}"
    common = [f"training.seed={seed}"]
    _run(["adapt", "--task", "classify", "--method", "lora", "--data", str(folder), "--epochs", "20",
          "--output", str(out / f"lora-{dataset}-{k}-{seed}"), "--overwrite", *common], out / f"lora-{dataset}-{k}-{seed}")
    setfit = out / f"setfit-{dataset}-{k}-{seed}"
    _run(["run", "simcse/setfit_sst2", f"stages.contrast.data.path={folder}", f"stages.head.data.path={folder}",
          f"stages.contrast.output.dir={setfit}/contrast", f"stages.head.output.dir={setfit}/head",
          "stages.contrast.output.overwrite=true", "stages.head.output.overwrite=true", f"stages.contrast.training.seed={seed}",
          f"stages.head.training.seed={seed}"], setfit / "head")


def table(out: Path) -> str:
    lines = ["| dataset | examples per class | plain LoRA accuracy | SetFit-style accuracy | plain LoRA macro-F1 | SetFit-style macro-F1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for dataset in DATASETS:
        for k in SIZES:
            scores = {}
            for approach, suffix in (("lora", ""), ("setfit", "/head")):
                runs = [out / f"{approach}-{dataset}-{k}-{seed}{suffix}" / "metrics.json" for seed in SEEDS]
                tests = [json.loads(r.read_text())["test"] for r in runs if r.exists()]
                for metric in ("accuracy", "f1"):
                    values = [t[metric] for t in tests]
                    scores[approach, metric] = (f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f} (n={len(values)})"
                                                if len(values) > 1 else "-")
            lines.append(f"| {dataset} | {k} | {scores['lora', 'accuracy']} | {scores['setfit', 'accuracy']} | "
                         f"{scores['lora', 'f1']} | {scores['setfit', 'f1']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "fewshot"))
    parser.add_argument("--data", default="/tmp/peft-hub-fewshot")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    out, data = Path(args.out), Path(args.data)
    if not args.table:
        cells = [(dataset, k, seed) for k in SIZES for seed in SEEDS for dataset in DATASETS]
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda c: cell(out, data, *c), cells))
    text = table(out)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "fewshot.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
