"""The local hub: add -> list -> show -> export -> import -> predict by name, and every way an
entry, a name or an archive can be wrong (checked before anything is written)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from conftest import SAMPLES
from peft_hub import hub, finished
from peft_hub.cli import cli

TEXT = "EU rejects German call to boycott British lamb ."


def _ok(cli_runner, *args):
    result = cli_runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _fails(cli_runner, *args) -> str:
    result = cli_runner.invoke(cli, list(args))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def _store_is_clean(home):
    adapters = home / "adapters"
    return not adapters.exists() or not any(p.name.startswith(".") for p in adapters.iterdir())


def test_add_list_show_export_import_predict(cli_runner, tiny_runs, hub_home, tmp_path, monkeypatch):
    ner = tiny_runs["ner"]
    assert "Added conll-tiny" in _ok(cli_runner, "hub", "add", str(ner), "--name", "conll-tiny", "--tag", "ner")
    rows = json.loads(_ok(cli_runner, "hub", "list", "--json"))
    assert [(r["name"], r["task"], r["method"], r["tags"]) for r in rows] == [("conll-tiny", "ner", "lora", ["ner"])]
    assert rows[0]["labels"] == len(json.loads((ner / "labels.json").read_text())) and rows[0]["size_mb"] > 0
    assert rows[0]["metric"] == "f1" and isinstance(rows[0]["score"], float)
    assert "conll-tiny  ner" in _ok(cli_runner, "hub", "list")
    card = _ok(cli_runner, "hub", "show", "conll-tiny")
    fingerprint = hub.fingerprint(json.loads((ner / "run.json").read_text())["base_model"])
    assert fingerprint in card and "AutoModelForTokenClassification" in card and "PeftModel.from_pretrained" in card
    assert "B-PER" in card and "peft-hub predict conll-tiny" in card and "## Recipe" in card

    archive = tmp_path / "conll-tiny.tar.gz"
    _ok(cli_runner, "hub", "export", "conll-tiny", str(archive))
    assert "exists. Choose another FILE, or pass --overwrite" in _fails(cli_runner, "hub", "export", "conll-tiny", str(archive))
    _ok(cli_runner, "hub", "export", "conll-tiny", str(archive), "--overwrite")
    monkeypatch.setenv("PEFT_HUB_HOME", str(tmp_path / "elsewhere"))  # a clean hub
    assert "Imported conll-2" in _ok(cli_runner, "hub", "import", str(archive), "--name", "conll-2")
    by_name = _ok(cli_runner, "predict", "conll-2", TEXT, "--json")
    by_dir = _ok(cli_runner, "predict", str(ner), TEXT, "--json")
    assert json.loads(by_name) == json.loads(by_dir)
    assert "conll-2" in _ok(cli_runner, "report", "conll-2", "--png", str(tmp_path / "r.png"))
    _ok(cli_runner, "evaluate", "conll-2", "--data", str(SAMPLES / "ner"))
    assert "Removed conll-2" in _ok(cli_runner, "hub", "rm", "conll-2")
    assert json.loads(_ok(cli_runner, "hub", "list", "--json")) == []


def test_bad_names_and_entries(cli_runner, tiny_runs, hub_home, tmp_path):
    ner = str(tiny_runs["ner"])
    for bad in ("../up", "Upper", "with space", "x" * 65, "", "ends-in-newline\n"):
        assert "not a valid hub name" in _fails(cli_runner, "hub", "add", ner, "--name", bad)
    _ok(cli_runner, "hub", "add", ner, "--name", "one")
    assert "already has an entry 'one'" in _fails(cli_runner, "hub", "add", ner, "--name", "one")
    _ok(cli_runner, "hub", "add", ner, "--name", "one", "--overwrite")
    assert "holds no finished run" in _fails(cli_runner, "hub", "add", str(tmp_path), "--name", "two")
    assert "Unknown hub entry 'onw'. Did you mean 'one'?" in _fails(cli_runner, "hub", "show", "onw")
    assert "Unknown hub entry" in _fails(cli_runner, "hub", "rm", "one", "nope")
    assert (hub_home / "adapters" / "one").is_dir()  # nothing removed when one name is wrong
    assert _store_is_clean(hub_home)


def test_an_entry_on_another_base_is_refused_naming_both(cli_runner, tiny_runs, hub_home):
    _ok(cli_runner, "hub", "add", str(tiny_runs["ner"]), "--name", "moved")
    meta_path = hub_home / "adapters" / "moved" / "hub.json"
    meta = json.loads(meta_path.read_text())
    meta["base_fingerprint"] = "sha256:0000000000000000"
    meta_path.write_text(json.dumps(meta))
    output = _fails(cli_runner, "predict", "moved", TEXT)
    assert "sha256:0000000000000000" in output and hub.fingerprint(meta["base_path"]) in output


def _archive(path, files: dict[str, bytes], manifest: dict | None = None, name: str = "evil", links: dict | None = None):
    """A hand-made archive: ``files`` by path inside it, with a manifest describing them unless given."""
    import hashlib

    if manifest is None:
        manifest = {"format": hub.ARCHIVE_FORMAT, "name": name,
                    "files": {rel.split("/", 1)[1]: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for rel, data in files.items() if rel.startswith(name + "/")}}
    with tarfile.open(path, "w:gz") as archive:
        for rel, data in {"manifest.json": json.dumps(manifest).encode(), **files}.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for rel, target in (links or {}).items():
            info = tarfile.TarInfo(rel)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return str(path)


def test_import_checks_everything_before_writing(cli_runner, tiny_runs, hub_home, tmp_path):
    _ok(cli_runner, "hub", "add", str(tiny_runs["ner"]), "--name", "good")
    good = tmp_path / "good.tar.gz"
    _ok(cli_runner, "hub", "export", "good", str(good))
    _ok(cli_runner, "hub", "rm", "good")
    with tarfile.open(good) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    manifest = json.loads(members.pop("manifest.json"))
    weights = "good/adapter/adapter_model.safetensors"

    damaged = dict(members)
    damaged[weights] = damaged[weights][:-1] + bytes([damaged[weights][-1] ^ 1])
    cases = {
        "sha256": _archive(tmp_path / "a.tgz", damaged, manifest, "good"),
        "unsafe path": _archive(tmp_path / "b.tgz", {"evil/../../escape.json": b"{}"}, {"format": hub.ARCHIVE_FORMAT, "name": "evil",
                                "files": {"../../escape.json": {"size": 2, "sha256": "0" * 64}}}),
        "pickles are refused": _archive(tmp_path / "c.tgz", {"evil/adapter/adapter_model.bin": b"\x80\x04."}),
        "link or device": _archive(tmp_path / "d.tgz", {"evil/run.json": b"{}"}, {"format": hub.ARCHIVE_FORMAT, "name": "evil",
                                   "files": {"run.json": {"size": 2, "sha256": "0" * 64}, "labels.json": {"size": 2, "sha256": "0" * 64}}},
                                   links={"evil/labels.json": "/etc/passwd"}),
        "does not list": _archive(tmp_path / "e.tgz", {**members, "good/extra.json": b"{}"}, manifest, "good"),
        "no manifest.json": str(tmp_path / "f.tgz"),
        "not a readable archive": str(tmp_path / "g.tgz"),
        "truncated or damaged": str(tmp_path / "t.tgz"),
        "lacks": _archive(tmp_path / "h.tgz", {k: v for k, v in members.items() if k != weights}, manifest, "good"),
        "not a peft-hub hub entry": _archive(tmp_path / "i.tgz", {"evil/notes.md": b"hello"}),
    }
    with tarfile.open(cases["no manifest.json"], "w:gz") as archive:
        archive.add(tiny_runs["ner"] / "labels.json", arcname="x/labels.json")
    (tmp_path / "g.tgz").write_text("not an archive")
    (tmp_path / "t.tgz").write_bytes(good.read_bytes()[:200])
    for expected, path in cases.items():
        assert expected in _fails(cli_runner, "hub", "import", path), expected
        assert hub.names() == [] and _store_is_clean(hub_home), expected
    assert not (tmp_path / "escape.json").exists()
    _ok(cli_runner, "hub", "import", str(good))  # the untouched archive imports
    assert hub.names() == ["good"]


def test_push_and_pull_offline_say_so_and_write_nothing(cli_runner, tiny_runs, hub_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _ok(cli_runner, "hub", "add", str(tiny_runs["classify"]), "--name", "sst")
    for args in (("push", "sst", "me/sst"), ("pull", "me/sst", "--name", "sst2")):
        assert "the Hugging Face Hub is not reachable" in _fails(cli_runner, "hub", *args)
    assert hub.names() == ["sst"] and _store_is_clean(hub_home)


def test_a_damaged_entry_is_named(cli_runner, tiny_runs, hub_home, tmp_path):
    _ok(cli_runner, "hub", "add", str(tiny_runs["ner"]), "--name", "bad")
    weights = hub_home / "adapters" / "bad" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert "is damaged" in _fails(cli_runner, "hub", "export", "bad", str(tmp_path / "x.tgz"))
    assert "is damaged" in _fails(cli_runner, "predict", "bad", TEXT)
    with pytest.raises(Exception, match="damaged"):
        finished.load_run("bad")
