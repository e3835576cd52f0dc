"""Print a markdown table (task, method, learning rate, trainable %, dev/test scores, seconds)
from run directories.

    python benchmarks/table_from_runs.py runs/matrix/*
"""

import json
import sys
from pathlib import Path

import yaml

print("| task | method | lr | trainable params | trainable % | dev F1 | test F1 | dev acc | train s | tokens/s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for arg in sys.argv[1:]:
    run = Path(arg)
    if not (run / "run.json").exists():
        continue
    info = json.loads((run / "run.json").read_text())
    m = json.loads((run / "metrics.json").read_text())
    lr = yaml.safe_load((run / "recipe.yaml").read_text())["training"]["learning_rate"]
    print(
        f"| {info['task']} | {info['method']} | {lr:g} | {m['trainable_params']:,} | {m['trainable_percent']:.3f} | "
        f"{m['dev']['f1']:.4f} | {m.get('test', {}).get('f1', float('nan')):.4f} | {m['dev'].get('accuracy', float('nan')):.4f} | "
        f"{m['train_runtime_s']:.1f} | {m['train_tokens_per_s']:,.0f} |"
    )
