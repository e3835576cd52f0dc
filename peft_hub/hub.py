"""The local hub: finished ``adapt`` runs kept under a name, each with a model card.

    peft-hub hub add runs/x --name conll-lora --tag ner
    peft-hub hub list            peft-hub hub show conll-lora
    peft-hub hub export conll-lora conll.tar.gz    peft-hub hub import conll.tar.gz
    peft-hub predict conll-lora "EU rejects German call ."   # every RUN_DIR argument takes a name

Layout (``$PEFT_HUB_HOME``, default ``~/.cache/peft-hub``)::

    adapters/<name>/            a copy of the run directory (adapter, tokenizer, labels, recipe, metrics)
    adapters/<name>/README.md   the model card
    adapters/<name>/hub.json    name, tags, when it was added, the base model's fingerprint, sha256 of every file

An entry is written into a temporary folder beside its final place and renamed into it, so a
failed ``add``/``import``/``pull`` never leaves half an entry. An archive (``export``) holds the
entry and a manifest of every file's size and sha256; ``import`` checks all of it (paths, file
kinds, sizes, digests) before anything is written into the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PeftHubError
from .locations import (  # noqa: F401  (part of the hub's interface)
    NAME_RE, NAME_RULE, HubError, check_name, entry_dir, fingerprint, home, locate, read_json,
    trained_fingerprint,
)
from .rundir import sha256_file

#: What an entry keeps of a run (logs and plots stay with the run).
KEPT = ("adapter", "tokenizer", "labels.json", "recipe.yaml", "metrics.json", "run.json")
#: File kinds an archive or a pulled entry may hold: weights only as safetensors, no pickles.
SAFE_SUFFIXES = {".safetensors", ".json", ".yaml", ".yml", ".md", ".txt", ".model"}
ARCHIVE_FORMAT = "peft-hub-adapter/1"
MAX_ARCHIVE_FILES = 1000
MAX_ARCHIVE_BYTES = 4 << 30


def _files(directory: Path, but: str | None = "hub.json") -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under ``directory`` but ``but``, by relative posix path."""
    return {p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(directory.rglob("*")) if p.is_file() and p.relative_to(directory).as_posix() != but}


def refuse_taken(name: str, overwrite: bool) -> None:
    if entry_dir(name).exists() and not overwrite:
        raise HubError(f"The hub already has an entry {name!r}. Choose another name (--name, --output), or pass --overwrite.")


# -- entries ---------------------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    path: Path
    meta: dict
    info: dict
    metrics: dict

    def row(self) -> dict[str, Any]:
        metric = self.metrics.get("primary_metric", "f1")
        score = (self.metrics.get("test") or self.metrics.get("dev") or {}).get(metric)
        return {"name": self.name, "task": self.info.get("task"), "method": self.info.get("method"),
                "base_model": self.meta.get("base_model"), "labels": len(self.meta.get("labels", [])),
                "metric": metric, "score": score, "size_mb": round(self.meta.get("size", 0) / 2**20, 2),
                "tags": self.meta.get("tags", []), "added": self.meta.get("added")}


def get(name: str) -> Entry:
    path = entry_dir(name)
    if not (path / "hub.json").exists():
        known = names()
        from .errors import UnknownNameError

        raise UnknownNameError("hub entry", name, known, f"Add a run with: peft-hub hub add RUN_DIR --name {name}")
    return Entry(name, path, read_json(path / "hub.json"), read_json(path / "run.json"),
                 read_json(path / "metrics.json") if (path / "metrics.json").exists() else {})


def names() -> list[str]:
    root = home() / "adapters"
    return sorted(p.name for p in root.iterdir() if (p / "hub.json").exists()) if root.is_dir() else []


def entries() -> list[Entry]:
    return [get(name) for name in names()]


def _install(staged: Path, name: str, overwrite: bool) -> Path:
    """Rename a complete staged entry into place (the only moment the store changes)."""
    final = entry_dir(name)
    if final.exists():
        refuse_taken(name, overwrite)  # (another process may have added it meanwhile)
        trash = final.with_name(f".{name}.old-{os.getpid()}")
        final.rename(trash)
        staged.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staged.rename(final)
    return final


