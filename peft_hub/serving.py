"""Many adapters on one base model in memory, with requests for *different* adapters run in one
forward pass (the engine behind ``peft-hub serve``; the HTTP layer is :mod:`peft_hub.server`).

How a mixed batch runs, with no task-specific code:

* one bare encoder (``AutoModel`` of the base) holds every loaded adapter's layers, through peft;
  a method whose ``mixed_batches`` is true (LoRA) takes a per-row ``adapter_names`` list, so rows
  of different adapters share one forward pass;
* each adapter keeps its own task model (its head) with the encoder replaced by a stand-in that
  returns that adapter's rows of the shared forward pass;
* each group of requests for one adapter runs its task's own ``predict`` in a thread: whenever a
  group's ``predict`` calls its model, the call waits until every group has called (or finished),
  then one encoder pass serves them all (:class:`MixedRound`) and each head decodes its rows.

Adapters load on first use and the least recently used are evicted beyond ``max_adapters`` or
``max_memory_mb``, never one that the pass being run needs (a pass needing more adapters than that
is split). Failures stay with whoever caused them:

* an adapter is loaded and checked completely (its files, its head against its labels, its config
  against its weights, one trial prediction) before it joins a pass; one that fails is marked
  broken, with the reason in ``describe()``, and fails its own requests until its files change;
* a shared pass that fails is run again one adapter at a time, and an adapter's group that fails is
  run again one request at a time, so that only the request at fault gets the error;
* a hub entry removed while serving stops being served; with every hub entry served, new ones are
  picked up (:meth:`AdapterPool.add` and :meth:`AdapterPool.remove` do the same on demand).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PeftHubError, first_line
from .tasks import build_model

log = logging.getLogger("peft_hub.serve")
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ServeError(PeftHubError):
    """A request or adapter the server cannot serve; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Adapter:
    """A loaded adapter: its head model (encoder replaced by a stand-in), tokenizer and task; or,
    for a task whose model is an encoder-decoder (generation), a whole model of its own
    (``stand_in`` None): it generates in one pass per adapter, outside the shared encoder pass."""

    name: str
    task: Any
    options: Any
    labels: list[str]
    tokenizer: Any
    head_model: Any
    stand_in: Any
    size_bytes: int


def _stand_in_class():
    import torch

    class EncoderStandIn(torch.nn.Module):
        """Takes the encoder's place in a task model: returns the outputs computed for these rows."""

        def __init__(self):
            super().__init__()
            self.outputs = None

        def forward(self, *args, **kwargs):
            return self.outputs

    return EncoderStandIn


class MixedRound:
    """One micro-batch: groups (one per adapter) each run their task's ``predict`` in a thread;
    their model calls meet here and run as one encoder pass (or one pass per group with
    ``mixed=False``: peft's ``set_adapter`` per group, the baseline)."""

    def __init__(self, pool: AdapterPool, groups: int, mixed: bool):
        self.pool, self.active, self.mixed = pool, groups, mixed
        self.pending: dict[str, dict] = {}
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.cond = threading.Condition()

    def call(self, name: str, batch: dict) -> Any:
        with self.cond:
            self.pending[name] = batch
            if not self.mixed or len(self.pending) == self.active:
                self._run()
            while name not in self.results and name not in self.errors:
                self.cond.wait()
            if name in self.errors:
                raise self.errors.pop(name)
            return self.results.pop(name)

    def leave(self) -> None:
        with self.cond:
            self.active -= 1
            if self.pending and len(self.pending) >= self.active:
                self._run()

    def _run(self) -> None:
        pending, self.pending = self.pending, {}
        if self.mixed and len(pending) > 1:
            try:
                self.results.update(self.pool.encode(pending))
                self.cond.notify_all()
                return
            except Exception:  # one group's rows may be at fault: each group again on its own
                log.warning("a shared pass over %s failed; running each adapter's rows alone", ", ".join(pending))
        for name, batch in pending.items():
            try:
                self.results.update(self.pool.encode({name: batch}, switch=True))
            except Exception as exc:  # this group fails with it, none hangs
                self.errors[name] = exc
        self.cond.notify_all()


