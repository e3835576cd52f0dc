"""Where a method goes in an encoder, found from the model itself, never from BERT's module names.

Every encoder family names its layers differently (BERT ``attention.self.query``, DistilBERT
``attention.q_lin``, DeBERTa ``query_proj``, MPNet ``attn.q``, ModernBERT ``attn.Wqkv``), so a list
of names that fits one family misses another, or half of it. :func:`anatomy` reads the structure:

- the **blocks** (encoder layers) are the entries of the model's lists of modules that hold an
  attention module (a module whose class name says ``Attention``) and linear layers beside it; a
  block inside another, or inside the task's head, is not one;
- inside a block, the attention module's linear layers are its **input projections** (``query``,
  ``key``, ``value``, or one fused ``qkv``; told apart by the names every family uses, else by
  order) and its **output** projection (the last one); the other linear layers are the
  **feed-forward** network: the first reads the block's hidden state (``ffn-in``), the last writes
  it (``ffn-out``).

Methods ask for their places with :func:`target_modules` (a group of roles by default, or a user's
own list checked against the model) and, after a run is set up, :func:`adapted` says which of those
places train. A family whose structure cannot be read is refused by name (:class:`ModelError`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ModelError

if TYPE_CHECKING:
    import torch

#: The roles of a block's linear layers, in the order reports list them.
ROLES = ("query", "key", "value", "qkv", "attention-other", "attention-out", "ffn-in", "ffn-other", "ffn-out")
ATTENTION = ("query", "key", "value", "qkv", "attention-other", "attention-out")
#: Named groups of roles a method may ask for.
GROUPS = {
    "attention": ("query", "key", "value", "qkv", "attention-out"),
    "attention+ffn": ("query", "key", "value", "qkv", "attention-out", "ffn-in", "ffn-other", "ffn-out"),
}
# The last part of a projection's name in the families we know; others fall back to the order q, k, v.
_HINTS = {
    "query": {"query", "q", "q_lin", "q_proj", "query_proj", "q_head"},
    "key": {"key", "k", "k_lin", "k_proj", "key_proj", "k_head"},
    "value": {"value", "v", "v_lin", "v_proj", "value_proj", "v_head"},
    "qkv": {"wqkv", "qkv", "in_proj", "qkv_proj", "c_attn"},
}


@dataclass
class Block:
    """One encoder layer: its path in the model and its linear layers by role."""

    path: str  # "bert.encoder.layer.3"
    roles: dict[str, str]  # relative name ("attention.self.query") -> role

    def names(self, roles: tuple[str, ...]) -> list[str]:
        return [f"{self.path}.{name}" for name, role in self.roles.items() if role in roles]


@dataclass
class Anatomy:
    """The encoder layers of one model and the role of each of their linear layers."""

    architecture: str  # "DistilBertForTokenClassification"
    family: str  # config.model_type: "distilbert"
    blocks: list[Block]
    #: positions the blocks are applied at (ALBERT: 12 positions, 1 shared block)
    positions: int = 0
    heads: list[str] = field(default_factory=list)
    #: every module of the model (outside the head) a method could adapt: linear and embedding layers
    adaptable: list[str] = field(default_factory=list)
    #: every module name of the model as read (to name the owner of a parameter a method added)
    modules: set[str] = field(default_factory=set)

    @property
    def shared(self) -> bool:
        return self.positions > len(self.blocks)

    def describe(self) -> str:
        """``attention.q_lin (query), ... ffn.lin2 (ffn-out)`` of the first block."""
        return ", ".join(f"{name} ({role})" for name, role in self.blocks[0].roles.items())

    def role(self, name: str) -> str | None:
        """The role of one module in its encoder layer (a full name, or one relative to the encoder
        as :func:`target_modules` gives them); None outside the layers."""
        for block in self.blocks:
            for inner, role in block.roles.items():
                full = f"{block.path}.{inner}"
                if full == name or full.endswith("." + name):
                    return role
        return None

    def layer_indices(self, layers: list[int] | None, what: str) -> list[int]:
        """The blocks to adapt: all, or the ``layers`` a user named (checked)."""
        if layers is None:
            return list(range(len(self.blocks)))
        bad = [i for i in layers if not 0 <= i < len(self.blocks)]
        if bad or not layers:
            shared = f" (one block shared by all {self.positions} positions)" if self.shared else ""
            raise ModelError(f"{what}={layers}: {self.architecture} has encoder layers 0..{len(self.blocks) - 1}"
                             f"{shared}. Name layers in that range, or leave it unset for all.")
        return sorted(set(layers))

    def targets(self, roles: tuple[str, ...], layers: list[int] | None = None, what: str = "layers_to_transform") -> list[str]:
        """Full names of the linear layers with these roles in the chosen blocks. Refused (with the
        model's own layout) when a chosen block has none, e.g. when a family has no attention input
        projections a method needs."""
        chosen = self.layer_indices(layers, what)
        names, missing = [], []
        for i in chosen:
            found = self.blocks[i].names(roles)
            names += found
            if not found:
                missing.append(i)
        if missing:
            raise ModelError(f"{self.architecture} has no {' / '.join(roles)} layer in encoder layer(s) {missing} "
                             f"that this method adapts by default. Its layers hold: {self.describe()}. Name "
                             "target_modules yourself, or use another method.")
        return names

    def check_names(self, names: list[str], layers: list[int] | None, what: str) -> list[str]:
        """The full names that a user's ``target_modules`` (peft's rule: a name or a dotted suffix)
        picks among the model's adaptable modules, in the chosen blocks. Refused when nothing
        matches or when some chosen block gets nothing (a half-adapted model)."""
        chosen = self.layer_indices(layers, "layers_to_transform")
        picked = [c for c in self.adaptable if any(c == n or c.endswith("." + n) for n in names)]
        if layers is not None:  # as peft's layers_to_transform: only modules of the chosen blocks
            picked = [c for c in picked if any(c.startswith(self.blocks[i].path + ".") for i in chosen)]
        if not picked:
            raise ModelError(f"{what}={names} matches no layer of {self.architecture} ({self.family}). Its encoder "
                             f"layers hold: {self.describe()}. Use those names, or leave {what} unset: the default "
                             "adapts attention and feed-forward in every family.")
        bare = [i for i in chosen if not any(p.startswith(self.blocks[i].path + ".") for p in picked)]
        if bare:
            raise ModelError(f"{what}={names} matches layers of only {len(chosen) - len(bare)} of the {len(chosen)} "
                             f"encoder layers of {self.architecture} (none in layer(s) {bare}): the model would be "
                             f"half adapted. Its encoder layers hold: {self.describe()}. Name modules every layer has, "
                             "or choose the layers with layers_to_transform.")
        return picked


def anatomy(model: torch.nn.Module, heads: list[str] | None = None) -> Anatomy:
    """Read the encoder layers of ``model`` (a transformers model, or one wrapped by peft);
    ``heads``: the task's head modules, never counted as encoder layers."""
    from torch import nn

    inner = _unwrapped(model)
    heads = list(heads or [])
    config = getattr(inner, "config", None)
    # an encoder-decoder of two encoder checkpoints (BERT2BERT) is of its halves' family
    family = getattr(getattr(config, "encoder", None), "model_type", None) or getattr(config, "model_type", None) or type(inner).__name__
    arch = type(inner).__name__

    def in_heads(name: str) -> bool:
        return any(name == h or name.startswith(h + ".") for h in heads)

    candidates = []
    for name, module in inner.named_modules():
        if isinstance(module, nn.ModuleList) and not in_heads(name):
            for i, child in enumerate(module):
                if not isinstance(child, nn.ModuleList):
                    candidates.append((f"{name}.{i}" if name else str(i), child))
    blocks = []
    for path, module in candidates:
        if any(path.startswith(b.path + ".") for b in blocks):
            continue  # a list inside a block (MobileBERT's stacked feed-forward networks)
        roles = _roles(module, lambda name, path=path: in_heads(f"{path}.{name}"))
        if roles is not None:
            blocks.append(Block(path, roles))
    if not blocks:
        raise ModelError(
            f"Cannot find the encoder layers of {arch} ({family}): no list of layers that each hold an attention module "
            "and feed-forward linear layers. Name target_modules yourself (a method that adapts modules by name, "
            "e.g. lora), or use a model of a supported family (peft-hub README, 'Encoder families').")
    positions = getattr(config, "num_hidden_layers", None) or len(blocks)
    adaptable = [n for n, m in inner.named_modules() if isinstance(m, (nn.Linear, nn.Embedding)) and not in_heads(n)]
    return Anatomy(arch, family, blocks, max(positions, len(blocks)), heads, adaptable, {n for n, _ in inner.named_modules()})


