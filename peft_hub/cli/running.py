"""Commands that train: ``adapt``, ``self-train``, ``pretrain``, ``run`` (a recipe) and ``validate``.
Each composes a recipe from its flags and ``KEY=VALUE`` overrides; the library runs it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..ranks import relaunch
from .app import cli, echo_unless, json_option, overrides_argument, quiet_option, setup_logging


def _run_recipe(recipe, flags: dict, overrides: tuple[str, ...], quiet: bool, as_json: bool, kind: str | None = None,
                engine: str = "torchrun", workers: int | None = None) -> list[Path]:
    """Compose, validate and run a recipe (``engine="ray"``: in ``workers`` Ray Train workers),
    printing each stage's summary; returns the outputs."""
    from .. import recipes, runs
    from ..ranks import is_main_process

    setup_logging(quiet)
    data, source = recipes.compose(recipe, flags, list(overrides))
    resolved = recipes.validate_any(data, source)
    if kind and isinstance(resolved, recipes.Pipeline):
        raise click.UsageError(f"{source} has stages; run it with `peft-hub run`.")
    if kind and resolved.kind != kind:
        raise click.UsageError(f"{source} is a {resolved.kind} recipe; run it with `peft-hub {resolved.kind}` or `peft-hub run`.")
    if engine == "ray":
        from .. import ray_engine

        stage, out, metrics = ray_engine.train(data, source, workers or 1, quiet=quiet, echo=echo_unless(quiet))
        _report(stage, out, metrics, as_json)
        return [out]
    outputs = []
    for stage, out, metrics in runs.run(resolved, quiet=quiet, echo=echo_unless(quiet), announce=lambda m: click.echo(m, err=True)):
        outputs.append(out)
        if is_main_process():
            _report(stage, out, metrics, as_json)
    return outputs


def _report(stage, out: Path, metrics: dict, as_json: bool) -> None:
    """A finished stage's summary, or its metrics as JSON."""
    from ..summary import adapt_summary, pretrain_summary

    if as_json:
        click.echo(json.dumps({"output": str(out), **{k: v for k, v in metrics.items() if k != "history"}}, indent=2))
    elif stage.kind == "pretrain":
        click.echo(pretrain_summary(out, metrics, stage.objective))
    else:
        click.echo(adapt_summary(out, metrics, stage.task))


#: Options that adapt and pretrain share: (flag, the recipe key it sets, click.option arguments).
RUN_OPTIONS = [
    ("--epochs", "training.epochs", dict(type=float, help="Passes over the training data.")),
    ("--max-steps", "training.max_steps", dict(type=int, help="Stop after N optimizer steps (overrides --epochs).")),
    ("--batch-size", "training.batch_size", dict(type=int, help="Examples per step (per process).")),
    ("--lr", "training.learning_rate", dict(type=float, help="Peak learning rate  [default: the method's for the task; peft-hub methods list]")),
    ("--seed", "training.seed", dict(type=int, help="Random seed.")),
    ("--grad-accum", "training.grad_accum", dict(type=int, help="Gradient accumulation steps.")),
    ("--precision", "training.precision", dict(type=click.Choice(["fp32", "bf16", "fp16"]), help="Mixed precision  [default: fp32]")),
    ("--gradient-checkpointing", "training.gradient_checkpointing", dict(is_flag=True, default=None, help="Trade compute for activation memory.")),
    ("--quantize", "model.quantization", dict(type=click.Choice(["none", "8bit", "4bit"]), help="Load the base in 8-bit or 4-bit (bitsandbytes)  [default: none]")),
    ("--resume", "output.resume", dict(is_flag=True, default=None, help="Continue the interrupted run in --output from its newest complete checkpoint.")),
    ("--overwrite", "output.overwrite", dict(is_flag=True, default=None, help="Replace a finished run in --output.")),
]


