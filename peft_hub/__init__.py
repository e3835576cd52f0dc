"""peft-hub: parameter-efficient fine-tuning for encoder language models, with a plugin registry.

The public plugin API: everything a plugin needs, used by the built-in plugins in ``plugins/``
exactly as by a third-party package ``peft-hub-<name>`` (a test holds them to these names)::

    import peft_hub

    @peft_hub.hookimpl
    def register_methods(register):
        register(MyMethod())

Importing this package is cheap: torch, transformers and peft load only when a run needs them.
"""

from .data import (
    SPLIT_NAMES,
    TaggedSentence,
    is_saved_dataset,
    load_dataset_splits,
    read_columns,
    read_jsonl,
    read_lines,
    split_files,
    split_of,
)
from .augment import Augmenter, AugmenterOptions
from .embeddings import alignment_uniformity, bi_encoder_class, encode, encoder_class, pool, sts_scores
from .errors import DataError, ModelError, PeftHubError, RecipeError, RunDirError, UnknownNameError
from .heads import Head
from .hookspecs import hookimpl
from .methods import Method, PeftMethod, StateDictMethod, train_head, train_only
from .anatomy import Anatomy, anatomy, encoder_layers, target_modules
from .models import load_pretrained, load_tokenizer, load_with_head, model_outputs, set_target_tokenizer, special_tokens, target_tokenizer
from .objectives import Objective
from .options import Options, option
from .options import parse as parse_options
from .progress import track
from .pairs import PairColumns, PairExample, pearson, read_pairs, read_scored_pairs, spearman
from .registry import get_task
from .scoring import accuracy_macro_f1, label_set, labelled
from .tasks import Evaluation, Splits, Task
from .text import split_sentences

from .version import PLUGIN_API, __version__

__all__ = [
    # writing a plugin
    "hookimpl",
    "Method",
    "PeftMethod",
    "StateDictMethod",
    "Task",
    "Objective",
    "Augmenter",
    "AugmenterOptions",
    "Head",
    "Evaluation",
    "Splits",
    "Options",
    "option",
    "parse_options",
    # building on another registered task (an objective that reads a task's labelled data)
    "get_task",
    # helpers for methods: which parameters train, where the encoder layers are
    "train_only",
    "train_head",
    "encoder_layers",
    "anatomy",
    "Anatomy",
    "target_modules",
    # helpers for tasks and objectives: loading models, reading data files
    "load_pretrained",
    "load_with_head",
    "special_tokens",
    "model_outputs",
    # a generation task's tokenizer of its outputs (saved and loaded with the run's tokenizer)
    "load_tokenizer",
    "set_target_tokenizer",
    "target_tokenizer",
    "split_files",
    "split_of",
    "SPLIT_NAMES",
    "read_lines",
    "read_jsonl",
    "read_columns",
    "TaggedSentence",
    "is_saved_dataset",
    "load_dataset_splits",
    # sentence pairs (the pair task, supervised SimCSE, STS scoring): files, correlations
    "read_pairs",
    "read_scored_pairs",
    "PairColumns",
    "PairExample",
    "pearson",
    "spearman",
    # sentence embeddings (SimCSE, embed, STS): the bi-encoder, pooling, encoding, scores
    "bi_encoder_class",
    "encoder_class",
    "pool",
    "encode",
    "sts_scores",
    "alignment_uniformity",
    "split_sentences",
    # long work: a progress bar on a terminal, a line every few seconds in a log
    "track",
    # helpers for label tasks: the label set, accuracy and macro-F1, a prediction with its scores
    "label_set",
    "accuracy_macro_f1",
    "labelled",
    # errors: raise them with the bad value and the fix; the CLI turns them into messages
    "PeftHubError",
    "DataError",
    "ModelError",
    "RecipeError",
    "RunDirError",
    "UnknownNameError",
    "__version__",
    # the plugin API version this peft-hub implements (a plugin module declares PEFT_HUB_API = PLUGIN_API)
    "PLUGIN_API",
]
