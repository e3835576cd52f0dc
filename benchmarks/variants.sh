#!/usr/bin/env bash
# LoRA variants and the other low-rank / multiplicative methods against plain LoRA (issue 24), with
# the offline MiniLM: CoNLL-2003 (first 2,000 sentences), SST-2 (first 4,000) and TREC-50 (all
# 5,452), one epoch each, so the same steps for every variant of a dataset; each method at its own
# default learning rate; dev and test capped at 2,000 examples. Runs go to runs/variants/<data>-<variant>-s<seed>;
# the table (test score, trainable %, seconds, peak memory; mean and spread over seeds) to
# benchmarks/results/variants.md.
#   bash benchmarks/variants.sh                                  # screen: every variant, seed 1
#   SEEDS="2 3" VARIANTS="lora dora pissa" bash benchmarks/variants.sh   # confirm the best few
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/variants}
SEEDS=${SEEDS:-1}
ONLY=${ONLY:-}  # e.g. ONLY="conll": only these datasets
# name | task | data arguments | training examples
DATASETS="conll|ner|data.path=$D/conll2003|2000
sst2|classify|data.path=$D/sst2|4000
trec50|classify|data.path=$D/trec data.encoding=latin-1|100000"
# name | method | method options
ALL="lora|lora|
rslora|lora|method.options.use_rslora=true
dora|lora|method.options.use_dora=true
pissa|lora|method.options.init_lora_weights=pissa
olora|lora|method.options.init_lora_weights=olora
eva|lora|method.options.init_lora_weights=eva
loraplus|loraplus|
adalora|adalora|
vera|vera|
loha|loha|
lokr|lokr|
oft|oft|"
VARIANTS=${VARIANTS:-$(cut -d'|' -f1 <<< "$ALL" | tr '\n' ' ')}
mkdir -p "$OUT"
for seed in $SEEDS; do
  while IFS='|' read -r data task args samples; do
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $data "* ]] || continue
    while IFS='|' read -r name method options; do
      [[ " $VARIANTS " == *" $name "* ]] || continue
      dir=$OUT/$data-$name-s$seed
      [ -f "$dir/run.json" ] && continue
      echo "$(date +%T) $dir" >&2
      # shellcheck disable=SC2086
      .venv/bin/peft-hub adapt --task "$task" --method "$method" --epochs 1 --max-train-samples "$samples" \
          --max-eval-samples 2000 --seed "$seed" --output "$dir" --overwrite --quiet $args $options > /dev/null \
          || echo "$(date +%T) FAILED $dir" >&2
    done <<< "$ALL"
  done <<< "$DATASETS"
done
mkdir -p benchmarks/results
.venv/bin/python benchmarks/variants_table.py "$OUT" > benchmarks/results/variants.md
cat benchmarks/results/variants.md
