"""AdaLoRA (Zhang et al., 2023) through peft: LoRA in SVD form (``P diag(E) Q``) whose rank budget
moves during training to the layers that matter, by the sensitivity of each singular value.

The schedule needs the training loop: after every optimizer step peft's ``update_and_allocate``
must see the gradients, the step and the total step count. This plugin does that through the
method contract's hooks alone (``callbacks``), and keeps its checkpoints exact (``save_checkpoint``
/ ``load_checkpoint``: the full-size matrices, the rank pattern and the importance averages), so a
resumed run continues as an uninterrupted one would and the best checkpoint reloads at any phase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import peft_hub
from peft_hub import option
from peft_hub_plugins.lora import TARGETS_HELP, check_targets

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

STATE_FILE = "adalora_state.json"
SCORES_FILE = "adalora_scores.safetensors"


@dataclass
class AdaLoraOptions(peft_hub.Options):
    init_r: int = option(12, "Rank every adapted layer starts with.", low=1)
    target_r: int = option(8, "Average rank per layer once the budget is allocated (at most init_r).", low=1)
    alpha: float = option(32.0, "Scaling numerator, as LoRA's alpha.", above=0)
    dropout: float = option(0.1, "Dropout on the adapter input.", low=0, below=1)
    target_modules: list[str] | str = option("auto", TARGETS_HELP)
    layers_to_transform: list[int] | None = option(None, "Encoder layers to adapt (0 = the bottom one); unset: all.")
    tinit: float = option(0.1, "Share of the training steps before ranks start to be pruned (warm-up at init_r).", low=0, below=1)
    tfinal: float = option(0.2, "Share of the training steps at the end with the ranks fixed (fine-tuning at the budget).", low=0, below=1)
    delta_t: int = option(10, "Steps between two budget allocations.", low=1)
    beta1: float = option(0.85, "Smoothing of the sensitivity averages.", above=0, below=1)
    beta2: float = option(0.85, "Smoothing of the uncertainty averages.", above=0, below=1)
    orth_reg_weight: float = option(0.5, "Weight of the orthogonality regulariser of P and Q.", low=0)

    def check(self) -> list[str]:
        errors = []
        if self.target_r > self.init_r:
            errors.append(f"target_r: must be at most init_r ({self.init_r}), got {self.target_r}")
        if self.tinit + self.tfinal >= 1:
            errors.append(f"tinit + tfinal: must leave steps to allocate the budget in (sum below 1), got {self.tinit + self.tfinal:g}")
        return errors + check_targets(self.target_modules)


def _adalora(model):
    """peft's AdaLoraModel inside the PeftModel."""
    return model.base_model


def _schedule(options):
    from transformers import TrainerCallback

    class RankBudget(TrainerCallback):
        """Sets the schedule from the run's total steps, and reallocates the ranks after each
        optimizer step (gradients present, not yet zeroed)."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            config = _adalora(model).peft_config[_adalora(model).trainable_adapter_name]
            config.total_step = state.max_steps
            config.tinit = int(options.tinit * state.max_steps)
            config.tfinal = int(options.tfinal * state.max_steps)

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            import torch

            for name, parameter in model.named_parameters():  # a layer the task's forward pass skips (e.g. a
                if "lora_" in name and parameter.requires_grad and parameter.grad is None:  # pooler) has no gradient:
                    parameter.grad = torch.zeros_like(parameter)  # its importance is zero, not an error
            _adalora(model).update_and_allocate(state.global_step)

    return RankBudget()


class AdaLora(peft_hub.PeftMethod):
    name = "adalora"
    description = "AdaLoRA: LoRA whose rank budget moves to the layers that matter during training (peft)."
    Options = AdaLoraOptions
    default_learning_rate = 1e-3  # as LoRA's
    # peft's AdaLoRA layers take no per-row adapter_names, and add_weighted_adapter refuses AdaLoRA
    mixed_batches = False
    combinations = ()

    def peft_config(self, options, task, model):
        from peft import AdaLoraConfig

        # total_step, tinit and tfinal are set from the run's step count when training begins
        return AdaLoraConfig(task_type=task.peft_task_type, init_r=options.init_r, target_r=options.target_r,
                             lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=self.targets(model, task, options),
                             tinit=0, tfinal=0, deltaT=options.delta_t, beta1=options.beta1, beta2=options.beta2,
                             orth_reg_weight=options.orth_reg_weight, total_step=1)

    def load(self, model, directory, options, task):
        model = super().load(model, directory, options, task)
        # peft's forward adds the orthogonality regulariser to any loss, also of a model loaded to
        # predict or evaluate, and reads the adapter's name from an attribute only training sets
        model.base_model.trainable_adapter_name = model.active_adapter
        return model

    def callbacks(self, model, options):
        return [_schedule(options)]

    def save_checkpoint(self, model, directory):
        """The full-size matrices (peft's own save cuts them to the rank pattern, which the live
        model cannot load back), the rank pattern and the importance averages."""
        from safetensors.torch import save_file

        super().save_checkpoint(model, directory)
        adalora = _adalora(model)
        config = adalora.peft_config[adalora.trainable_adapter_name]
        allocator = adalora.rankallocator
        (directory / STATE_FILE).write_text(json.dumps({"rank_pattern": config.rank_pattern}), encoding="utf-8")
        scores = {f"ipt:{k}": v for k, v in allocator.exp_avg_ipt.items()}
        scores.update({f"unc:{k}": v for k, v in allocator.exp_avg_unc.items()})
        save_file({k: v.detach().contiguous().cpu() for k, v in scores.items()}, str(directory / SCORES_FILE))

    def load_checkpoint(self, model, directory):
        from safetensors.torch import load_file

        super().load_checkpoint(model, directory)
        adalora = _adalora(model)
        adalora.peft_config[adalora.trainable_adapter_name].rank_pattern = \
            json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))["rank_pattern"]
        allocator = adalora.rankallocator
        allocator.reset_ipt()
        device = next(model.parameters()).device
        for key, value in load_file(str(directory / SCORES_FILE)).items():
            kind, name = key.split(":", 1)
            (allocator.exp_avg_ipt if kind == "ipt" else allocator.exp_avg_unc)[name] = value.to(device)


@peft_hub.hookimpl
def register_methods(register):
    register(AdaLora())