def run_options(command):
    """Add the shared RUN_OPTIONS and --num-processes to a command."""
    for flag, _, kwargs in reversed(RUN_OPTIONS):
        command = click.option(flag, **kwargs)(command)
    command = click.option("--engine", type=click.Choice(["torchrun", "ray"]), default="torchrun", show_default=True,
                           help="What starts the --num-processes processes: torchrun, or Ray Train workers (pip install "
                                "'peft-hub[ray]'; a local Ray unless RAY_ADDRESS names a cluster).")(command)
    return click.option("--num-processes", type=click.IntRange(min=1), help="Train in N processes (DDP; gloo on CPU). Batch size is per process.")(command)


def run_flags(values: dict) -> dict:
    """Recipe keys set by the shared options, from the command's keyword arguments."""
    return {key: values[flag.lstrip("-").replace("-", "_")] for flag, key, _ in RUN_OPTIONS}


ADAPT_OPTIONS = [  # (flag, recipe key, click keywords): the options of adapt and self-train
    (("--method", "-m"), "method.name", dict(help="Adapter method (see `peft-hub methods list`).")),
    (("--task", "-t"), "task.name", dict(help="Task head (see `peft-hub tasks list`).")),
    (("--model",), "model.name", dict(help="Base model: alias, local directory or hub id  [default: minilm]")),
    (("--data", "-d"), "data.path", dict(help="Data directory, file, saved dataset or hub id  [default: the task's built-in sample]")),
    (("--output", "-o"), "output.dir", dict(help="Run directory  [default: runs/<task>-<method>-<time>]")),
    (("--max-train-samples",), "data.max_train_samples", dict(type=int, help="Use only the first N training examples.")),
    (("--max-eval-samples",), "data.max_eval_samples", dict(type=int, help="Use only the first N dev/test examples.")),
    (("--teacher",), "teacher.run", dict(help="Also learn a finished run's soft predictions (run directory or hub name; teacher.* sets the rest).")),
    (("--augment",), "augment", dict(multiple=True, help="Augment the training examples on the fly with this augmenter (repeatable; see `peft-hub augmenters list`).")),
]


def adapt_options(command):
    """Add ADAPT_OPTIONS, --recipe, the shared RUN_OPTIONS, --quiet, --json and the overrides."""
    command = overrides_argument(json_option(quiet_option(run_options(command))))
    command = click.option("--recipe", "-r", help="Start from this recipe (file or name); flags and KEY=VALUE refine it.")(command)
    for flags, _, kwargs in reversed(ADAPT_OPTIONS):
        command = click.option(*flags, **kwargs)(command)
    return command


def adapt_flags(values: dict) -> dict:
    """Recipe keys set by ADAPT_OPTIONS and RUN_OPTIONS, from the command's keyword arguments."""
    flags = {key: values.pop(flags[0].lstrip("-").replace("-", "_")) for flags, key, _ in ADAPT_OPTIONS}
    flags["augment"] = [{"name": name} for name in flags["augment"]] or None
    return {**flags, **run_flags(values)}


@cli.command(epilog="""
\b
Examples:
  peft-hub adapt --method lora --task ner
  peft-hub adapt --method lora --task ner --data ../shared/data/conll2003 \\
      --max-train-samples 2000 --epochs 1 --output runs/x
  peft-hub adapt --task classify --method lora --data ../shared/data/sst2 method.options.r=8
  peft-hub adapt --recipe ner/minilm_lora --epochs 1 training.batch_size=32
  peft-hub adapt --method lora --task ner --data DIR --teacher runs/full-ner teacher.alpha=0.7
  peft-hub adapt --method lora --task classify --data DIR --augment eda --augment span_cutoff
""")
@adapt_options
def adapt(recipe, num_processes, engine, quiet, json_, overrides, **values):
    """Adapt a base model to a task with a parameter-efficient method.

    Sugar for a recipe: every flag sets one recipe key, and KEY=VALUE sets any other
    (e.g. method.options.r=8 training.weight_decay=0). With no --data, trains on a small
    built-in sample so you can see the whole flow in a minute.
    """
    flags = adapt_flags(values)
    if recipe is None and not (flags["method.name"] and flags["task.name"]):
        raise click.UsageError("Name a --method and a --task (e.g. --method lora --task ner), or give a --recipe.")
    if engine == "torchrun":
        relaunch(num_processes, lambda m: click.echo(m, err=True))
    _run_recipe(recipe, flags, overrides, quiet, json_, kind="adapt", engine=engine, workers=num_processes)


