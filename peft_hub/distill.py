"""Knowledge distillation in ``adapt`` (``--teacher RUN``): the student learns from the labels and
from a finished run's soft predictions (Hinton et al., 2015), on the labelled training data and on
unlabelled text when given (``teacher.unlabeled``).

    loss = (1 - alpha) * cross-entropy(labels) + alpha * T^2 * KL(teacher / T || student / T)

The teacher is any finished run of the same task, label set and tokenizer (any method, any base
size; 8-bit as it was trained); self-distillation is a teacher that is an earlier run of the same
model. Its logits are computed once, before training, and cached with the features: for a token
task at the positions that carry a label (each word's first sub-token, the same positions for
teacher and student, as both tokenize alike), for a sequence task once per example. Caching costs
one teacher pass in all; computing them on the fly would cost one per epoch.
"""

from __future__ import annotations

from typing import Any

from .errors import PeftHubError


class Distillation:
    """The loss of a batch that carries teacher logits (set on the Trainer by ``adapt``)."""

    def __init__(self, temperature: float, alpha: float):
        self.temperature, self.alpha = temperature, alpha

    def loss(self, model: Any, inputs: dict) -> Any:
        import torch.nn.functional as F

        teacher, mask = inputs.pop("teacher_logits"), inputs.pop("teacher_mask").bool()
        labels = inputs.get("labels")
        labelled = labels is not None and bool((labels != -100).any())
        if not labelled:
            inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**inputs)
        student = outputs.logits
        t = self.temperature
        soft = F.kl_div(F.log_softmax(student[mask].float() / t, dim=-1), F.softmax(teacher[mask].float() / t, dim=-1),
                        reduction="batchmean") * t * t
        hard = outputs.loss if labelled else soft.new_zeros(())
        return (1 - self.alpha) * hard + self.alpha * soft


class DistillCollator:
    """The task's collator, with each feature's teacher logits padded beside its inputs."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if not features or "teacher_logits" not in features[0]:
            return self.inner(features)
        logits = [f["teacher_logits"] for f in features]
        masks = [f["teacher_mask"] for f in features]
        batch = self.inner([{k: v for k, v in f.items() if k not in ("teacher_logits", "teacher_mask")} for f in features])
        if logits[0].dim() == 1:  # one prediction per example
            batch["teacher_logits"], batch["teacher_mask"] = torch.stack(logits), torch.tensor(masks)
            return batch
        width = batch["input_ids"].shape[1]  # a token task: pad on the right, as the inputs are
        padded = torch.zeros(len(features), width, logits[0].shape[-1])
        mask = torch.zeros(len(features), width, dtype=torch.bool)
        for row, (values, keep) in enumerate(zip(logits, masks)):
            padded[row, : len(values)] = values
            mask[row, : len(keep)] = torch.tensor(keep, dtype=torch.bool)
        batch["teacher_logits"], batch["teacher_mask"] = padded, mask
        return batch


def check_teacher(teacher: Any, task: Any, labels: list[str], tokenizer: Any) -> None:
    """A teacher must be of the same task and label set and tokenize exactly as the student does."""
    where = teacher.directory
    if teacher.resolved.task.name != task.name:
        raise PeftHubError(f"The teacher {where} is a {teacher.resolved.task.name!r} run; this is a {task.name!r} run. "
                           f"Give a teacher trained on the {task.name!r} task.")
    from .adapt import label_difference

    difference = label_difference(teacher.labels, labels)
    if difference:
        raise PeftHubError(f"The teacher {where} predicts other labels than this run's data has ({difference}). "
                           "Train the teacher on data with the same label set.")
    if teacher.tokenizer.get_vocab() != tokenizer.get_vocab() or type(teacher.tokenizer) is not type(tokenizer):
        raise PeftHubError(f"The teacher {where} tokenizes differently from this run's model ({len(teacher.tokenizer):,} vs "
                           f"{len(tokenizer):,} tokens): its predictions cannot be aligned. Give a teacher trained on a "
                           "model with the same tokenizer (e.g. the same base, or a larger model of its family).")


def teacher_logits(teacher: Any, features: list[dict], collator: Any, batch_size: int, quiet: bool = False) -> list[Any]:
    """The teacher's logits for each feature (cut to its length for a token task)."""
    from .models import model_outputs
    from .progress import track

    strip = ("labels", "teacher_logits", "teacher_mask")
    starts = range(0, len(features), batch_size)
    batches = (collator([{k: v for k, v in f.items() if k not in strip} for f in features[s : s + batch_size]]) for s in starts)
    out: list[Any] = []
    for start, result in zip(starts, track(model_outputs(teacher.model, batches), "Teacher predictions", len(starts), quiet)):
        logits = result.logits if hasattr(result, "logits") else None
        if logits is None or not hasattr(logits, "dim"):
            raise PeftHubError(f"The {teacher.resolved.task.name!r} task's model gives no single logits tensor: "
                               "distillation supports tasks with one prediction per token or per example.")
        for row, feature in enumerate(features[start : start + batch_size]):
            values = logits[row].float().cpu()
            out.append(values[: len(feature["input_ids"])] if values.dim() == 2 else values)
    return out


def attach(config: Any, task: Any, options: Any, tokenizer: Any, labels: list[str], train: Any, echo: Any,
           quiet: bool = False) -> Any:
    """The training features with the teacher's logits (and the unlabelled text's features,
    labels ignored); ``config`` is the recipe's ``teacher`` section."""
    from .adapt import load_run
    from .embeddings import read_texts
    from .train import FeatureDataset

    teacher = load_run(config.run)
    check_teacher(teacher, task, labels, tokenizer)
    unlabeled = []
    if config.unlabeled:
        texts = read_texts(config.unlabeled, config.text_field)[: config.max_unlabeled]
        try:
            examples = [task.unlabeled_example(text, labels) for text in texts if text.strip()]
        except NotImplementedError:
            raise PeftHubError(f"The {task.name!r} task cannot read unlabeled text (it has no unlabeled_example): "
                               "drop teacher.unlabeled.") from None
        for feature in task.encode(examples, tokenizer, labels, options):
            unlabeled.append(feature)
    features = [dict(f) for f in train.features] + unlabeled
    collate = task.collator(tokenizer)
    logits = teacher_logits(teacher, features, collate, 64, quiet)
    for i, (feature, values) in enumerate(zip(features, logits)):
        target = feature["labels"]
        if isinstance(target, list):  # token task: the labelled positions (first sub-tokens)
            feature["teacher_mask"] = [int(x != -100) for x in target]
            if i >= len(train.features):
                feature["labels"] = [-100] * len(target)
        else:
            feature["teacher_mask"] = 1
            if i >= len(train.features):
                feature["labels"] = -100
        feature["teacher_logits"] = values
    echo(f"Teacher {teacher.directory} ({teacher.resolved.method.name}): soft targets for {len(train.features):,} labelled"
         + (f" and {len(unlabeled):,} unlabeled examples" if unlabeled else " examples")
         + f"; temperature {config.temperature:g}, alpha {config.alpha:g}")
    del teacher
    return FeatureDataset(features, list(train.examples))
