"""The ``peft-hub`` command line: a thin click layer over the library.

Library code raises :class:`peft_hub.PeftHubError`; only this module turns those into messages
and exit codes (1 for a problem with the input, 2 for a usage mistake, 130 for Ctrl-C).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, registry
from .cli_hub import hub, json_option, serve
from .embeddings import POOLINGS  # no heavy import: torch loads inside its functions
from .merging import COMBINATIONS
from .errors import PeftHubError

EXAMPLES = """
\b
Examples:
  peft-hub adapt --method lora --task ner                 # built-in sample, offline MiniLM
  peft-hub adapt --method lora --task ner --data ../shared/data/conll2003 --output runs/x
  peft-hub predict runs/x "EU rejects German call to boycott British lamb ."
  peft-hub run ner/minilm_lora training.epochs=1           # a recipe + key=value overrides
  peft-hub plugins                                         # what is installed, as JSON
"""


DISK_ERRORS = {
    errno.ENOSPC: "Free some disk space or choose another --output.",
    errno.EDQUOT: "Your disk quota is used up: free some space or choose another --output.",
    errno.EACCES: "You may not write there: choose another --output or fix its permissions.",
    errno.EPERM: "You may not write there: choose another --output or fix its permissions.",
    errno.EROFS: "That file system is read-only: choose another --output.",
}


PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)


class Cli(click.Group):
    """Turns library errors into one clear message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PeftHubError as exc:
            raise click.ClickException(str(exc)) from None
        except PATH_ERRORS as exc:  # a path given that is not there, or not what it must be
            raise click.ClickException(f"{exc.strerror}: {exc.filename}. Check the path, or choose another.") from None
        except OSError as exc:  # the disk, not the code: say which file and what to do
            if exc.errno not in DISK_ERRORS:
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(
                f"Could not write{where}: {exc.strerror}. {DISK_ERRORS[exc.errno]} "
                "Finished runs are never left looking complete; an interrupted run continues with --resume."
            ) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("peft_hub")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.handlers[0].setStream(sys.stderr)  # the stderr of now (it may have been replaced since)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _echo(quiet: bool):
    return (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))


@click.group(cls=Cli, epilog=EXAMPLES)
@click.version_option(__version__, prog_name="peft-hub")
def cli():
    """Parameter-efficient fine-tuning of encoder language models.

    Adapt a pretrained encoder to a task with LoRA and other methods; methods, tasks, model
    aliases and recipes are plugins (see `peft-hub plugins`).
    """
    registry.load_plugins()
    registry.check()
    registry.warn_problems(lambda message: click.echo(message, err=True))


# -- running ----------------------------------------------------------------------------------------


def _run_recipe(recipe, flags: dict, overrides: tuple[str, ...], quiet: bool, as_json: bool, kind: str | None = None) -> list[Path]:
    """Compose, validate and run a recipe, printing each stage's summary; returns the outputs."""
    from . import recipes, runs
    from .train import is_main_process

    _setup_logging(quiet)
    data, source = recipes.compose(recipe, flags, list(overrides))
    resolved = recipes.validate_any(data, source)
    if kind and isinstance(resolved, recipes.Pipeline):
        raise click.UsageError(f"{source} has stages; run it with `peft-hub run`.")
    if kind and resolved.kind != kind:
        raise click.UsageError(f"{source} is a {resolved.kind} recipe; run it with `peft-hub {resolved.kind}` or `peft-hub run`.")
    outputs = []
    for stage, out, metrics in runs.run(resolved, quiet=quiet, echo=_echo(quiet), announce=lambda m: click.echo(m, err=True)):
        outputs.append(out)
        if not is_main_process():
            continue
        if as_json:
            click.echo(json.dumps({"output": str(out), **{k: v for k, v in metrics.items() if k != "history"}}, indent=2))
        elif stage.kind == "pretrain":
            click.echo(_pretrain_summary(out, metrics, stage.objective))
        else:
            click.echo(_summary(out, metrics, stage.task))
    return outputs


