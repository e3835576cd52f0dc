#!/usr/bin/env bash
# Learning from few labels plus unlabelled text (issue 15), 3 seeds each, test scores mean +- std:
#   CoNLL-2003, 200 labelled sentences, the other training sentences as the unlabelled pool
#   SST-2, 64 labelled sentences, the rest of its training file as the pool
# for each, from the committed recipes fewlabel/conll200 and fewlabel/sst2_64 and their overrides:
# plain LoRA | + augmentation | self-training (3 rounds) | distillation from a full fine-tuned
# teacher trained on the same few labels (its soft targets on labelled + pool text).
#   bash benchmarks/fewlabel.sh [conll|sst2|all]   # finished runs are kept; rerun to resume. About 4
#   core-hours; seeds run side by side with SEEDS=43 bash benchmarks/fewlabel.sh conll & (one per seed)
# POOL caps the pool (pseudo-labelled / distilled examples per round); EVAL caps dev and test.
# Students, which see the pool too (self-training rounds 1-3, as the recipes' self_train.student_epochs
# says, and distillation), train 3 epochs; the runs on the labelled data alone (plain, augment,
# teacher, self-training's round 0) as the recipe says (CoNLL's 200 sentences 20, SST-2's 64 10).
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

run_set() {  # name recipe task labelled-count training-file augmenters student-epochs
  local name=$1 recipe=$2 task=$3 n=$4 train=$5 augment=$6 student=$7
  local pool="$DERIVED/$name-pool.txt"
  [ -s "$pool" ] || .venv/bin/python benchmarks/pool_text.py "$task" "$train" "$n" "$POOL" "$pool"
  for seed in $SEEDS; do
    local o="$OUT/$name/$seed" common=("$recipe" training.seed="$seed" data.max_eval_samples="$EVAL" --quiet)
    [ -f "$o/plain/run.json" ] || .venv/bin/peft-hub run "${common[@]}" output.dir="$o/plain" output.overwrite=true > /dev/null
    [ -f "$o/augment/run.json" ] || .venv/bin/peft-hub run "${common[@]}" "augment=$augment" output.dir="$o/augment" output.overwrite=true > /dev/null
    # self-training's round 0 is the plain run (the same recipe and seed): reused, not trained again
    [ -d "$o/self-train/round-0" ] || { mkdir -p "$o/self-train" && cp -r "$o/plain" "$o/self-train/round-0"; }
    [ -f "$o/self-train/round-3/run.json" ] || .venv/bin/peft-hub run "${common[@]}" self_train.unlabeled="$pool" \
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
.venv/bin/python - "$OUT" "$D" "$POOL" $SEEDS <<'PY'
import json, statistics, sys
from pathlib import Path
from seqeval.metrics import f1_score
from peft_hub import registry
from peft_hub.recipes import DataConfig
out, data, pool, seeds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
registry.load_plugins()
variants = [("plain", "plain LoRA"), ("augment", "+ augmentation"), ("self-train/round-1", "self-training, round 1"),
            ("self-train/round-2", "self-training, round 2"), ("self-train/round-3", "self-training, 3 rounds"),
            ("teacher-full", "(teacher: full fine-tuning)"), ("distill", "distilled from the teacher")]
sets = {"conll": ("f1", "ner", data / "conll2003/train.txt", 200), "sst2": ("accuracy", "classify", data / "sst2/stsa.binary.train", 64)}
for name, (metric, task_name, train, n) in sets.items():
    if not (out / name).is_dir():
        continue
    print(f"\n{name}: test {metric}, mean +- std over seeds {', '.join(seeds)}\n\n| variant | " + " | ".join(seeds) + " | mean +- std |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for path, label in variants:
        scores = [json.loads((out / name / s / path / "metrics.json").read_text())["test"][metric]
                  for s in seeds if (out / name / s / path / "metrics.json").exists()]
        if scores:
            spread = f" +- {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
            print(f"| {label} | " + " | ".join(f"{x:.4f}" for x in scores) + f" | **{statistics.mean(scores):.4f}**{spread} |")
    # the pseudo-labels against the pool's own gold labels, which no run saw
    task = registry.get_task(task_name)
    examples = task.read_data(DataConfig(train=str(train), validation_split=0), task.Options())["train"][n : n + pool]
    if task_name == "ner":
        gold = {" ".join(e.tokens): e.tags for e in examples}
        print(f"\n{name} pseudo-labels (kept of {pool:,}; entity F1 against the gold tags; share of sentences with an entity, gold pool: "
              f"{sum(any(t != 'O' for t in g) for g in gold.values()) / len(gold):.2f})\n\n| seed | round | kept | entity F1 | with an entity |\n|---|---:|---:|---:|---:|")
    else:
        gold = {e.text: e.label for e in examples}
        print(f"\n{name} pseudo-labels (kept of {pool:,}; accuracy against the gold labels)\n\n| seed | round | kept | accuracy | classes |\n|---|---:|---:|---:|---|")
    for s in seeds:
        for r in (1, 2, 3):
            file = out / name / s / "self-train" / f"pseudo-{r}.jsonl"
            if not file.exists():
                continue
            rows = [json.loads(line) for line in file.read_text().splitlines()]
            if task_name == "ner":
                pairs = [(gold[" ".join(x["tokens"])], x["tags"]) for x in rows if " ".join(x["tokens"]) in gold]
                quality = f1_score([g for g, _ in pairs], [p for _, p in pairs]) if pairs else float("nan")
                extra = f"{sum(any(t != 'O' for t in p) for _, p in pairs) / max(len(pairs), 1):.2f}"
            else:
                pairs = [(gold[x["text"]], x["label"]) for x in rows if x["text"] in gold]
                quality = sum(g == p for g, p in pairs) / max(len(pairs), 1)
                extra = ", ".join(f"{k}: {sum(p == k for _, p in pairs)}" for k in sorted({p for _, p in pairs}))
            print(f"| {s} | {r} | {len(rows):,} | {quality:.4f} | {extra} |")
PY
