#!/usr/bin/env bash
# Do the defaults learn on data nobody tuned them for? (issue 17; results in benchmarks/RESULTS.md)
#
# Eight datasets from ../shared/data, each with every method's defaults and with full fine-tuning:
#   conll (NER, dense entities), ncbi (NER, one sparse type), trec50 / trec6 (TREC fine / coarse
#   labels), banking77 (77 intents), agnews (4 topics), sst2 (sentiment), semeval19 (SemEval-2010
#   Task 8 read as plain 19-class classification). Where the data has no dev split, 10% of train
#   is carved out as dev (data.validation_split, seeded).
#
# Parts (each skips runs that already finished, so the script can be stopped and restarted):
#   budget   1 epoch on at most $N training examples, methods $METHODS (lora adapter ia3 prefix full)
#   long     the recipes' own length, 3 epochs, on at most $LONG_N examples: lora and full
#   before   `budget` for lora and adapter with the head at the method's own rate (the old default)
#   probe    the linear-probe floor (benchmarks/linear_probe.py) on the same examples as `budget`
#   table    benchmarks/results/defaults_check.md from all of the above
#
#   bash benchmarks/defaults_check.sh [budget|long|before|probe|table|all]    # ~4 h on 2 CPU cores
# Two workers, one core each (about 1.5x the throughput of one process on both cores):
#   OMP_NUM_THREADS=1 ONLY="conll trec50 banking77 sst2" bash benchmarks/defaults_check.sh all &
#   OMP_NUM_THREADS=1 ONLY="ncbi trec6 agnews semeval19" bash benchmarks/defaults_check.sh all
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/defaults}
DERIVED=${DERIVED:-/tmp/peft-hub-defaults-data}   # SemEval as TSV: derived data stays out of the repository
N=${N:-4000}            # small budget: the first N training examples (after the dev carve), 1 epoch
LONG_N=${LONG_N:-10000} # recipe length: up to N examples, 3 epochs
EVAL=${EVAL:-2000}      # dev and test: the first EVAL examples
EXTRA=${EXTRA:-}         # overrides for every adapt run, e.g. EXTRA="--lr 1e-3" OUT=runs/defaults-lr1e-3
PART=${1:-all}
mkdir -p "$OUT"
[ -f "$DERIVED/semeval19/train.tsv" ] || .venv/bin/python benchmarks/semeval_as_tsv.py $D/semeval2010_task8 "$DERIVED/semeval19"

# name | task | data arguments | samples cap for `budget` (BANKING77's file is sorted by label: use all of it)
DATASETS="conll|ner|data.path=$D/conll2003|$N
ncbi|ner|data.path=$D/NCBI-disease-IOB|$N
trec50|classify|data.path=$D/trec data.encoding=latin-1|$N
trec6|classify|data.path=$D/trec data.encoding=latin-1 task.options.coarse_labels=true|$N
banking77|classify|data.path=$D/banking77|100000
agnews|classify|data.train=$D/agnews/dev.tsv data.test=$D/agnews/test.tsv|$N
sst2|classify|data.path=$D/sst2|$N
semeval19|classify|data.path=$DERIVED/semeval19|$N"

adapt() {  # run-dir task method epochs samples data-args [overrides...]
  local dir=$1 task=$2 method=$3 epochs=$4 samples=$5 args=$6; shift 6
  [ -f "$dir/run.json" ] && return 0
  echo "$(date +%T) $dir" >&2
  # shellcheck disable=SC2086
  .venv/bin/peft-hub adapt --task "$task" --method "$method" --epochs "$epochs" --max-train-samples "$samples" \
      --max-eval-samples "$EVAL" --output "$dir" --overwrite --quiet $args $EXTRA "$@" > /dev/null
}

ONLY=${ONLY:-}  # e.g. ONLY="trec50 banking77": only these datasets (two workers can share the 2 cores)
each() {  # callback: called with name task args cap
  while IFS='|' read -r name task args cap; do
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $name "* ]] || continue
    "$@" "$name" "$task" "$args" "$cap"
  done <<< "$DATASETS"
}

METHODS=${METHODS:-lora adapter ia3 prefix full}
budget() { for m in $METHODS; do adapt "$OUT/budget/$1-$m" "$2" "$m" 1 "$4" "$3"; done; }
LONG_METHODS=${LONG_METHODS:-lora full}
long() { for m in $LONG_METHODS; do adapt "$OUT/long/$1-$m" "$2" $m 3 "$LONG_N" "$3"; done; }
before() {
  adapt "$OUT/before/$1-lora" "$2" lora 1 "$4" "$3" training.head_learning_rate=2e-3
  adapt "$OUT/before/$1-adapter" "$2" adapter 1 "$4" "$3" training.head_learning_rate=1e-2
}
probe() {
  grep -q "\"name\": \"$1\"" "$OUT/probe.jsonl" 2>/dev/null && return 0
  echo "$(date +%T) probe $1" >&2
  # shellcheck disable=SC2086
  .venv/bin/python benchmarks/linear_probe.py --task "$2" --name "$1" --max-train-samples "$4" \
      $3 data.max_eval_samples="$EVAL" >> "$OUT/probe.jsonl"
}

case $PART in
  budget|long|before|probe) each $PART ;;
  table) ;;
  all) each probe; each budget; each long; each before ;;
  *) echo "unknown part $PART: budget, long, before, probe, table or all" >&2; exit 2 ;;
esac
mkdir -p benchmarks/results
.venv/bin/python benchmarks/defaults_table.py "$OUT" > benchmarks/results/defaults_check.md
cat benchmarks/results/defaults_check.md