def _pretrain_summary(out: Path, metrics: dict, objective: Any) -> str:
    return "\n".join([
        f"\nModel saved to {out}",
        f"held-out {metrics['primary_metric']} {metrics['heldout_before'][metrics['primary_metric']]:.4g} -> "
        f"{metrics['heldout_after'][metrics['primary_metric']]:.4g} ({metrics['heldout_examples']:,} held-out examples)",
        f"{metrics['train_steps']} steps in {metrics['train_runtime_s']:.1f} s, {metrics['train_tokens_per_s'] or 0:,.0f} tokens/s",
        *(f"Next: {step.format(out=out)}" for step in objective.next_steps),
    ])


def _summary(out: Path, metrics: dict, task: Any) -> str:
    """The end of an ``adapt`` run: the task's summary metrics per split, its notes, cost, warnings."""
    lines = [f"\nRun saved to {out}", ""]
    keys = [k for k in metrics.get("summary_metrics") or [metrics.get("primary_metric", "f1")]
            if any(k in metrics.get(s, {}) for s in ("dev", "test"))]
    lines.append(f"{'split':<6}" + "".join(f"{k:>12}" for k in keys))
    for split in ("dev", "test"):
        if split in metrics:
            lines.append(f"{split:<6}" + "".join(f"{metrics[split].get(k, float('nan')):>12.4f}" for k in keys))
    last = "test" if "test" in metrics else "dev"
    lines += [f"{note} ({last})" for note in task.score_notes(metrics.get(last, {}))]
    lines.append(
        f"trainable {metrics['trainable_params']:,} of {metrics['total_params']:,} parameters ({metrics['trainable_percent']:.2f}%); "
        f"{metrics['train_steps']} steps in {metrics['train_runtime_s']:.1f} s, {metrics['train_tokens_per_s'] or 0:,.0f} tokens/s"
    )
    lines += [f"WARNING: {w}" for w in metrics.get("warnings", [])]
    example = " ".join(f'"{field}"' for field in task.input_fields)
    lines.append(f"Next: peft-hub predict {out} {example}   |   peft-hub evaluate {out} --data DIR")
    return "\n".join(lines)


def _relaunch(num_processes: int | None) -> None:
    """With --num-processes N (N > 1), run this same command in N processes through torchrun
    (DDP; gloo on CPU) and exit with its status. Inside such a run, do nothing."""
    if not num_processes or num_processes < 2 or "LOCAL_RANK" in os.environ:
        return
    import subprocess

    import torch

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            argv.append(arg)
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"  # Trainer then runs DDP over gloo
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
               "-m", "peft_hub", *argv]
    click.echo(f"Starting {num_processes} processes: {' '.join(command[2:])}", err=True)
    sys.exit(subprocess.run(command, env=env).returncode)


#: Options that adapt and pretrain share: (flag, the recipe key it sets, click.option arguments).
RUN_OPTIONS = [
    ("--epochs", "training.epochs", dict(type=float, help="Passes over the training data.")),
    ("--max-steps", "training.max_steps", dict(type=int, help="Stop after N optimizer steps (overrides --epochs).")),
    ("--batch-size", "training.batch_size", dict(type=int, help="Examples per step (per process).")),
    ("--lr", "training.learning_rate", dict(type=float, help="Peak learning rate  [default: the method's]")),
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
    return click.option("--num-processes", type=click.IntRange(min=1), help="Train in N processes (DDP through torchrun; gloo on CPU). Batch size is per process.")(command)


def run_flags(values: dict) -> dict:
    """Recipe keys set by the shared options, from the command's keyword arguments."""
    return {key: values[flag.lstrip("-").replace("-", "_")] for flag, key, _ in RUN_OPTIONS}


quiet_option = click.option("--quiet", "-q", is_flag=True, help="Only print the final summary (no progress bars).")
overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")


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
def adapt(recipe, num_processes, quiet, json_, overrides, **values):
    """Adapt a base model to a task with a parameter-efficient method.

    Sugar for a recipe: every flag sets one recipe key, and KEY=VALUE sets any other
    (e.g. method.options.r=8 training.weight_decay=0). With no --data, trains on a small
    built-in sample so you can see the whole flow in a minute.
    """
    flags = adapt_flags(values)
    if recipe is None and not (flags["method.name"] and flags["task.name"]):
        raise click.UsageError("Name a --method and a --task (e.g. --method lora --task ner), or give a --recipe.")
    _relaunch(num_processes)
    _run_recipe(recipe, flags, overrides, quiet, json_, kind="adapt")


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
               quiet, json_, overrides, **values):
    """Self-training: a teacher on the labelled data pseudo-labels the pool; its confident
    pseudo-labels train a student, the next round's teacher. Every round is a run directory
    (OUTPUT/round-N); an interrupted self-training continues at its round. Sugar for a recipe's
    self_train section (self_train.text_field=... and the rest as KEY=VALUE)."""
    from . import report as reports

    section = {"unlabeled": unlabeled, "rounds": rounds, "threshold": threshold, "student_epochs": student_epochs,
               "balance": balance, "max_unlabeled": max_unlabeled, "skip_unlabeled": skip_unlabeled}
    flags = {**adapt_flags(values), **{f"self_train.{key}": value for key, value in section.items()}}
    if recipe is None and not (flags["method.name"] and flags["task.name"]):
        raise click.UsageError("Name a --method and a --task (e.g. --method lora --task ner), or give a --recipe.")
    if num_processes:
        raise click.UsageError("self-train runs in one process; drop --num-processes.")
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
             streaming, output, recipe, num_processes, quiet, json_, overrides, **run):
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
    _relaunch(num_processes)
    _run_recipe(recipe, flags, overrides, quiet, json_, kind="pretrain")


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
    from . import recipes

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


