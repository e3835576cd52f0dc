"""Self-training: rounds of teacher -> confident pseudo-labels -> student, each a run directory,
resumed at the round it was in; the pool read as text, JSONL or a labelled file."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import SAMPLES
from peft_hub import selftrain
from peft_hub.cli import cli


def test_selection_keeps_the_confident_and_balances_classes():
    scored = [("a", 0.99, "pos"), ("b", 0.95, "pos"), ("c", 0.97, "pos"), ("d", 0.92, "neg"), ("e", 0.5, "neg")]
    assert selftrain.select(scored, 0.9, balance=False) == [("a", 0.99), ("c", 0.97), ("b", 0.95), ("d", 0.92)]
    assert selftrain.select(scored, 0.9, balance=True) == [("a", 0.99), ("d", 0.92)]
    assert selftrain.select([("x", 0.95, None), ("y", 0.2, None)], 0.9, balance=True) == [("x", 0.95)]


@pytest.mark.parametrize("task, pool", [("ner", "train.txt"), ("classify", "pool.txt")])
def test_rounds_are_run_directories_and_resume(cli_runner, tiny_model, tmp_path, task, pool):
    if task == "ner":
        pool_path = SAMPLES / "ner" / pool  # a labelled file: its labels are ignored
    else:
        pool_path = tmp_path / pool
        pool_path.write_text("a wonderful film\nthe worst meal ever\nfriendly staff and clean rooms\nboring and slow\n" * 5)
    out = tmp_path / "st"
    args = ["self-train", "--method", "lora", "--task", task, "--model", str(tiny_model), "--unlabeled", str(pool_path),
            "--rounds", "2", "--threshold", "0", "--epochs", "1", "--student-epochs", "2", "--output", str(out), "--quiet"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert all((out / f"round-{r}" / "run.json").exists() for r in range(3))
    epochs = [yaml.safe_load((out / f"round-{r}" / "recipe.yaml").read_text())["training"]["epochs"] for r in range(3)]
    assert epochs == [1, 2, 2]  # the teacher as --epochs says, the students --student-epochs
    assert "Rounds:" in result.output and "round-0" in result.output and "round-2" in result.output  # the report of the rounds
    pseudo = [json.loads(line) for line in (out / "pseudo-1.jsonl").read_text().splitlines()]
    assert pseudo and all(0 <= p["confidence"] <= 1 for p in pseudo)
    if task == "ner":
        assert all(len(p["tokens"]) == len(p["tags"]) for p in pseudo)
    else:  # plain text stays whole: no first word read as a label
        assert {p["text"] for p in pseudo} <= set(pool_path.read_text().splitlines())
    first = (out / "round-1" / "run.json").stat().st_mtime
    (out / "round-2" / "run.json").unlink()  # round 2 did not finish: only it runs again
    import shutil

    shutil.rmtree(out / "round-2")
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (out / "round-1" / "run.json").stat().st_mtime == first and (out / "round-2" / "run.json").exists()


def test_a_recipe_self_trains(tiny_model, tmp_path):
    from peft_hub import recipes, runs

    recipe = tmp_path / "st.yaml"
    recipe.write_text(f"""
task: {{name: classify}}
method: {{name: lora}}
model: {{name: {tiny_model}}}
training: {{epochs: 1}}
self_train: {{unlabeled: pool.txt, rounds: 1, threshold: 0.0}}
output: {{dir: {tmp_path / 'out'}}}
""")
    (tmp_path / "pool.txt").write_text("a wonderful film\nboring and slow\n" * 4)
    resolved = recipes.validate(*recipes.compose(str(recipe)))
    assert resolved.recipe.self_train.unlabeled == str(tmp_path / "pool.txt")  # beside the recipe
    [(_, out, metrics)] = list(runs.run(resolved, echo=lambda m: None, quiet=True))
    assert out == tmp_path / "out" / "round-1" and (tmp_path / "out" / "round-0" / "run.json").exists()


def test_bad_self_training_is_refused(cli_runner, tiny_model, tmp_path):
    base = ["self-train", "--method", "lora", "--model", str(tiny_model), "--output", str(tmp_path / "o"), "--quiet"]
    cases = [
        (["--task", "ner", "--unlabeled", str(tmp_path / "missing.txt")], "self_train.unlabeled: " + repr(str(tmp_path / "missing.txt")) + " does not exist"),
        (["--task", "ner", "--unlabeled", str(SAMPLES / "ner" / "train.txt"), "--rounds", "0"], "self_train.rounds: must be at least 1"),
        (["--task", "ner", "--unlabeled", str(SAMPLES / "ner" / "train.txt"), "--threshold", "2"], "self_train.threshold: must be in [0, 1]"),
        (["--task", "ner", "--unlabeled", str(SAMPLES / "ner" / "train.txt"), "--student-epochs", "0"], "self_train.student_epochs: must be more than 0"),
        (["--task", "qa", "--unlabeled", str(SAMPLES / "ner" / "train.txt")], "cannot label examples for self-training"),
    ]
    for extra, message in cases:
        result = cli_runner.invoke(cli, [*base, *extra])
        assert result.exit_code == 1 and message in result.output, (extra, result.output)
    assert not (tmp_path / "o").exists()


def test_a_pool_without_confident_pseudo_labels_stops_with_the_fix(cli_runner, tiny_model, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("a wonderful film\nboring and slow\n" * 3)
    out = tmp_path / "st"
    result = cli_runner.invoke(cli, ["self-train", "--method", "lora", "--task", "classify", "--model", str(tiny_model),
                                     "--unlabeled", str(pool), "--threshold", "1", "--epochs", "1", "--output", str(out), "--quiet"])
    assert result.exit_code == 1 and "No pseudo-label" in result.output and "Lower self_train.threshold (e.g." in result.output, result.output
    assert (out / "round-0" / "run.json").exists() and not (out / "round-1").exists()  # round 0 kept for a rerun
