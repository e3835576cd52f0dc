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


#: The encoder families of the family matrix (tests/test_families.py): transformers' config class,
#: its size arguments, and whether the family's tokenizer returns token_type_ids.
FAMILIES = {
    "bert": ("BertConfig", {}, True),
    "roberta": ("RobertaConfig", {"type_vocab_size": 1}, False),
    "xlm-roberta": ("XLMRobertaConfig", {"type_vocab_size": 1}, False),
    "electra": ("ElectraConfig", {"embedding_size": 16}, True),
    # as DeBERTa-v3: relative attention with position buckets, no absolute positions, no token types
    "deberta-v2": ("DebertaV2Config", {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 16,
                                       "max_relative_positions": -1, "position_biased_input": False, "type_vocab_size": 0,
                                       "norm_rel_ebd": "layer_norm", "share_att_key": True}, True),
    "distilbert": ("DistilBertConfig", {}, False),
    "albert": ("AlbertConfig", {"embedding_size": 16}, True),
    "mpnet": ("MPNetConfig", {}, False),
    "modernbert": ("ModernBertConfig", {"global_attn_every_n_layers": 1, "local_attention": 16}, False),
    "camembert": ("CamembertConfig", {"type_vocab_size": 1}, False),
    # in no table of peft-hub: adapted by structure
    "mobilebert": ("MobileBertConfig", {"embedding_size": 16, "intra_bottleneck_size": 16, "true_hidden_size": 16,
                                        "num_feedforward_networks": 2}, True),
}


def build_family_model(family: str, directory: Path) -> Path:
    """A tiny random model of ``family`` (2 layers, hidden 32) built from transformers' own config
    class, with the sample-data WordPiece vocabulary (returning token_type_ids as the family's own
    tokenizer does), saved to ``directory``."""
    import transformers
    from transformers import BertTokenizerFast, set_seed

    config_class, extra, token_types = FAMILIES[family]
    set_seed(0)
    names = None if token_types else ["input_ids", "attention_mask"]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(_vocabulary())}, do_lower_case=True,
                                  **({"model_input_names": names} if names else {}))
    tokenizer.save_pretrained(directory)
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in
           (("pad_token_id", "[PAD]"), ("bos_token_id", "[CLS]"), ("eos_token_id", "[SEP]"), ("cls_token_id", "[CLS]"),
            ("sep_token_id", "[SEP]"))}
    size = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 128}
    if family == "distilbert":
        size = {"vocab_size": len(tokenizer), "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128}
    config = getattr(transformers, config_class)(**size, **ids, **extra)
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """``family_model("distilbert")``: the directory of a tiny model of that family (built once)."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_family_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return get


@pytest.fixture
def browser(tmp_path):
    """Debian's headless chromium through selenium (.ci/run installs chromium and chromium-driver)."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