@contextlib.contextmanager
def _new_entry(name: str, overwrite: bool) -> Iterator[Path]:
    """A staging folder inside the hub to write an entry into: renamed into place when the block
    ends, removed when it raises (nothing half-written is ever an entry)."""
    root = home() / "adapters"
    try:
        root.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    except OSError as exc:
        raise HubError(f"Cannot write to the hub at {home()}: {exc.strerror or exc}. Set PEFT_HUB_HOME to a writable folder.") from None
    try:
        yield staged
        _install(staged, name, overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def add(run_dir: str | Path, name: str, tags: tuple[str, ...] = (), overwrite: bool = False) -> Entry:
    """Copy a finished ``adapt`` run into the hub under ``name``, with its card."""
    from . import finished

    check_name(name)
    for tag in tags:
        if not NAME_RE.match(tag):
            raise HubError(f"Tag {tag[:80]!r} is not valid ({NAME_RULE}).")
    run = finished.open_run(Path(run_dir))  # a finished adapt run with intact weights, or a clear error
    refuse_taken(name, overwrite)
    base = run.base
    with _new_entry(name, overwrite) as staged:
        for item in KEPT:
            source = run.directory / item
            if source.is_dir():
                shutil.copytree(source, staged / item)
            elif source.is_file():
                shutil.copy2(source, staged / item)
        meta = {"name": name, "tags": sorted(set(tags)), "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": str(run.directory.resolve()), "base_model": run.resolved.recipe.model.name, "base_path": base,
                "base_fingerprint": fingerprint(base), "labels": run.labels}
        (staged / "README.md").write_text(card(Entry(name, staged, meta, run.info, read_json(staged / "metrics.json"))), encoding="utf-8")
        meta["files"] = _files(staged)
        meta["size"] = sum(f["size"] for f in meta["files"].values())
        (staged / "hub.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return get(name)


def remove(name: str) -> None:
    entry = get(name)
    trash = entry.path.with_name(f".{name}.rm-{os.getpid()}")
    entry.path.rename(trash)
    shutil.rmtree(trash)


# -- the card ----------------------------------------------------------------------------------

def card(entry: Entry) -> str:
    """A model card (README.md) from what the run recorded."""
    from . import models, recipes, registry

    info, meta, metrics = entry.info, entry.meta, entry.metrics
    recipe_text = (entry.path / "recipe.yaml").read_text(encoding="utf-8")
    metric = metrics.get("primary_metric", "f1")
    noise = {"epoch", "loss", "runtime", "samples_per_second", "steps_per_second"}
    rows = [f"| {split} | " + " | ".join(f"{k} {v:.4f}" for k, v in sorted(scores.items()) if isinstance(v, float) and k not in noise) + " |"
            for split, scores in ((s, metrics.get(s)) for s in ("dev", "test")) if isinstance(scores, dict)]
    labels = meta.get("labels", [])
    try:  # the task says how plain transformers loads its model
        task = registry.get_task(info.get("task", ""))
        auto, arguments, encoder_decoder = task.auto_class, task.loading_arguments(labels), task.encoder_decoder
    except PeftHubError:
        auto, arguments, encoder_decoder = "AutoModel", f"num_labels={len(labels) or 1}", False
    label_map = ", ".join(f"{i}: {label}" for i, label in enumerate(labels[:200])) + (" ..." if len(labels) > 200 else "")
    trained = metrics.get("trainable_percent")
    where = entry_dir(entry.name)
    plain = f"""With plain transformers and peft (the task head is saved with the adapter):

```python
from transformers import AutoTokenizer, {auto}
from peft import PeftModel

entry = "{where}"
tokenizer = AutoTokenizer.from_pretrained(entry + "/tokenizer")
base = {auto}.from_pretrained("{meta.get('base_path')}", {arguments})  # the `{meta.get('base_model')}` base
base.resize_token_embeddings(len(tokenizer))  # a task may add marker tokens
model = PeftModel.from_pretrained(base, entry + "/adapter").eval()
```"""
    if encoder_decoder:  # built by the task from an encoder (fresh parts in the adapter): merged, it is a plain model
        own = (entry.path / "tokenizer" / models.TARGET_TOKENIZER).is_dir()  # the outputs have a tokenizer of their own
        target = f'AutoTokenizer.from_pretrained("DIR/{models.TARGET_TOKENIZER}")  # the outputs\' own vocabulary' if own else "tokenizer"
        plain = f"""With plain transformers, after `peft-hub merge {entry.name} --output DIR`:

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("DIR")
target = {target}
model = AutoModelForSeq2SeqLM.from_pretrained("DIR").eval()
ids = model.generate(**tokenizer(["your text"], return_tensors="pt"), num_beams=4, max_new_tokens=64)
print(target.batch_decode(ids, skip_special_tokens=True))
```"""
    data = (recipes.safe_yaml(recipe_text) or {}).get("data") or {}
    data_lines = [f"- {key}: `{value}`" for key, value in data.items() if value not in (None, "auto", "utf-8")] \
        if isinstance(data, dict) else []
    return f"""---
library_name: peft
base_model: {meta.get('base_model')}
tags: [peft-hub, {info.get('task')}, {info.get('method')}{''.join(', ' + t for t in meta.get('tags', []))}]
---

# {entry.name}

A `{info.get('task')}` adapter trained with `{info.get('method')}` by peft-hub {info.get('peft_hub_version', '')}
on the base model `{meta.get('base_model')}` (fingerprint `{meta.get('base_fingerprint')}`).
{f'{trained:.3f}% of the parameters trained.' if isinstance(trained, (int, float)) else ''}

## Scores (primary metric: {metric})

{chr(10).join(rows) or '(no scores recorded)'}

## Data

{chr(10).join(data_lines) or "the task's built-in sample"}

## Labels

{label_map or '(none: a regression or a generation task)'}

## Use it

```bash
peft-hub predict {entry.name} "your text"
peft-hub serve {entry.name}
```

{plain}

## Recipe

```yaml
{recipe_text.strip()}
```
"""


# -- archives ------------------------------------------------------------------------------------


def export(name: str, file: str | Path, overwrite: bool = False) -> Path:
    """One ``.tar.gz`` with the entry and a manifest (size and sha256 of every file); an existing
    file is replaced only with ``overwrite``."""
    entry = get(name)
    verify(entry.path, entry.meta.get("files", {}))
    file = Path(file)
    if file.is_dir():
        raise HubError(f"{file} is a directory; give the archive's file name, e.g. {file / (name + '.tar.gz')}.")
    if file.exists() and not overwrite:
        raise HubError(f"{file} exists. Choose another FILE, or pass --overwrite to replace it.")
    manifest = {"format": ARCHIVE_FORMAT, "name": name, "files": _files(entry.path, but=None)}
    tmp = file.with_name(file.name + ".tmp")
    try:
        with tarfile.open(tmp, "w:gz") as archive:
            data = json.dumps(manifest, indent=2).encode()
            member = tarfile.TarInfo("manifest.json")
            member.size, member.mtime = len(data), int(time.time())
            archive.addfile(member, io.BytesIO(data))
            for rel in manifest["files"]:
                archive.add(entry.path / rel, arcname=f"{name}/{rel}", recursive=False)
        os.replace(tmp, file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HubError(f"Cannot write {file}: {exc.strerror or exc}. Choose another FILE.") from None
    return file


def verify(directory: Path, files: dict[str, dict[str, Any]]) -> None:
    """Every recorded file present with its size and sha256."""
    for rel, want in files.items():
        path = directory / rel
        if not path.is_file():
            raise HubError(f"{path} is missing. Remove the entry (peft-hub hub rm) and add it again.")
        if path.stat().st_size != want["size"] or sha256_file(path) != want["sha256"]:
            raise HubError(f"{path} is damaged: its size or sha256 is not the one recorded. Remove the entry and add it again.")


def _safe_member(rel: str, where: str) -> None:
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise HubError(f"{where} holds an unsafe path {rel[:80]!r} (absolute, '..' or empty parts). Nothing was imported.")
    if Path(rel).suffix not in SAFE_SUFFIXES:
        raise HubError(f"{where} holds {rel[:80]!r}, a kind of file an entry never has (weights come only as "
                       f"safetensors; pickles are refused). Nothing was imported.")


def import_(file: str | Path, name: str | None = None, overwrite: bool = False) -> Entry:
    """Check an archive written by :func:`export` completely, then add its entry."""
    file = Path(file)
    where = str(file)
    try:
        archive = tarfile.open(file, "r:*")
    except FileNotFoundError:
        raise HubError(f"{file} does not exist. Give an archive written by `peft-hub hub export`.") from None
    except (tarfile.TarError, OSError) as exc:
        raise HubError(f"{file} is not a readable archive ({type(exc).__name__}: {str(exc)[:100]}). "
                       "Give an archive written by `peft-hub hub export`.") from None
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise HubError(f"{file} is truncated or damaged ({type(exc).__name__}). Export it again.") from None
        if len(members) > MAX_ARCHIVE_FILES:
            raise HubError(f"{file} holds {len(members):,} files, more than an entry ever has ({MAX_ARCHIVE_FILES}). Nothing was imported.")
        by_name = {m.name: m for m in members}
        if "manifest.json" not in by_name:
            raise HubError(f"{file} has no manifest.json: it was not written by `peft-hub hub export`.")
        manifest = _read_manifest(archive, by_name["manifest.json"], where)
        old = manifest["name"]
        files = manifest["files"]
        for rel, want in files.items():
            _safe_member(rel, where)
            if not (isinstance(want, dict) and isinstance(want.get("size"), int) and isinstance(want.get("sha256"), str)):
                raise HubError(f"{where}: the manifest entry for {rel[:80]!r} is damaged. Export it again.")
        if sum(f["size"] for f in files.values()) > MAX_ARCHIVE_BYTES:
            raise HubError(f"{where} declares more than {MAX_ARCHIVE_BYTES >> 30} GiB of files. Nothing was imported.")
        expected = {f"{old}/{rel}" for rel in files} | {"manifest.json"}
        for member in members:
            if member.name not in expected:
                if member.isdir() and any(e.startswith(member.name.rstrip("/") + "/") for e in expected):
                    continue
                raise HubError(f"{where} holds {member.name[:80]!r}, which its manifest does not list. Nothing was imported.")
            if not member.isfile():
                raise HubError(f"{where}: {member.name[:80]!r} is a link or device, not a plain file. Nothing was imported.")
        missing = expected - set(by_name)
        if missing:
            raise HubError(f"{where} lacks {sorted(missing)[0][:80]!r}, which its manifest lists. Export it again.")
        name = check_name(name or old)
        refuse_taken(name, overwrite)
        with _new_entry(name, overwrite) as staged:
            for rel, want in files.items():
                member = by_name[f"{old}/{rel}"]
                if member.size != want["size"]:
                    raise HubError(f"{where}: {rel} has {member.size:,} bytes, the manifest says {want['size']:,}. Nothing was imported.")
                target = staged / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.extractfile(member) as source, target.open("wb") as sink:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
                        sink.write(block)
                if digest.hexdigest() != want["sha256"]:
                    raise HubError(f"{where}: the sha256 of {rel} is not the one in its manifest (changed or damaged). Nothing was imported.")
            _finish_import(staged, name)
    return get(name)


def _read_manifest(archive: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> dict:
    if not member.isfile() or member.size > 16 << 20:
        raise HubError(f"{where}: manifest.json is not a plain file of sensible size. Nothing was imported.")
    try:
        manifest = json.loads(archive.extractfile(member).read())
    except (ValueError, OSError, tarfile.TarError) as exc:
        raise HubError(f"{where}: manifest.json is damaged ({type(exc).__name__}). Export it again.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT or not isinstance(manifest.get("files"), dict):
        raise HubError(f"{where}: manifest.json is not a {ARCHIVE_FORMAT} manifest. Give an archive written by `peft-hub hub export`.")
    check_name(str(manifest.get("name")))
    return manifest


def _finish_import(staged: Path, name: str) -> None:
    """An imported or pulled entry: a finished run with its hub.json, renamed if asked."""
    for needed in ("run.json", "hub.json", "labels.json", "recipe.yaml"):
        if not (staged / needed).is_file():
            raise HubError(f"The entry lacks {needed}: it is not a peft-hub hub entry. Nothing was imported.")
    meta = read_json(staged / "hub.json")
    meta["name"] = name
    (staged / "hub.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


# -- the Hugging Face Hub --------------------------------------------------------------------------


def _offline_error(action: str, exc: Exception | None = None) -> HubError:
    why = f" ({type(exc).__name__}: {str(exc)[:120]})" if exc else " (HF_HUB_OFFLINE is set)"
    return HubError(f"Cannot {action}: the Hugging Face Hub is not reachable{why}. Nothing was written. "
                    "Retry with a network (and HF_TOKEN for a private or new repository), or share the entry "
                    "as a file with `peft-hub hub export`.")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def push(name: str, repo_id: str, private: bool = False) -> str:
    """Upload an entry (its card as the repository's README) to the Hugging Face Hub."""
    entry = get(name)
    verify(entry.path, entry.meta.get("files", {}))
    if _offline():
        raise _offline_error(f"push {name} to {repo_id}")
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(entry.path), commit_message=f"peft-hub: {name}")
    except OSError as exc:  # requests' and httpx's connection errors are OSErrors
        raise _offline_error(f"push {name} to {repo_id}", exc) from None
    return f"https://huggingface.co/{repo_id}"


def pull(repo_id: str, name: str | None = None, overwrite: bool = False) -> Entry:
    """Download an entry pushed by :func:`push`, checked like an imported archive."""
    name = check_name(name or repo_id.rsplit("/", 1)[-1].lower())
    refuse_taken(name, overwrite)
    if _offline():
        raise _offline_error(f"pull {repo_id}")
    from huggingface_hub import snapshot_download

    with _new_entry(name, overwrite) as staged:
        try:
            snapshot_download(repo_id, local_dir=str(staged), allow_patterns=[f"*{s}" for s in SAFE_SUFFIXES])
        except OSError as exc:
            raise _offline_error(f"pull {repo_id}", exc) from None
        shutil.rmtree(staged / ".cache", ignore_errors=True)
        meta = read_json(staged / "hub.json") if (staged / "hub.json").exists() else {}
        for rel in (p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()):
            _safe_member(rel, repo_id)
        verify(staged, meta.get("files", {}))
        _finish_import(staged, name)
    return get(name)
