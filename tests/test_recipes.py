"""Recipe schema, overrides, validation errors, relative paths, the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from peft_hub import recipes, registry
from peft_hub.errors import RecipeError

BASE = {"task": {"name": "ner"}, "method": {"name": "lora"}}


def test_defaults_fill_every_section():
    resolved = recipes.validate(BASE)
    assert resolved.recipe.model.name == "minilm"
    assert resolved.method_options.r == 16
    assert resolved.learning_rate == 2e-3  # LoRA's default for a task that labels every token
    assert resolved.to_dict()["training"]["learning_rate"] == 2e-3


@pytest.mark.parametrize("task, method, rate", [("ner", "lora", 2e-3), ("classify", "lora", 1e-3), ("qa", "lora", 1e-3),
                                                ("ner", "loraplus", 5e-4), ("ner", "full", 2e-4), ("classify", "full", 2e-4)])
def test_a_method_picks_its_default_rate_by_what_the_task_labels(task, method, rate):
    resolved = recipes.validate({"task": {"name": task}, "method": {"name": method}})
    assert resolved.learning_rate == rate
    explicit = recipes.validate({"task": {"name": task}, "method": {"name": method}, "training": {"learning_rate": 3e-4}})
    assert explicit.learning_rate == 3e-4  # the recipe's own rate always wins


def test_overrides_set_delete_and_parse_values():
    data = recipes.apply_overrides(
        {**BASE, "training": {"epochs": 3}},
        ["training.epochs=1", "method.options.r=8", "method.options.target_modules=[query, value]",
         "training.learning_rate=2e-3", "~training.epochs", "data.path=./x"],
    )
    assert "epochs" not in data["training"]
    assert data["method"]["options"] == {"r": 8, "target_modules": ["query", "value"]}
    resolved_lr = recipes.validate({**data, "data": {}})
    assert resolved_lr.recipe.training.learning_rate == 2e-3  # YAML reads 2e-3 as a string; accepted as a number


def test_override_errors_are_collected():
    with pytest.raises(RecipeError) as info:
        recipes.apply_overrides({"training": {"epochs": 1}}, ["noequals", "~training.nope", "training.epochs.x=1", ".a=1"])
    errors = info.value.errors
    assert len(errors) == 4
    assert "must be KEY=VALUE" in errors[0]
    assert "no key training.nope" in errors[1]
    assert "training.epochs is not a mapping" in errors[2]


def test_validation_reports_every_error_at_once():
    data = {
        "task": {"name": "nerr"},
        "method": {"name": "lora", "options": {"rank": 8, "dropout": "high"}},
        "training": {"epochs": "three", "batch_size": 0, "optimiser": "adam"},
        "data": {"path": "./no/such/dir"},
        "colour": "blue",
    }
    with pytest.raises(RecipeError) as info:
        recipes.validate(data)
    joined = "\n".join(info.value.errors)
    assert "training.epochs: expected a number, got 'three'" in joined
    assert "training.optimiser: unknown key" in joined
    assert "colour: unknown key" in joined
    assert "Did you mean 'ner'?" in joined
    assert "method.options.rank: unknown key. Valid keys: target_modules, layers_to_transform, r, alpha, dropout, bias, use_rslora, use_dora, init_lora_weights, eva_rho." in joined
    assert "method.options.dropout: expected a number" in joined
    data = {**BASE, "training": {"batch_size": 0}, "data": {"path": "./no/such/dir"}}
    with pytest.raises(RecipeError) as info:
        recipes.validate(data)
    joined = "\n".join(info.value.errors)
    assert "training.batch_size: must be at least 1" in joined
    assert "data.path: './no/such/dir' does not exist" in joined


def test_missing_task_and_bad_literal():
    with pytest.raises(RecipeError) as info:
        recipes.validate({"method": {"name": "lora"}, "training": {"lr_scheduler": "cosin"}})
    text = str(info.value)
    assert "task: required, but missing" in text
    assert "did you mean 'cosine'?" in text


def test_yaml_errors_give_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task:\n  name: ner\n method: [\n")
    with pytest.raises(RecipeError, match="line 3"):
        recipes.load_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        recipes.load_yaml(path)


def test_yaml_cannot_construct_python_objects(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("task: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        recipes.load_yaml(path)


def test_input_paths_resolve_relative_to_the_recipe(tmp_path, monkeypatch):
    (tmp_path / "sub" / "data").mkdir(parents=True)
    recipe = tmp_path / "sub" / "r.yaml"
    recipe.write_text("task: {name: ner}\nmethod: {name: lora}\ndata: {path: data}\noutput: {dir: out}\n")
    monkeypatch.chdir(tmp_path)
    data, source = recipes.compose(str(recipe), {"training.epochs": 2}, ["training.seed=7"])
    resolved = recipes.validate(data, source)
    assert resolved.recipe.data.path == str((tmp_path / "sub" / "data").resolve())
    assert resolved.recipe.output.dir == "out"  # relative to the working directory
    assert resolved.recipe.training.epochs == 2 and resolved.recipe.training.seed == 7


def test_unknown_recipe_name_suggests():
    with pytest.raises(Exception, match="Did you mean 'ner/minilm_lora'"):
        recipes.compose("ner/minilm-lora")


@pytest.mark.parametrize("name", sorted(registry.recipes()))
def test_shipped_recipes_validate_and_document_themselves(name):
    path = registry.get_recipe(name)
    text = path.read_text()
    assert text.startswith("#") and "peft-hub run" in text and "peft-hub validate" in text
    data = recipes.load_yaml(path)
    for stage in data.get("stages", {"": data}).values():
        if not Path(stage["data"]["path"]).exists():
            pytest.skip(f"{stage['data']['path']} is absent")
    recipes.validate_any(data, str(path))


def test_stages_chain_and_their_errors():
    stages = {"stages": {
        "pre": {"objective": {"name": "mlm"}, "data": {"path": "x.txt"}, "output": {"dir": "runs/p"}},
        "ner": {"task": {"name": "ner"}, "method": {"name": "lora"}, "model": {"name": "stage:pre"}},
    }}
    pipeline = recipes.validate_any(recipes.apply_overrides(stages, ["~stages.pre.data.path", "stages.pre.data.path=README.md"]))
    assert [name for name, _ in pipeline.stages] == ["pre", "ner"]
    assert pipeline.resolved_stage(1, {"pre": "runs/p"}).recipe.model.name == "runs/p"
    broken = recipes.apply_overrides(stages, ["stages.ner.model.name=stage:later", "~stages.pre.output.dir", "stages.pre.data.path=README.md"])
    with pytest.raises(RecipeError, match="'stage:later' names no earlier stage"):
        recipes.validate_any(broken)
    missing_out = recipes.apply_overrides(stages, ["~stages.pre.output.dir", "stages.pre.data.path=README.md"])
    with pytest.raises(RecipeError, match="stages.pre.output.dir: required, because stage 'ner' uses its output"):
        recipes.validate_any(missing_out)


def test_method_strings():
    assert recipes.parse_component("lora") == ("lora", {})
    assert recipes.parse_component("lora[r=16,alpha=32,target_modules=all-linear]") == (
        "lora", {"r": 16, "alpha": 32, "target_modules": "all-linear"})
    assert recipes.parse_component("lora[target_modules=[query,value], dropout=0]") == (
        "lora", {"target_modules": ["query", "value"], "dropout": 0})
    with pytest.raises(RecipeError, match="'r' must be key=value"):
        recipes.parse_component("lora[r]")
    data, _ = recipes.compose(None, {"method.name": "lora[r=4]", "task.name": "ner"}, ["method.options.alpha=8"])
    resolved = recipes.validate(data)
    assert (resolved.method.name, resolved.method_options.r, resolved.method_options.alpha) == ("lora", 4, 8.0)


def test_option_bounds_are_declared_checked_in_one_place_and_listed():
    from dataclasses import dataclass

    from peft_hub import Options, RecipeError, option
    from peft_hub.options import describe, parse

    @dataclass
    class Bounded(Options):
        rank: int = option(16, "a rank", low=1)
        dropout: float = option(0.1, "a probability", low=0, below=1)
        temperature: float = option(1.0, "a temperature", above=0, high=10)
        limit: int | None = option(None, "unset or positive", low=1)

        def check(self):
            return "a plugin's cross-field error, returned as a string by mistake" if self.rank == 7 else []

    _, errors = parse(Bounded, {"rank": 0, "dropout": 1.0, "temperature": 0, "limit": 0})
    assert errors == ["rank: must be at least 1, got 0", "dropout: must be in [0, 1), got 1.0",
                      "temperature: must be in (0, 10], got 0.0", "limit: must be at least 1, got 0"]
    assert parse(Bounded, {"limit": None, "dropout": 0.0})[1] == []
    assert parse(Bounded, {"rank": 7})[1] == ["a plugin's cross-field error, returned as a string by mistake"]
    assert {row["name"]: row.get("range") for row in describe(Bounded)} == {
        "rank": "at least 1", "dropout": "in [0, 1)", "temperature": "in (0, 10]", "limit": "at least 1"}
    assert RecipeError("one message").errors == ["one message"]  # never one error per character


def test_bounds_of_the_recipe_and_of_plugins_are_refused_by_validate():
    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "method.options.r": 0,
                                     "method.options.dropout": 1.5, "training.warmup_ratio": 1, "training.epochs": 0})
    with pytest.raises(recipes.RecipeError) as caught:
        recipes.validate(data)
    assert set(caught.value.errors) == {"method.options.r: must be at least 1, got 0",
                                        "method.options.dropout: must be in [0, 1), got 1.5",
                                        "training.warmup_ratio: must be in [0, 1), got 1.0",
                                        "training.epochs: must be more than 0, got 0.0"}
