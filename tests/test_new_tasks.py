"""The pair, relation and qa tasks: their readers (real formats, clear errors), their official
metrics, and what each does end to end beyond the method x task matrix (predict from the command
line, 8-bit, long contexts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_data
from peft_hub import DataError, registry, finished
from peft_hub.cli import cli
from peft_hub.recipes import DataConfig
from peft_hub.tasks import Evaluation
from peft_hub import pearson
from peft_hub.pairs import ranks
from peft_hub_plugins.qa import normalize_answer, squad_scores, Example as QaExample
from peft_hub_plugins.relation import mark, official_scores


def _read(task_name, path, **options):
    task = registry.get_task(task_name)
    return task.read_data(DataConfig(path=str(path)), task.Options(**options))


# -- pair -----------------------------------------------------------------------------------------


def test_pair_reads_tsv_with_quotes_as_text_and_skips_unlabelled_splits(tmp_path, caplog):
    (tmp_path / "train.tsv").write_text('index\tsentence1\tsentence2\tlabel\n0\t"Quoted" start\tplain\tentailment\n'
                                        '1\tno "end\tx\tnot_entailment\n')
    (tmp_path / "test.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    splits = _read("pair", tmp_path)
    assert set(splits) == {"train"} and splits["train"][0].text == '"Quoted" start'
    assert "has no labels" in caplog.text


def test_pair_splits_one_file_by_its_split_column(tmp_path):
    rows = ["pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set"]
    rows += [f"{i}\ta{i}\tb{i}\tNEUTRAL\t{1 + i / 10}\t{s}" for i, s in enumerate(["TRAIN", "TRAIN", "TRIAL", "TEST"])]
    (tmp_path / "sick.txt").write_text("\r\n".join(rows))  # SICK: CRLF, no final newline
    splits = _read("pair", tmp_path / "sick.txt")
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "validation": 1, "test": 1}
    scores = _read("pair", tmp_path / "sick.txt", target="regression", label_column="relatedness_score")
    assert scores["train"][1].label == pytest.approx(1.1) and registry.get_task("pair").labels(scores) == []


@pytest.mark.parametrize("content, options, message", [
    ("a\tb\t0.5\nc\td\t4.2\n" + "".join(f"e\tf\t{i / 7:.3f}\n" for i in range(30)), {}, "look like real-valued scores"),
    ("a\tb\tyes\n", {"target": "regression"}, "the score 'yes' is not a number"),
    ("a\tb\tnan\n", {"target": "regression"}, "not a finite number"),
    ("sentence1\tsentence2\tlabel\nx\ty\tz\n", {"label_column": "gold"}, "label_column='gold' names no column"),
    ("a\tb\tc\td\n", {}, "needs 3 columns"),
    ("sentence1\tsentence2\tlabel\nx\ty\t\n", {}, "line 2: the label (label) is empty"),
])
def test_pair_refuses_bad_input_with_the_option_to_set(tmp_path, content, options, message):
    (tmp_path / "train.tsv").write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _read("pair", tmp_path, **options)


def test_correlations_match_their_definitions():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert list(ranks([10, 20, 20, 5])) == [2, 3.5, 3.5, 1]
    assert pearson(ranks([1, 2, 3]), ranks([1, 4, 9])) == pytest.approx(1.0)  # Spearman: monotone = 1
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0  # constant predictions: no correlation, not NaN


# -- relation -------------------------------------------------------------------------------------


def test_semeval_format_is_read_with_outer_quotes_stripped(tmp_path):
    (tmp_path / "TRAIN_FILE.TXT").write_text(
        '1\t"The <e1>child</e1> was in the <e2>cradle</e2>."\r\nContent-Container(e1,e2)\r\nComment: x\r\n\r\n'
        '2\t""Any <e1>time</e1>," he <e2>said</e2>."\r\nOther\r\nComment:\r\n\r\n')
    (examples,) = _read("relation", tmp_path).values()
    assert examples[1].text == '"Any <e1>time</e1>," he <e2>said</e2>.' and examples[0].label == "Content-Container(e1,e2)"


@pytest.mark.parametrize("content, message", [
    ('1\t"The <e1>child</e1> was in the cradle."\nOther\n\n', "expected each of <e1> </e1> <e2> </e2> exactly once"),
    ('1\t"The </e1>child<e1> <e2>x</e2>"\nOther\n\n', "</e1> comes before <e1>"),
    ("The child was here.\nOther\n\n", "expected '<id><TAB>\"<sentence>\"'"),
    ('1\t"The <e1>child</e1> <e2>x</e2>"\n', "no label line"),
])
def test_relation_refuses_broken_semeval_blocks(tmp_path, content, message):
    (tmp_path / "train.txt").write_text(content)
    with pytest.raises(DataError, match=message):
        _read("relation", tmp_path)


def test_relation_jsonl_spans_become_markers_and_bad_spans_are_named(tmp_path):
    assert mark("Anna met Bob", [9, 12], [0, 4], "x") == "<e2>Anna</e2> met <e1>Bob</e1>"
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "Anna met Bob", "e1": [0, 4], "e2": [3, 7], "label": "x"}) + "\n")
    with pytest.raises(DataError, match="overlap"):
        _read("relation", tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "Anna", "e1": [0, 40], "e2": [0, 1], "label": "x"}) + "\n")
    with pytest.raises(DataError, match=r"e1 must be \[start, end\] character offsets"):
        _read("relation", tmp_path)


def test_official_semeval_score_counts_direction_and_leaves_other_out():
    gold = ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other", "Message-Topic(e1,e2)"]
    predicted = ["Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)", "Message-Topic(e1,e2)", "Message-Topic(e1,e2)"]
    scores = official_scores(gold, predicted, "Other")
    # Cause-Effect: 1 right of 2 said, of 2 true -> P=R=F1=0.5; Message-Topic: 1 of 2 said, of 1 -> F1 2/3
    assert scores["f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores["accuracy"] == 0.5


def test_relation_trains_on_an_8bit_base_and_reloads(tiny_model, tmp_path):
    pytest.importorskip("bitsandbytes")
    from peft_hub import adapt, recipes

    data, _ = recipes.compose(None, {"task.name": "relation", "method.name": "lora", "model.name": str(tiny_model),
                                     "model.quantization": "8bit", "output.dir": str(tmp_path / "run"), "training.epochs": 1})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    assert "8bit" == trained.metrics["quantization"]
    inputs = registry.get_task("relation").sample_inputs()
    assert [p["label"] for p in finished.load_run(trained.directory).predict(inputs)] == [p["label"] for p in trained.predict(inputs)]
    saved = {t["content"] for t in json.loads((trained.directory / "tokenizer" / "tokenizer.json").read_text())["added_tokens"]}
    assert {"<e1>", "</e1>", "<e2>", "</e2>"} <= saved  # the markers are added tokens, saved with the run


# -- qa -------------------------------------------------------------------------------------------


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    examples = [QaExample("1", "q", "c", [("Denver Broncos", 0), ("the Broncos", 0)])]
    assert squad_scores({"1": "Broncos"}, examples) == {"exact_match": 1.0, "f1": 1.0}  # best over gold answers
    assert squad_scores({"1": "Denver"}, examples)["f1"] == pytest.approx(2 / 3)
    assert squad_scores({}, examples) == {"exact_match": 0.0, "f1": 0.0}


@pytest.mark.parametrize("obj, message", [
    ({"question": "q", "context": "abc", "answers": [{"text": "b", "answer_start": 0}]}, "answer 'b' is not at character 0"),
    ({"question": "q", "context": "abc", "answers": []}, "non-empty list"),
    ({"question": "q", "answers": [{"text": "b", "answer_start": 1}]}, "expected string 'question' and 'context'"),
])
def test_qa_refuses_answers_that_are_not_in_their_context(tmp_path, obj, message):
    (tmp_path / "train.jsonl").write_text(json.dumps(obj) + "\n")
    with pytest.raises(DataError, match=message):
        _read("qa", tmp_path)


def test_long_contexts_are_windowed_and_the_answer_found_in_a_later_window(tokenizer):
    task = registry.get_task("qa")
    context = " ".join(["filler"] * 300) + " the answer is paris ."
    example = QaExample("1", "what is it ?", context, [("paris", context.index("paris"))])
    options = task.Options(max_length=64, doc_stride=16)
    features = task.encode([example], tokenizer, [], options)
    assert len(features) > 5 and {f["example_id"] for f in features} == {"1"}
    (last,) = [f for f in features if f["start_positions"] > 0]
    assert tokenizer.decode(last["input_ids"][last["start_positions"] : last["end_positions"] + 1]) == "paris"
    # best-span decoding over the windows: the highest start + end in a context position wins
    logits = np.full((len(features), 64, 2), -5.0)
    logits[features.index(last), last["start_positions"]] = 5.0
    evaluation = Evaluation(logits, None, [], features, [example], options)
    assert task.compute_metrics(evaluation) == {"exact_match": 1.0, "f1": 1.0}


def test_qa_splits_squad_by_article(tmp_path):
    data = {"data": [{"title": f"T{a}", "paragraphs": [{"context": "x y", "qas": [
        {"id": f"{a}-{q}", "question": "q", "answers": [{"text": "y", "answer_start": 2}]} for q in range(2)]}]}
        for a in range(10)]}
    (tmp_path / "dev-v1.1.json").write_text(json.dumps(data))
    splits = _read("qa", tmp_path / "dev-v1.1.json", article_split=[0.6, 0.2, 0.2])
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "validation": 4, "test": 4}
    assert {e.article for e in splits["test"]} == {"T8", "T9"}  # in file order


def test_predict_takes_each_inputs_texts_in_the_tasks_order(tiny_model, tmp_path, cli_runner):
    out = tmp_path / "qa"
    assert cli_runner.invoke(cli, ["adapt", "--task", "qa", "--method", "lora", "--model", str(tiny_model),
                                   "--output", str(out), "--max-steps", "2", "--quiet"]).exit_code == 0
    result = cli_runner.invoke(cli, ["predict", str(out), "where does anna live ?", "anna lives in paris .", "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.stdout)
    assert prediction["question"] == "where does anna live ?" and prediction["answer"] in "anna lives in paris ."
    odd = cli_runner.invoke(cli, ["predict", str(out), "only a question"])
    assert odd.exit_code == 2 and "takes 2 texts per input (question, context); got 1 argument(s)" in odd.output
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"question": "who ?", "context": "tom ."}\nwho ?\ttom .\n{"question": "x"}\n')
    bad = cli_runner.invoke(cli, ["predict", str(out), "--input", str(lines)])
    assert bad.exit_code == 1 and "missing or not text: context" in bad.output


@pytest.mark.real
def test_shipped_datasets_are_read_with_their_published_counts():
    counts = {("pair", "rte", ()): {"train": 2490, "validation": 277},
              ("pair", "stsb", (("target", "regression"),)): {"train": 5749, "validation": 1500, "test": 1379},
              ("relation", "semeval2010_task8", ()): {"train": 8000, "test": 2717}}
    for (task, name, options), expected in counts.items():
        splits = _read(task, shared_data(name), **dict(options))
        assert {k: len(v) for k, v in splits.items()} == expected, name
    sick = _read("pair", shared_data("nli") / "SICK.txt")
    assert {k: len(v) for k, v in sick.items()} == {"train": 4439, "validation": 495, "test": 4906}
    squad = _read("qa", shared_data("squad_v1") / "dev-v1.1.json")
    assert len(squad["train"]) == 10570
