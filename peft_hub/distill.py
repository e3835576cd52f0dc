"""Knowledge distillation in ``adapt`` (``--teacher RUN``): the student learns from the labels and
from a finished run's soft predictions (Hinton et al., 2015), on the labelled training data and on
unlabelled text when given (``teacher.unlabeled``).

    loss = (1 - alpha) * the labels' loss + alpha * the task's soft-target loss
           (by default T^2 * KL(teacher / T || student / T); multi-label: binary cross-entropy)

The teacher is any finished run of the same task, label set and tokenizer (any method, any base
size; 8-bit as it was trained); self-distillation is a teacher that is an earlier run of the same
model. Its logits are compared where the task says a feature is labelled (``Task.label_mask``): for
a token task each word's first sub-token (the same positions for teacher and student, as both
tokenize alike), for a sequence task the example.

By default (``teacher.cache``) the teacher predicts every training example once, before training,
and its logits travel with the features: one teacher pass in all, and no teacher in memory while
training. ``teacher.cache=false`` keeps the teacher and predicts each batch as it comes, a forward
pass per step (measured in benchmarks/RESULTS.md); augmentation needs it, as its inputs change.
"""

from __future__ import annotations

from typing import Any

from .errors import PeftHubError
from .features import FeatureDataset
from .tasks import Task


class Distillation:
    """The loss of a training batch that carries a teacher mask (set on the Trainer by ``adapt``);
    its teacher logits come with the batch (cached) or from ``teacher`` (on the fly)."""

    def __init__(self, task: Any, temperature: float, alpha: float, teacher: Any = None):
        self.task, self.temperature, self.alpha, self.teacher = task, temperature, alpha, teacher

    def loss(self, model: Any, inputs: dict) -> Any:
        teacher, mask = inputs.pop("teacher_logits", None), inputs.pop("teacher_mask").bool()
        labels = inputs.get("labels")
        labelled = labels is not None and bool((labels != -100).any())
        unlabelled_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if teacher is None:
            teacher = self.predict(unlabelled_inputs)
        own = labelled and type(self.task).supervised_loss is not Task.supervised_loss  # the task's, not the model's
        outputs = model(**(inputs if labelled and not own else unlabelled_inputs))
        student = outputs.logits
        soft = self.task.distillation_loss(student[mask], teacher[mask], self.temperature)
        hard = (self.task.supervised_loss(student, labels) if own else outputs.loss) if labelled else soft.new_zeros(())
        return (1 - self.alpha) * hard + self.alpha * soft

    def predict(self, inputs: dict) -> Any:
        """The teacher's logits for a batch (on the fly), on the batch's device."""
        import torch

        device = inputs["input_ids"].device
        quantized = getattr(self.teacher, "is_loaded_in_8bit", False) or getattr(self.teacher, "is_loaded_in_4bit", False)
        if not quantized and next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            return self.teacher(**inputs).logits


class TeacherTargets(FeatureDataset):
    """The training set as the student sees it: every feature with its teacher mask (where the task
    says it is labelled), also those an augmenter re-encodes as they are read."""

    def __init__(self, inner: FeatureDataset, task: Any):
        super().__init__(inner.features, inner.examples)
        self.inner, self.task = inner, task

    def __getitem__(self, index: int) -> dict:
        feature = self.inner[index]
        return feature if "teacher_mask" in feature else {**feature, "teacher_mask": self.task.label_mask(feature)}


