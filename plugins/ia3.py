"""IA3 (Liu et al., 2022) through peft: learned vectors that rescale keys, values and the
feed-forward input; the fewest trainable parameters of all methods."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


#: the paper's places: keys, values (or a fused projection) and the feed-forward output
DEFAULT_ROLES = ("key", "value", "qkv", "ffn-out")


@dataclass
class IA3Options(peft_hub.Options):
    target_modules: list[str] | str = option(
        "auto", "'auto': the keys, the values and the feed-forward output of every encoder layer, found from the "
                "architecture of any family (a fused query-key-value projection is rescaled whole); or module names.")
    feedforward_modules: list[str] | str = option(
        "auto", "Which of target_modules are feed-forward (rescaled on the input); 'auto': those the architecture says are.")
    layers_to_transform: list[int] | None = option(None, "Encoder layers to adapt (0 = the bottom one); unset: all.")

    def check(self) -> list[str]:
        errors = [f"{key}: {value!r}: 'auto' or a list of module names" for key, value in
                  (("target_modules", self.target_modules), ("feedforward_modules", self.feedforward_modules))
                  if isinstance(value, str) and value != "auto"]
        if isinstance(self.feedforward_modules, list) and self.target_modules == "auto":
            errors.append("feedforward_modules: name target_modules too (or leave both 'auto')")
        elif isinstance(self.feedforward_modules, list) and isinstance(self.target_modules, list):
            extra = set(self.feedforward_modules) - set(self.target_modules)
            if extra:
                errors.append(f"feedforward_modules: {sorted(extra)} are not in target_modules")
        return errors


class IA3(peft_hub.PeftMethod):
    name = "ia3"
    description = "IA3: learned rescaling vectors on keys, values and feed-forward layers (peft)."
    Options = IA3Options
    default_learning_rate = 3e-2  # benchmarks/lr_sweep.sh

    def peft_config(self, options, task, model):
        from peft import IA3Config

        targets = self.targets(model, task, options, DEFAULT_ROLES)
        if options.feedforward_modules == "auto":
            parts = peft_hub.anatomy(model, task.head_modules(model))
            feedforward = [n for n in targets if (parts.role(n) or "").startswith("ffn")]
        else:
            feedforward = [n for n in targets if any(n == f or n.endswith("." + f) for f in options.feedforward_modules)]
        return IA3Config(task_type=task.peft_task_type, target_modules=targets, feedforward_modules=feedforward)


@peft_hub.hookimpl
def register_methods(register):
    register(IA3())