def encoder_layers(model: Any, heads: list[str] | None = None) -> list[Any]:
    """The encoder layers (blocks) of any family that :func:`anatomy` reads, bottom to top (ALBERT:
    its one shared layer group). Raises :class:`ModelError` naming the architecture otherwise."""
    inner = _unwrapped(model)
    return [inner.get_submodule(block.path) for block in anatomy(inner, heads).blocks]


def _unwrapped(model: Any) -> Any:
    """The transformers model inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if type(model).__module__.startswith("peft.") else model


def _roles(block: torch.nn.Module, skip: Callable[[str], bool] = lambda name: False) -> dict[str, str] | None:
    """The role of each linear layer of one block, or None if it is no attention + feed-forward block.
    Each attention module (a decoder block has its own and a cross-attention) has input projections
    and its last linear layer as output. Modules ``skip`` names (a task's head inside the block: a
    fresh cross-attention) have no role."""
    from torch import nn

    attention = [n for n, m in block.named_modules() if n and not skip(n) and re.search(r"att(entio)?n", type(m).__name__, re.I)]
    attention = [n for n in attention if not any(n.startswith(a + ".") for a in attention)]  # the outermost ones
    linears = [n for n, m in block.named_modules() if isinstance(m, nn.Linear) and not skip(n)]
    inside = {a: [n for n in linears if n.startswith(a + ".")] for a in attention}
    outside = [n for n in linears if not any(n in names for names in inside.values())]
    if not attention or sum(map(len, inside.values())) < 2 or not outside:
        return None
    roles: dict[str, str] = {}
    for names in inside.values():
        if len(names) < 2:  # no projections and output: not an attention to adapt by role
            roles.update(dict.fromkeys(names, "attention-other"))
            continue
        *projections, output = names
        by_hint = {n: next((role for role, hints in _HINTS.items() if n.rsplit(".", 1)[-1].lower() in hints), None) for n in projections}
        if not any(by_hint.values()) and len(projections) >= 3:  # unknown names: BERT's order q, k, v
            by_hint.update(zip(projections[:3], ("query", "key", "value")))
        for n in projections:
            roles[n] = by_hint[n] or "attention-other"
        roles[output] = "attention-out"
    for i, n in enumerate(outside):
        roles[n] = "ffn-in" if i == 0 else "ffn-out" if i == len(outside) - 1 else "ffn-other"
    return dict(sorted(roles.items(), key=lambda item: linears.index(item[0])))


def adapted(model: torch.nn.Module, before: Anatomy) -> dict[str, Any]:
    """Which of the places ``before`` found train in ``model`` (after a method was applied), as
    recorded in metrics.json and the card: per role, how many of the encoder layers have it
    adapted; ``outside``: other modules with trained parameters (the pooler, a prefix encoder, the
    embeddings), the task head excluded."""
    live = dict(model.named_modules())
    # the live name of an original module: the same, or under a wrapper's prefix ("base_model.model.")
    prefix = next((p for p in ("", "base_model.model.", "base_model.") if f"{p}{before.blocks[0].path}" in live), "")

    def trains(name: str) -> bool:
        module = live.get(prefix + name)
        return module is not None and any(p.requires_grad for p in module.parameters())

    counts: Counter[str] = Counter()
    layers = 0
    for block in before.blocks:
        roles = {role for name, role in block.roles.items() if trains(f"{block.path}.{name}")}
        counts.update(roles)
        layers += bool(roles)
    block_paths = tuple(prefix + b.path + "." for b in before.blocks)
    head_paths = tuple(prefix + h for h in before.heads)
    outside = sorted({
        _owner(name[len(prefix):] if name.startswith(prefix) else name, before.modules) for name, p in model.named_parameters()
        if p.requires_grad and not name.startswith(block_paths) and not name.startswith(head_paths)
    })
    return {
        "family": before.family,
        "layers": len(before.blocks),
        "layers_adapted": layers,
        **({"shared_by_positions": before.positions} if before.shared else {}),
        "modules": {role: counts[role] for role in ROLES if counts[role]},
        "outside_layers": outside,
    }


def _owner(parameter: str, modules: set[str]) -> str:
    """The module of the model as read that holds a trained parameter (``bert.pooler.dense`` for
    ``bert.pooler.dense.lora_A.default.weight``), or the first part of its name for one a method
    added (``prompt_encoder``)."""
    parts = parameter.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return parts[0]


def summary(report: dict[str, Any]) -> str:
    """One line for the run's log: ``12 of 12 layers: query 12, key 12, ...; outside the layers: ...``."""
    modules = ", ".join(f"{role} {n}" for role, n in report["modules"].items()) or "no linear layer of them"
    shared = f" (one block shared by {report['shared_by_positions']} positions)" if "shared_by_positions" in report else ""
    text = f"{report['family']}: {report['layers_adapted']} of {report['layers']} encoder layers adapted{shared}: {modules}"
    if report["outside_layers"]:
        shown = report["outside_layers"]
        text += f"; outside the layers: {', '.join(shown[:4])}{' ...' if len(shown) > 4 else ''}"
    return text