@cli.command(name="self-train", epilog="""
\b
Examples:
  peft-hub self-train --method lora --task ner --data ../shared/data/conll2003 --max-train-samples 200 \\
      --unlabeled ../shared/data/conll2003/train.txt --skip-unlabeled 200 --rounds 3 --output runs/st
  peft-hub self-train --method lora --task classify --data DIR --unlabeled pool.txt --augment eda
  peft-hub report runs/st/round-*
""")
@click.option("--unlabeled", required=True, help="The pool: a text file (one text per line), JSONL, or labelled data whose labels are ignored.")
@click.option("--rounds", type=int, help="Student rounds after the teacher (round 0)  [default: 3]")
@click.option("--threshold", type=float, help="Keep pseudo-labels at least this confident (NER: the least confident word)  [default: 0.9]")
@click.option("--student-epochs", type=float, help="Epochs of each student round  [default: --epochs, as the teacher]")
@click.option("--balance/--no-balance", default=None, help="Classification: keep as many pseudo-labels of each class  [default: balance]")
@click.option("--max-unlabeled", type=int, help="Use at most N pool examples.")
@click.option("--skip-unlabeled", type=int, help="Skip the first N pool examples (the labelled ones, when the pool is the training file).")
@adapt_options
def self_train(unlabeled, rounds, threshold, student_epochs, balance, max_unlabeled, skip_unlabeled, recipe, num_processes,
               engine, quiet, json_, overrides, **values):
    """Self-training: a teacher on the labelled data pseudo-labels the pool; its confident
    pseudo-labels train a student, the next round's teacher. Every round is a run directory
    (OUTPUT/round-N); an interrupted self-training continues at its round. Sugar for a recipe's
    self_train section (self_train.text_field=... and the rest as KEY=VALUE)."""
    from .. import report as reports

    section = {"unlabeled": unlabeled, "rounds": rounds, "threshold": threshold, "student_epochs": student_epochs,
               "balance": balance, "max_unlabeled": max_unlabeled, "skip_unlabeled": skip_unlabeled}
    flags = {**adapt_flags(values), **{f"self_train.{key}": value for key, value in section.items()}}
    if recipe is None and not (flags["method.name"] and flags["task.name"]):
        raise click.UsageError("Name a --method and a --task (e.g. --method lora --task ner), or give a --recipe.")
    if num_processes or engine != "torchrun":
        raise click.UsageError("self-train runs in one process; drop --num-processes and --engine.")
    last = _run_recipe(recipe, flags, overrides, quiet, json_, kind="adapt")[-1]  # OUTPUT/round-N
    if not json_:
        rounds = sorted(last.parent.glob("round-*"), key=lambda path: int(path.name.split("-")[1]))
        click.echo("\nRounds:\n" + reports.markdown([reports.load(path) for path in rounds]))


