"""MLM pretraining speed, side by side: peft-hub against a run_mlm.py-style script.

    (a) peft-hub pretrain --objective mlm (the CLI, in a subprocess): output layer at masked
        positions only, fast CPU dropout
    (b) benchmarks/baselines/run_mlm_plain.py: run_mlm.py's way, output layer at every position
    (c) a bare PyTorch loop over exactly the batches (a) uses (peft-hub's model, collator, batch
        rewrite, optimizer and schedule; no Trainer loop), so a/c is peft-hub's own overhead

Same model (offline MiniLM, whose MLM head starts fresh in both), text (WikiText-2 raw test file),
blocks of 128 tokens (all full: no padding anywhere), batch 16, full fine-tuning, lr 2e-4, 10%
warm-up, seed 42, the same number of optimizer steps. (a) trains every weight from step one here
(head_warmup_steps=0), as (b) does. No length-grouping variant: packed blocks have no padding.

    .venv/bin/python benchmarks/speed_mlm.py --steps 40 --reps 3    # ~15 minutes on 2 CPU cores
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from speed_ner import ENV, PY, ROOT, _subprocess_json, loop, measure, parse_args, write_report  # noqa: E402

TEXT = ROOT.parent / "shared" / "data" / "wikitext2_raw" / "wiki.test.raw"


def _flags(steps: int, out: Path) -> list[str]:
    return ["pretrain", "--objective", "mlm", "--data", str(TEXT), "--max-steps", str(steps), "--output", str(out),
            "--overwrite", "--quiet", "training.head_warmup_steps=0", f"training.eval_steps={steps}",
            "training.early_stopping_patience=null"]


def run_a(steps: int, tmp: Path) -> dict:
    out = tmp / "a"
    done = subprocess.run([str(Path(PY).parent / "peft-hub"), *_flags(steps, out)], env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"peft-hub pretrain failed:\n{done.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"seconds": m["train_runtime_s"], "real_tokens": m["train_tokens"], "steps": m["train_steps"]}


def run_b(steps: int, tmp: Path) -> dict:
    from peft_hub import models

    m = _subprocess_json([PY, str(ROOT / "benchmarks" / "baselines" / "run_mlm_plain.py"), "--model", models.resolve("minilm"),
                          "--train-file", str(TEXT), "--output", str(tmp / "b"), "--max-steps", str(steps)])
    return {"seconds": m["train_runtime_s"], "real_tokens": m["real_tokens"], "steps": m["train_steps"]}


def run_c(steps: int, tmp: Path) -> dict:
    return _subprocess_json([PY, __file__, "--bare-loop", "--steps", str(steps), "--tmp", str(tmp)])


def bare_loop(steps: int, tmp: Path) -> dict:
    import transformers

    from peft_hub import models, recipes
    from peft_hub.pretrain import _corpus, _EvalAwareCollator
    from peft_hub.text import BlockBuilder, build_blocks
    from peft_hub.train import FeatureDataset, build_trainer

    argv = _flags(steps, tmp / "c")
    data, _ = recipes.compose(None, {"objective.name": "mlm", "data.path": str(TEXT), "training.max_steps": steps},
                              argv[argv.index("--quiet") + 1:])
    resolved = recipes.validate_any(data)
    recipe, objective, method = resolved.recipe, resolved.objective, resolved.method
    models.quiet_libraries()
    transformers.set_seed(recipe.training.seed)
    path = models.resolve(recipe.model.name)
    tokenizer = models.load_tokenizer(path)
    train_docs, _ = _corpus(resolved, lambda *_: None)
    d = recipe.data
    builder = BlockBuilder(tokenizer, block_size=d.block_size, unit="documents" if d.line_by_line else "blocks", word_ids=objective.needs_word_ids)
    train = FeatureDataset(list(build_blocks(train_docs(), builder)))
    model, _ = objective.build_model(path)
    model = method.apply(model, resolved.method_options, objective)
    options = resolved.objective_options
    transform = objective.prepare_training(model, options)
    trainer = build_trainer(recipe.training, resolved.learning_rate, model, tokenizer, train, None, tmp / "c",
                            collator=_EvalAwareCollator(objective.collator(tokenizer, options), None), quiet=True,
                            batch_transform=transform)
    loader = iter(trainer.get_train_dataloader())
    batches = [next(loader) for _ in range(steps)]
    seconds, real = loop(model, trainer, batches, transform)
    return {"seconds": seconds, "real_tokens": real, "steps": steps}


def main() -> None:
    args = parse_args(__doc__, "steps", 40, "optimizer steps of 16 blocks", "speed_mlm")
    if args.bare_loop:
        print(json.dumps(bare_loop(args.steps, Path(args.tmp))))
        return
    variants = {name: (lambda t, run=run: run(args.steps, t)) for name, run in (("a", run_a), ("b", run_b), ("c", run_c))}
    write_report(measure(variants, args.reps), args, f"MLM pretraining, {args.steps} steps", ["a/b", "a/c"])


if __name__ == "__main__":
    main()