# -- using a finished run ---------------------------------------------------------------------------


@cli.command(epilog="""
\b
Examples:
  peft-hub evaluate runs/x --data ../shared/data/conll2003
  peft-hub evaluate runs/x --data my_test.txt --json
  peft-hub evaluate runs/simcse --sts ../shared/data/stsb/sts-test.csv   # any model or run with sentence embeddings
""")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "-d", help="Data directory (every split found is scored) or a file.")
@click.option("--sts", type=click.Path(dir_okay=False), help="Score sentence embeddings instead: an STS file (sentence1, sentence2, score in [0, 5]); "
              "Spearman correlation of cosine similarity with the scores. RUN_DIR may then be any model.")
@click.option("--pooling", type=click.Choice(POOLINGS), help="With --sts: how tokens become one vector (default: what the model trained with, else mean).")
@click.option("--task", "-t", "expect_task", help="Refuse a run of another task (e.g. --task ner).")
@click.option("--format", "fmt", default="auto", show_default=True, help="Data format, as data.format in a recipe.")
@click.option("--max-eval-samples", type=int, help="Score only the first N examples of each split.")
@quiet_option
@json_option
def evaluate(run_dir, data, sts, pooling, expect_task, fmt, max_eval_samples, quiet, json_):
    """Score a finished run on labelled data with the task's metric, or any model's sentence
    embeddings on an STS file (--sts)."""
    import os

    from . import adapt
    from .recipes import DataConfig

    _setup_logging(quiet)
    if bool(data) == bool(sts):
        raise click.UsageError("Give --data (score a run with its task's metric) or --sts (score sentence embeddings), one of them.")
    if sts:
        from . import embeddings
        from .pairs import read_scored_pairs

        pairs = read_scored_pairs(sts)[:max_eval_samples]
        model, tokenizer, trained_pooling = embeddings.load_encoder(run_dir)
        results = {"sts": embeddings.sts_scores(model, tokenizer, pairs, pooling or trained_pooling)}
    else:
        path = Path(data)
        config = DataConfig(path=data, format=fmt, max_eval_samples=max_eval_samples)
        if path.is_file():  # a single file is scored as is, whatever its name
            config = DataConfig(train=data, format=fmt, max_eval_samples=max_eval_samples)
        elif not path.exists() and os.sep in data:
            raise click.BadParameter(f"{data!r} does not exist.", param_hint="--data")
        results = adapt.evaluate(run_dir, config, quiet=quiet, expect_task=expect_task)
    if json_:
        click.echo(json.dumps(results, indent=2))
        return
    for split, scores in results.items():
        click.echo(f"{split}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))


@cli.command(epilog="""
\b
Examples:
  peft-hub embed minilm --input sentences.txt --output vectors.npy
  peft-hub embed runs/simcse --input docs.jsonl --text-field body --output vectors.jsonl
""")
@click.argument("source")
@click.option("--input", "-i", "input_", required=True, type=click.Path(dir_okay=False),
              help="Texts: one per line, or JSONL with --text-field.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write: .npy (a matrix) or .jsonl.")
@click.option("--pooling", type=click.Choice(POOLINGS), help="How tokens become one vector (default: what the model trained with, else mean).")
@click.option("--text-field", default="text", show_default=True, help="JSONL key holding the text.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--normalize/--no-normalize", default=False, help="Scale every vector to length 1 (cosine = dot product).")
@quiet_option
def embed(source, input_, output, pooling, text_field, batch_size, normalize, quiet):
    """Write sentence embeddings of texts: SOURCE is a model (directory, alias), a `pretrain`
    output (e.g. SimCSE) or an `adapt` run of a task with sentence representations (classify)."""
    from . import embeddings

    _setup_logging(quiet)
    embeddings.check_output(output)  # before any model loads
    texts = embeddings.read_texts(input_, text_field)
    model, tokenizer, trained_pooling = embeddings.load_encoder(source)
    vectors = embeddings.encode(model, tokenizer, texts, pooling or trained_pooling, batch_size, normalize=normalize)
    embeddings.write_embeddings(vectors, texts, output)
    if not quiet:
        click.echo(f"{len(texts):,} embeddings of size {vectors.shape[1]} ({pooling or trained_pooling} pooling) written to {output}", err=True)


@cli.command(epilog="""
\b
Examples:
  peft-hub predict runs/x "EU rejects German call to boycott British lamb ."
  peft-hub predict runs/x --input sentences.txt --json
  peft-hub predict runs/x --task ner "Alice flew to Paris ."   # refuse a run of another task
""")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1)
@click.option("--input", "-i", "input_", type=click.File("r", encoding="utf-8"),
              help="Read inputs from a file ('-' for stdin): one text per line, or for tasks of several texts "
                   "one JSON object per line (or the texts tab-separated).")
