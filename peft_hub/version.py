"""The package version and the plugin API version, in a module of their own so that any module can
read them without importing the public API (``peft_hub/__init__.py``).

``PLUGIN_API`` is the version of the plugin contract (the hooks and the Method, Task, Objective and
Augmenter classes). A plugin module declares the version it was written for as ``PEFT_HUB_API``;
one that declares another version, or none, is refused when plugins load, naming what changed.
Every change is described in ``peft_hub/PLUGIN_API.md`` (the changelog for plugin authors).
"""

__version__ = "0.1.0"

PLUGIN_API = 2

#: What changed at each plugin API version, one line each (the changelog has the details).
PLUGIN_API_CHANGES = {
    2: "modules declare PEFT_HUB_API; Task.labels(splits, data); tasks own their label shape (label_mask, "
       "without_labels, supervised_loss, distillation_loss, teacher_refusal, tune, evaluate_split, auto_class, "
       "loading_arguments, display, example_shape); methods may take part in training (prepare, callbacks, optimizer, "
       "save_checkpoint, load_checkpoint); Augmenter.tasks became Augmenter.shapes; option bounds (low/high/above/below) "
       "replace peft_hub.share",
}
