"""Commands that use a finished run (a directory or a hub name): ``evaluate``, ``embed``,
``predict``, ``merge`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..embeddings import POOLINGS  # no heavy import: torch loads inside its functions
from ..merging import COMBINATIONS
from .app import cli, json_option, quiet_option, setup_logging

task_option = click.option("--option", "-O", "task_options", multiple=True, metavar="KEY=VALUE",
                           help="Replace one of the run's task options, e.g. --option threshold=0.5 (repeatable).")


def _task_options(values: tuple[str, ...]) -> dict | None:
    from ..recipes import apply_overrides

    return apply_overrides({}, list(values)) if values else None



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
@task_option
@quiet_option
@json_option
def evaluate(run_dir, data, sts, pooling, expect_task, fmt, max_eval_samples, task_options, quiet, json_):
    """Score a finished run on labelled data with the task's metric, or any model's sentence
    embeddings on an STS file (--sts)."""
    from .. import adapt

    setup_logging(quiet)
    if bool(data) == bool(sts):
        raise click.UsageError("Give --data (score a run with its task's metric) or --sts (score sentence embeddings), one of them.")
    if sts:
        from .. import embeddings
        from ..pairs import read_scored_pairs

        pairs = read_scored_pairs(sts)[:max_eval_samples]
        model, tokenizer, trained_pooling = embeddings.load_encoder(run_dir)
        results = {"sts": embeddings.sts_scores(model, tokenizer, pairs, pooling or trained_pooling)}
    else:
        results = adapt.evaluate(run_dir, adapt.scoring_data(data, fmt, max_eval_samples), quiet=quiet, expect_task=expect_task,
                                 task_options=_task_options(task_options))
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
    from .. import embeddings
    from ..text import read_texts

    setup_logging(quiet)
    embeddings.check_output(output)  # before any model loads
    texts = read_texts(input_, text_field)
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
@task_option
@json_option
def predict(run_dir, texts, input_, expect_task, task_options, json_):
    """Predict with a finished run (NER: entities with type and character span).

    A task whose input is several texts (qa: question and context; pair: two sentences) takes
    them in that order: `peft-hub predict RUN "Who wrote it?" "It was written by ..."`."""
    from ..errors import DataError
    from ..finished import group_inputs, load_run, read_inputs

    loaded = load_run(run_dir, expect_task=expect_task, task_options=_task_options(task_options))
    task = loaded.resolved.task
    try:
        inputs = group_inputs(task, list(texts))
    except DataError as exc:  # a count of arguments that does not fit the task: a usage mistake
        raise click.UsageError(str(exc)) from None
    inputs += read_inputs(task, input_) if input_ else []
    if not inputs:
        raise click.UsageError(f"Give {' and '.join(task.input_fields)} as arguments, or --input FILE.")
    predictions = loaded.predict(inputs)
    if json_:
        click.echo(json.dumps(predictions, indent=2, ensure_ascii=False))
        return
    for given, prediction in zip(inputs, predictions):
        click.echo(task.format_prediction(given, prediction))


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
        from .. import merging

        out = merging.combine(merging.names(adapters), output, combination, merging.parse_weights(weights), density, overwrite)
        click.echo(f"Combined {adapters} ({combination}) into {out}; use it like any run: peft-hub predict {output} \"text\"")
        return
    from .. import adapt

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
    from .. import report as reports
    from ..errors import RunDirError
    from ..plots import comparison_png

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
    click.echo(f"Plot written to {comparison_png(rows, png)}", err=True)
