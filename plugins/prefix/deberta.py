"""Prefix tuning for DeBERTa-v2/v3, in-house: its encoder takes no past key values (through which
peft hands a prefix to the attention), and its disentangled attention adds a relative-position bias
that a plain prefix cannot go through. Each attention layer here attends to trainable key/value
vectors before the tokens' own; the prefix columns get the content score only (they have no
position), the tokens keep their relative bias unchanged.

The prefix vectors come from one :class:`PrefixEncoder` on the model (``prefix_encoder``), built
like peft's: one embedding row per virtual token holding every layer's key and value, optionally
reparametrised through a two-layer MLP."""

from __future__ import annotations

import math
import types

import torch
from torch import nn

#: the transformers model_type this module adapts
FAMILIES = ("deberta-v2",)
ENCODER_ATTRIBUTE = "prefix_encoder"


class PrefixEncoder(nn.Module):
    """``forward()`` -> (layers, 2, virtual tokens, hidden): each layer's prefix keys and values."""

    def __init__(self, layers: int, hidden: int, tokens: int, projection: bool, projection_hidden: int):
        super().__init__()
        self.shape = (tokens, layers, 2, hidden)
        if projection:
            self.embedding = nn.Embedding(tokens, hidden)
            self.transform = nn.Sequential(nn.Linear(hidden, projection_hidden), nn.Tanh(),
                                           nn.Linear(projection_hidden, layers * 2 * hidden))
        else:
            self.embedding = nn.Embedding(tokens, layers * 2 * hidden)
            self.transform = None

    def forward(self) -> torch.Tensor:
        rows = self.embedding.weight
        if self.transform is not None:
            rows = self.transform(rows)
        return rows.view(self.shape).permute(1, 2, 0, 3)


def apply(model: nn.Module, attentions: list[nn.Module], tokens: int, projection: bool, projection_hidden: int) -> None:
    """Give each of ``attentions`` (DeBERTa-v2 ``DisentangledSelfAttention``, in layer order) a
    prefix of ``tokens`` virtual tokens from a new ``model.prefix_encoder``."""
    encoder = PrefixEncoder(len(attentions), attentions[0].all_head_size, tokens, projection, projection_hidden)
    setattr(model, ENCODER_ATTRIBUTE, encoder.to(next(model.parameters()).device))
    for index, attention in enumerate(attentions):
        # the encoder is reached through a function, not registered again under every layer
        attention.prefix_vectors = lambda index=index: encoder()[index]
        attention.forward = types.MethodType(_forward, attention)


def with_prefix_columns(mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """The attention mask with ``tokens`` columns in front that every token may attend to."""
    return torch.cat([mask.new_ones(*mask.shape[:-1], tokens), mask], dim=-1)


def _forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None, relative_pos=None,
             rel_embeddings=None):
    """``DisentangledSelfAttention.forward`` with the prefix keys and values in front of the tokens'."""
    heads = self.num_attention_heads
    batch = hidden_states.size(0)
    prefix_keys, prefix_values = (self.transpose_for_scores(p.expand(batch, -1, -1), heads) for p in self.prefix_vectors())
    tokens = prefix_keys.size(1)
    query = self.transpose_for_scores(self.query_proj(hidden_states if query_states is None else query_states), heads)
    key = self.transpose_for_scores(self.key_proj(hidden_states), heads)
    value = self.transpose_for_scores(self.value_proj(hidden_states), heads)

    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scores = torch.bmm(query, torch.cat([prefix_keys, key], dim=1).transpose(-1, -2)) / math.sqrt(query.size(-1) * scale_factor)
    if self.relative_attention:  # between the tokens only: the prefix has no position
        bias = self.disentangled_attention_bias(query, key, relative_pos, self.pos_dropout(rel_embeddings), scale_factor)
        scores = scores + nn.functional.pad(bias, (tokens, 0))
    scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))
    mask = with_prefix_columns(attention_mask.bool(), tokens)
    scores = scores.masked_fill(~mask, torch.finfo(query.dtype).min)
    probabilities = self.dropout(nn.functional.softmax(scores, dim=-1))

    context = torch.bmm(probabilities.view(-1, probabilities.size(-2), probabilities.size(-1)),
                        torch.cat([prefix_values, value], dim=1))
    context = context.view(batch, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.shape[:-2], -1)
    return (context, probabilities if output_attentions else None)
