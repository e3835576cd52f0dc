"""``peft-hub serve``: the HTTP layer (FastAPI on uvicorn) over :mod:`peft_hub.serving`.

    POST   /v1/predict  {"adapter": NAME, "inputs": ["text", ...]}   -> {"adapter", "predictions"}
    GET    /v1/adapters            POST /v1/adapters {"name": HUB_NAME}    DELETE /v1/adapters/NAME
    GET    /health   GET /metrics (Prometheus)   GET /docs (OpenAPI, offline)   GET / (a page to try them)

Scheduling (:class:`Batcher`): each request is cut into its inputs; every forward pass takes inputs
from the waiting requests in turn (one request's share, then the next one's, ...) up to
``max_batch`` inputs and ``max_batch_tokens`` estimated tokens, so a short request waits at most a
pass or two behind a long one. Requests past ``request_timeout`` are answered 504; beyond
``max_queue`` waiting requests new ones get 429 with Retry-After; on SIGTERM the server stops
taking requests, finishes those it has for up to ``drain_seconds`` and answers the rest 503.

Safe by default: it binds 127.0.0.1, an optional bearer token guards /v1/*, bodies, inputs and texts
have size limits, texts are checked (no lone surrogates, NUL or control characters), and every
error is ``{"error": message}`` with a 4xx/5xx status while the server keeps serving.
"""

import asyncio
import collections
import concurrent.futures
import hmac
import logging
import math
import time
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .serving import AdapterPool, ServeError

log = logging.getLogger("peft_hub.serve")
access = logging.getLogger("peft_hub.serve.access")
CHARS_PER_TOKEN = 4  # how the scheduler estimates a text's tokens before its adapter's tokenizer sees it
# what the page may load: only its own script and style, no inline script (values are inserted as text)
PAGE_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


@dataclass
class Limits:
    max_batch: int = 64             # inputs in one forward pass, over all adapters
    max_batch_tokens: int = 2048    # estimated tokens in one forward pass (characters / 4)
    max_wait_ms: float = 5.0        # how long a request waits for others to share its pass
    max_inputs: int = 256           # inputs in one request
    max_chars: int = 10_000         # characters in one text
    max_body_bytes: int = 2 << 20
    max_queue: int = 512            # requests waiting or running; more are answered 429
    request_timeout: float = 300.0  # seconds until a request is answered 504
    drain_seconds: float = 30.0     # on SIGTERM: how long requests in flight may still take
    token: str | None = None        # bearer token for /v1/*; None: no authentication


def estimate_tokens(item: str | dict) -> int:
    texts = [item] if isinstance(item, str) else list(item.values())
    return sum(len(t) for t in texts) // CHARS_PER_TOKEN + 2


def bad_character(text: str) -> str | None:
    """Why ``text`` cannot be tokenized (a lone surrogate, NUL, a control character), or None."""
    for position, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return f"a lone surrogate U+{ord(char):04X} at character {position} (not valid Unicode text)"
        if char not in "\t\n\r" and unicodedata.category(char) == "Cc":
            return f"the control character U+{ord(char):04X} at character {position}"
    return None


@dataclass
class Job:
    """One request: its inputs, the answers so far, and the inputs still to run."""

    adapter: str
    inputs: list
    future: asyncio.Future
    waiting: collections.deque = field(default_factory=collections.deque)  # indices of inputs not yet taken
    results: list = field(default_factory=list)
    running: int = 0  # inputs in a pass now

    def __post_init__(self):
        self.waiting.extend(range(len(self.inputs)))
        self.results = [None] * len(self.inputs)

    @property
    def done(self) -> bool:
        return self.future.done()


