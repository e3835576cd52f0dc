#!/usr/bin/env bash
# STS-B test Spearman of all-MiniLM-L6-v2 sentence embeddings (mean pooling): as shipped, after
# unsupervised SimCSE on WikiText-2 and after supervised SimCSE on SICK, each with full and LoRA.
# Results: benchmarks/results/sts_simcse.md (and benchmarks/RESULTS.md, "Sentence embeddings").
#
#   bash benchmarks/sts_simcse.sh          # ~30 min on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/sts}
TEST=../shared/data/stsb/sts-test.csv
mkdir -p "$OUT"
score() {  # name model-or-run
  [ -f "$OUT/$1.json" ] || .venv/bin/peft-hub evaluate "$2" --sts "$TEST" --json > "$OUT/$1.json"
}
train() {  # name recipe [overrides...]
  local name=$1 recipe=$2; shift 2
  [ -f "$OUT/$name/run.json" ] || .venv/bin/peft-hub run "$recipe" output.dir="$OUT/$name" output.overwrite=true --quiet "$@" > /dev/null
  score "$name" "$OUT/$name"
}
score base minilm
train unsup-full simcse/wikitext_unsup
train unsup-lora simcse/wikitext_unsup method.name=lora training.learning_rate=5e-4
train sup-full simcse/sick_sup
train sup-lora simcse/sick_sup method.name=lora training.learning_rate=5e-4
.venv/bin/python - "$OUT" > benchmarks/results/sts_simcse.md <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| model | STS-B dev Spearman before -> after (training) | STS-B test Spearman | test Pearson | steps | train s |")
print("|---|---|---:|---:|---:|---:|")
for name in ("base", "unsup-full", "unsup-lora", "sup-full", "sup-lora"):
    test = json.loads((out / f"{name}.json").read_text())["sts"]
    dev, steps, seconds = "-", "-", "-"
    if (out / name / "metrics.json").exists():
        m = json.loads((out / name / "metrics.json").read_text())
        dev = f"{m['heldout_before']['spearman']:.4f} -> {m['heldout_after']['spearman']:.4f}"
        steps, seconds = m["train_steps"], f"{m['train_runtime_s']:.0f}"
    print(f"| {name} | {dev} | {test['spearman']:.4f} | {test['pearson']:.4f} | {steps} | {seconds} |")
PY
cat benchmarks/results/sts_simcse.md
