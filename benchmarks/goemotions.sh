#!/usr/bin/env bash
# GoEmotions (28 emotions, multi-label; issue 23): the multilabel task with every default, LoRA and
# full fine-tuning, 1 and 3 epochs, on the whole training file (43,410 comments). Each run tunes one
# global decision threshold on dev (task.options.tune_threshold=global, the default) and scores test
# with it; each finished run is then scored again at the plain 0.5 threshold (--option threshold=0.5).
# Published reference: BERT-base macro-F1 0.46 on test (Demszky et al., 2020, Table 4).
#   bash benchmarks/goemotions.sh            # finished runs are kept; rerun to continue
# About 1.5 hours on 2 CPU cores (LoRA ~6 min an epoch, full fine-tuning ~2x).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data/goemotions
OUT=${OUT:-runs/goemotions}
mkdir -p "$OUT"
for spec in "lora 1" "lora 3" "full 1" "full 3"; do
  set -- $spec
  run="$OUT/$1-${2}ep"
  if [ ! -f "$run/run.json" ]; then
    resume=(); [ -d "$run/checkpoints" ] && resume=(--resume)
    .venv/bin/peft-hub adapt --task multilabel --method "$1" --data "$D" --epochs "$2" --output "$run" "${resume[@]}" \
      --json > "$run.json.log" 2> "$run.log" || { echo "$run failed: see $run.log"; continue; }
  fi
  [ -f "$run-t05.json" ] || .venv/bin/peft-hub evaluate "$run" --data "$D/test.tsv" --option threshold=0.5 --json > "$run-t05.json"
done
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| method | epochs | threshold | test micro-F1 | test macro-F1 | subset acc. | train s |")
print("|---|---:|---|---:|---:|---:|---:|")
for method in ("lora", "full"):
    for epochs in (1, 3):
        run = out / f"{method}-{epochs}ep"
        if not (run / "metrics.json").exists():
            continue
        m = json.loads((run / "metrics.json").read_text())
        plain = json.loads((out / f"{method}-{epochs}ep-t05.json").read_text())["train"]
        for label, s in ((f"tuned on dev: {m['test']['threshold']:.2f}", m["test"]), ("0.5", plain)):
            print(f"| {method} | {epochs} | {label} | {s['micro_f1']:.4f} | {s['macro_f1']:.4f} | {s['subset_accuracy']:.4f} "
                  f"| {m['train_runtime_s']:.0f} |")
PY
