#!/usr/bin/env bash
# Combining adapters (issue 16): two LoRA NER adapters trained on disjoint halves of CoNLL-2003's
# training documents (the first documents of each half up to $HALF sentences), each alone,
# combined by every combination of `peft-hub merge --adapters` (equal weights), and one adapter
# trained on both halves together; test entity F1. Also shows that a CoNLL-2003 and an
# NCBI-disease adapter (different label sets) are refused.
#   bash benchmarks/merge_conll.sh          # ~40 min on 2 CPU cores; finished runs are kept
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/merge-conll}
DERIVED=${DERIVED:-/tmp/peft-hub-merge-data}   # the halves: derived data stays out of the repository
EPOCHS=${EPOCHS:-1}
HALF=${HALF:-3000}   # sentences per half
mkdir -p "$OUT"
.venv/bin/python - "$D/conll2003" "$DERIVED" "$HALF" <<'PY'
import os, sys
from pathlib import Path
source, out, cap = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
docs, current = [], []
for line in (source / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True):
    if line.startswith("-DOCSTART-") and current:
        docs.append(current)
        current = []
    current.append(line)
docs.append(current)
half = len(docs) // 2

def first(part):  # documents until the half holds `cap` sentences
    taken, sentences = [], 0
    for doc in part:
        if sentences >= cap:
            break
        taken.append(doc)
        sentences += sum(1 for i, l in enumerate(doc) if l.strip() == "" and i and doc[i - 1].strip() and not doc[i - 1].startswith("-DOCSTART-"))
    return taken
a, b = first(docs[:half]), first(docs[half:])
for name, part in (("a", a), ("b", b), ("all", a + b)):
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("".join(l for d in part for l in d), encoding="utf-8")
    for split in ("valid.txt", "test.txt"):
        if not (folder / split).exists():
            os.symlink((source / split).resolve(), folder / split)
    print(f"{name}: {len(part)} documents", file=sys.stderr)
PY
adapt() {  # run-dir data [args...]
  local dir=$1 data=$2; shift 2
  [ -f "$dir/run.json" ] || .venv/bin/peft-hub adapt --method lora --task ner --data "$data" --epochs "$EPOCHS" \
      --output "$dir" --overwrite --quiet "$@" > /dev/null
}
adapt "$OUT/half-a" "$DERIVED/a"
adapt "$OUT/half-b" "$DERIVED/b"
adapt "$OUT/all" "$DERIVED/all"
adapt "$OUT/ncbi" "$D/NCBI-disease-IOB" --max-train-samples 1000
for combination in linear ties dare_linear dare_ties svd cat; do
  [ -f "$OUT/merged-$combination/run.json" ] || .venv/bin/peft-hub merge --adapters "$OUT/half-a,$OUT/half-b" \
      --combination "$combination" --output "$OUT/merged-$combination" --overwrite > /dev/null
done
echo "refused:"
.venv/bin/peft-hub merge --adapters "$OUT/half-a,$OUT/ncbi" --output "$OUT/refused" 2>&1 | sed 's/^/  /' || true
echo
echo "| adapter | test entity F1 | dev entity F1 |"
echo "|---|---:|---:|"
mkdir -p "$OUT/scores"
for run in half-a half-b all merged-linear merged-ties merged-dare_linear merged-dare_ties merged-svd merged-cat; do
  for split in test valid; do  # a file given to evaluate is scored as it is (reported as "train")
    [ -s "$OUT/scores/$run-$split.json" ] || .venv/bin/peft-hub evaluate "$OUT/$run" --data "$D/conll2003/$split.txt" --json --quiet > "$OUT/scores/$run-$split.json"
  done
  .venv/bin/python -c "import json,sys; t, d = (json.load(open(f'{sys.argv[1]}-{s}.json'))['train']['f1'] for s in ('test', 'valid')); print(f'| {sys.argv[2]} | {t:.4f} | {d:.4f} |')" "$OUT/scores/$run" "$run"
done
