"""peft-hub: parameter-efficient fine-tuning for encoder language models, with a plugin registry.

The public plugin API, used by the built-in plugins in ``plugins/`` exactly as by a third-party
package ``peft-hub-<name>``::

    import peft_hub

    @peft_hub.hookimpl
    def register_methods(register):
        register(MyMethod())

Importing this package is cheap: torch, transformers and peft load only when a run needs them.
"""

from .errors import DataError, ModelError, PeftHubError, RecipeError, RunDirError, UnknownNameError
from .hookspecs import hookimpl
from .methods import Method, PeftMethod
from .objectives import Objective
from .options import Options, option
from .tasks import Splits, Task

__version__ = "0.1.0"

__all__ = [
    "hookimpl",
    "Method",
    "PeftMethod",
    "Task",
    "Objective",
    "Splits",
    "Options",
    "option",
    "PeftHubError",
    "DataError",
    "ModelError",
    "RecipeError",
    "RunDirError",
    "UnknownNameError",
    "__version__",
]