@click.option("--task", "-t", "expect_task", help="Refuse a run of another task (e.g. --task ner).")
@json_option
def predict(run_dir, texts, input_, expect_task, json_):
    """Predict with a finished run (NER: entities with type and character span).

    A task whose input is several texts (qa: question and context; pair: two sentences) takes
    them in that order: `peft-hub predict RUN "Who wrote it?" "It was written by ..."`."""
    from . import adapt

    loaded = adapt.load_run(run_dir, expect_task=expect_task)
    task = loaded.resolved.task
    inputs = _group_inputs(task, list(texts)) + (_read_inputs(task, input_) if input_ else [])
    if not inputs:
        raise click.UsageError(f"Give {' and '.join(task.input_fields)} as arguments, or --input FILE.")
    predictions = loaded.predict(inputs)
    if json_:
        click.echo(json.dumps(predictions, indent=2, ensure_ascii=False))
        return
    for given, prediction in zip(inputs, predictions):
        click.echo(task.format_prediction(given, prediction))


def _group_inputs(task: Any, texts: list[str]) -> list[dict[str, str]]:
    fields = task.input_fields
    if len(texts) % len(fields):
        raise click.UsageError(f"The {task.name!r} task takes {len(fields)} texts per input ({', '.join(fields)}); "
                               f"got {len(texts)} argument(s), not a multiple of {len(fields)}.")
    return [dict(zip(fields, texts[i : i + len(fields)])) for i in range(0, len(texts), len(fields))]


def _read_inputs(task: Any, stream: Any) -> list[dict[str, str]]:
    fields, inputs = task.input_fields, []
    for number, line in enumerate(stream, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if len(fields) == 1:
            inputs.append({fields[0]: line})
        elif line.lstrip().startswith("{"):
            try:
                inputs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"line {number}: invalid JSON ({exc.msg}).", param_hint="--input") from None
        else:
            cells = line.split("\t")
            if len(cells) != len(fields):
                raise click.BadParameter(f"line {number}: expected {len(fields)} tab-separated texts ({', '.join(fields)}) "
                                         f"or a JSON object, got {len(cells)} field(s).", param_hint="--input")
            inputs.append(dict(zip(fields, cells)))
    return inputs


