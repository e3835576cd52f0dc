"""The NER task: tag schemes, label alignment, long sentences, metrics, reading real data."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_data
from peft_hub import registry
from peft_hub.data import TaggedSentence
from peft_hub.errors import DataError
from peft_hub.recipes import DataConfig
from peft_hub.tasks import Evaluation

ner_module = pytest.importorskip("peft_hub_plugins.ner")


@pytest.fixture
def task():
    return registry.get_task("ner")


def _sent(tags):
    return TaggedSentence([f"w{i}" for i in range(len(tags))], list(tags), 1)


@pytest.mark.parametrize(
    "tags, scheme, expected",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", ["B-PER", "I-PER", "O", "B-LOC"]),
        (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
        (["B-PER", "E-PER", "S-LOC", "O", "S-ORG"], "BIOES", ["B-PER", "I-PER", "B-LOC", "O", "B-ORG"]),
        (["B-PER", "I-PER", "L-PER", "U-LOC"], "BIOES", ["B-PER", "I-PER", "I-PER", "B-LOC"]),
    ],
)
def test_tag_schemes_convert_to_iob2(tags, scheme, expected):
    sentence = _sent(tags)
    detected, _ = ner_module.to_iob2([sentence], "x")
    assert detected == scheme and sentence.tags == expected


def test_iob2_with_a_bare_i_is_repaired_and_counted():
    sentence = _sent(["B-PER", "O", "I-LOC"])
    scheme, repaired = ner_module.to_iob2([sentence], "x")
    assert (scheme, repaired, sentence.tags) == ("IOB2", 1, ["B-PER", "O", "B-LOC"])


def test_a_tag_that_is_not_an_entity_tag_names_file_and_line():
    with pytest.raises(DataError, match=r"train.txt, line 12: tag 'NNP' is not an entity tag"):
        ner_module.to_iob2([TaggedSentence(["a", "b"], ["O", "NNP"], 11)], "train.txt")


def test_entities_from_tags():
    assert ner_module.entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 6)]


def test_labels_first_subtoken_only(task, tokenizer):
    options = task.Options()
    words = ["Anna", "Schmidt", "joined", "Siemens"]
    sentence = TaggedSentence(words, ["B-PER", "I-PER", "O", "B-ORG"], 1)
    labels = task.labels({"train": [sentence]})
    (feature,) = task.encode([sentence], tokenizer, labels, options)
    enc = tokenizer(words, is_split_into_words=True)
    assert feature["input_ids"] == enc["input_ids"]
    expected, seen = [], set()
    for w in enc.word_ids():
        expected.append(-100 if w is None or w in seen else labels.index(sentence.tags[w]))
        seen.add(w)
    assert feature["labels"] == expected
    assert sum(x != -100 for x in feature["labels"]) == len(words)


def test_long_sentences_are_split_not_truncated(task, tokenizer):
    options = task.Options(max_length=16)
    words = ["anna", "joined", "siemens", "in", "munich"] * 12  # 60 words
    tags = ["B-PER", "O", "B-ORG", "O", "B-LOC"] * 12
    features = task.encode([TaggedSentence(words, tags, 1)], tokenizer, task.labels({"train": [TaggedSentence(words, tags, 1)]}), options)
    assert len(features) > 1
    assert all(len(f["input_ids"]) <= 16 for f in features)
    assert sum(sum(x != -100 for x in f["labels"]) for f in features) == len(words)  # every word labelled once


def test_word_without_subtokens_keeps_its_label(task, tokenizer):
    sentence = TaggedSentence(["anna", "\u200b", "joined"], ["B-PER", "O", "O"], 1)
    (feature,) = task.encode([sentence], tokenizer, ["O", "B-PER", "I-PER"], task.Options())
    assert sum(x != -100 for x in feature["labels"]) == 3


def _log_probs(ids, n_labels, sure=0.9):
    """Tag ids -> log-probabilities giving each id ``sure`` (padding -100 stays -100, as the Trainer pads)."""
    ids = np.asarray(ids)
    rest = np.log((1 - sure) / (n_labels - 1))
    out = np.where(ids[..., None] == np.arange(n_labels), np.log(sure), rest)
    return np.where(ids[..., None] == -100, -100.0, out)


@pytest.mark.parametrize("decoding", ["constrained", "argmax"])
def test_compute_metrics_entity_level(task, decoding):
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = np.array([[-100, 1, 2, 0, 3, -100], [-100, 3, 4, 0, 0, -100]])
    pred = np.array([[0, 1, 2, 0, 0, 0], [0, 3, 0, 0, 1, 0]])
    options = task.Options(decoding=decoding)
    scores = task.compute_metrics(Evaluation(_log_probs(pred, 5), gold, labels, [], [], options))
    # gold: PER(0-2), LOC(3), LOC(1-3); predicted: PER(0-2), LOC(1), PER(4): 1 correct of 3 predicted / 3 gold
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["f1_PER"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 8)


def test_constrained_decoding_never_opens_an_entity_with_i():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rules = ner_module.transitions(labels)
    # word 1 leans to I-PER after an O, word 3 to I-LOC after I-PER: arg-max gives two stray I- tags
    probs = np.array([[0.9, 0.05, 0.03, 0.01, 0.01],
                      [0.3, 0.25, 0.4, 0.03, 0.02],
                      [0.1, 0.1, 0.7, 0.05, 0.05],
                      [0.1, 0.05, 0.35, 0.1, 0.4]])
    log_probs = np.log(probs)
    assert ner_module.decode(log_probs, None) == [0, 2, 2, 4]
    best = ner_module.decode(log_probs, rules)
    assert [labels[i] for i in best] == ["O", "B-PER", "I-PER", "I-PER"]
    # it is the best valid sequence: brute force over every sequence of valid IOB2
    import itertools

    first, follows = rules
    def score(seq):
        return first[seq[0]] + sum(follows[a, b] for a, b in zip(seq, seq[1:])) + sum(log_probs[i, t] for i, t in enumerate(seq))
    assert max(itertools.product(range(5), repeat=4), key=score) == tuple(best)


def test_constrained_decoding_lifts_f1_where_arg_max_breaks_an_entity(task):
    labels = ["O", "B-PER", "I-PER"]
    gold = np.array([[1, 2, 2, 0]])
    probs = np.log(np.array([[[0.2, 0.7, 0.1], [0.55, 0.05, 0.4], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]]]))
    assert task.compute_metrics(Evaluation(probs, gold, labels, [], [], task.Options(decoding="argmax")))["f1"] == 0
    assert task.compute_metrics(Evaluation(probs, gold, labels, [], [], task.Options()))["f1"] == 1


def test_the_majority_guard_scores_ner_log_probabilities(task):
    labels = ["O", "B-PER", "I-PER"]
    gold = np.array([[-100, 1, 2, 0, 0, -100]])
    evaluation = Evaluation(_log_probs([[0, 1, 2, 0, 0, 0]], 3), gold, labels, [], [], task.Options())
    constant = task.constant_predictions(evaluation)
    assert constant.shape == (1, 6, 3)
    assert task.compute_metrics(Evaluation(constant, gold, labels, [], [], task.Options()))["accuracy"] == pytest.approx(0.5)


def test_unseen_dev_types_are_added_with_a_warning(task, caplog):
    splits = {"train": [_sent(["B-PER"])], "validation": [_sent(["B-LOC"])]}
    assert task.labels(splits) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert "never in train" in caplog.text


def test_read_jsonl_and_explicit_files(task, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"tokens": ["Anna", "runs"], "tags": ["S-PER", "O"]}\n')
    splits = task.read_data(DataConfig(path=str(path)), task.Options())
    assert splits["train"][0].tags == ["B-PER", "O"]
    path.write_text('{"tokens": ["Anna"], "tags": ["B-PER", "O"]}\n')
    with pytest.raises(DataError, match="1 tokens but 2 tags"):
        task.read_data(DataConfig(path=str(path)), task.Options())


def test_empty_split_file(task, tmp_path):
    (tmp_path / "train.txt").write_text("a O\n")
    (tmp_path / "dev.txt").write_text("\n\n")
    with pytest.raises(DataError, match="dev.txt: the validation split holds no sentences"):
        task.read_data(DataConfig(path=str(tmp_path)), task.Options())


@pytest.mark.real
def test_reads_ncbi_disease(task):
    splits = task.read_data(DataConfig(path=str(shared_data("NCBI-disease-IOB"))), task.Options())
    assert task.labels(splits) == ["O", "B-Disease", "I-Disease"]
    assert len(splits["test"]) == 940


def test_reads_a_saved_datasets_directory(task, tmp_path):
    import datasets

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    data = {"tokens": [["Anna", "Schmidt", "runs"]], "ner_tags": [[1, 2, 0]]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(data, features=features),
                          "validation": datasets.Dataset.from_dict(data, features=features)}).save_to_disk(tmp_path / "ds")
    splits = task.read_data(DataConfig(path=str(tmp_path / "ds")), task.Options())
    assert splits["validation"][0].tags == ["B-PER", "I-PER", "O"]


def test_a_hub_id_offline_gives_a_clear_error(task, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Cannot load dataset 'someone/no-such-dataset'"):
        task.read_data(DataConfig(path="someone/no-such-dataset"), task.Options())
