"""GPU check (issue 5): LoRA training throughput, peak memory and MFU of a BERT-large-size encoder
(random init, nothing downloaded) in bf16 autocast and on an 8-bit base, through peft-hub's own
method plugin. Prints one JSON line per case and writes them to --out.

    python benchmarks/gpu_check.py --out benchmarks/gpu_check.json      # ~3 minutes on one H200
    python benchmarks/gpu_check.py --smoke                              # tiny config, CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from transformers import BertConfig, BertForTokenClassification

from peft_hub import registry

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense bf16 FLOP/s of the datasheets


def build(config: BertConfig, directory: str, quantization: str):
    kwargs = {}
    if quantization == "8bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["classifier"])
    model = BertForTokenClassification.from_pretrained(directory, **kwargs)
    if quantization == "8bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    task = registry.get_task("ner")
    method = registry.get_method("lora")
    return method.apply(model, method.Options(), task)


def run_case(config, directory, quantization, precision, batch, length, steps, device):
    torch.manual_seed(0)
    model = build(config, directory, quantization)
    if quantization == "none":
        model.to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(1000, config.vocab_size, (batch, length), device=device)
    labels = torch.randint(0, config.num_labels, (batch, length), device=device)
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up: kernels, allocator
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    tokens = batch * length / seconds
    # LoRA: forward 2N + backward through frozen weights 2N FLOPs per token (no weight gradients)
    flops = 4 * params * tokens
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {
        "case": f"lora-{quantization}-{precision}", "device": name, "params": params, "batch": batch, "length": length,
        "step_s": round(seconds, 4), "tokens_per_s": round(tokens), "tflops": round(flops / 1e12, 1),
        "mfu": round(flops / peak, 3) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny config on whatever device there is")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, num_labels=9)
        batch, length, steps = 4, 32, 3
    else:  # BERT-large size
        config = BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, num_labels=9)
        batch, length, steps = 64, 256, 20
    results = []
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        BertForTokenClassification(config).save_pretrained(directory)
        cases = [("none", "fp32"), ("none", "bf16")]
        if device == "cuda":
            cases.append(("8bit", "bf16"))
        for quantization, precision in cases:
            result = run_case(config, directory, quantization, precision, batch, length, steps, device)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