@cli.command(epilog="""
\b
Examples:
  peft-hub pretrain --objective mlm --data ../shared/data/ncbi_disease_abstracts --max-steps 300 --output runs/dapt
  peft-hub pretrain --objective wwm --data corpus/ --text-field body --block-size 256 --method lora
  peft-hub adapt --model runs/dapt --method lora --task ner --data ../shared/data/NCBI-disease-IOB
""")
@click.option("--objective", help="Self-supervised objective, e.g. mlm (see `peft-hub objectives list`).")
@click.option("--method", "-m", help="How the encoder trains  [default: the objective's; full for mlm and wwm]")
@click.option("--model", help="Base model: alias, local directory or hub id  [default: minilm]")
@click.option("--data", "-d", multiple=True, help="Text files, folders, a saved dataset or hub id (repeatable).")
@click.option("--validation", help="Held-out text file  [default: valid*/dev* beside the data, else every 20th document]")
@click.option("--validation-split", type=float, help="Share of documents held out when there is no validation file.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl", "pubtator"]), help="How to read the files.")
@click.option("--text-field", help="JSONL key / dataset column with the text.")
@click.option("--block-size", type=int, help="Tokens per sequence.")
@click.option("--line-by-line", is_flag=True, default=None, help="One document per sequence instead of packed blocks.")
@click.option("--streaming", is_flag=True, default=None, help="Read the corpus lazily (needs --max-steps).")
@click.option("--output", "-o", help="Output model directory  [default: runs/pretrain-<objective>-<time>]")
@click.option("--recipe", "-r", help="Start from this recipe (file or name).")
@run_options
@quiet_option
@json_option
@overrides_argument
def pretrain(objective, method, model, data, validation, validation_split, fmt, text_field, block_size, line_by_line,
             streaming, output, recipe, num_processes, engine, quiet, json_, overrides, **run):
    """Continue pretraining an encoder on unlabelled text with a self-supervised objective.

    Reports the objective's held-out score (masked LM: perplexity) before and after; the output directory is a model that
    `peft-hub adapt --model` takes. A model without a pretraining head gets a fresh one that
    warms up alone first.
    """
    if recipe is None and not objective:
        raise click.UsageError("Name an --objective (e.g. --objective mlm), or give a --recipe.")
    flags = {
        "objective.name": objective, "method.name": method, "model.name": model,
        "data.path": list(data) or None, "data.validation": validation, "data.validation_split": validation_split,
        "data.format": fmt, "data.text_field": text_field, "data.block_size": block_size,
        "data.line_by_line": line_by_line, "data.streaming": streaming, "output.dir": output, **run_flags(run),
    }
    if engine == "torchrun":
        relaunch(num_processes, lambda m: click.echo(m, err=True))
    _run_recipe(recipe, flags, overrides, quiet, json_, kind="pretrain", engine=engine, workers=num_processes)


@cli.command(epilog="""
\b
Examples:
  peft-hub run ner/minilm_lora
  peft-hub run recipes/ner/minilm_lora.yaml training.epochs=1 method.options.r=8 ~data.test
""")
@click.argument("recipe")
@overrides_argument
@quiet_option
@json_option
def run(recipe, overrides, quiet, json_):
    """Run a recipe (a YAML file or a registered name), refined by KEY=VALUE overrides.

    An adapt recipe has a `task` section, a pretrain recipe an `objective` section."""
    _run_recipe(recipe, {}, overrides, quiet, json_)


@cli.command(epilog="""
\b
Examples:
  peft-hub validate ner/minilm_lora
  peft-hub validate my.yaml method.options.r=8 --show
""")
@click.argument("recipe")
@overrides_argument
@click.option("--show", is_flag=True, help="Print the resolved recipe with every default.")
def validate(recipe, overrides, show):
    """Check a recipe and its overrides; loads no model or data. Reports every error at once."""
    from .. import recipes

    data, source = recipes.compose(recipe, {}, list(overrides))
    resolved = recipes.validate_any(data, source)
    stages = resolved.stages if isinstance(resolved, recipes.Pipeline) else [(None, resolved)]
    for name, stage in stages:
        if show:
            click.echo((f"# stage {name}\n" if name else "") + recipes.dump(stage), nl=False)
        else:
            what = (stage.task or stage.objective).name
            label = f"stage {name!r}: " if name else ""
            click.echo(f"{source}: {label}valid {stage.kind} recipe ({what} with {stage.method.name} on {stage.recipe.model.name}).")
