"""How far a 4-bit MiniLM is from the full-precision one, with LoRA started plainly (B = 0: the 4-bit
base alone) and with LoftQ (``init_lora_weights=loftq``: each layer's LoRA fitted to what 4-bit
quantization took from its weight). The error is the relative Frobenius distance of the last hidden
states (and of the NER head's logits, the same seeded fresh head on both) to the full-precision
model's, on the first --sentences CoNLL-2003 test sentences, for each rank in --ranks.

    python benchmarks/loftq_error.py            # ~1 min on a CPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def sentences(count: int) -> list[list[str]]:
    found, words = [], []
    for line in (DATA / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        elif words:
            found.append(words)
            words = []
        if len(found) == count:
            break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--ranks", default="4,16,64")
    args = parser.parse_args()
    import torch

    from peft_hub import registry
    from peft_hub.models import load_tokenizer, prepare_quantized, quantization_kwargs, quiet_libraries, resolve

    quiet_libraries()

    path = resolve("minilm")
    task, method = registry.get_task("ner"), registry.get_method("lora")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    batch = dict(load_tokenizer(path)(sentences(args.sentences), is_split_into_words=True, padding=True, return_tensors="pt"))
    batch.pop("token_type_ids", None)

    def outputs(model):
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
        return out.hidden_states[-1], out.logits

    torch.manual_seed(0)
    full = task.build_model(path, labels).eval()
    want = outputs(full)
    print("| LoRA rank | start | last hidden state rel. error | logits rel. error |\n|---:|---|---:|---:|")
    for rank in (int(r) for r in args.ranks.split(",")):
        for init in ("default", "loftq"):
            torch.manual_seed(0)
            quantized = task.build_model(path, labels, **quantization_kwargs("4bit", task.head_modules(full)))
            options = method.Options(r=rank, alpha=2.0 * rank, init_lora_weights=init)
            model = method.apply(prepare_quantized(quantized, "4bit"), options, task).eval()
            method.prepare(model, options, iter(()))
            got = outputs(model)
            errors = [((g - w).norm() / w.norm()).item() for g, w in zip(got, want)]
            name = "plain (the 4-bit base alone)" if init == "default" else "LoftQ"
            print(f"| {rank} | {name} | {errors[0]:.4f} | {errors[1]:.4f} |")


if __name__ == "__main__":
    main()
