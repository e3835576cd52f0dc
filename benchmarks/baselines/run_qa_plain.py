"""The script a user writes without peft-hub: transformers' run_qa.py example, condensed.

Kept as the speed baseline of benchmarks/speed_qa.sh, written the way run_qa.py is: a `datasets`
Dataset, ``prepare_train_features`` / ``prepare_validation_features`` (windows of max_seq_length
384 with doc_stride 128, padded to max_seq_length: run_qa.py's default ``pad_to_max_length``),
``default_data_collator``, Trainer with its defaults, then the n-best post-processing and SQuAD's
exact match / F1 on the evaluation questions. Same split as qa/squad_*: SQuAD v1.1's dev file, 48
articles, the first 36 train, the next 4 are dev (scored here) and the last 8 test (``--split
test``). No peft_hub import anywhere.

    python benchmarks/baselines/run_qa_plain.py --model DIR --data ../shared/data/squad_v1/dev-v1.1.json --max-train-samples 1500
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import time


def read_squad(path: str) -> list[dict]:
    rows = []
    for article_index, article in enumerate(json.load(open(path, encoding="utf-8"))["data"]):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append({"id": qa["id"], "article": article_index, "question": qa["question"], "context": paragraph["context"],
                             "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]}})
    return rows


def normalize(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    return 0.0 if common == 0 else 2 * common / (len(p) + len(g))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", default="/tmp/run_qa_plain")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--max-eval-samples", type=int)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--split", choices=["dev", "test"], default="dev", help="articles 37-40 (dev) or 41-48 (test)")
    args = parser.parse_args(argv)

    import numpy as np
    from datasets import Dataset
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainingArguments, default_data_collator, set_seed

    set_seed(args.seed)
    rows = read_squad(args.data)
    train = Dataset.from_list([r for r in rows if r["article"] < 36])
    test = Dataset.from_list([r for r in rows if (36 <= r["article"] < 40) == (args.split == "dev") and r["article"] >= 36])
    if args.max_train_samples:
        train = train.select(range(args.max_train_samples))
    if args.max_eval_samples:
        test = test.select(range(args.max_eval_samples))
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def prepare_train_features(examples):
        questions = [q.lstrip() for q in examples["question"]]
        tokenized = tokenizer(questions, examples["context"], truncation="only_second", max_length=args.max_seq_length,
                              stride=args.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                              padding="max_length")
        mapping = tokenized.pop("overflow_to_sample_mapping")
        offsets_all = tokenized.pop("offset_mapping")
        tokenized["start_positions"], tokenized["end_positions"] = [], []
        for i, offsets in enumerate(offsets_all):
            cls = tokenized["input_ids"][i].index(tokenizer.cls_token_id)
            sequence_ids = tokenized.sequence_ids(i)
            answers = examples["answers"][mapping[i]]
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start = sequence_ids.index(1)
            token_end = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
            if not (offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char):
                tokenized["start_positions"].append(cls)
                tokenized["end_positions"].append(cls)
                continue
            while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                token_start += 1
            tokenized["start_positions"].append(token_start - 1)
            while offsets[token_end][1] >= end_char:
                token_end -= 1
            tokenized["end_positions"].append(token_end + 1)
        return tokenized

    def prepare_validation_features(examples):
        questions = [q.lstrip() for q in examples["question"]]
        tokenized = tokenizer(questions, examples["context"], truncation="only_second", max_length=args.max_seq_length,
                              stride=args.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                              padding="max_length")
        mapping = tokenized.pop("overflow_to_sample_mapping")
        tokenized["example_id"] = []
        for i in range(len(tokenized["input_ids"])):
            sequence_ids = tokenized.sequence_ids(i)
            tokenized["example_id"].append(examples["id"][mapping[i]])
            tokenized["offset_mapping"][i] = [o if sequence_ids[k] == 1 else None for k, o in enumerate(tokenized["offset_mapping"][i])]
        return tokenized

    train_features = train.map(prepare_train_features, batched=True, remove_columns=train.column_names)
    test_features = test.map(prepare_validation_features, batched=True, remove_columns=test.column_names)

    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    training_args = TrainingArguments(output_dir=args.output, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                                      per_device_eval_batch_size=64, learning_rate=args.learning_rate, warmup_steps=0.1,
                                      weight_decay=0.01, seed=args.seed, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_features, data_collator=default_data_collator,
                      processing_class=tokenizer)
    result = trainer.train()

    started = time.perf_counter()
    output = trainer.predict(test_features.remove_columns(["example_id", "offset_mapping"]))
    start_logits, end_logits = output.predictions[:2]
    by_example = collections.defaultdict(list)
    for i, example_id in enumerate(test_features["example_id"]):
        by_example[example_id].append(i)
    em = f1_total = 0.0
    for example in test:
        best, best_score = "", -1e9
        for i in by_example[example["id"]]:
            offsets = test_features[i]["offset_mapping"]
            for s in np.argsort(start_logits[i])[-20:][::-1]:
                for e in np.argsort(end_logits[i])[-20:][::-1]:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > 30:
                        continue
                    if start_logits[i][s] + end_logits[i][e] > best_score:
                        best_score = start_logits[i][s] + end_logits[i][e]
                        best = example["context"][offsets[s][0] : offsets[e][1]]
        em += max(float(normalize(best) == normalize(g)) for g in example["answers"]["text"])
        f1_total += max(f1(best, g) for g in example["answers"]["text"])
    real_tokens = int(sum(sum(mask) for mask in train_features["attention_mask"]))
    metrics = {
        "train_runtime_s": round(result.metrics["train_runtime"], 2),
        "train_steps": result.global_step,
        "train_windows": len(train_features),
        "real_tokens": real_tokens,
        "real_tokens_per_s": round(real_tokens * args.epochs / result.metrics["train_runtime"], 1),
        f"{args.split}_exact_match": em / len(test),
        f"{args.split}_f1": f1_total / len(test),
        "eval_runtime_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
