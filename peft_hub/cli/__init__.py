"""The ``peft-hub`` command line: a thin click layer over the library, one module per command
family. No command trains, summarises or parses by itself: each calls the library and prints.

    app.py       the root group, error handling (messages and exit codes), shared options
    running.py   adapt, self-train, pretrain, run, validate
    using.py     evaluate, embed, predict, merge, report
    listing.py   plugins, methods/tasks/objectives/augmenters list, models, recipes
    hub.py       hub add/list/show/rm/export/import/push/pull, serve

Plugins add commands through the ``register_commands`` hook.
"""

from __future__ import annotations

from .. import registry
from . import hub, listing, running, using  # noqa: F401  (each registers its commands on cli)
from .app import cli

registry.load_plugins()
registry.pm.hook.register_commands(cli=cli)


def main() -> None:
    cli(prog_name="peft-hub")


__all__ = ["cli", "main"]
