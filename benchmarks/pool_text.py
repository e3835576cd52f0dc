"""A training file without its first examples, as plain text, one example per line (the unlabelled
pool a user would have): derived data for fewlabel.sh and distill_conll.sh, written outside the
repository.

    .venv/bin/python benchmarks/pool_text.py TASK TRAIN_FILE SKIP LIMIT OUT   # LIMIT 0: all the rest
"""

import sys

from peft_hub import registry
from peft_hub.recipes import DataConfig

task_name, train, skip, limit, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
registry.load_plugins()
task = registry.get_task(task_name)
examples = task.read_data(DataConfig(train=train, validation_split=0), task.Options())["train"][skip:]
with open(out, "w", encoding="utf-8") as f:
    f.writelines((" ".join(e.tokens) if hasattr(e, "tokens") else e.text) + "\n" for e in examples[: limit or None])
