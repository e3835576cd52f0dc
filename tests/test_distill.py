"""Knowledge distillation (`adapt --teacher`): the loss, the padding of the teacher's logits, a
student that learns a teacher's predictions from unlabelled text alone, and every teacher that
cannot teach this run refused with the reason."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import peft_hub
from conftest import train_tiny
from peft_hub import adapt, distill, recipes, registry, finished
from peft_hub.cli import cli
from peft_hub.errors import PeftHubError

TEXTS = ["Anna Schmidt flew from Paris to Tokyo with Toyota .", "EU rejects German call to boycott British lamb .",
         "The United Nations met in Geneva on Monday .", "Peter Blackburn visited the European Commission in Brussels ."]


def test_the_loss_is_the_tempered_kl_beside_the_labels():
    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, labels=None):
            logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]])
            loss = torch.nn.functional.cross_entropy(logits[0], labels[0], ignore_index=-100) if labels is not None else None
            return type("Out", (), {"logits": logits, "loss": loss})()

    teacher = torch.tensor([[[0.0, 3.0, 0.0], [9.0, 9.0, 9.0]]])
    inputs = {"input_ids": torch.ones(1, 2, dtype=torch.long), "labels": torch.tensor([[1, -100]]),
              "teacher_logits": teacher, "teacher_mask": torch.tensor([[True, False]])}
    loss = distill.Distillation(peft_hub.Task(), temperature=2.0, alpha=0.25).loss(Model(), dict(inputs))
    student = torch.tensor([2.0, 0.0, -1.0])
    kl = torch.nn.functional.kl_div((student / 2).log_softmax(-1), (teacher[0, 0] / 2).softmax(-1), reduction="sum") * 4
    ce = torch.nn.functional.cross_entropy(student[None], torch.tensor([1]))
    assert loss.item() == pytest.approx((0.75 * ce + 0.25 * kl).item(), rel=1e-5)
    unlabeled = dict(inputs, labels=torch.tensor([[-100, -100]]))  # only the soft targets count
    assert distill.Distillation(peft_hub.Task(), 2.0, 0.25).loss(Model(), unlabeled).item() == pytest.approx(0.25 * kl.item(), rel=1e-5)


def test_the_collator_pads_teacher_logits_like_the_inputs(tokenizer):
    from transformers import DataCollatorForTokenClassification

    collate = distill.DistillCollator(DataCollatorForTokenClassification(tokenizer))
    features = [{"input_ids": [2, 7, 3], "labels": [-100, 1, -100], "teacher_logits": torch.ones(3, 4), "teacher_mask": [0, 1, 0]},
                {"input_ids": [2, 7, 8, 9, 3], "labels": [-100, 1, 0, 0, -100], "teacher_logits": torch.ones(5, 4), "teacher_mask": [0, 1, 1, 1, 0]}]
    batch = collate(features)
    assert batch["teacher_logits"].shape == (2, 5, 4) and batch["teacher_logits"][0, 3:].abs().sum() == 0
    assert batch["teacher_mask"].tolist() == [[False, True, False, False, False], [False, True, True, True, False]]
    assert collate([{"input_ids": [2, 3], "labels": [-100, -100]}]).keys() == {"input_ids", "labels", "attention_mask"}


def _agreement_and_kl(student, teacher, texts):
    """Share of words where both predict the same tag, and the mean KL(teacher || student)."""
    from peft_hub.distill import teacher_logits

    task = teacher.resolved.task
    examples = [task.unlabeled_example(t, teacher.labels) for t in texts]
    features = task.encode(examples, teacher.tokenizer, teacher.labels, teacher.resolved.task_options)
    collate = task.collator(teacher.tokenizer)
    mine, theirs = teacher_logits(student, features, collate, 8, True), teacher_logits(teacher, features, collate, 8, True)
    keep = [torch.tensor([x != -100 for x in f["labels"]]) for f in features]
    s = torch.cat([m[k] for m, k in zip(mine, keep)])
    t = torch.cat([m[k] for m, k in zip(theirs, keep)])
    kl = torch.nn.functional.kl_div(s.log_softmax(-1), t.softmax(-1), reduction="batchmean").item()
    return (s.argmax(-1) == t.argmax(-1)).float().mean().item(), kl


def test_a_student_learns_the_teacher_from_unlabelled_text(tiny_model, tmp_path):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(TEXTS * 8) + "\n")
    common = {"training.epochs": 1, "training.seed": 3}
    confident = train_tiny(tiny_model, tmp_path / "teacher", "ner", **{"training.epochs": 12, "training.learning_rate": 1e-2}).directory
    before = finished.load_run(train_tiny(tiny_model, tmp_path / "untaught", "ner", **{**common, "training.max_steps": 1}).directory)
    student_run = train_tiny(tiny_model, tmp_path / "student", "ner", **{
        **common, "training.epochs": 15, "teacher.run": str(confident), "teacher.unlabeled": str(unlabeled),
        "teacher.alpha": 1.0, "teacher.temperature": 1.0, "training.learning_rate": 5e-3})
    teacher = finished.load_run(confident)
    agree_before, kl_before = _agreement_and_kl(before, teacher, TEXTS)
    agree_after, kl_after = _agreement_and_kl(finished.load_run(student_run.directory), teacher, TEXTS)
    assert kl_after < kl_before / 2 and agree_after >= agree_before + 0.5, (kl_before, kl_after, agree_before, agree_after)
    recorded = json.loads((student_run.directory / "metrics.json").read_text())["teacher"]
    assert recorded["unlabeled_examples"] == len(TEXTS) * 8 and recorded["alpha"] == 1.0


def test_a_teacher_that_cannot_teach_is_refused(cli_runner, tiny_model, tiny_runs, tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    other = tmp_path / "other-vocab"
    vocab = json.loads((tiny_model / "tokenizer.json").read_text())["model"]["vocab"]
    small = BertTokenizerFast(vocab={token: i for i, token in enumerate(sorted(vocab, key=vocab.get)[:300])}, do_lower_case=True)
    small.save_pretrained(other)
    BertModel(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(other)
    foreign = train_tiny(other, tmp_path / "foreign", "ner", **{"training.max_steps": 1}).directory
    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_runs["ner"], reordered)
    labels = json.loads((reordered / "labels.json").read_text())
    (reordered / "labels.json").write_text(json.dumps(labels[::-1]))
    base = ["adapt", "--method", "lora", "--task", "ner", "--model", str(tiny_model), "--output", str(tmp_path / "out"), "--quiet"]
    cases = [
        (["--teacher", str(tiny_runs["classify"])], "is a 'classify' run; this is a 'ner' run"),
        (["--teacher", str(reordered)], "(the same, in another order)"),
        (["--teacher", str(foreign)], "tokenizes differently"),
        (["--teacher", str(tmp_path)], "holds no finished run"),
        (["--teacher", str(tiny_runs["ner"]), "teacher.unlabeled=nowhere.txt"], "teacher.unlabeled: 'nowhere.txt' does not exist"),
        (["teacher.unlabeled=" + str(tiny_runs["ner"] / "labels.json")], "unlabeled: needs teacher.run"),
        (["--teacher", str(tiny_runs["ner"]), "teacher.alpha=1.5"], "alpha: must be in [0, 1]"),
        (["--teacher", str(tiny_runs["ner"]), "teacher.temperature=0"], "temperature: must be more than 0"),
    ]
    for extra, message in cases:
        result = cli_runner.invoke(cli, [*base, *extra])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, (extra, result.output)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task", ["ner", "classify"])
def test_a_teacher_on_the_fly_teaches_what_its_cached_logits_do(tiny_model, tiny_runs, tmp_path, task):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(TEXTS * 2) + "\n")
    students = {cache: train_tiny(tiny_model, tmp_path / f"cache-{cache}", task, **{
        "training.epochs": 2, "training.seed": 5, "teacher.run": str(tiny_runs[task]), "teacher.unlabeled": str(unlabeled),
        "teacher.cache": cache}).metrics for cache in (True, False)}
    cached, fly = students[True], students[False]
    assert fly["teacher"]["cache"] is False and fly["teacher"]["unlabeled_examples"] == len(TEXTS) * 2
    assert fly["train_loss"] == pytest.approx(cached["train_loss"], rel=1e-3)  # the same student (up to padding noise)
    assert fly["test"][fly["primary_metric"]] == pytest.approx(cached["test"][cached["primary_metric"]], abs=1e-6)


def test_an_augmented_student_learns_from_a_teacher_on_the_fly(tiny_model, tiny_runs, tmp_path, monkeypatch):
    messages, taught = [], []
    loss = distill.Distillation.loss
    monkeypatch.setattr(distill.Distillation, "loss", lambda self, model, inputs: taught.append(1) or loss(self, model, inputs))
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                          "output.dir": str(tmp_path / "out"), "training.epochs": 2,
                                          "augment": [{"name": "token_dropout", "options": {"p": 1.0}}],
                                          "teacher.run": str(tiny_runs["ner"]), "teacher.cache": False})
    run = adapt.run(recipes.validate(data, source), quiet=True, echo=messages.append)
    assert any("soft targets on the fly" in m for m in messages) and any("Augmenting" in m for m in messages), messages
    assert run.metrics["teacher"]["cache"] is False and len(taught) == run.metrics["train_steps"] > 0  # every batch taught


@pytest.mark.parametrize("method", sorted(registry.methods()))
def test_every_method_learns_from_a_teacher_and_self_trains(tiny_model, tiny_runs, tmp_path, method):
    from peft_hub import runs

    student = train_tiny(tiny_model, tmp_path / "student", "ner", method, **{
        "training.max_steps": 2, "teacher.run": str(tiny_runs["ner"]), "teacher.cache": False,
        "augment": [{"name": "token_dropout"}]})
    assert student.metrics["teacher"]["cache"] is False and student.metrics["train_steps"] == 2
    pool = tmp_path / "pool.txt"
    pool.write_text("a wonderful film\nboring and slow\n" * 3)
    data, source = recipes.compose(None, {"task.name": "classify", "method.name": method, "model.name": str(tiny_model),
                                          "training.max_steps": 2, "self_train.unlabeled": str(pool), "self_train.rounds": 1,
                                          "self_train.threshold": 0.0, "output.dir": str(tmp_path / "st")})
    [(_, directory, _)] = list(runs.run(recipes.validate(data, source), echo=lambda m: None, quiet=True))
    assert directory == tmp_path / "st" / "round-1" and (tmp_path / "st" / "pseudo-1.jsonl").read_text().count("\n") == 6


def test_the_contract_tasks_distill_where_a_distribution_exists(tiny_model, tmp_path):
    """Sentence pairs and relations (classification) learn from a teacher; QA's start/end pair and
    a regression's one score are refused before training, with the reason."""
    for task in ("pair", "relation"):
        teacher = train_tiny(tiny_model, tmp_path / f"{task}-teacher", task, **{"training.max_steps": 2}).directory
        student = train_tiny(tiny_model, tmp_path / f"{task}-student", task, **{"training.max_steps": 2, "teacher.run": str(teacher)})
        assert student.metrics["teacher"]["run"] == str(teacher)
    scores = tmp_path / "sts"
    scores.mkdir()
    for split in ("train", "dev"):
        (scores / f"{split}.tsv").write_text("sentence1\tsentence2\tscore\n" + "a man plays\ta man plays music\t4.2\nit rains\ta dog runs\t0.4\n" * 4)
    regression = {"data.path": str(scores), "task.options": {"target": "regression"}, "training.max_steps": 1}
    refused = [("pair", regression, "a regression predicts one score"), ("qa", {"training.max_steps": 1}, "a start and an end")]
    for task, overrides, message in refused:
        teacher = train_tiny(tiny_model, tmp_path / f"{task}-refused-teacher", task, **overrides).directory
        with pytest.raises(PeftHubError, match=f"the {task!r} task cannot learn from a teacher: .*{message}"):
            train_tiny(tiny_model, tmp_path / "refused", task, **{**overrides, "teacher.run": str(teacher)})
        assert not (tmp_path / "refused").exists()  # refused when the recipe is validated: nothing written


def test_a_labelled_file_is_unlabelled_text_for_the_student(tiny_model, tiny_runs, tmp_path):
    from conftest import SAMPLES
    from peft_hub.text import read_unlabeled

    pool = SAMPLES / "ner" / "train.txt"  # CoNLL columns: read by the task, its tags ignored
    teacher = finished.load_run(tiny_runs["ner"])
    sentences = read_unlabeled(str(pool), teacher.resolved.task, teacher.labels, teacher.resolved.task_options)
    assert sentences and all(" " not in token for e in sentences for token in e.tokens)  # sentences, not lines of columns
    student = train_tiny(tiny_model, tmp_path / "student", "ner", **{"training.max_steps": 1, "teacher.run": str(tiny_runs["ner"]),
                                                                    "teacher.unlabeled": str(pool)})
    assert student.metrics["teacher"]["unlabeled_examples"] == len(sentences)
