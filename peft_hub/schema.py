"""The recipe schema: what a run is, as strict option dataclasses (unknown keys and wrong types are
rejected by :mod:`peft_hub.options`). Loading YAML, overrides and cross-field validation live in
:mod:`peft_hub.recipes`.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

from .options import Options, option


@dataclass
class ModelConfig(Options):
    name: str = option("minilm", "Base model: a registered alias (see `peft-hub models`), a local directory or a hub id.")
    trust_remote_code: bool = option(False, "Run code shipped with a hub model. Only for models you trust.")
    quantization: Literal["none", "8bit", "4bit"] = option(
        "none", "Load the base weights in 8-bit (LLM.int8) or 4-bit (NF4) with bitsandbytes; the head stays full precision."
    )


@dataclass
class ComponentConfig(Options):
    name: str = option(help="Registered name.")
    options: dict = option({}, "Options of the component (see `peft-hub methods list` / `tasks list`).")


def _encoding_errors(encoding: str) -> list[str]:
    try:
        codecs.lookup(encoding)
        return []
    except LookupError:
        return [f"encoding: unknown text encoding {encoding!r}; use e.g. utf-8, latin-1 or cp1252"]


@dataclass
class DataConfig(Options):
    path: str | None = option(None, "A data directory (split files found by name), a file, a saved `datasets` directory or a hub id. Unset: the task's built-in sample.")
    train: str | None = option(None, "Training file (overrides the one found in `path`).")
    validation: str | None = option(None, "Validation (dev) file.")
    test: str | None = option(None, "Test file.")
    format: str = option("auto", "File format; `auto` guesses from the content (see the task's description).")
    encoding: str = option("utf-8", "Text encoding of the data files, e.g. latin-1 (TREC's train file) or cp1252.")
    validation_split: float = option(0.1, "When the data has no dev split: hold out this share of the training examples as dev (seeded by training.seed); 0 trains on all of them, without dev evaluation.", low=0, below=1)
    max_train_samples: int | None = option(None, "Use only the first N training examples.", low=1)
    max_eval_samples: int | None = option(None, "Use only the first N dev and test examples.", low=1)

    def check(self) -> list[str]:
        return _encoding_errors(self.encoding)


#: The experiment trackers transformers reports to, and the package each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio", "comet_ml": "comet_ml",
            "clearml": "clearml", "dvclive": "dvclive", "neptune": "neptune", "swanlab": "swanlab", "codecarbon": "codecarbon"}


@dataclass
class TrainingConfig(Options):
    epochs: float = option(3.0, "Passes over the training data.", above=0)
    max_steps: int | None = option(None, "Stop after this many optimizer steps (overrides epochs).", low=1)
    batch_size: int = option(16, "Examples per training step.", low=1)
    eval_batch_size: int = option(64, "Examples per evaluation step.", low=1)
    learning_rate: float | None = option(None, "Peak learning rate. Unset: the method's default (e.g. 1e-3 for LoRA, 2e-4 for full fine-tuning; see `peft-hub methods list --json`).", above=0, below=1)
    weight_decay: float = option(0.01, "AdamW weight decay.", low=0)
    warmup_ratio: float = option(0.1, "Fraction of steps with a linear learning-rate warm-up.", low=0, below=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = option("linear", "Learning-rate schedule after warm-up.")
    batching: Literal["length", "random", "sequential"] = option("length", "`length` groups examples of similar length (far less padding); `random` shuffles plainly; `sequential` keeps file order.")
    seed: int = option(42, "Random seed (head initialisation, data order, dropout).", low=0)
    early_stopping_patience: int | None = option(None, "Stop after N evaluations without a better dev score (the task's primary metric; null: never).", low=1)
    report_to: list[str] = option(["tensorboard"], "Experiment trackers, as transformers names them: " + ", ".join(TRACKERS) + "; [] for none. W&B runs offline and MLflow logs into the run directory unless their own settings say otherwise.")
    logging_steps: int = option(20, "Log the training loss every N steps.", low=1)
    grad_accum: int = option(1, "Gradient accumulation: optimizer steps see batch_size x grad_accum examples.", low=1)
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "Mixed precision (autocast): bf16 on recent CPUs and GPUs, fp16 on CUDA GPUs only.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: less memory, ~30% slower.")
    save_steps: int | None = option(None, "Also save a resumable checkpoint every N steps (default: at each evaluation).", low=1)
    loss: Literal["token", "batch"] = option("token", "`token`: every labelled token weighs the same whatever the batching (needed by `length` batching to match random batches); `batch`: each batch's mean loss counts the same (transformers' way).")
    fast_dropout: bool = option(True, "On CPU, draw dropout masks 4 elements per random number (same probability, ~6x cheaper; see peft_hub/fast.py).")
    ddp_timeout: int = option(60, "Several processes or nodes: seconds one waits for the others before it stops with an error, so a node that died or hangs is reported in this time (torch's default is 30 minutes). Raise it when one process works alone for longer (a slow checkpoint save).", low=1)
    head_learning_rate: float | None = option(None, "Peak learning rate of the fresh head (task head, or a pretraining head the model lacks). Unset: adapt sets it from the scale of the head's input (README: 'Defaults that learn'); pretrain uses 10 x learning_rate.", above=0, below=1)

    def check(self) -> list[str]:
        errors = []
        unknown = [name for name in self.report_to if name not in TRACKERS]
        if unknown:
            errors.append(f"report_to: unknown tracker(s) {unknown}; transformers knows {', '.join(TRACKERS)}")
        return errors


@dataclass
class OutputConfig(Options):
    dir: str | None = option(None, "Run directory (relative to the current directory). Unset: runs/<task>-<method>-<date>-<time>.")
    overwrite: bool = option(False, "Replace a finished run already in `dir`.")
    resume: bool = option(False, "Continue an interrupted run in `dir` from its newest complete checkpoint.")


@dataclass
class TeacherConfig(Options):
    run: str | None = option(None, "A finished run (directory or hub name) of the same task and label set whose soft predictions the student also learns (knowledge distillation).")
    temperature: float = option(2.0, "Softmax temperature of teacher and student in the distillation loss.", above=0)
    alpha: float = option(0.5, "Weight of the distillation loss; 1 - alpha weighs the labels' cross-entropy.", low=0, high=1)
    unlabeled: str | None = option(None, "Unlabelled text the student also learns the teacher's predictions on: a text file (one text per line), JSONL, or labelled data whose labels are ignored.")
    text_field: str = option("text", "JSONL key holding the unlabelled text.")
    max_unlabeled: int | None = option(None, "Use only the first N unlabelled texts.", low=1)
    cache: bool = option(True, "Compute the teacher's predictions once, before training (true), or for every batch (false: the teacher stays in memory and costs a forward pass per step; needed with augment, whose inputs change each epoch).")

    def check(self) -> list[str]:
        if self.unlabeled and not self.run:
            return ["unlabeled: needs teacher.run (the unlabelled text is learnt from the teacher's predictions)"]
        return []


@dataclass
class SelfTrainConfig(Options):
    unlabeled: str | None = option(None, "Self-training's pool: a text file (one text per line), JSONL, or labelled data whose labels are ignored. Set: the run self-trains (OUTPUT/round-N).")
    rounds: int = option(3, "Student rounds after the teacher (round 0).", low=1)
    student_epochs: float | None = option(None, "Epochs of each student round (labelled + pseudo-labelled data, often many times the labelled set). Unset: training.epochs, as the teacher.", above=0)
    threshold: float = option(0.9, "Keep pseudo-labels at least this confident (NER: the least confident word of the sentence).", low=0, high=1)
    balance: bool = option(True, "Classification: keep as many pseudo-labels of each class (the rarest kept class's count).")
    max_unlabeled: int | None = option(None, "Use at most N pool examples.", low=1)
    skip_unlabeled: int = option(0, "Skip the first N pool examples (the labelled ones, when the pool is the training file).", low=0)
    text_field: str = option("text", "JSONL key holding the text.")


@dataclass
class Recipe(Options):
    """A complete, validated description of an ``adapt`` run."""

    task: ComponentConfig = option(help="The task head, e.g. {name: ner}.")
    method: ComponentConfig = option(help="The adapter method, e.g. {name: lora, options: {r: 16}}.")
    model: ModelConfig = option(ModelConfig, "The base model.")
    data: DataConfig = option(DataConfig, "Where the data comes from.")
    training: TrainingConfig = option(TrainingConfig, "Optimisation settings.")
    output: OutputConfig = option(OutputConfig, "Where results go.")
    teacher: TeacherConfig = option(TeacherConfig, "Knowledge distillation from a finished run (off unless teacher.run is set).")
    augment: list[ComponentConfig] = option([], "Data augmenters applied on the fly to the training examples, in order, e.g. [{name: eda}] (see `peft-hub augmenters list`).")
    self_train: SelfTrainConfig = option(SelfTrainConfig, "Self-training rounds on an unlabelled pool (off unless self_train.unlabeled is set).")
    description: str = option("", "One line saying what this recipe is for.")


@dataclass
class TextDataConfig(Options):
    path: list[str] | str | None = option(None, "Text: .txt files or folders (one document per line), JSONL, PubTator, a saved `datasets` dir or a hub id; several allowed.")
    validation: str | None = option(None, "Held-out text file. Unset: a file named like valid*/dev* next to the data, else every k-th document (validation_split).")
    format: Literal["auto", "text", "jsonl", "pubtator"] = option("auto", "How to read the files; auto: by suffix and content.")
    text_field: str = option("text", "JSONL key / dataset column holding the text.")
    encoding: str = option("utf-8", "Text encoding of the files, e.g. latin-1 or cp1252.")
    paragraphs: bool = option(False, "Plain text: documents are blank-line separated paragraphs (default: one per line).")
    validation_split: float = option(0.05, "Share of documents held out when there is no validation file.", low=0, below=1)
    block_size: int = option(128, "Tokens per training sequence ([CLS] and [SEP] included).", low=8)
    line_by_line: bool = option(False, "One document per sequence (truncated) instead of concatenating and cutting into blocks.")
    streaming: bool = option(False, "Read and tokenize lazily (corpora larger than memory); needs training.max_steps.")
    max_train_samples: int | None = option(None, "Use only the first N training blocks.", low=1)
    max_eval_samples: int | None = option(2000, "Use at most N held-out blocks.", low=1)

    def check(self) -> list[str]:
        errors = []
        if self.path is None or self.path == []:
            errors.append("path: required: the text to pretrain on (--data PATH)")
        return errors + _encoding_errors(self.encoding)

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path or [])


@dataclass
class PretrainTrainingConfig(TrainingConfig):
    head_warmup_steps: int = option(100, "If the model has no pretraining head: train only the fresh head for this many steps first.", low=0)
    eval_steps: int | None = option(None, "Evaluate the held-out metric every N steps (unset: 5 times per run).", low=1)
    early_stopping_patience: int | None = option(3, "Stop after N evaluations without a better held-out score (the objective's primary metric) (null: never).", low=1)


@dataclass
class PretrainRecipe(Options):
    """A complete, validated description of a ``pretrain`` run."""

    objective: ComponentConfig = option(help="The self-supervised objective, e.g. {name: mlm}.")
    method: ComponentConfig | None = option(None, "How the encoder trains (default: the objective's default_method, e.g. full for mlm).")
    model: ModelConfig = option(ModelConfig, "The base model.")
    data: TextDataConfig = option(TextDataConfig, "The unlabelled text.")
    training: PretrainTrainingConfig = option(PretrainTrainingConfig, "Optimisation settings.")
    output: OutputConfig = option(OutputConfig, "Where results go.")
    description: str = option("", "One line saying what this recipe is for.")