@cli.command(epilog="""
\b
Examples:
  peft-hub merge runs/x --output merged/x
  python -c "from transformers import AutoModelForTokenClassification as M; M.from_pretrained('merged/x')"
  peft-hub merge --adapters conll-a,conll-b --combination ties --density 0.5 --output conll-ab
  peft-hub merge --adapters runs/a,runs/b --weights 0.7,0.3 --output runs/ab
""")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option("--output", "-o", required=True, help="Directory for the merged model; with --adapters, a hub name or a directory (a path with a '/').")
@click.option("--adapters", help="Combine these adapters (comma-separated run directories or hub names) into one, instead.")
@click.option("--combination", type=click.Choice(COMBINATIONS), default="linear",
              show_default=True, help="How --adapters combine (peft's weighted-adapter merging; heads the same way).")
@click.option("--weights", help="One weight per adapter, comma-separated  [default: equal, summing to 1]")
@click.option("--density", type=float, default=0.5, show_default=True, help="Share of each adapter kept by ties / dare_*.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --output (or replace the hub entry).")
def merge(run_dir, output, adapters, combination, weights, density, overwrite):
    """Merge a run's adapter into the base weights (a plain transformers model), or combine
    several adapters of one task and label set into one adapter (--adapters).

    Folding works for lora, ia3, full and freeze; adapter and prefix add computation that no weight
    can absorb, and say so. The base is always reloaded in full precision before merging.
    Combining works for LoRA adapters of one task, label set and base model."""
    if bool(run_dir) == bool(adapters):
        raise click.UsageError("Give a RUN_DIR to fold into its base, or --adapters A,B,... to combine, one of them.")
    if adapters:
        from . import merging

        try:
            parsed = [float(w) for w in weights.split(",")] if weights else None
        except ValueError:
            raise click.BadParameter(f"{weights!r} is not a comma-separated list of numbers.", param_hint="--weights") from None
        out = merging.combine([a.strip() for a in adapters.split(",") if a.strip()], output, combination, parsed, density, overwrite)
        click.echo(f"Combined {adapters} ({combination}) into {out}; use it like any run: peft-hub predict {output} \"text\"")
        return
    from . import adapt

    out = adapt.merge(run_dir, output, overwrite)
    click.echo(f"Merged model and tokenizer written to {out}; load it with AutoModelFor...from_pretrained({str(out)!r}).")


@cli.command(epilog="""
\b
Examples:
  peft-hub report runs/lora runs/full
  peft-hub report runs/matrix/* --png matrix.png > matrix.md
  peft-hub report runs/x --json
""")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--png", default="report.png", show_default=True, help="Where to write the plot: score vs trainable %, point size = training time.")
@json_option
def report(run_dirs, png, json_):
    """Compare finished runs: a markdown (or JSON) table on stdout and a PNG.

    Directories that hold no finished run are skipped with a note."""
    from . import report as reports
    from .errors import RunDirError

    folder = Path(png).expanduser().resolve().parent
    if not folder.is_dir():  # before reading any run
        raise click.BadParameter(f"the folder {folder} does not exist; create it or write the plot elsewhere.", param_hint="--png")
    rows = []
    for run_dir in run_dirs:
        try:
            rows.append(reports.load(run_dir))
        except RunDirError as exc:
            click.echo(f"Skipped: {exc}", err=True)
    if not rows:
        raise RunDirError("None of the given directories holds a finished run.")
    click.echo(reports.as_json(rows) if json_ else reports.markdown(rows))
    click.echo(f"Plot written to {reports.comparison_png(rows, png)}", err=True)


# -- what is installed ------------------------------------------------------------------------------


@cli.command(epilog="""
\b
Examples:
  peft-hub plugins
  peft-hub plugins | python -c "import json,sys; print([p['name'] for p in json.load(sys.stdin)['plugins']])"
""")
def plugins():
    """List installed plugins as JSON: distribution, version, hooks and what each registered."""
    click.echo(json.dumps(registry.plugins_report(), indent=2))


