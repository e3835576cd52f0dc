"""DoRA (Liu et al., 2024): LoRA with the update split into magnitude and direction (peft)."""

from dataclasses import dataclass

import peft_hub

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class DoraOptions(peft_hub.Options):
    r: int = peft_hub.option(8, "Rank of the update.")
    alpha: float = peft_hub.option(16.0, "Scaling numerator (alpha / r).")
    target_modules: list[str] = peft_hub.option(["query", "value"], "Linear layers to adapt.")


class Dora(peft_hub.PeftMethod):
    name = "dora"
    description = "DoRA: weight-decomposed low-rank adaptation (peft)."
    Options = DoraOptions
    default_learning_rate = 2e-3

    def peft_config(self, options, task, model):
        from peft import LoraConfig

        return LoraConfig(
            task_type=task.peft_task_type, r=options.r, lora_alpha=options.alpha,
            target_modules=options.target_modules, use_dora=True,
        )


@peft_hub.hookimpl
def register_methods(register):
    register(Dora())
