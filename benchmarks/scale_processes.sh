#!/usr/bin/env bash
# Throughput against processes on this machine (issue 27's sizing): LoRA NER on the first 1,000
# CoNLL-2003 sentences, one epoch, global batch 16 in every case (evaluation on 200 sentences):
#   1p-1t  one process, one thread (tokens/s of one worker)
#   1p-2t  one process, two threads (both cores)
#   2p-1t  two processes (--num-processes 2, DDP over gloo) of one thread each, batch 8 each
# Prints tokens/s (training tokens over training seconds, from metrics.json) and the speedup over 1p-1t.
# Pause other jobs first: the numbers are only as good as the cores are free.
#   bash benchmarks/scale_processes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/scale}
D=../shared/data
common=(--method lora --task ner --data "$D/conll2003" --max-train-samples 1000 --max-eval-samples 200 --epochs 1
        --quiet --overwrite)
OMP_NUM_THREADS=1 .venv/bin/peft-hub adapt "${common[@]}" --batch-size 16 --output "$OUT/1p-1t" > /dev/null
OMP_NUM_THREADS=2 .venv/bin/peft-hub adapt "${common[@]}" --batch-size 16 --output "$OUT/1p-2t" > /dev/null
OMP_NUM_THREADS=1 .venv/bin/peft-hub adapt "${common[@]}" --batch-size 8 --num-processes 2 --output "$OUT/2p-1t" > /dev/null
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
rows = {name: json.loads((Path(sys.argv[1]) / name / "metrics.json").read_text()) for name in ("1p-1t", "1p-2t", "2p-1t")}
base = rows["1p-1t"]["train_tokens"] / rows["1p-1t"]["train_runtime_s"]
print("| setup | train s | tokens/s | x 1p-1t | test F1 |\n|---|---:|---:|---:|---:|")
for name, m in rows.items():
    rate = m["train_tokens"] / m["train_runtime_s"]
    print(f"| {name} | {m['train_runtime_s']:.0f} | {rate:,.0f} | {rate / base:.2f} | {m['test']['f1']:.4f} |")
PY
