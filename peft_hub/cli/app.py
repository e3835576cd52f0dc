"""The ``peft-hub`` root command group, its error handling and the options commands share.

Library code raises :class:`peft_hub.PeftHubError`; only the command line turns those into
messages and exit codes (1 for a problem with the input, 2 for a usage mistake, 130 for Ctrl-C).
"""

from __future__ import annotations

import errno
import logging
import sys

import click

from .. import registry
from ..errors import PeftHubError
from ..version import __version__

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


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("peft_hub")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.handlers[0].setStream(sys.stderr)  # the stderr of now (it may have been replaced since)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def echo_unless(quiet: bool):
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


json_option = click.option("json_", "--json", is_flag=True, help="Print JSON instead of a table.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Only print the final summary (no progress bars).")
overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")


def examples(*lines: str) -> str:
    """An epilog listing example command lines."""
    return "\n\b\nExamples:\n" + "\n".join("  " + line for line in lines) + "\n"
