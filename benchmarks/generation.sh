#!/usr/bin/env bash
# Generation (issue 26) with the offline MiniLM warm-started into an encoder-decoder (BERT2BERT), against
# the same shape with random weights at the same steps, and LoRA against full fine-tuning:
#   multi30k  German -> English, Multi30k task 1 (train 29,000 pairs; dev val, 1,014; test test_2016_flickr, 1,000)
#   multi30k-en-de  English -> German on the same pairs, the decoder writing with a byte-level BPE vocabulary
#             learned from the German training sentences (task.options.target_tokenizer=train)
#   scitldr   SciTLDR-A abstract -> TLDR (train 1,992; dev 619; test 618, scored against every reference)
# Every run: the same steps and seed; dev scored on its first task.options.eval_examples while training,
# dev and test whole at the end (beam 4). Runs go to runs/generation/<data>-<candidate>; finished ones are skipped.
# A candidate is <decoder>-<method>: decoder warm, shared (one copy of the weights both halves have) or random.
#   bash benchmarks/generation.sh [multi30k|multi30k-en-de|scitldr|all]
#   .venv/bin/python benchmarks/generation_table.py runs/generation
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=../shared/data
OUT=${OUT:-runs/generation}
M30K_STEPS=${M30K_STEPS:-600}     # batch 32: 19,200 pairs, about two thirds of an epoch
TLDR_STEPS=${TLDR_STEPS:-375}     # batch 16: three epochs
CANDIDATES=${CANDIDATES:-"warm-full random-full warm-lora"}
PART=${1:-all}
mkdir -p "$OUT"

run() {  # data-name candidate steps batch data-args...
  local name=$1 candidate=$2 steps=$3 batch=$4; shift 4
  local dir=$OUT/$name-$candidate method=${candidate#*-} decoder=${candidate%%-*}
  [ -f "$dir/run.json" ] && return 0
  echo "$(date +%T) $dir" >&2
  .venv/bin/peft-hub adapt --method "$method" --max-steps "$steps" --seed 1 --output "$dir" --overwrite \
      training.batch_size="$batch" task.options.decoder="$decoder" "$@" > "$dir.log" 2>&1 || echo "$(date +%T) FAILED $dir" >&2
}

for candidate in $CANDIDATES; do
  if [[ $PART == multi30k || $PART == all ]]; then
    run multi30k "$candidate" "$M30K_STEPS" 32 --task translate --data $D/multi30k
  fi
  if [[ $PART == multi30k-en-de || $PART == all ]]; then
    run multi30k-en-de "$candidate" "$M30K_STEPS" 32 --task translate --data $D/multi30k task.options.source_lang=en \
        task.options.target_lang=de task.options.target_tokenizer=train   # as recipes/translate/multi30k_en_de_full.yaml
  fi
  if [[ $PART == scitldr || $PART == all ]]; then
    run scitldr "$candidate" "$TLDR_STEPS" 16 --task summarize --data $D/scitldr task.options.max_new_tokens=48 \
        task.options.no_repeat_ngram_size=3   # as recipes/summarize/scitldr_*.yaml
  fi
done
