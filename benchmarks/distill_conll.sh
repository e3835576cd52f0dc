#!/usr/bin/env bash
# Distillation at full scale (issue 15): a full fine-tuned CoNLL-2003 teacher (MiniLM, 10,000
# training sentences, 3 epochs) into LoRA r=4 students (under 1% of the parameters trainable), same
# data and seed; test entity F1 on 2,000 test sentences:
#   3 epochs (as the teacher): plain LoRA r=4 | distilled on the labelled data
#   6 epochs (the students' dev F1 still rose at epoch 3): plain LoRA r=4 | distilled on the
#   labelled data + the other 4,041 training sentences as unlabelled text
#   bash benchmarks/distill_conll.sh       # ~2 h on 2 CPU cores (the teacher, when missing, 15 min more)
# TEACHER: an existing teacher run to reuse (default: the defaults check's runs/defaults/long/conll-full,
# trained with exactly these settings; trained here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/distill-conll}
TEACHER=${TEACHER:-runs/defaults/long/conll-full}
DERIVED=${DERIVED:-/tmp/peft-hub-distill}   # derived data stays out of the repository
mkdir -p "$OUT" "$DERIVED"
DATA=(data.max_train_samples=10000 data.max_eval_samples=2000 training.seed=42 --quiet)
[ -f "$TEACHER/run.json" ] || .venv/bin/peft-hub run ner/minilm_full "${DATA[@]}" output.dir="$TEACHER" output.overwrite=true > /dev/null
POOL="$DERIVED/conll-rest.txt"
[ -s "$POOL" ] || .venv/bin/python benchmarks/pool_text.py ner "$D/conll2003/train.txt" 10000 0 "$POOL"
run() {  # name overrides...
  local name=$1; shift
  [ -f "$OUT/$name/run.json" ] || .venv/bin/peft-hub run ner/minilm_lora_r4 "${DATA[@]}" "$@" output.dir="$OUT/$name" output.overwrite=true > /dev/null
}
run lora-r4
run lora-r4-distilled teacher.run="$TEACHER"
run lora-r4-6ep training.epochs=6
run lora-r4-6ep-distilled-unlabeled training.epochs=6 teacher.run="$TEACHER" teacher.unlabeled="$POOL"
.venv/bin/python - "$TEACHER" "$OUT" <<'PY'
import json, sys
from pathlib import Path
teacher, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [("teacher: full fine-tuning", teacher)] + [(p.name, p) for p in sorted(out.iterdir()) if (p / "metrics.json").exists()]
top = json.loads((teacher / "metrics.json").read_text())["test"]["f1"]
print("| run | epochs | trainable % | test entity F1 | vs teacher | train s |\n|---|---:|---:|---:|---:|---:|")
for name, path in rows:
    m = json.loads((path / "metrics.json").read_text())
    epochs = m["test"]["epoch"]
    print(f"| {name} | {epochs:g} | {m['trainable_percent']:.2f} | {m['test']['f1']:.4f} | {m['test']['f1'] - top:+.4f} | {m['train_runtime_s']:.0f} |")
PY