class _GroupModel:
    """What a task's ``predict`` gets as its model: looks like one (parameters, eval, a call),
    and runs its batches through the round's shared encoder pass, then this adapter's head."""

    def __init__(self, adapter: Adapter, round_: MixedRound, device_param: Any):
        self.adapter, self.round, self.device_param = adapter, round_, device_param

    def parameters(self):
        yield self.device_param

    def _as_is(self):
        return self

    eval = _as_is  # models.model_outputs switches its model to eval mode: the heads already are

    def __call__(self, **batch):
        self.adapter.stand_in.outputs = self.round.call(self.adapter.name, batch)
        try:
            return self.adapter.head_model(**batch)
        finally:
            self.adapter.stand_in.outputs = None


class AdapterPool:
    """The adapters a server may serve (by name), the base model, and the loaded adapters."""

    def __init__(self, sources: dict[str, Path], base: str | None = None, max_adapters: int = 64,
                 max_memory_mb: float | None = None, mixed: bool = True, follow_hub: bool = False):
        if not sources and not follow_hub:
            raise ServeError("Nothing to serve: give hub names or run directories (peft-hub hub list).")
        self.sources, self.max_adapters, self.max_memory_mb, self.mixed = dict(sources), max_adapters, max_memory_mb, mixed
        #: serving every hub entry: entries added to the hub later are found on first use
        self.follow_hub = follow_hub
        self.loaded: OrderedDict[str, Adapter] = OrderedDict()
        #: adapters that failed to load: name -> (the reason, the files' state it failed with)
        self.broken: dict[str, tuple[str, tuple]] = {}
        self.evictions = 0
        self.lock = threading.RLock()
        self.base_path, self.fingerprint = self._pick_base(base)
        self.peft = None  # the shared encoder with every loaded adapter, made with the first one
        self.encoder = None
        self.base_keys: set[str] = set()
        self.base_layers: set[str] = set()
        self._described: dict[str, dict] = {}

    # -- what can be served --------------------------------------------------------------------

    def _pick_base(self, base: str | None) -> tuple[str, str]:
        from . import finished, hub, models

        if base:
            path = models.resolve(base)
        elif self.sources:
            path = finished.open_run(next(iter(self.sources.values()))).base
        else:
            raise ServeError("The hub is empty: add adapters (peft-hub hub add), or give --model to serve the ones added later.")
        return path, hub.fingerprint(path)

    def describe(self) -> list[dict]:
        """Each adapter: name, task, method, labels, input fields, how the page shows its predictions
        (the task's ``display``), whether it is loaded, and why it is broken if it is. What the
        run files say is read once per adapter."""
        from . import registry, rundir

        for name, path in list(self.sources.items()):
            if name not in self._described:
                try:
                    info = rundir.read_run_file(path, "run.json", json.loads)
                    labels = rundir.read_run_file(path, "labels.json", json.loads)
                    task = registry.get_task(info.get("task", ""))
                    fields, display = list(task.input_fields), task.display
                except (PeftHubError, AttributeError):  # a damaged adapter is listed; using it says what is wrong
                    info, labels, fields, display = {}, [], ["text"], "json"
                self._described[name] = {"name": name, "task": info.get("task"), "method": info.get("method"),
                                         "labels": labels if isinstance(labels, list) else [], "input_fields": fields,
                                         "display": display}
        return [{**self._described[name], "loaded": name in self.loaded,
                 **({"broken": self.broken[name][0]} if name in self.broken else {})} for name in list(self.sources)]

    def add(self, name: str, directory: Path) -> Adapter:
        """Serve one more adapter (a hub entry or run directory), loaded and checked now."""
        with self.lock:
            self.remove(name)
            self.sources[name] = directory
            try:
                return self.adapter(name)
            except ServeError:
                self.sources.pop(name, None)
                raise

    def remove(self, name: str) -> None:
        """Stop serving ``name`` and free what it holds (nothing if it is not served)."""
        with self.lock:
            self.sources.pop(name, None)
            self.broken.pop(name, None)
            self._described.pop(name, None)
            if self.loaded.pop(name, None) is not None:
                self._drop_from_encoder(name)
                log.info("unloaded adapter %s", name)

    def _source(self, name: str) -> Path:
        """The directory of a served adapter: gone from the hub -> no longer served; new in the
        hub (when following it) -> served from now on."""
        from . import hub

        if name not in self.sources and self.follow_hub and hub.NAME_RE.match(name) and name in hub.names():
            self.sources[name] = hub.entry_dir(name)
            log.info("serving adapter %s, added to the hub", name)
        if name not in self.sources:
            raise ServeError(f"Unknown adapter {name[:80]!r}. This server serves: {', '.join(sorted(self.sources)[:50])}.", 404)
        directory = self.sources[name]
        if not (directory / "run.json").exists():
            self.remove(name)
            raise ServeError(f"Adapter {name!r} was removed ({directory} holds no run any more); it is no longer served.", 404)
        return directory

    # -- loading and evicting ---------------------------------------------------------------------

    def adapter(self, name: str) -> Adapter:
        """A loaded, checked adapter (loaded now if needed); it may take the pool past its limits
        until :meth:`make_room` runs after the pass."""
        with self.lock:
            directory = self._source(name)
            if name in self.loaded:
                self.loaded.move_to_end(name)
                return self.loaded[name]
            state = _files_state(directory)
            if name in self.broken and self.broken[name][1] == state:
                raise ServeError(self.broken[name][0], 500)
            try:
                adapter = self._load(name, directory)
            except ServeError as exc:
                if exc.status >= 500 or exc.status == 422:  # it, not the request, is at fault: not retried until it changes
                    self.broken[name] = (str(exc), state)
                    log.error("adapter %s is not served: %s", name, exc)
                raise
            self.broken.pop(name, None)
            return adapter

    def _load(self, name: str, directory: Path) -> Adapter:
        started = time.perf_counter()
        try:
            adapter = self._build(name, directory)
        except ServeError:
            self._drop_from_encoder(name)
            raise
        except Exception as exc:  # anything else its files make the libraries raise: it alone is broken
            self._drop_from_encoder(name)
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise ServeError(f"Adapter {name} is broken and not served ({type(exc).__name__}: {reason}). "
                             "Fix or re-add its hub entry.", 500) from None
        self.loaded[name] = adapter
        self._try(adapter)
        log.info("loaded adapter %s (%s, %.1f MiB) in %.2f s", name, adapter.task.name, adapter.size_bytes / 2**20,
                 time.perf_counter() - started)
        return adapter

    def _build(self, name: str, directory: Path) -> Adapter:
        from safetensors.torch import load_file

        from . import finished, hub, models

        models.quiet_libraries()
        try:
            run = finished.open_run(directory)
        except PeftHubError as exc:
            raise ServeError(f"Adapter {name} cannot be loaded: {exc}", 500) from None
        labels, resolved, method = run.labels, run.resolved, run.resolved.method
        refusal = method.refusal("mixed_batches", run.resolved.method_options)
        if refusal and not resolved.task.encoder_decoder:
            raise ServeError(f"{name} is a {method.name!r} run: serve shares one base model between adapters of "
                             f"methods that batch per request row, and {refusal}. Serve it with "
                             f"`peft-hub predict {name}`, or merge it into a model (peft-hub merge).", 422)
        found = hub.trained_fingerprint(run)
        if found != self.fingerprint:
            raise ServeError(f"{name} was trained on a base model with fingerprint {found}; this server holds "
                             f"{self.base_path} ({self.fingerprint}). Serve it from a server of its own base.", 422)
        if resolved.task.encoder_decoder:  # a decoder runs per generated token: a model of its own
            try:
                own = finished.load_run(directory)
            except PeftHubError as exc:
                raise ServeError(f"Adapter {name} cannot be loaded: {exc}", 500) from None
            size = sum(p.numel() * p.element_size() for p in own.model.parameters())
            return Adapter(name, resolved.task, resolved.task_options, labels, own.tokenizer, own.model, None, size)
        tokenizer = models.load_tokenizer(str(directory / "tokenizer"))
        state = load_file(str(directory / "adapter" / "adapter_model.safetensors"))
        head_model = build_model(resolved.task, self.base_path, labels, resolved.task_options, tokenizer)
        prefix = head_model.base_model_prefix
        encoder = getattr(head_model, prefix)
        if len(tokenizer) != encoder.get_input_embeddings().weight.shape[0]:
            raise ServeError(f"{name} changed the base model's vocabulary ({len(tokenizer)} tokens): it cannot share "
                             f"the base. Serve it with `peft-hub predict {name}`.", 422)
        encoder_state, head_state = _split_state(state, prefix)
        stand_in = _stand_in_class()()
        setattr(head_model, prefix, stand_in)
        expected = {k: v.shape for k, v in head_model.state_dict().items() if k.split(".", 1)[0] != prefix}
        missing = sorted(set(expected) - set(head_state))
        if missing:
            raise ServeError(f"Adapter {name} has no saved weights for its head ({missing[0]}); it was not saved by peft-hub.", 500)
        wrong = [k for k in expected if tuple(head_state[k].shape) != tuple(expected[k])]
        if wrong:  # e.g. labels.json edited, or another run's labels: the head does not fit them
            raise ServeError(f"Adapter {name}'s head does not fit its {len(labels)} labels (labels.json): {wrong[0]} is "
                             f"{tuple(head_state[wrong[0]].shape)}, {len(labels)} labels need {tuple(expected[wrong[0]])}. "
                             "Its files do not belong together: re-add the run to the hub.", 500)
        self._add_to_encoder(name, directory, encoder_state)
        head_model.load_state_dict(head_state, strict=False)
        head_model.eval()
        size = sum(t.numel() * t.element_size() for t in state.values())
        return Adapter(name, resolved.task, resolved.task_options, labels, tokenizer, head_model, stand_in, size)

    def _try(self, adapter: Adapter) -> None:
        """One trial prediction through the adapter alone before it serves anyone."""
        try:
            sample = adapter.task.sample_inputs()[:1]
        except NotImplementedError:  # a task without samples is tried by its first request
            return
        answer = self._round({adapter.name: adapter}, {adapter.name: sample})[adapter.name]
        if isinstance(answer, BaseException):
            self.loaded.pop(adapter.name, None)
            self._drop_from_encoder(adapter.name)
            raise ServeError(f"Adapter {adapter.name} is broken and not served: a trial prediction failed "
                             f"({type(answer).__name__}: {str(answer)[:200]}). Fix or re-add its hub entry.", 500)

    def _add_to_encoder(self, name: str, directory: Path, encoder_state: dict) -> None:
        from peft import PeftConfig, get_peft_model, set_peft_model_state_dict

        from . import models

        if self.encoder is None:
            from transformers import AutoModel

            self.encoder = models.load_pretrained(AutoModel, self.base_path)
            self.base_keys = set(self.encoder.state_dict())
            # its layers as loaded (peft wraps them in place as adapters join)
            self.base_layers = {n for n, module in self.encoder.named_modules() if n and not any(module.children())}
        shared = sorted(set(encoder_state) & self.base_keys)
        if shared:  # e.g. LoRA with bias="all": it changed weights that every adapter shares
            raise ServeError(f"Adapter {name} changes weights of the base model itself ({shared[0]}), which all "
                             f"adapters share. Serve it with `peft-hub predict {name}`.", 422)
        config = PeftConfig.from_pretrained(str(directory / "adapter"))
        config.modules_to_save, config.task_type, config.inference_mode = None, None, True
        if isinstance(config.target_modules, (list, set)):
            # the modules its weights are for: a config saved with peft's shortened suffixes (``dense``,
            # as adapters trained before this fix have) would otherwise also reach modules its own model lacked
            config.target_modules = weighted_modules(encoder_state, self.base_layers) or config.target_modules
        if hasattr(config, "exclude_modules"):
            config.exclude_modules = None  # the heads it kept out live in the task models, not here
        if self.peft is None:
            self.peft = get_peft_model(self.encoder, config, adapter_name=name)
        elif name not in self.peft.peft_config:  # (an evicted adapter that was the last one stays in place)
            self.peft.add_adapter(name, config)
        keyed = {"base_model.model." + key: value for key, value in encoder_state.items()}
        try:
            result = set_peft_model_state_dict(self.peft, keyed, adapter_name=name)
            unexpected = list(result.unexpected_keys)  # only the adapter's own keys were given: each must fit ...
            missing = [k for k in result.missing_keys if f".{name}." in k]  # ... and each of its layers must have weights
            problem = f"unexpected {unexpected[0]}" if unexpected else f"no weights for {missing[0]}" if missing else None
        except RuntimeError as exc:  # torch: "size mismatch for ...", on the lines after the first
            problem = first_line(exc, skip=1 if '\n' in str(exc).strip() else 0)
        if problem:
            raise ServeError(f"Adapter {name}'s weights do not fit its adapter_config.json ({problem}). "
                             "Its files do not belong together: re-add the run to the hub.", 500)
        self.peft.eval()

    def _drop_from_encoder(self, name: str) -> None:
        if self.peft is not None and name in self.peft.peft_config:
            if len(self.peft.peft_config) > 1:
                with warnings.catch_warnings():  # "adapter X was active ...": rows name their adapter
                    warnings.simplefilter("ignore")
                    self.peft.delete_adapter(name)

    def make_room(self, keep: set[str] = frozenset()) -> None:
        """Evict the least recently used adapters beyond ``max_adapters`` / ``max_memory_mb``, none
        of ``keep`` (those the pass at hand needs)."""
        def over() -> bool:
            mb = sum(a.size_bytes for a in self.loaded.values()) / 2**20
            return len(self.loaded) > self.max_adapters or (self.max_memory_mb is not None and mb > self.max_memory_mb)

        with self.lock:
            while over():
                name = next((n for n in self.loaded if n not in keep), None)
                if name is None:
                    return
                self.loaded.pop(name)
                self._drop_from_encoder(name)
                self.evictions += 1
                log.info("evicted adapter %s (least recently used)", name)

    # -- predicting -----------------------------------------------------------------------------

    def encode(self, batches: dict[str, dict], switch: bool = False) -> dict[str, Any]:
        """One encoder pass over the rows of every group; each group's outputs, cut to its rows
        and its own padded length."""
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        names, rows = [], []
        width = max(b["input_ids"].shape[1] for b in batches.values())
        device = next(self.peft.parameters()).device
        joined: dict[str, list] = {key: [] for key in ENCODER_INPUTS if all(key in b for b in batches.values())}
        for name, batch in batches.items():
            n, length = batch["input_ids"].shape
            names += [name] * n
            rows.append((name, n, length))
            for key in joined:
                joined[key].append(torch.nn.functional.pad(batch[key], (0, width - length)))
        inputs = {key: torch.cat(parts).to(device) for key, parts in joined.items()}
        with torch.no_grad():
            if switch or len(batches) == 1:  # one adapter: peft's plain path, no per-row dispatch
                self.peft.set_adapter(names[0])
                out = self.peft(**inputs)
            else:
                out = self.peft(**inputs, adapter_names=names)
        results, start = {}, 0
        pooled = getattr(out, "pooler_output", None)
        for name, n, length in rows:
            results[name] = BaseModelOutputWithPooling(
                last_hidden_state=out.last_hidden_state[start : start + n, :length],
                pooler_output=None if pooled is None else pooled[start : start + n])
            start += n
        return results

    def predict_many(self, requests: list[tuple[str, list]]) -> list[list | ServeError]:
        """Predictions for each (adapter name, inputs) request, or the error of that request
        alone. Requests for different adapters share encoder passes, at most ``max_adapters``
        adapters per pass (more are split into several)."""
        order = list(dict.fromkeys(name for name, _ in requests))
        outcome: list[list | ServeError | None] = [None] * len(requests)
        for start in range(0, len(order), self.max_adapters):
            chunk = set(order[start : start + self.max_adapters])
            with self.lock:
                self._predict_chunk(requests, [i for i, (name, _) in enumerate(requests) if name in chunk], outcome)
                self.make_room(keep=chunk)
        return outcome

    def _predict_chunk(self, requests: list[tuple[str, list]], indices: list[int], outcome: list) -> None:
        from .finished import as_input

        adapters: dict[str, Adapter] = {}
        groups: dict[str, list[int]] = {}
        inputs_of: dict[int, list[dict]] = {}
        for i in indices:
            name, inputs = requests[i]
            try:
                if name not in adapters:
                    adapters[name] = self.adapter(name)
                inputs_of[i] = [as_input(adapters[name].task, x) for x in inputs]
                groups.setdefault(name, []).append(i)
            except ServeError as exc:
                outcome[i] = exc
            except PeftHubError as exc:  # a bad input (e.g. one text for a pair task)
                outcome[i] = ServeError(str(exc), 422)
        if not groups:
            return
        answers = self._round({n: adapters[n] for n in groups}, {n: [x for i in g for x in inputs_of[i]] for n, g in groups.items()})
        for name, group in groups.items():
            if isinstance(answers[name], BaseException) and len(group) > 1:
                # someone's input broke the group: each request again alone, so only that one fails
                log.warning("adapter %s failed on a group of %d requests; running each alone", name, len(group))
                for i in group:
                    outcome[i] = self._round({name: adapters[name]}, {name: inputs_of[i]})[name]
                continue
            start = 0
            for i in group:
                n = len(inputs_of[i])
                outcome[i] = answers[name] if isinstance(answers[name], BaseException) else answers[name][start : start + n]
                start += n
        for i in indices:
            if isinstance(outcome[i], BaseException) and not isinstance(outcome[i], ServeError):
                outcome[i] = _request_error(requests[i][0], outcome[i])

    def _round(self, adapters: dict[str, Adapter], inputs: dict[str, list[dict]]) -> dict[str, list | BaseException]:
        """Each adapter's task ``predict`` over its inputs, in threads whose model calls meet in
        one shared encoder pass per step (:class:`MixedRound`): predictions, or the exception of
        that adapter's group."""
        round_ = MixedRound(self, len(adapters), self.mixed)
        device_param = next(self.peft.parameters()) if self.peft is not None else None  # (generation adapters alone)
        answers: dict[str, list | BaseException] = {}

        def run(name: str) -> None:
            adapter = adapters[name]
            own = adapter.stand_in is None  # a model of its own: the shared pass does not wait for it
            if own:
                round_.leave()
            try:
                model = adapter.head_model if own else _GroupModel(adapter, round_, device_param)
                answers[name] = adapter.task.predict(model, adapter.tokenizer, inputs[name], adapter.labels, adapter.options)
            except BaseException as exc:  # reported for this adapter's requests only
                answers[name] = exc
            finally:
                if not own:
                    round_.leave()

        threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in adapters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers


def _request_error(name: str, exc: BaseException) -> ServeError:
    """What a request whose own prediction failed is answered: its input's fault (a peft-hub
    data error) is a 422; anything else a 500 naming the adapter, logged with the cause."""
    if isinstance(exc, PeftHubError):
        return ServeError(str(exc), 422)
    log.error("adapter %s failed on a request: %r", name, exc)
    return ServeError(f"Adapter {name} failed on this request ({type(exc).__name__}: {str(exc)[:200]}).", 500)


def weighted_modules(state: dict, layers: set[str]) -> set[str]:
    """The ``layers`` (a model's leaf module names) that an adapter's ``state`` holds weights for: for
    each key (``encoder.layer.0.attention.self.query.lora_A.weight``), the longest layer name it
    starts with (``encoder.layer.0.attention.self.query``)."""
    found = set()
    for key in state:
        parts = key.split(".")
        owner = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in layers), None)
        if owner:
            found.add(owner)
    return found


def _files_state(directory: Path) -> tuple:
    """When the files of a run directory last changed (a broken adapter is tried again after)."""
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.glob("*")) + sorted(directory.glob("adapter/*"))
                 if p.is_file())


def _split_state(state: dict, prefix: str) -> tuple[dict, dict]:
    """A saved task-model adapter's tensors -> (the encoder's, keyed as in the bare encoder; the
    head's, keyed as in the task model)."""
    encoder, head = {}, {}
    for key, value in state.items():
        key = key.removeprefix("base_model.model.")
        if key.startswith(prefix + "."):
            encoder[key[len(prefix) + 1 :]] = value
        else:
            head[key] = value
    return encoder, head


def sources_for(items: tuple[str, ...]) -> dict[str, Path]:
    """Adapter names -> run directories, from hub names and run directories (a directory is
    served under its folder's name); no items: every hub entry."""
    from . import hub

    if not items:
        return {name: hub.entry_dir(name) for name in hub.names()}
    sources: dict[str, Path] = {}
    for item in items:
        path = hub.locate(item)
        if not (path / "run.json").exists():
            raise ServeError(f"{item[:80]!r} is neither a hub entry (peft-hub hub list) nor a finished run directory.")
        name = item if hub.NAME_RE.match(item) and not Path(item).exists() else path.resolve().name.lower()
        if not hub.NAME_RE.match(name):
            raise ServeError(f"{path} cannot be served under its folder's name {name[:80]!r} ({hub.NAME_RULE}). "
                             f"Add it to the hub under a name: peft-hub hub add {path} --name NAME")
        if name in sources:
            raise ServeError(f"Two adapters would be served as {name!r}. Add them to the hub under different names.")
        sources[name] = path
    return sources
