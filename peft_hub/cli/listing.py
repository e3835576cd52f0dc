"""What is installed: ``plugins``, ``methods|tasks|objectives|augmenters list``, ``models list``
and ``recipes list|show|cp``."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import registry
from .app import cli, json_option



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
    rows = registry.describe(table)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        rate = f"; default learning rate {row['default_learning_rate']:g}" if "default_learning_rate" in row else ""
        rate += "".join(f", {r:g} for {task}" for task, r in row.get("task_learning_rates", {}).items())
        rate += f"; shapes: {', '.join(row['shapes'])}" if "shapes" in row else ""
        click.echo(f"{row['name']}: {row['description']}  [{row['distribution'] or row['plugin']}{rate}]")
        if "supports" in row:
            click.echo("    supports: " + "; ".join(f"{c.replace('_', ' ')}: " + ("yes" if why is True else f"no ({why})")
                                                    for c, why in row["supports"].items()))
        for o in row["options"]:
            bounds = f", {o['range']}" if "range" in o else ""
            click.echo(f"    {o['name']} ({o['type']}, default {o['default']!r}{bounds}): {o['help']}")


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
    from ..recipes import copy_recipe

    target = copy_recipe(name, dest)
    click.echo(f"Copied {name} to {target}. Run it with: peft-hub run {target}")
