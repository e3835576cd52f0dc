"""Registers the recipe files in the repository's ``recipes/`` folder, named by their path
without the suffix: ``recipes/ner/minilm_lora.yaml`` -> ``ner/minilm_lora``."""

from __future__ import annotations

from pathlib import Path

import peft_hub

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@peft_hub.hookimpl
def register_recipes(register):
    if not RECIPES.is_dir():  # installed without the source tree
        return
    for path in sorted(RECIPES.rglob("*.yaml")):
        register(path.relative_to(RECIPES).with_suffix("").as_posix(), path)
