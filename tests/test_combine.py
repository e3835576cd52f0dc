"""`peft-hub merge --adapters`: LoRA adapters of one task and label set combined into one run
(peft's weighted-adapter merging for the layers, the same combination for the heads), and every
pair that cannot combine refused with the reason."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

from conftest import train_tiny
from peft_hub import merging, finished
from peft_hub.cli import cli

TEXTS = ["Anna Schmidt flew from Paris to Tokyo with Toyota .", "EU rejects German call to boycott British lamb ."]
HEAD = "base_model.model.classifier.weight"


@pytest.fixture(scope="module")
def second_ner(tiny_model, tmp_path_factory):
    return train_tiny(tiny_model, tmp_path_factory.mktemp("second") / "ner", "ner", **{"training.seed": 7}).directory


def _weights(run):
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def test_an_adapter_combined_with_itself_by_cat_predicts_as_it_does(cli_runner, tiny_runs, tmp_path):
    ner = str(tiny_runs["ner"])
    out = tmp_path / "self"
    result = cli_runner.invoke(cli, ["merge", "--adapters", f"{ner},{ner}", "--combination", "cat", "--output", str(out)])
    assert result.exit_code == 0, result.output
    alone, merged = finished.load_run(ner).predict(TEXTS), finished.load_run(out).predict(TEXTS)
    assert [[(e["type"], e["start"], e["end"]) for e in p["entities"]] for p in merged] == \
        [[(e["type"], e["start"], e["end"]) for e in p["entities"]] for p in alone]
    assert [e["score"] for p in merged for e in p["entities"]] == pytest.approx([e["score"] for p in alone for e in p["entities"]], abs=2e-3)
    info = json.loads((out / "run.json").read_text())
    assert [s["directory"] for s in info["merged_from"]] == [str(tiny_runs["ner"].resolve())] * 2


@pytest.mark.parametrize("combination", ["linear", "ties", "dare_linear", "dare_ties", "svd"])
def test_two_adapters_combine_into_a_hub_entry_with_combined_heads(cli_runner, tiny_runs, second_ner, hub_home, combination):
    a, b = tiny_runs["ner"], second_ner
    args = ["merge", "--adapters", f"{a},{b}", "--combination", combination, "--weights", "0.7,0.3", "--output", "ab"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    from peft_hub import hub

    entry = hub.get("ab")
    assert entry.meta["tags"] == ["merged"] and entry.metrics["combination"] == combination
    head = _weights(entry.path)[HEAD]
    if combination in ("linear", "svd"):
        assert head.allclose(0.7 * _weights(a)[HEAD] + 0.3 * _weights(b)[HEAD], atol=1e-6)
    else:
        assert not head.allclose(_weights(a)[HEAD]) and head.shape == _weights(a)[HEAD].shape
    predictions = finished.load_run("ab").predict(TEXTS)
    assert len(predictions) == 2
    assert "already has an entry 'ab'" in cli_runner.invoke(cli, args).output


def test_what_cannot_combine_is_refused(cli_runner, tiny_runs, tiny_model, second_ner, tmp_path):
    ner = tiny_runs["ner"]
    reordered = tmp_path / "reordered"
    shutil.copytree(second_ner, reordered)
    labels = json.loads((reordered / "labels.json").read_text())
    (reordered / "labels.json").write_text(json.dumps(labels[::-1]))
    other_base = tmp_path / "other-base"
    shutil.copytree(tiny_model, other_base)
    weights = load_file(str(other_base / "model.safetensors"))
    from safetensors.torch import save_file

    save_file({k: v + 1 for k, v in weights.items()}, str(other_base / "model.safetensors"), metadata={"format": "pt"})
    moved = tmp_path / "moved"
    shutil.copytree(second_ner, moved)
    info = json.loads((moved / "run.json").read_text())
    info["base_model"] = str(other_base)
    (moved / "run.json").write_text(json.dumps(info))
    ia3 = train_tiny(tiny_model, tmp_path / "ia3", "ner", "ia3").directory
    ia3_b = tmp_path / "ia3-b"
    shutil.copytree(ia3, ia3_b)
    out = str(tmp_path / "out")
    cases = [
        ([f"{ner},{tiny_runs['classify']}"], "differ in task: ner vs classify"),
        ([f"{ner},{reordered}"], "another order"),
        ([f"{ner},{moved}"], "differ in base model (fingerprint)"),
        ([f"{ia3},{ia3_b}"], "'ia3' method cannot combine adapters with 'linear'"),
        ([f"{ner},{ia3}"], "differ in method: lora vs ia3"),
        ([str(ner)], "combining needs at least two"),
        ([f"{ner},{second_ner}", "--weights", "1"], "1 values for 2 adapters"),
        ([f"{ner},{second_ner}", "--weights", "a,b"], "not a comma-separated list of numbers"),
        ([f"{ner},{second_ner}", "--combination", "ties", "--density", "0"], "--density must be in (0, 1]"),
        ([f"{ner},{second_ner}", "--output", "Bad Name"], "not a valid hub name"),
    ]
    for args, message in cases:
        extra = [] if "--output" in args else ["--output", out]
        result = cli_runner.invoke(cli, ["merge", "--adapters", *args, *extra])
        assert result.exit_code in (1, 2) and message in result.output and "Traceback" not in result.output, (args, result.output)
    assert not (tmp_path / "out").exists()
    result = cli_runner.invoke(cli, ["merge", str(ner), "--adapters", f"{ner},{second_ner}", "--output", out])
    assert result.exit_code == 2 and "one of them" in result.output
    with pytest.raises(merging.MergeError, match="is not one of"):
        merging.combine([str(ner), str(second_ner)], out, "mean")
