"""``peft-hub serve``: the HTTP layer (FastAPI on uvicorn) over :mod:`peft_hub.serving`.

    POST /v1/predict  {"adapter": NAME, "inputs": ["text", ...]}   -> {"adapter", "predictions"}
    GET  /v1/adapters  GET /health  GET /docs (OpenAPI)  GET / (a page to try the adapters)

Requests wait at most ``max_wait_ms`` to be batched with others (up to ``max_batch`` inputs, any
adapters) into one forward pass. Safe by default: it binds 127.0.0.1, an optional bearer token
guards /v1/*, bodies, inputs and texts have size limits, and every bad request is a 4xx with a
message while the server keeps serving. It keeps no state but its cache of loaded adapters, so
replicas over one shared hub directory scale it out behind any HTTP load balancer.
"""


import asyncio
import concurrent.futures
import hmac
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .serving import AdapterPool, ServeError

log = logging.getLogger("peft_hub.serve")


@dataclass
class Limits:
    max_batch: int = 64          # inputs in one forward pass, over all adapters
    max_wait_ms: float = 5.0     # how long a request waits for others to share its pass
    max_inputs: int = 256        # inputs in one request
    max_chars: int = 10_000      # characters in one text
    max_body_bytes: int = 2 << 20
    token: str | None = None     # bearer token for /v1/*; None: no authentication


class Batcher:
    """Dynamic micro-batching: requests queue; one worker takes up to ``max_batch`` inputs (or
    what arrived within ``max_wait_ms`` of the first) and runs them as one mixed batch."""

    def __init__(self, pool: AdapterPool, limits: Limits):
        self.pool, self.limits = pool, limits
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peft-hub-forward")
        self.batches = self.rows = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self.worker:
            self.worker.cancel()
        self.executor.shutdown(wait=True)

    async def submit(self, adapter: str, inputs: list) -> list:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((adapter, inputs, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            size = len(items[0][1])
            deadline = loop.time() + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                size += len(item[1])
            items = [item for item in items if not item[2].cancelled()]  # clients that went away
            if not items:
                continue
            try:
                outcomes = await loop.run_in_executor(self.executor, self.pool.predict_many, [(a, list(x)) for a, x, _ in items])
            except Exception as exc:  # a failure of the whole pass: every request of it gets a 500
                log.exception("batch failed")
                outcomes = [ServeError(f"The forward pass failed ({type(exc).__name__}: {str(exc)[:200]}).", 500)] * len(items)
            self.batches += 1
            self.rows += size
            for (_, _, future), outcome in zip(items, outcomes):
                if future.cancelled():
                    continue
                if isinstance(outcome, ServeError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def create_app(pool: AdapterPool, limits: Limits | None = None) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field

    from .version import __version__
    from .locations import NAME_RE

    limits = limits or Limits()
    batcher = Batcher(pool, limits)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()
        log.info("server stopped: %d batches, %d inputs", batcher.batches, batcher.rows)

    app = FastAPI(title="peft-hub serve", version=__version__, lifespan=lifespan,
                  description="Many adapters on one base model; requests for different adapters share a forward pass.")
    app.state.batcher, app.state.pool = batcher, pool

    class PredictRequest(BaseModel):
        adapter: str = Field(description="The adapter's name (GET /v1/adapters).", examples=["conll-ner"])
        inputs: list[str | dict[str, str]] = Field(description="Texts, or objects of the task's input fields (e.g. "
                                                   "{\"text\": ..., \"text_pair\": ...} for a pair task).",
                                                   examples=[["EU rejects German call to boycott British lamb ."]])

    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return problem(422, f"Bad request body{' at ' + where if where else ''}: {first.get('msg', 'invalid')}. "
                            'Send JSON like {"adapter": "NAME", "inputs": ["a text"]}.')

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is None and request.method == "POST":
            return problem(411, "Send a Content-Length header (chunked request bodies are not taken).")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            return problem(413, f"The request body is larger than {limits.max_body_bytes:,} bytes. Send fewer or shorter inputs.")
        if limits.token and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {limits.token}".encode()):
                return problem(401, "Missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'.")
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", "base_model": pool.base_path, "fingerprint": pool.fingerprint,
                "adapters": len(pool.sources), "loaded": len(pool.loaded), "batches": batcher.batches}

    @app.get("/v1/adapters")
    async def adapters():
        return {"adapters": pool.describe()}

    @app.post("/v1/predict")
    async def predict(body: PredictRequest):
        if not NAME_RE.match(body.adapter):
            return problem(400, f"{body.adapter[:80]!r} is not an adapter name (no paths): see GET /v1/adapters.")
        if body.adapter not in pool.sources:
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
        started = time.perf_counter()
        try:
            predictions = await batcher.submit(body.adapter, body.inputs)
        except ServeError as exc:
            return problem(exc.status, str(exc))
        return {"adapter": body.adapter, "predictions": predictions, "ms": round(1000 * (time.perf_counter() - started), 1)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return resources.files("peft_hub").joinpath("page.html").read_text(encoding="utf-8")

    return app


def run(pool: AdapterPool, limits: Limits, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM: uvicorn finishes the requests in flight, then stops; a SIGTERM
    that uvicorn raises again once it is done ends the process with status 0."""
    import signal
    import sys

    import uvicorn

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(create_app(pool, limits), host=host, port=port, log_level="info", timeout_graceful_shutdown=10)
