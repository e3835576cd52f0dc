"""IA3 (Liu et al., 2022) through peft: learned vectors that rescale keys, values and the
feed-forward input; the fewest trainable parameters of all methods."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class IA3Options(peft_hub.Options):
    target_modules: list[str] = option(["key", "value", "output.dense"], "Modules whose output (or input, for feed-forward ones) is rescaled.")
    feedforward_modules: list[str] = option(["output.dense"], "Which of target_modules are feed-forward (rescaled on the input).")

    def check(self) -> list[str]:
        extra = set(self.feedforward_modules) - set(self.target_modules)
        return [f"feedforward_modules: {sorted(extra)} are not in target_modules"] if extra else []


class IA3(peft_hub.PeftMethod):
    name = "ia3"
    description = "IA3: learned rescaling vectors on keys, values and feed-forward layers (peft)."
    Options = IA3Options
    default_learning_rate = 3e-2  # benchmarks/lr_sweep.sh

    def peft_config(self, options, task, model):
        from peft import IA3Config

        return IA3Config(
            task_type=task.peft_task_type,
            target_modules=options.target_modules,
            feedforward_modules=options.feedforward_modules,
        )


@peft_hub.hookimpl
def register_methods(register):
    register(IA3())
