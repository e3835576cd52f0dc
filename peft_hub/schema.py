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
    validation_split: float = option(0.1, "When the data has no dev split: hold out this share of the training examples as dev (seeded by training.seed); 0 trains on all of them, without dev evaluation.")
    max_train_samples: int | None = option(None, "Use only the first N training examples.")
    max_eval_samples: int | None = option(None, "Use only the first N dev and test examples.")

    def check(self) -> list[str]:
        errors = []
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                errors.append(f"{key}: must be at least 1, got {value}")
        errors += _encoding_errors(self.encoding)
        if not 0 <= self.validation_split < 1:
            errors.append(f"validation_split: must be in [0, 1), got {self.validation_split}")
        return errors


#: The experiment trackers transformers reports to, and the package each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio", "comet_ml": "comet_ml",
            "clearml": "clearml", "dvclive": "dvclive", "neptune": "neptune", "swanlab": "swanlab", "codecarbon": "codecarbon"}


@dataclass
class TrainingConfig(Options):
    epochs: float = option(3.0, "Passes over the training data.")
    max_steps: int | None = option(None, "Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = option(16, "Examples per training step.")
    eval_batch_size: int = option(64, "Examples per evaluation step.")
    learning_rate: float | None = option(None, "Peak learning rate. Unset: the method's default (e.g. 1e-3 for LoRA, 2e-4 for full fine-tuning; see `peft-hub methods list --json`).")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    warmup_ratio: float = option(0.1, "Fraction of steps with a linear learning-rate warm-up.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = option("linear", "Learning-rate schedule after warm-up.")
    batching: Literal["length", "random", "sequential"] = option("length", "`length` groups examples of similar length (far less padding); `random` shuffles plainly; `sequential` keeps file order.")
    seed: int = option(42, "Random seed (head initialisation, data order, dropout).")
    early_stopping_patience: int | None = option(None, "Stop after N evaluations without a better dev score (the task's primary metric; null: never).")
    report_to: list[str] = option(["tensorboard"], "Experiment trackers, as transformers names them: " + ", ".join(TRACKERS) + "; [] for none. W&B runs offline and MLflow logs into the run directory unless their own settings say otherwise.")
    logging_steps: int = option(20, "Log the training loss every N steps.")
    grad_accum: int = option(1, "Gradient accumulation: optimizer steps see batch_size x grad_accum examples.")
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "Mixed precision (autocast): bf16 on recent CPUs and GPUs, fp16 on CUDA GPUs only.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: less memory, ~30% slower.")
    save_steps: int | None = option(None, "Also save a resumable checkpoint every N steps (default: at each evaluation).")
    loss: Literal["token", "batch"] = option("token", "`token`: every labelled token weighs the same whatever the batching (needed by `length` batching to match random batches); `batch`: each batch's mean loss counts the same (transformers' way).")
    fast_dropout: bool = option(True, "On CPU, draw dropout masks 4 elements per random number (same probability, ~6x cheaper; see peft_hub/fast.py).")
    head_learning_rate: float | None = option(None, "Peak learning rate of the fresh head (task head, or a pretraining head the model lacks). Unset: adapt sets it from the scale of the head's input (README: 'Defaults that learn'); pretrain uses 10 x learning_rate.")

    def check(self) -> list[str]:
        errors = []
        for key in ("batch_size", "eval_batch_size", "logging_steps", "grad_accum"):
            if getattr(self, key) < 1:
                errors.append(f"{key}: must be at least 1, got {getattr(self, key)}")
        if self.epochs <= 0:
            errors.append(f"epochs: must be positive, got {self.epochs}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            errors.append(f"learning_rate: must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            errors.append(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.head_learning_rate is not None and not 0 < self.head_learning_rate < 1:
            errors.append(f"head_learning_rate: must be in (0, 1), got {self.head_learning_rate}")
        for key in ("max_steps", "save_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                errors.append(f"{key}: must be at least 1 (or unset), got {getattr(self, key)}")
        if self.seed < 0:
            errors.append(f"seed: must be 0 or more, got {self.seed}")
        if self.weight_decay < 0:
            errors.append(f"weight_decay: must be 0 or more, got {self.weight_decay}")
        unknown = [name for name in self.report_to if name not in TRACKERS]
        if unknown:
            errors.append(f"report_to: unknown tracker(s) {unknown}; transformers knows {', '.join(TRACKERS)}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            errors.append(f"early_stopping_patience: must be at least 1 (or null), got {self.early_stopping_patience}")
        return errors


@dataclass
class OutputConfig(Options):
    dir: str | None = option(None, "Run directory (relative to the current directory). Unset: runs/<task>-<method>-<date>-<time>.")
    overwrite: bool = option(False, "Replace a finished run already in `dir`.")
    resume: bool = option(False, "Continue an interrupted run in `dir` from its newest complete checkpoint.")


@dataclass
class TeacherConfig(Options):
    run: str | None = option(None, "A finished run (directory or hub name) of the same task and label set whose soft predictions the student also learns (knowledge distillation).")
    temperature: float = option(2.0, "Softmax temperature of teacher and student in the distillation loss.")
    alpha: float = option(0.5, "Weight of the distillation loss; 1 - alpha weighs the labels' cross-entropy.")
    unlabeled: str | None = option(None, "Unlabelled text the student also learns the teacher's predictions on: a text file (one text per line), JSONL, or labelled data whose labels are ignored.")
    text_field: str = option("text", "JSONL key holding the unlabelled text.")
    max_unlabeled: int | None = option(None, "Use only the first N unlabelled texts.")
    cache: bool = option(True, "Compute the teacher's predictions once, before training (true), or for every batch (false: the teacher stays in memory and costs a forward pass per step; needed with augment, whose inputs change each epoch).")

    def check(self) -> list[str]:
        errors = []
        if not self.temperature > 0:
            errors.append(f"temperature: must be more than 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            errors.append(f"alpha: must be in [0, 1], got {self.alpha}")
        if self.max_unlabeled is not None and self.max_unlabeled < 1:
            errors.append(f"max_unlabeled: must be at least 1, got {self.max_unlabeled}")
        if self.unlabeled and not self.run:
            errors.append("unlabeled: needs teacher.run (the unlabelled text is learnt from the teacher's predictions)")
        return errors


@dataclass
class SelfTrainConfig(Options):
    unlabeled: str | None = option(None, "Self-training's pool: a text file (one text per line), JSONL, or labelled data whose labels are ignored. Set: the run self-trains (OUTPUT/round-N).")
    rounds: int = option(3, "Student rounds after the teacher (round 0).")
    student_epochs: float | None = option(None, "Epochs of each student round (labelled + pseudo-labelled data, often many times the labelled set). Unset: training.epochs, as the teacher.")
    threshold: float = option(0.9, "Keep pseudo-labels at least this confident (NER: the least confident word of the sentence).")
    balance: bool = option(True, "Classification: keep as many pseudo-labels of each class (the rarest kept class's count).")
    max_unlabeled: int | None = option(None, "Use at most N pool examples.")
    skip_unlabeled: int = option(0, "Skip the first N pool examples (the labelled ones, when the pool is the training file).")
    text_field: str = option("text", "JSONL key holding the text.")

    def check(self) -> list[str]:
        errors = []
        if self.rounds < 1:
            errors.append(f"rounds: must be at least 1, got {self.rounds}")
        if not 0 <= self.threshold <= 1:
            errors.append(f"threshold: must be in [0, 1], got {self.threshold}")
        if self.student_epochs is not None and not self.student_epochs > 0:
            errors.append(f"student_epochs: must be more than 0, got {self.student_epochs}")
        if self.max_unlabeled is not None and self.max_unlabeled < 1:
            errors.append(f"max_unlabeled: must be at least 1, got {self.max_unlabeled}")
        if self.skip_unlabeled < 0:
            errors.append(f"skip_unlabeled: must be 0 or more, got {self.skip_unlabeled}")
        return errors


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
    validation_split: float = option(0.05, "Share of documents held out when there is no validation file.")
    block_size: int = option(128, "Tokens per training sequence ([CLS] and [SEP] included).")
    line_by_line: bool = option(False, "One document per sequence (truncated) instead of concatenating and cutting into blocks.")
    streaming: bool = option(False, "Read and tokenize lazily (corpora larger than memory); needs training.max_steps.")
    max_train_samples: int | None = option(None, "Use only the first N training blocks.")
    max_eval_samples: int | None = option(2000, "Use at most N held-out blocks.")

    def check(self) -> list[str]:
        errors = []
        if self.path is None or self.path == []:
            errors.append("path: required: the text to pretrain on (--data PATH)")
        if not 0 <= self.validation_split < 1:
            errors.append(f"validation_split: must be in [0, 1), got {self.validation_split}")
        if self.block_size < 8:
            errors.append(f"block_size: must be at least 8, got {self.block_size}")
        return errors + _encoding_errors(self.encoding)

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path or [])


@dataclass
class PretrainTrainingConfig(TrainingConfig):
    head_warmup_steps: int = option(100, "If the model has no pretraining head: train only the fresh head for this many steps first.")
    eval_steps: int | None = option(None, "Evaluate the held-out metric every N steps (unset: 5 times per run).")
    early_stopping_patience: int | None = option(3, "Stop after N evaluations without a better held-out score (the objective's primary metric) (null: never).")

    def check(self) -> list[str]:
        errors = super().check()
        if self.head_warmup_steps < 0:
            errors.append(f"head_warmup_steps: must be 0 or more, got {self.head_warmup_steps}")
        if self.eval_steps is not None and self.eval_steps < 1:
            errors.append(f"eval_steps: must be at least 1 (or null), got {self.eval_steps}")
        return errors


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
