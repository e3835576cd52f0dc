"""Shared fixtures: a tiny BERT built on the fly (no download), paths to the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _no_hub_of_the_user(tmp_path_factory):
    """Tests never read or write the user's own hub (~/.cache/peft-hub)."""
    os.environ["PEFT_HUB_HOME"] = str(tmp_path_factory.mktemp("hub-home"))

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "plugins" / "samples"


def shared_data(name: str) -> Path:
    """A dataset folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (../shared/data beside the repository)")
    return path


def _corpus() -> list[str]:
    """Every line of the built-in sample data (all tasks)."""
    return [line for path in sorted(SAMPLES.rglob("*")) if path.is_file()
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _vocabulary(size: int = 600) -> list[str]:
    """A WordPiece vocabulary from the sample corpus, the same on every run: special tokens, every
    character (alone and as a ``##`` continuation), then the most frequent words (ties by spelling).
    (The tokenizers library's WordPiece trainer breaks ties in hash order, which changes between
    processes: the tiny model's tokens, and so its training, would differ from run to run.)"""
    import collections
    import re

    words = collections.Counter(w for line in _corpus() for w in re.findall(r"\w+|[^\w\s]", line.lower()))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    ranked = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
    return vocab + ranked[: max(0, size - len(vocab))]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with a WordPiece vocabulary built from the sample data."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, set_seed

    set_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(_vocabulary())}, do_lower_case=True)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture
def tokenizer(tiny_model):
    """The tiny model's tokenizer, loaded as runs load it."""
    from peft_hub.models import load_tokenizer

    return load_tokenizer(str(tiny_model))


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


def train_tiny(tiny_model: Path, out: Path, task: str, method: str = "lora", **overrides):
    """A finished run of ``task`` on the built-in sample, trained in this process."""
    from peft_hub import adapt, recipes

    data, source = recipes.compose(None, {"task.name": task, "method.name": method, "model.name": str(tiny_model),
                                          "output.dir": str(out), "training.epochs": 2, **overrides})
    return adapt.run(recipes.validate(data, source), quiet=True, echo=lambda m: None)


@pytest.fixture(scope="session")
def tiny_runs(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """Finished LoRA runs of the tiny model: ``ner`` and ``classify`` (shared by the hub and serve tests)."""
    root = tmp_path_factory.mktemp("tiny-runs")
    return {task: train_tiny(tiny_model, root / task, task).directory for task in ("ner", "classify")}


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """An empty hub for this test (PEFT_HUB_HOME)."""
    home = tmp_path / "hub"
    monkeypatch.setenv("PEFT_HUB_HOME", str(home))
    return home
