"""The script a user writes without peft-hub: transformers' run_ner.py example + peft LoRA.

Kept as the speed baseline of benchmarks/speed_ner.py, written the way run_ner.py is: a `datasets`
Dataset, ``tokenize_and_align_labels`` (label on the first sub-token), DataCollatorForTokenClassification
(dynamic padding), Trainer with its defaults (random batch order). The one flag a careful user adds
is ``--group-by-length`` (Trainer's length-grouped sampling). No peft_hub import anywhere.

    python benchmarks/baselines/run_ner_peft.py --model DIR --data ../shared/data/conll2003 --max-steps 150
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_conll(path: Path) -> dict:
    tokens, tags, sentence, sentence_tags = [], [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if sentence:
                tokens.append(sentence)
                tags.append(sentence_tags)
            sentence, sentence_tags = [], []
            continue
        columns = line.split()
        sentence.append(columns[0])
        sentence_tags.append(columns[-1])
    return {"tokens": tokens, "ner_tags": tags}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="directory with train.txt and valid.txt")
    parser.add_argument("--output", default="/tmp/run_ner_peft")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--group-by-length", action="store_true")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=float, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--target-modules", nargs="+", default=["query", "key", "value", "dense"])
    args = parser.parse_args(argv)

    import numpy as np
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from seqeval.metrics import f1_score
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments, set_seed)

    set_seed(args.seed)
    data = Path(args.data)
    train = Dataset.from_dict(read_conll(data / "train.txt"))
    dev = Dataset.from_dict(read_conll(data / "valid.txt"))
    if args.max_train_samples:
        train = train.select(range(args.max_train_samples))
    label_list = sorted({tag for tags in train["ner_tags"] for tag in tags})
    label_to_id = {label: i for i, label in enumerate(label_list)}

    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def tokenize_and_align_labels(examples):
        tokenized = tokenizer(examples["tokens"], truncation=True, is_split_into_words=True)
        labels = []
        for i, tags in enumerate(examples["ner_tags"]):
            previous, label_ids = None, []
            for word in tokenized.word_ids(batch_index=i):
                label_ids.append(-100 if word is None or word == previous else label_to_id[tags[word]])
                previous = word
            labels.append(label_ids)
        tokenized["labels"] = labels
        return tokenized

    train = train.map(tokenize_and_align_labels, batched=True, remove_columns=train.column_names)
    dev = dev.map(tokenize_and_align_labels, batched=True, remove_columns=dev.column_names)

    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(label_list), id2label=dict(enumerate(label_list)), label2id=label_to_id
    )
    lora = LoraConfig(task_type="TOKEN_CLS", r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=args.target_modules)
    model = get_peft_model(model, lora)

    def compute_metrics(prediction):
        predictions = np.argmax(prediction.predictions, axis=2)
        gold = [[label_list[l] for l in row if l != -100] for row in prediction.label_ids]
        pred = [[label_list[p] for p, l in zip(prow, lrow) if l != -100] for prow, lrow in zip(predictions, prediction.label_ids)]
        return {"f1": f1_score(gold, pred)}

    training_args = TrainingArguments(
        output_dir=args.output, max_steps=args.max_steps, num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=0.1,
        weight_decay=0.01, seed=args.seed, report_to=[], save_strategy="no", disable_tqdm=True,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=dev,
                      data_collator=DataCollatorForTokenClassification(tokenizer),
                      processing_class=tokenizer, compute_metrics=compute_metrics)
    result = trainer.train()
    metrics = {
        "train_runtime_s": result.metrics["train_runtime"],
        "train_steps": result.global_step,
        "real_tokens": int(sum(len(ids) for ids in train["input_ids"])),
        "dev_f1": trainer.evaluate()["eval_f1"],
    }
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
