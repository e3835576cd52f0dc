#!/usr/bin/env bash
# Learning from few labels plus unlabelled text (issue 15), 3 seeds each, test scores mean +- std:
#   CoNLL-2003, 200 labelled sentences, the other training sentences as the unlabelled pool
#   SST-2, 64 labelled sentences, the rest of its training file as the pool
# for each, from the committed recipes fewlabel/conll200 and fewlabel/sst2_64 and their overrides:
# plain LoRA | + augmentation | self-training (3 rounds) | distillation from a full fine-tuned
# teacher trained on the same few labels (its soft targets on labelled + pool text).
#   bash benchmarks/fewlabel.sh [conll|sst2|all]      # finished runs are kept; rerun to resume
# POOL caps the pool (pseudo-labelled / distilled examples per round); EVAL caps dev and test.
# Students (self-training rounds 1-3, distillation), which see the pool too, train 3 epochs; the
# runs on the labelled data alone (plain, augment, teacher, self-training's round 0) train as the
# recipe says (CoNLL 200 sentences 20 epochs, SST-2 64 examples 10).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/fewlabel}
SEEDS=${SEEDS:-"42 43 44"}
POOL=${POOL:-2000}
EVAL=${EVAL:-1000}
PART=${1:-all}
DERIVED=${DERIVED:-/tmp/peft-hub-fewlabel}   # the pools as plain text: derived data stays out of the repository
mkdir -p "$OUT" "$DERIVED"

pool_text() {  # the training file without its first N examples, as plain text (what a user's pool is)
  .venv/bin/python - "$@" <<'PY'
import sys
from peft_hub import registry
from peft_hub.recipes import DataConfig
task_name, train, skip, limit, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
registry.load_plugins()
task = registry.get_task(task_name)
examples = task.read_data(DataConfig(train=train, validation_split=0), task.Options())["train"][skip : skip + limit]
with open(out, "w", encoding="utf-8") as f:
    for e in examples:
        f.write((" ".join(e.tokens) if hasattr(e, "tokens") else e.text) + "\n")
PY
}

run_set() {  # name recipe task labelled-count training-file augmenters student-epochs
  local name=$1 recipe=$2 task=$3 n=$4 train=$5 augment=$6 student=$7
  local pool="$DERIVED/$name-pool.txt"
  [ -s "$pool" ] || pool_text "$task" "$train" "$n" "$POOL" "$pool"
  for seed in $SEEDS; do
    local o="$OUT/$name/$seed" common=("$recipe" training.seed="$seed" data.max_eval_samples="$EVAL" --quiet)
    [ -f "$o/plain/run.json" ] || .venv/bin/peft-hub run "${common[@]}" output.dir="$o/plain" output.overwrite=true > /dev/null
    [ -f "$o/augment/run.json" ] || .venv/bin/peft-hub run "${common[@]}" "augment=$augment" output.dir="$o/augment" output.overwrite=true > /dev/null
    # self-training's round 0 is the plain run (the same recipe and seed): reused, not trained again
    [ -d "$o/self-train/round-0" ] || { mkdir -p "$o/self-train" && cp -r "$o/plain" "$o/self-train/round-0"; }
    [ -f "$o/self-train/round-3/run.json" ] || .venv/bin/peft-hub run "${common[@]}" self_train.unlabeled="$pool" self_train.student_epochs="$student" \
        output.dir="$o/self-train" > /dev/null
    [ -f "$o/teacher-full/run.json" ] || .venv/bin/peft-hub run "${common[@]}" method.name=full output.dir="$o/teacher-full" output.overwrite=true > /dev/null
    [ -f "$o/distill/run.json" ] || .venv/bin/peft-hub run "${common[@]}" teacher.run="$o/teacher-full" teacher.unlabeled="$pool" \
        training.epochs="$student" output.dir="$o/distill" output.overwrite=true > /dev/null
  done
}

case $PART in
  conll|all) run_set conll fewlabel/conll200 ner 200 "$D/conll2003/train.txt" "[{name: mention_replace}, {name: token_dropout}]" 3 ;;&
  sst2|all) run_set sst2 fewlabel/sst2_64 classify 64 "$D/sst2/stsa.binary.train" "[{name: eda}]" 3 ;;
esac
.venv/bin/python - "$OUT" $SEEDS <<'PY'
import json, statistics, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), sys.argv[2:]
variants = [("plain", "plain LoRA"), ("augment", "+ augmentation"), ("self-train/round-3", "self-training, 3 rounds"),
            ("teacher-full", "(teacher: full fine-tuning)"), ("distill", "distilled from the teacher")]
for name in ("conll", "sst2"):
    if not (out / name).is_dir():
        continue
    metric = "f1" if name == "conll" else "accuracy"
    print(f"\n{name}: test {metric}, mean +- std over seeds {', '.join(seeds)}\n\n| variant | " + " | ".join(seeds) + " | mean +- std |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for path, label in variants:
        scores = [json.loads((out / name / s / path / "metrics.json").read_text())["test"][metric]
                  for s in seeds if (out / name / s / path / "metrics.json").exists()]
        if scores:
            spread = f" +- {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
            print(f"| {label} | " + " | ".join(f"{x:.4f}" for x in scores) + f" | **{statistics.mean(scores):.4f}**{spread} |")
PY
