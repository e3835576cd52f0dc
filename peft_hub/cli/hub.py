"""``peft-hub hub ...`` (the local store of trained adapters) and ``peft-hub serve``.

"""

from __future__ import annotations

import json

import click

from .app import cli, examples, json_option


@cli.group(epilog="""
\b
Examples:
  peft-hub hub add runs/x --name conll-lora --tag ner
  peft-hub hub list
  peft-hub hub show conll-lora
  peft-hub hub export conll-lora conll-lora.tar.gz
  PEFT_HUB_HOME=/shared/hub peft-hub hub import conll-lora.tar.gz
  peft-hub predict conll-lora "EU rejects German call ."
""")
def hub():
    """The local hub of trained adapters ($PEFT_HUB_HOME, default ~/.cache/peft-hub).

    Every command that takes a RUN_DIR (predict, evaluate, report, merge, serve) also takes the
    name of a hub entry."""


@hub.command(name="add", epilog=examples('peft-hub hub add runs/x --name conll-ner --tag news'))
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="The entry's name: lower-case letters, digits, '.', '_', '-'.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace an entry of the same name.")
def hub_add(run_dir, name, tags, overwrite):
    """Copy a finished adapt run into the hub, with a model card."""
    from .. import hub as store

    entry = store.add(run_dir, name, tags, overwrite)
    click.echo(f"Added {entry.name} ({entry.info.get('task')}, {entry.info.get('method')}, "
               f"{entry.meta['size'] / 2**20:.1f} MiB) to {entry.path}")


@hub.command(name="list", epilog=examples('peft-hub hub list', 'peft-hub hub list --json'))
@json_option
def hub_list(json_):
    """List the hub's entries: task, method, base model, labels, score, size."""
    from .. import hub as store

    rows = [entry.row() for entry in store.entries()]
    if json_:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"The hub at {store.home()} is empty. Add a run with: peft-hub hub add RUN_DIR --name NAME", err=True)
        return
    header = ("name", "task", "method", "base_model", "labels", "score", "size MiB", "tags")
    table = [header, *[(r["name"], r["task"], r["method"], r["base_model"], str(r["labels"]),
                        f"{r['metric']} {r['score']:.4f}" if isinstance(r["score"], float) else "-",
                        f"{r['size_mb']:.1f}", ",".join(r["tags"])) for r in rows]]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


@hub.command(name="show", epilog=examples('peft-hub hub show conll-ner'))
@click.argument("name")
def hub_show(name):
    """Print an entry's model card (its README.md)."""
    from .. import hub as store

    click.echo((store.get(name).path / "README.md").read_text(encoding="utf-8"), nl=False)


@hub.command(name="rm", epilog=examples('peft-hub hub rm conll-ner'))
@click.argument("names", nargs=-1, required=True)
def hub_rm(names):
    """Remove entries from the hub."""
    from .. import hub as store

    for name in names:
        store.get(name)  # every name checked before anything is removed
    for name in names:
        store.remove(name)
        click.echo(f"Removed {name}")


@hub.command(name="export", epilog=examples('peft-hub hub export conll-ner conll-ner.tar.gz'))
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
def hub_export(name, file, overwrite):
    """Write an entry to one .tar.gz archive (with a manifest of every file's sha256)."""
    from .. import hub as store

    click.echo(f"Exported {name} to {store.export(name, file, overwrite)}")


@hub.command(name="import", epilog=examples('peft-hub hub import conll-ner.tar.gz --name conll-ner-2'))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Import under this name  [default: the exported name]")
@click.option("--overwrite", is_flag=True, help="Replace an entry of the same name.")
def hub_import(file, name, overwrite):
    """Add an archive written by `hub export`, after checking paths, file kinds, sizes and sha256."""
    from .. import hub as store

    entry = store.import_(file, name, overwrite)
    click.echo(f"Imported {entry.name} ({entry.info.get('task')}, {entry.info.get('method')}) into {entry.path}")


@hub.command(name="push", epilog=examples('HF_TOKEN=... peft-hub hub push conll-ner me/conll-ner'))
@click.argument("name")
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repository as private.")
def hub_push(name, repo_id, private):
    """Upload an entry to the Hugging Face Hub (needs a network and HF_TOKEN)."""
    from .. import hub as store

    click.echo(f"Pushed {name} to {store.push(name, repo_id, private)}")