def _describe(table: dict, as_json: bool) -> None:
    from . import options

    rows = []
    for name, entry in sorted(table.items()):
        obj = entry.obj
        row = {"name": name, "description": obj.description, "plugin": entry.plugin,
               "distribution": entry.distribution, "options": options.describe(obj.Options)}
        if getattr(obj, "default_learning_rate", None):
            row["default_learning_rate"] = obj.default_learning_rate
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        rate = f"; default learning rate {row['default_learning_rate']:g}" if "default_learning_rate" in row else ""
        click.echo(f"{row['name']}: {row['description']}  [{row['distribution'] or row['plugin']}{rate}]")
        for o in row["options"]:
            click.echo(f"    {o['name']} ({o['type']}, default {o['default']!r}): {o['help']}")


def _rows(rows: list[dict], as_json: bool, line: Any) -> None:
    """A listing: JSON (``--json``) or one ``line(row)`` per row."""
    click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(line(row) for row in rows))


def _listing_group(name: str, summary: str, table) -> None:
    """`peft-hub NAME list [--json]` for one kind of registered component."""
    examples = f"\n\b\nExamples:\n  peft-hub {name} list\n  peft-hub {name} list --json\n"
    group = click.Group(name, help=summary, epilog=examples)

    @group.command(name="list", help=f"List {name} with their options.", epilog=examples)
    @json_option
    def list_(json_):
        _describe(table(), json_)

    cli.add_command(group)


_listing_group("methods", "Adapter methods.", registry.methods)
_listing_group("tasks", "Task heads.", registry.tasks)
_listing_group("objectives", "Self-supervised pretraining objectives.", registry.objectives)
_listing_group("augmenters", "Data augmenters (applied on the fly to training examples).", registry.augmenters)


@cli.group(epilog="""
\b
Examples:
  peft-hub models list
  peft-hub adapt --model minilm --method lora --task ner
""")
def models():
    """Base-model aliases."""


@models.command(name="list", epilog="""
\b
Examples:
  peft-hub models list
  peft-hub models list --json
""")
@json_option
def models_list(json_):
    """List model aliases usable as --model."""
    rows = [{"name": name, "description": entry.extra["description"], "plugin": entry.plugin, "distribution": entry.distribution}
            for name, entry in sorted(registry.models().items())]
    _rows(rows, json_, lambda row: f"{row['name']}: {row['description']}  [{row['distribution'] or row['plugin']}]")


@cli.group(epilog="""
\b
Examples:
  peft-hub recipes list
  peft-hub recipes show ner/minilm_lora
  peft-hub recipes cp ner/minilm_lora my_ner.yaml
""")
def recipes():
    """Recipes shipped by plugins."""


@recipes.command(name="list", epilog="""
\b
Examples:
  peft-hub recipes list
  peft-hub recipes list --json
""")
@json_option
def recipes_list(json_):
    """List registered recipes."""
    rows = [{"name": name, "path": str(entry.obj), "plugin": entry.plugin, "distribution": entry.distribution}
            for name, entry in sorted(registry.recipes().items())]
    _rows(rows, json_, lambda row: f"{row['name']}  {row['path']}")


@recipes.command(name="show", epilog="""
\b
Example:
  peft-hub recipes show ner/minilm_lora
""")
@click.argument("name")
def recipes_show(name):
    """Print a recipe file."""
    click.echo(registry.get_recipe(name).read_text(encoding="utf-8"), nl=False)


@recipes.command(name="cp", epilog="""
\b
Example:
  peft-hub recipes cp ner/minilm_lora my_ner.yaml && peft-hub run my_ner.yaml
""")
@click.argument("name")
@click.argument("dest", type=click.Path(dir_okay=True))
def recipes_cp(name, dest):
    """Copy a recipe to DEST to edit it. Its relative data paths point at the original place,
    so fix them if DEST lies elsewhere."""
    source = registry.get_recipe(name)
    target = Path(dest)
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise click.ClickException(f"{target} exists; remove it or choose another destination.")
    shutil.copyfile(source, target)
    click.echo(f"Copied {name} to {target}. Run it with: peft-hub run {target}")


cli.add_command(hub)
cli.add_command(serve)
registry.load_plugins()
registry.pm.hook.register_commands(cli=cli)


def main() -> None:
    cli(prog_name="peft-hub")