class Metrics:
    """The Prometheus series of one app (its own registry: several apps in one process stay apart)."""

    def __init__(self, pool: AdapterPool, batcher: "Batcher"):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("peft_hub_requests", "HTTP requests answered, by path and status code.",
                                ["path", "code"], registry=self.registry)
        self.latency = Histogram("peft_hub_request_seconds", "Time to answer a prediction request.", registry=self.registry,
                                 buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.batch_inputs = Histogram("peft_hub_batch_inputs", "Inputs in one forward pass.", registry=self.registry,
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.batch_seconds = Histogram("peft_hub_batch_seconds", "Time of one pass (all its adapters).", registry=self.registry,
                                       buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.registry.register(_PoolCollector(pool, batcher))

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _PoolCollector:
    """Read at each scrape: what the pool and the queue hold now."""

    def __init__(self, pool: AdapterPool, batcher: "Batcher"):
        self.pool, self.batcher = pool, batcher

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("peft_hub_adapters_loaded", "Adapters in memory.", value=len(self.pool.loaded))
        yield GaugeMetricFamily("peft_hub_adapters_served", "Adapters that may be requested.", value=len(self.pool.sources))
        yield GaugeMetricFamily("peft_hub_adapters_broken", "Adapters that failed to load.", value=len(self.pool.broken))
        yield GaugeMetricFamily("peft_hub_queue_requests", "Requests waiting or running.", value=len(self.batcher.jobs))
        yield CounterMetricFamily("peft_hub_adapter_evictions", "Adapters evicted to stay within the limits.",
                                  value=self.pool.evictions)


class Batcher:
    """Fair dynamic micro-batching: requests queue as jobs; one worker builds each pass from the
    jobs in turn (a job's share, then the next job's) within the pass limits, runs it (all
    adapters at once) and hands each job its answers."""

    def __init__(self, pool: AdapterPool, limits: Limits):
        self.pool, self.limits = pool, limits
        self.jobs: collections.deque[Job] = collections.deque()
        self.wake: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peft-hub-forward")
        self.batches = self.rows = 0
        self.pass_seconds = 0.1  # moving average, for Retry-After
        self.draining = False
        self.removing: set[str] = set()  # adapters being unloaded: new requests for them are refused
        self.metrics: Metrics | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.worker = asyncio.create_task(self._work())

    def drain(self, seconds: float) -> None:
        """From now on refuse new requests (503); those left when ``seconds`` are nearly over get 503."""
        if not self.draining:
            log.info("draining: %d request(s) in flight get up to %g s", len(self.jobs), seconds)
            self.draining = True
            self.loop.call_later(max(0.0, seconds - 0.5), self.fail_all,
                                 ServeError("The server is shutting down and the request did not finish within its drain "
                                            "time (--drain-seconds); send it again (to another replica).", 503))

    async def stop(self) -> None:
        """Answer every request still waiting 503 (the drain time is over), then stop."""
        if self.worker:
            self.worker.cancel()
        self.fail_all(ServeError("The server is shutting down; send the request again (to another replica).", 503))
        self.executor.shutdown(wait=True)

    def fail_all(self, error: ServeError) -> None:
        for job in self.jobs:
            if not job.done:
                job.future.set_exception(error)
        self.jobs.clear()

    def retry_after(self) -> int:
        waiting = sum(len(j.waiting) for j in self.jobs)
        return max(1, math.ceil(self.pass_seconds * (1 + waiting / self.limits.max_batch)))

    def in_flight(self, adapter: str) -> bool:
        return any(job.adapter == adapter and not job.done for job in self.jobs)

    async def submit(self, adapter: str, inputs: list) -> list:
        if self.draining:
            raise ServeError("The server is shutting down; send the request again (to another replica).", 503)
        if len(self.jobs) >= self.limits.max_queue:
            raise ServeError(f"{len(self.jobs)} requests are waiting (--max-queue {self.limits.max_queue}); "
                             f"retry in {self.retry_after()} s.", 429)
        job = Job(adapter, list(inputs), asyncio.get_running_loop().create_future())
        self.jobs.append(job)
        self.wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.limits.request_timeout)
        except asyncio.TimeoutError:
            raise ServeError(f"The request took longer than --request-timeout {self.limits.request_timeout:g} s "
                             f"({len(job.waiting)} of its {len(job.inputs)} inputs had not run). Send fewer or "
                             "shorter inputs, or retry later.", 504) from None
        finally:
            if not job.done:  # timed out or the client went away: its remaining inputs are dropped
                job.future.cancel()
            if job in self.jobs and job.running == 0:
                self.jobs.remove(job)

    def _take(self) -> list[tuple[Job, list[int]]]:
        """The next pass: from each job in turn one input (then again), within the limits; a job
        served goes to the back, so the next pass starts with another."""
        taken: dict[int, tuple[Job, list[int]]] = {}
        inputs = tokens = 0
        progress = True
        while progress:
            progress = False
            for job in list(self.jobs):
                if job.done or not job.waiting:
                    continue
                cost = estimate_tokens(job.inputs[job.waiting[0]])
                if inputs and (inputs + 1 > self.limits.max_batch or tokens + cost > self.limits.max_batch_tokens):
                    return list(taken.values())
                taken.setdefault(id(job), (job, []))[1].append(job.waiting.popleft())
                inputs, tokens, progress = inputs + 1, tokens + cost, True
        return list(taken.values())

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.jobs = collections.deque(j for j in self.jobs if not j.done)
            if not any(j.waiting for j in self.jobs):
                self.wake.clear()
                await self.wake.wait()
                await asyncio.sleep(self.limits.max_wait_ms / 1000)  # let others join this pass
            chosen = self._take()
            if not chosen:
                continue
            for job, indices in chosen:
                job.running += len(indices)
                self.jobs.remove(job)  # served: to the back
                self.jobs.append(job)
            started = time.perf_counter()
            requests = [(job.adapter, [job.inputs[i] for i in indices]) for job, indices in chosen]
            try:
                outcomes = await loop.run_in_executor(self.executor, self.pool.predict_many, requests)
            except Exception as exc:  # the pool confines failures to requests; this is a bug: said, not hidden
                log.exception("a pass failed")
                outcomes = [ServeError(f"The forward pass failed ({type(exc).__name__}: {str(exc)[:200]}).", 500)] * len(chosen)
            seconds = time.perf_counter() - started
            self.pass_seconds = 0.8 * self.pass_seconds + 0.2 * seconds
            self.batches += 1
            size = sum(len(i) for _, i in chosen)
            self.rows += size
            if self.metrics:
                self.metrics.batch_inputs.observe(size)
                self.metrics.batch_seconds.observe(seconds)
            for (job, indices), outcome in zip(chosen, outcomes):
                job.running -= len(indices)
                if job.done:
                    continue
                if isinstance(outcome, ServeError):
                    job.future.set_exception(outcome)
                    continue
                for i, answer in zip(indices, outcome):
                    job.results[i] = answer
                if not job.waiting and job.running == 0:
                    job.future.set_result(job.results)


def create_app(pool: AdapterPool, limits: Limits | None = None) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException

    from . import hub
    from .locations import NAME_RE
    from .version import __version__

    limits = limits or Limits()
    batcher = Batcher(pool, limits)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()
        log.info("server stopped: %d batches, %d inputs", batcher.batches, batcher.rows)

    app = FastAPI(title="peft-hub serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Many adapters on one base model; requests for different adapters share a forward pass. "
                              'Every error is {"error": message}.')
    app.state.batcher, app.state.pool = batcher, pool
    metrics = batcher.metrics = Metrics(pool, batcher)
    app.mount("/assets", StaticFiles(packages=[("swagger_ui_bundle", "vendor")]), name="assets")

    class PredictRequest(BaseModel):
        adapter: str = Field(description="The adapter's name (GET /v1/adapters).", examples=["conll-ner"])
        inputs: list[str | dict[str, str]] = Field(description="Texts, or objects of the task's input fields (e.g. "
                                                   "{\"text\": ..., \"text_pair\": ...} for a pair task).",
                                                   examples=[["EU rejects German call to boycott British lamb ."]])

    class AddRequest(BaseModel):
        name: str = Field(description="A hub entry (peft-hub hub list) to serve from now on.", examples=["conll-ner"])

    class Problem(BaseModel):
        error: str = Field(description="What went wrong and what to do.")

    errors = {code: {"model": Problem} for code in (400, 401, 404, 409, 413, 422, 429, 500, 503, 504)}

    def problem(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def serve_error(exc: ServeError) -> JSONResponse:
        return problem(exc.status, str(exc), {"Retry-After": str(batcher.retry_after())} if exc.status in (429, 503) else None)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return problem(422, f"Bad request body{' at ' + where if where else ''}: {first.get('msg', 'invalid')}. "
                            'Send JSON like {"adapter": "NAME", "inputs": ["a text"]}.')

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # unknown paths, wrong methods: the same shape
        return problem(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}. See /docs.")

    async def internal_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, f"Internal error ({type(exc).__name__}); the server logged it and keeps serving.")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        started = time.perf_counter()
        response = await _guarded(request, call_next)
        path = request.url.path if request.url.path in app.state.paths else "other"
        metrics.requests.labels(path, str(response.status_code)).inc()
        access.info('%s %s %d %.1f ms', request.method, request.url.path, response.status_code, 1000 * (time.perf_counter() - started))
        return response

    async def _guarded(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is None and request.method == "POST":
            return problem(411, "Send a Content-Length header (chunked request bodies are not taken).")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            return problem(413, f"The request body is larger than {limits.max_body_bytes:,} bytes. Send fewer or shorter inputs.")
        if limits.token and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {limits.token}".encode()):
                return problem(401, "Missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'.")
        try:
            return await call_next(request)
        except Exception as exc:  # (raised past the handlers by the middleware stack)
            return await internal_error(request, exc)

    @app.get("/health")
    async def health():
        return {"status": "draining" if batcher.draining else "ok", "base_model": pool.base_path,
                "fingerprint": pool.fingerprint, "adapters": len(pool.sources), "loaded": len(pool.loaded),
                "broken": len(pool.broken), "queue": len(batcher.jobs), "batches": batcher.batches}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/adapters", responses=errors)
    async def adapters():
        return {"adapters": pool.describe()}

    def call(function, *args):  # pool changes run between passes, in the forward thread
        return asyncio.get_running_loop().run_in_executor(batcher.executor, function, *args)

    @app.post("/v1/adapters", status_code=201, responses=errors)
    async def add_adapter(body: AddRequest):
        """Load a hub entry and serve it (after the same checks as any adapter)."""
        if not NAME_RE.match(body.name):
            return problem(400, f"{body.name[:80]!r} is not a hub name: see peft-hub hub list.")
        if body.name not in hub.names():
            return problem(404, f"No hub entry {body.name!r}: add it first (peft-hub hub add RUN_DIR --name {body.name}).")
        try:
            await call(pool.add, body.name, hub.entry_dir(body.name))
        except ServeError as exc:
            return serve_error(exc)
        return next(a for a in pool.describe() if a["name"] == body.name)

    @app.delete("/v1/adapters/{name}", responses=errors)
    async def remove_adapter(name: str):
        """Stop serving an adapter: new requests for it get 404; those in flight finish first."""
        if name not in pool.sources or name in batcher.removing:
            return problem(404, f"Unknown adapter {name[:80]!r}. See GET /v1/adapters.")
        batcher.removing.add(name)
        try:
            while batcher.in_flight(name):
                await asyncio.sleep(0.01)
            await call(pool.remove, name)
        finally:
            batcher.removing.discard(name)
        return {"removed": name}

    @app.post("/v1/predict", responses=errors)
    async def predict(body: PredictRequest):
        if not NAME_RE.match(body.adapter):
            return problem(400, f"{body.adapter[:80]!r} is not an adapter name (no paths): see GET /v1/adapters.")
        if body.adapter in batcher.removing:
            return problem(404, f"Adapter {body.adapter!r} is being removed. See GET /v1/adapters.")
        if body.adapter not in pool.sources and not pool.follow_hub:
            return problem(404, f"Unknown adapter {body.adapter!r}. See GET /v1/adapters.")
        if not body.inputs:
            return problem(422, "inputs is empty: send at least one text.")
        if len(body.inputs) > limits.max_inputs:
            return problem(413, f"{len(body.inputs):,} inputs in one request; at most {limits.max_inputs}. Split the request.")
        for i, item in enumerate(body.inputs):
            texts = [item] if isinstance(item, str) else list(item.values())
            if not any(t.strip() for t in texts):
                return problem(422, f"inputs[{i}] is empty: send text.")
            if any(len(t) > limits.max_chars for t in texts):
                return problem(413, f"inputs[{i}] is longer than {limits.max_chars:,} characters. Split it.")
            reason = next(filter(None, map(bad_character, texts)), None)
            if reason:
                return problem(422, f"inputs[{i}] has {reason}. Send plain text.")
        started = time.perf_counter()
        try:
            predictions = await batcher.submit(body.adapter, body.inputs)
        except ServeError as exc:
            return serve_error(exc)
        finally:
            metrics.latency.observe(time.perf_counter() - started)
        return {"adapter": body.adapter, "predictions": predictions, "ms": round(1000 * (time.perf_counter() - started), 1)}

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="peft-hub serve",
                                   swagger_js_url="/assets/swagger-ui-4.15.5/swagger-ui-bundle.js",
                                   swagger_css_url="/assets/swagger-ui-4.15.5/swagger-ui.css",
                                   swagger_favicon_url="/assets/swagger-ui-4.15.5/favicon-32x32.png")

    page_files = {"/": ("page.html", "text/html"), "/page.js": ("page.js", "text/javascript"), "/page.css": ("page.css", "text/css")}

    def page_file(path: str) -> Response:
        name, kind = page_files[path]
        return Response(resources.files("peft_hub").joinpath(name).read_bytes(), media_type=f"{kind}; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"})

    async def page(request: Request) -> Response:
        return page_file(request.url.path)

    for path in page_files:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.state.paths = {route.path for route in app.routes}
    return app


def run(pool: AdapterPool, limits: Limits, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM: then new requests get 503, those in flight have up to
    ``limits.drain_seconds`` to finish (the rest get 503), and the process ends with status 0."""
    import signal
    import sys

    import uvicorn

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # uvicorn raises the signal again once it is done
    app = create_app(pool, limits)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                                           timeout_graceful_shutdown=limits.drain_seconds))
    batcher: Batcher = app.state.batcher
    exit_on_signal = server.handle_exit

    def handle_exit(sig, frame):
        if batcher.loop is not None:
            batcher.loop.call_soon_threadsafe(batcher.drain, limits.drain_seconds)
        exit_on_signal(sig, frame)

    server.handle_exit = handle_exit
    server.run()