def leaves_attention_untouched(report: dict[str, Any]) -> bool:
    """True when training changes no attention layer and nothing outside the layers (a prefix, the
    whole model) could stand in for it."""
    return not any(role in ATTENTION for role in report["modules"]) and not report["outside_layers"]


def target_modules(model: torch.nn.Module, heads: list[str], targets: list[str] | str, layers: list[int] | None = None,
                   default: tuple[str, ...] = GROUPS["attention+ffn"]) -> list[str]:
    """The module names a method adapts, each matching exactly one module as peft matches
    ``target_modules`` (a name or a dotted suffix). They are relative to the encoder
    (``encoder.layer.0.attention.self.query``, without the task model's ``bert.``), so an adapter
    also fits the bare encoder that ``serve`` shares between adapters. ``targets``: ``"auto"`` (``default``: roles of :data:`ROLES`), a group of
    :data:`GROUPS`, ``"all-linear"`` (every linear layer outside the head) or the user's own names
    (checked: they must reach every chosen layer); ``layers``: the encoder layers, None for all."""
    from torch import nn

    parts = anatomy(model, heads)
    if targets == "auto":
        names = parts.targets(default, layers)
    elif isinstance(targets, str) and targets in GROUPS:
        names = parts.targets(GROUPS[targets], layers)
    elif targets == "all-linear":
        names = [n for n in parts.adaptable if isinstance(model.get_submodule(n), nn.Linear)]
        if layers is not None:
            keep = tuple(parts.blocks[i].path + "." for i in parts.layer_indices(layers, "layers_to_transform"))
            names = [n for n in names if n.startswith(keep)]
    else:
        names = parts.check_names([targets] if isinstance(targets, str) else list(targets), layers, "target_modules")
    encoder = getattr(model, "base_model_prefix", "") + "."
    return [n[len(encoder):] if encoder != "." and n.startswith(encoder) else n for n in names]