class DistillCollator:
    """The task's collator, with each training feature's teacher mask (and cached logits) padded
    beside its inputs; evaluation features, which have none, pass as they are."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if not features or "teacher_mask" not in features[0]:
            return self.inner(features)
        masks = [f["teacher_mask"] for f in features]
        logits = [f["teacher_logits"] for f in features] if "teacher_logits" in features[0] else None
        batch = self.inner([{k: v for k, v in f.items() if k not in ("teacher_logits", "teacher_mask")} for f in features])
        if not isinstance(masks[0], list):  # one prediction per example
            batch["teacher_mask"] = torch.tensor(masks)
            if logits is not None:
                batch["teacher_logits"] = torch.stack(logits)
            return batch
        width = batch["input_ids"].shape[1]  # a token task: pad on the right, as the inputs are
        mask = torch.zeros(len(features), width, dtype=torch.bool)
        for row, keep in enumerate(masks):
            mask[row, : len(keep)] = torch.tensor(keep, dtype=torch.bool)
        batch["teacher_mask"] = mask
        if logits is not None:
            padded = torch.zeros(len(features), width, logits[0].shape[-1])
            for row, values in enumerate(logits):
                padded[row, : len(values)] = values
            batch["teacher_logits"] = padded
        return batch


def check_teacher(teacher: Any, task: Any, labels: list[str], tokenizer: Any) -> None:
    """A teacher must be of the same task and label set and tokenize exactly as the student does."""
    where = teacher.directory
    if teacher.resolved.task.name != task.name:
        raise PeftHubError(f"The teacher {where} is a {teacher.resolved.task.name!r} run; this is a {task.name!r} run. "
                           f"Give a teacher trained on the {task.name!r} task.")
    from .finished import label_difference

    difference = label_difference(teacher.labels, labels)
    if difference:
        raise PeftHubError(f"The teacher {where} predicts other labels than this run's data has ({difference}). "
                           "Train the teacher on data with the same label set.")
    if teacher.tokenizer.get_vocab() != tokenizer.get_vocab() or type(teacher.tokenizer) is not type(tokenizer):
        raise PeftHubError(f"The teacher {where} tokenizes differently from this run's model ({len(teacher.tokenizer):,} vs "
                           f"{len(tokenizer):,} tokens): its predictions cannot be aligned. Give a teacher trained on a "
                           "model with the same tokenizer (e.g. the same base, or a larger model of its family).")


def teacher_logits(teacher: Any, features: list[dict], collator: Any, batch_size: int, quiet: bool = False) -> list[Any]:
    """The teacher's logits for each feature (cut to its length for a token task), predicted in
    batches of similar length (little padding), returned in the features' order."""
    from .models import model_outputs
    from .progress import track

    strip = ("labels", "teacher_logits", "teacher_mask")
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    batches = (collator([{k: v for k, v in features[i].items() if k not in strip} for i in chunk]) for chunk in chunks)
    out: list[Any] = [None] * len(features)
    for chunk, result in zip(chunks, track(model_outputs(teacher.model, batches), "Teacher predictions", len(chunks), quiet)):
        logits = result.logits if hasattr(result, "logits") else None
        if logits is None or not hasattr(logits, "dim"):
            raise PeftHubError(f"The {teacher.resolved.task.name!r} task's model gives no single logits tensor: "
                               "distillation supports tasks with one prediction per token or per example.")
        for row, i in enumerate(chunk):
            values = logits[row].float().cpu()
            out[i] = values[: len(features[i]["input_ids"])] if values.dim() == 2 else values
    return out


def attach(config: Any, task: Any, options: Any, tokenizer: Any, labels: list[str], train: Any, echo: Any,
           quiet: bool = False) -> tuple[Any, Any]:
    """The training set with the unlabelled text's features (labels ignored) added and every
    feature's teacher mask, and the teacher's cached logits (``config.cache``); returns it and the
    teacher model to predict on the fly (None when cached). ``config`` is the recipe's ``teacher``."""
    from .finished import load_run
    from .text import read_unlabeled

    teacher = load_run(config.run)
    check_teacher(teacher, task, labels, tokenizer)
    collate = task.collator(tokenizer)
    if teacher_logits(teacher, train.features[:1], collate, 1, quiet=True)[0].shape[-1] < 2:  # said before any training
        raise PeftHubError(f"The teacher {teacher.directory} predicts one score per example (regression): there is no "
                           "distribution to distill. Distillation needs a classification or token-labelling teacher.")
    unlabeled = []
    if config.unlabeled:
        examples = read_unlabeled(config.unlabeled, task, labels, options, text_field=config.text_field, limit=config.max_unlabeled)
        unlabeled = task.encode(examples, tokenizer, labels, options)
    labelled = len(train.features)
    features = [dict(f) for f in train.features] + [dict(f) for f in unlabeled]
    for i, feature in enumerate(features):
        feature["teacher_mask"] = task.label_mask(feature)
        if i >= labelled:  # learnt from the teacher alone
            features[i] = feature = task.without_labels(feature)
    if config.cache:
        for feature, values in zip(features, teacher_logits(teacher, features, collate, 64, quiet)):
            feature["teacher_logits"] = values
    train.features = features  # an augmenting set leaves the unlabelled features (past its examples) as they are
    echo(f"Teacher {teacher.directory} ({teacher.resolved.method.name}): soft targets "
         + ("computed once" if config.cache else "on the fly") + f" for {labelled:,} labelled"
         + (f" and {len(unlabeled):,} unlabeled examples" if unlabeled else " examples")
         + f"; temperature {config.temperature:g}, alpha {config.alpha:g}")
    model = None if config.cache else teacher.model.eval()
    del teacher
    return TeacherTargets(train, task), model
