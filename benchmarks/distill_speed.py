"""Distillation's cost: the teacher's predictions computed once and cached (``teacher.cache``, the
default) against computed for every batch on the fly (``teacher.cache=false``), and a student
without a teacher as the baseline.

LoRA NER students on the first N CoNLL-2003 training sentences (offline MiniLM, batch 16, seed 42,
200 dev/test sentences), the teacher a finished full fine-tuned CoNLL run; 1 and 3 epochs. Each
run is its own ``peft-hub run`` process (one thread); the variants interleave and repeat, and the
median wall time of the whole run (load, teacher, training, evaluation) is reported, with its
ratio to the student without a teacher.

    .venv/bin/python benchmarks/distill_speed.py --teacher runs/defaults/long/conll-full   # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEFT_HUB = str(Path(sys.executable).parent / "peft-hub")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
VARIANTS = {"no teacher": [], "teacher cached (default)": ["teacher.cache=true"], "teacher on the fly": ["teacher.cache=false"]}


def timed_run(args: list[str], out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([PEFT_HUB, "run", "ner/minilm_lora", *args, f"output.dir={out}", "output.overwrite=true", "--quiet"],
                   env=ENV, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="a finished CoNLL-2003 NER run (directory or hub name)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--epochs", default="1,3")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs.split(","):
            common = [f"data.max_train_samples={args.samples}", "data.max_eval_samples=200", f"training.epochs={epochs}",
                      "training.seed=42", "training.report_to=[]"]
            walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
            scores: dict[str, float] = {}
            peaks: dict[str, float] = {}
            for rep in range(args.reps):
                for name, extra in VARIANTS.items():
                    teacher = [f"teacher.run={args.teacher}"] if extra else []
                    wall, metrics = timed_run([*common, *teacher, *extra], Path(tmp) / f"{epochs}-{rep}-{len(walls[name])}")
                    walls[name].append(wall)
                    scores[name], peaks[name] = metrics["test"]["f1"], metrics["peak_memory_mb"]
                    print(f"epochs {epochs} rep {rep} {name}: {wall:.1f} s, test F1 {scores[name]:.4f}", file=sys.stderr)
            base = statistics.median(walls["no teacher"])
            for name in VARIANTS:
                wall = statistics.median(walls[name])
                rows.append(f"| {epochs} | {name} | {wall:.0f} | {wall / base:.2f} | {peaks[name]:,.0f} | {scores[name]:.4f} |")
    print(f"\n{args.samples} CoNLL-2003 sentences, median of {args.reps} runs\n")
    print("| epochs | student | wall s | x no teacher | peak RSS MiB | test F1 (200 sentences) |\n|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
