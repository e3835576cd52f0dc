"""OFT and BOFT (Qiu et al., 2023; Liu et al., 2024) through peft: each adapted weight is multiplied
by a trained orthogonal matrix (block-diagonal for OFT, a butterfly product of them for BOFT), which
keeps the angles between its neurons, rather than added to."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option
from peft_hub_plugins.lora import FullPrecisionOnly, Targets

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class OftOptions(Targets):
    block_size: int = option(16, "Size of each orthogonal block (it must divide every adapted layer's input size).", low=1)
    dropout: float = option(0.0, "Probability of skipping a layer's rotation while training.", low=0, below=1)


@dataclass
class BoftOptions(Targets):
    block_size: int = option(4, "Size of each orthogonal block of a butterfly factor.", low=1)
    butterfly_factors: int = option(2, "Butterfly factors: each doubles the block's reach (1 is OFT).", low=1)
    dropout: float = option(0.0, "Dropout of the multiplicative blocks while training.", low=0, below=1)


class _Orthogonal(FullPrecisionOnly):
    default_learning_rate = 1e-3

    def apply(self, model, options, task):
        targets = self.targets(model, task, options)
        sizes = {m.in_features for full, m in model.named_modules() for n in targets if full == n or full.endswith("." + n)}
        bad = sorted(size for size in sizes if size % options.block_size)
        if bad:
            raise peft_hub.ModelError(f"method.options.block_size={options.block_size} does not divide the input size of "
                                      f"every adapted layer ({', '.join(map(str, bad))}). Choose a divisor of those.")
        return super().apply(model, options, task)


class Oft(_Orthogonal):
    name = "oft"
    description = "OFT: the weights rotated by trained block-diagonal orthogonal matrices (peft)."
    Options = OftOptions

    def peft_config(self, options, task, model):
        from peft import OFTConfig

        return OFTConfig(task_type=task.peft_task_type, r=0, oft_block_size=options.block_size,
                         module_dropout=options.dropout, target_modules=self.targets(model, task, options))


class Boft(_Orthogonal):
    name = "boft"
    description = "BOFT: the weights rotated by butterfly products of orthogonal blocks (peft)."
    Options = BoftOptions

    def peft_config(self, options, task, model):
        from peft import BOFTConfig

        return BOFTConfig(task_type=task.peft_task_type, boft_block_size=options.block_size, boft_block_num=0,
                          boft_n_butterfly_factor=options.butterfly_factors, boft_dropout=options.dropout,
                          target_modules=self.targets(model, task, options))


@peft_hub.hookimpl
def register_methods(register):
    register(Oft())
    register(Boft())