@hub.command(name="pull", epilog=examples('peft-hub hub pull me/conll-ner --name conll-ner'))
@click.argument("repo_id")
@click.option("--name", help="The entry's name here  [default: the repository's name]")
@click.option("--overwrite", is_flag=True, help="Replace an entry of the same name.")
def hub_pull(repo_id, name, overwrite):
    """Download an entry pushed with `hub push`, checked like an imported archive."""
    from .. import hub as store

    entry = store.pull(repo_id, name, overwrite)
    click.echo(f"Pulled {repo_id} into {entry.path}")


@cli.command(epilog="""
\b
Examples:
  peft-hub serve conll-ner sst2-cls                    # hub names (none: every hub entry)
  peft-hub serve runs/x runs/y --port 8080             # run directories, served by folder name
  PEFT_HUB_TOKEN=secret peft-hub serve --token-env PEFT_HUB_TOKEN
  curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' \\
       -d '{"adapter": "conll-ner", "inputs": ["EU rejects German call ."]}'
\b
More throughput: run replicas (any machine, one shared PEFT_HUB_HOME) behind an HTTP load balancer;
the server keeps no state but its cache of loaded adapters.
""")
@click.argument("sources", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it to the network).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--model", help="Base model  [default: the first adapter's]")
@click.option("--token-env", help="Name of an environment variable holding a bearer token that /v1/* requires.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(min=1), help="Inputs in one forward pass (all adapters).")
@click.option("--max-batch-tokens", default=2048, show_default=True, type=click.IntRange(min=1),
              help="Estimated tokens (characters / 4) in one forward pass: long requests are split across passes.")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(min=0), help="How long a request waits to share a pass.")
@click.option("--max-inputs", default=256, show_default=True, type=click.IntRange(min=1), help="Inputs in one request.")
@click.option("--max-chars", default=10_000, show_default=True, type=click.IntRange(min=1), help="Characters in one text.")
@click.option("--max-queue", default=512, show_default=True, type=click.IntRange(min=1), help="Requests waiting or running; more get 429.")
@click.option("--request-timeout", default=300.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds until a request is answered 504.")
@click.option("--drain-seconds", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="On SIGTERM: how long requests in flight may still take (the rest get 503).")
@click.option("--max-adapters", default=64, show_default=True, type=click.IntRange(min=1), help="Adapters kept loaded (least recently used evicted).")
@click.option("--max-adapter-mb", type=click.FloatRange(min=0), help="Memory for loaded adapter weights, MiB (least recently used evicted).")
@click.option("--no-mixed", is_flag=True, help="Run each adapter's requests as its own pass (set_adapter), not mixed batches.")
def serve(sources, host, port, model, token_env, max_batch, max_batch_tokens, max_wait_ms, max_inputs, max_chars, max_queue,
          request_timeout, drain_seconds, max_adapters, max_adapter_mb, no_mixed):
    """Serve adapters over HTTP: one base model in memory, many adapters and heads.

    POST /v1/predict {"adapter": NAME, "inputs": [...]}; GET, POST and DELETE /v1/adapters (what is
    served, changed while it runs); GET /health, /metrics (Prometheus), OpenAPI at /docs, and a page
    at / to try them. Requests for different adapters share forward passes; long requests are split
    across passes so that short ones are not held behind them."""
    import logging
    import os

    from .. import models, serving
    from ..server import Limits, run

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise click.BadParameter(f"the environment variable {token_env} is not set or empty.", param_hint="--token-env")
    logging.getLogger("peft_hub.serve").setLevel(logging.INFO)
    logging.basicConfig(format="%(levelname)s:     %(message)s")
    models.quiet_libraries()
    pool = serving.AdapterPool(serving.sources_for(sources), base=model, max_adapters=max_adapters,
                               max_memory_mb=max_adapter_mb, mixed=not no_mixed, follow_hub=not sources)
    click.echo(f"Serving {len(pool.sources)} adapter(s){' (and hub entries added later)' if not sources else ''} on "
               f"{pool.base_path} at http://{host}:{port}/", err=True)
    run(pool, Limits(max_batch=max_batch, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms, max_inputs=max_inputs,
                     max_chars=max_chars, max_queue=max_queue, request_timeout=request_timeout, drain_seconds=drain_seconds,
                     token=token), host, port)
