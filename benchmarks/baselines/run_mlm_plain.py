"""The script a user writes without peft-hub: transformers' run_mlm.py example, defaults kept.

Kept as the baseline of benchmarks/speed_mlm.py, written the way run_mlm.py is: the `datasets`
"text" loader, every line tokenized, ``group_texts`` concatenating them into blocks of
``--block-size``, DataCollatorForLanguageModeling (15% masking) and Trainer. The model's
output layer runs at every position. No peft_hub import anywhere.

    python benchmarks/baselines/run_mlm_plain.py --model DIR --train-file ../shared/data/wikitext2_raw/wiki.test.raw --max-steps 40
"""

from __future__ import annotations

import argparse
import json
from itertools import chain


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--output", default="/tmp/run_mlm_plain")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    from datasets import load_dataset
    from transformers import (AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments, set_seed)

    set_seed(args.seed)
    raw = load_dataset("text", data_files={"train": args.train_file})["train"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenized = raw.map(lambda ex: tokenizer(ex["text"], return_special_tokens_mask=True), batched=True,
                        remove_columns=["text"])

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
        total = (len(concatenated["input_ids"]) // args.block_size) * args.block_size
        return {k: [t[i : i + args.block_size] for i in range(0, total, args.block_size)] for k, t in concatenated.items()}

    train = tokenized.map(group_texts, batched=True)
    model = AutoModelForMaskedLM.from_pretrained(args.model)
    training_args = TrainingArguments(
        output_dir=args.output, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=0.1, weight_decay=0.01, seed=args.seed, report_to=[],
        save_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, processing_class=tokenizer,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15))
    result = trainer.train()
    metrics = {
        "train_runtime_s": result.metrics["train_runtime"],
        "train_steps": result.global_step,
        "real_tokens": result.global_step * args.batch_size * args.block_size,  # every block is full
        "train_loss": result.training_loss,
    }
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
