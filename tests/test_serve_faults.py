"""`peft-hub serve` under faults, hostile input and live changes, against real server processes on
127.0.0.1: whatever goes wrong stays with the request (or adapter) at fault and every other
request is answered correctly (issue 25's cases: eviction within a pass, a broken hub entry, a bad
input, a long request beside short ones, shutdown with requests in flight, live load/unload and hub
changes, one error shape, /docs offline, a schema fuzz, the page with a hostile label and a token)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import SAMPLES
from peft_hub import finished, hub, read_columns

httpx = pytest.importorskip("httpx")

TEXTS = [f"Anna Schmidt number {i} flew from Paris to Tokyo ." for i in range(12)]
LONG = " ".join(["Anna Schmidt flew from Paris to Tokyo on Monday ."] * 180)  # ~9,000 characters


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, *args: str) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "peft_hub", "serve", *args, "--port", str(port)],
                               env={**os.environ, "PEFT_HUB_HOME": str(home), "HF_HUB_OFFLINE": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.1)
        assert process.poll() is None, process.stdout.read()
    process.kill()
    raise AssertionError("the server did not start")


def post(url: str, adapter: str, inputs: list, timeout: float = 120, **kwargs) -> httpx.Response:
    return httpx.post(url + "/v1/predict", json={"adapter": adapter, "inputs": inputs}, timeout=timeout, **kwargs)


@contextlib.contextmanager
def _hub(home: Path):
    """The hub at ``home`` for the hub functions called inside (the server's, not the test's)."""
    old = os.environ.get("PEFT_HUB_HOME")
    os.environ["PEFT_HUB_HOME"] = str(home)
    try:
        yield hub
    finally:
        if old is None:
            del os.environ["PEFT_HUB_HOME"]
        else:
            os.environ["PEFT_HUB_HOME"] = old


def _add(home: Path, run: Path, name: str) -> None:
    with _hub(home) as store:
        store.add(run, name)


def _broken_copy(run: Path, to: Path, change) -> Path:
    shutil.copytree(run, to)
    change(to)
    return to


@pytest.fixture(scope="module")
def fault_hub(tiny_runs, tmp_path_factory):
    """A hub with three healthy adapters and two whose files do not belong together (each
    consistent with its own manifest, as an imported archive can be)."""
    home = tmp_path_factory.mktemp("fault-hub")
    root = tmp_path_factory.mktemp("fault-runs")
    _add(home, tiny_runs["ner"], "ner-a")
    _add(home, tiny_runs["ner"], "ner-b")
    _add(home, tiny_runs["classify"], "cls")

    def three_labels(run):  # the head has 2 rows
        (run / "labels.json").write_text(json.dumps(["a", "b", "PER' onmouseover='alert(1)"]))

    def other_rank(run):  # the weights are rank 8
        config = json.loads((run / "adapter" / "adapter_config.json").read_text())
        config["r"] = 3
        (run / "adapter" / "adapter_config.json").write_text(json.dumps(config))

    _add(home, _broken_copy(tiny_runs["classify"], root / "labels", three_labels), "broken-labels")
    _add(home, _broken_copy(tiny_runs["ner"], root / "config", other_rank), "broken-config")
    return home


@pytest.fixture(scope="module")
def fault_server(fault_hub):
    url, process = start_server(fault_hub, "ner-a", "ner-b", "cls", "broken-labels", "broken-config", "--max-adapters", "2",
                                "--max-batch-tokens", "2048")
    yield url, process
    process.kill()


@pytest.fixture(scope="module")
def alone(tiny_runs):
    return {name: finished.load_run(tiny_runs[task]).predict(TEXTS) for name, task in
            (("ner-a", "ner"), ("ner-b", "ner"), ("cls", "classify"))}


def _same(got: list, want: list) -> bool:
    def key(p):
        return (p.get("label"), [(e["type"], e["start"], e["end"]) for e in p.get("entities", [])])

    return [key(p) for p in got] == [key(p) for p in want]


def test_eviction_never_fails_a_pass(fault_server, alone):
    """Case 1: three adapters asked at once with --max-adapters 2: every request is answered
    correctly (a pass that needs three is split); adapters are evicted between passes."""
    url, _ = fault_server
    requests = [(["ner-a", "ner-b", "cls"][i % 3], i) for i in range(60)]
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda r: post(url, r[0], [TEXTS[r[1] % 12]]), requests))
    assert [a.status_code for a in answers] == [200] * len(requests), [a.text for a in answers if a.status_code != 200][:2]
    for (name, i), answer in zip(requests, answers):
        assert _same(answer.json()["predictions"], [alone[name][i % 12]])
    metrics = httpx.get(url + "/metrics").text
    assert "peft_hub_adapter_evictions_total" in metrics
    assert float(next(line.split()[1] for line in metrics.splitlines() if line.startswith("peft_hub_adapter_evictions_total"))) > 0
    assert httpx.get(url + "/health").json()["loaded"] <= 2


def test_a_broken_entry_fails_only_its_own_requests(fault_server, alone):
    """Case 2: labels.json that does not fit the head, an adapter_config.json that does not fit the
    weights: their requests get a 500 naming the entry, said once in /v1/adapters; the healthy
    requests sent at the same time are all answered correctly."""
    url, _ = fault_server
    requests = [(["broken-labels", "ner-a", "broken-config", "cls"][i % 4], i) for i in range(40)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: post(url, r[0], [TEXTS[r[1] % 12]]), requests))
    for (name, i), answer in zip(requests, answers):
        if name.startswith("broken"):
            assert answer.status_code == 500 and f"Adapter {name}" in answer.json()["error"], answer.text
        else:
            assert answer.status_code == 200 and _same(answer.json()["predictions"], [alone[name][i % 12]])
    described = {a["name"]: a for a in httpx.get(url + "/v1/adapters").json()["adapters"]}
    assert "head does not fit its 3 labels" in described["broken-labels"]["broken"]
    assert "do not fit its adapter_config.json" in described["broken-config"]["broken"]
    assert "broken" not in described["ner-a"]


def test_a_bad_input_fails_only_its_own_request(fault_server, alone):
    """Case 3: a lone surrogate (valid JSON), NUL and control characters are refused with a 422
    naming the input, and the innocent requests sent with them are answered."""
    url, _ = fault_server
    bad = ['{"adapter": "ner-a", "inputs": ["ok", "\\ud800"]}', '{"adapter": "ner-a", "inputs": ["a\\u0000b"]}',
           '{"adapter": "ner-a", "inputs": ["bell \\u0007"]}']

    def send(i):
        if i % 4 == 0:
            return httpx.post(url + "/v1/predict", content=bad[i // 4 % 3], headers={"content-type": "application/json"}, timeout=60)
        return post(url, "ner-a", [TEXTS[i % 12]])

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(24)))
    for i, answer in enumerate(answers):
        if i % 4 == 0:
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"].startswith(("inputs[1] has a lone surrogate U+D800", "inputs[0] has the control character"))
        else:
            assert answer.status_code == 200 and _same(answer.json()["predictions"], [alone["ner-a"][i % 12]])


def test_short_requests_are_not_held_behind_a_long_one(fault_server):
    """Case 6: while a request of 40 long texts runs, short requests are answered long before it."""
    url, _ = fault_server
    with ThreadPoolExecutor(8) as pool:
        started = time.perf_counter()
        long = pool.submit(lambda: (post(url, "ner-a", [LONG] * 40, timeout=600), time.perf_counter() - started))
        time.sleep(0.5)
        shorts = [pool.submit(lambda: (post(url, "ner-a", [TEXTS[0]]), time.perf_counter() - started)) for _ in range(6)]
        short_answers = [s.result() for s in shorts]
        long_answer, long_seconds = long.result()
    assert long_answer.status_code == 200 and len(long_answer.json()["predictions"]) == 40
    assert all(a.status_code == 200 for a, _ in short_answers)
    assert max(s for _, s in short_answers) < long_seconds / 2, (short_answers, long_seconds)


def test_one_error_shape_and_docs_offline(fault_server):
    """Case 8: unknown paths, wrong methods, bad bodies, unknown adapters: all {"error": ...};
    /docs loads Swagger UI from the server itself."""
    url, _ = fault_server
    for response in (httpx.get(url + "/nope"), httpx.put(url + "/v1/predict", json={}), httpx.post(url + "/v1/predict", json={}),
                     post(url, "nope", ["a"]), httpx.delete(url + "/v1/adapters/nope")):
        assert 400 <= response.status_code < 500 and set(response.json()) == {"error"}, response.text
    docs = httpx.get(url + "/docs").text
    assets = [part.split('"')[1] for part in docs.split("src=")[1:] + docs.split("href=")[1:] if part.startswith('"/assets/')]
    assert assets and all(httpx.get(url + a).status_code == 200 for a in assets)
    assert "cdn" not in docs.lower()


def test_adapters_are_loaded_and_unloaded_live_under_load(fault_server, fault_hub, tiny_runs, alone):
    """POST /v1/adapters serves a new hub entry, DELETE unloads one once its requests are done,
    and an entry removed from the hub stops being served: no request fails meanwhile."""
    url, _ = fault_server
    _add(fault_hub, tiny_runs["classify"], "cls-late")
    done = threading.Event()
    failures: list[str] = []

    def load():
        n = 0
        while not done.is_set() or n < 5:
            answer = post(url, "ner-a", [TEXTS[n % 12]])
            if answer.status_code != 200 or not _same(answer.json()["predictions"], [alone["ner-a"][n % 12]]):
                failures.append(answer.text)
            n += 1
        return n

    with ThreadPoolExecutor(4) as pool:
        counts = [pool.submit(load) for _ in range(3)]
        try:
            added = httpx.post(url + "/v1/adapters", json={"name": "cls-late"}, timeout=120)
            assert added.status_code == 201 and added.json()["loaded"], added.text
            assert post(url, "cls-late", [TEXTS[0]]).status_code == 200
            assert httpx.delete(url + "/v1/adapters/cls-late", timeout=120).json() == {"removed": "cls-late"}
            assert post(url, "cls-late", [TEXTS[0]]).status_code == 404
        finally:
            done.set()
        total = sum(c.result() for c in counts)
    assert total > 10 and failures == []
    assert httpx.post(url + "/v1/adapters", json={"name": "not-in-hub"}).status_code == 404

    with _hub(fault_hub) as store:  # removed from the hub while served
        store.remove("ner-b")
    answer = post(url, "ner-b", [TEXTS[0]])
    assert answer.status_code == 404 and "was removed" in answer.json()["error"]


def test_a_failing_input_is_run_again_apart(tiny_runs, monkeypatch):
    """A request whose input makes its task fail (past the checks at the boundary) fails alone: the
    group it shared a pass with is run again one request at a time."""
    from fastapi.testclient import TestClient

    from peft_hub import registry, serving
    from peft_hub.server import Limits, create_app

    registry.load_plugins()
    task = registry.get_task("ner")
    predict = type(task).predict

    def fragile(self, model, tokenizer, inputs, labels, options):
        if any("BOOM" in x["text"] for x in inputs):
            raise RuntimeError("the tokenizer choked")
        return predict(self, model, tokenizer, inputs, labels, options)

    monkeypatch.setattr(type(task), "predict", fragile)
    with TestClient(create_app(serving.AdapterPool({"ner": tiny_runs["ner"]}), Limits(max_wait_ms=200))) as client:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda t: client.post("/v1/predict", json={"adapter": "ner", "inputs": [t]}),
                                    TEXTS[:7] + ["BOOM goes this one"]))
    assert [a.status_code for a in answers] == [200] * 7 + [500]
    assert "Adapter ner failed on this request (RuntimeError: the tokenizer choked)" in answers[-1].json()["error"]


def test_an_adapter_with_peft_shortened_targets_serves_beside_a_pooler(tiny_runs, tmp_path, alone):
    """peft saves a long target list shortened to suffixes that pick the same modules in the training
    model: an NER model has no pooler, so ``dense`` sufficed. The shared encoder has one (classification
    uses it): the adapter is loaded onto the layers its weights are for, and answers as it does alone."""
    from peft_hub import serving

    def shortened(run):
        config = json.loads((run / "adapter" / "adapter_config.json").read_text())
        config["target_modules"] = ["query", "key", "value", "dense"]
        (run / "adapter" / "adapter_config.json").write_text(json.dumps(config))

    pool = serving.AdapterPool({"ner": _broken_copy(tiny_runs["ner"], tmp_path / "ner", shortened), "cls": tiny_runs["classify"]})
    answers = pool.predict_many([("cls", TEXTS), ("ner", TEXTS)])
    assert _same(answers[0], alone["cls"]) and _same(answers[1], alone["ner-a"])


def test_sigterm_lets_requests_in_flight_finish(fault_hub):
    """Case 7: SIGTERM while a slow request and small ones queued behind it run: all are answered
    200 within --drain-seconds; later requests are refused; the process ends with status 0 and no
    traceback. With a drain time too short, the unfinished ones get a clean 503."""
    for drain, expect in (("60", 200), ("1", 503)):
        url, process = start_server(fault_hub, "ner-a", "--drain-seconds", drain)
        with ThreadPoolExecutor(6) as pool:
            slow = pool.submit(post, url, "ner-a", [LONG] * 60, 600)
            time.sleep(1.0)
            small = [pool.submit(post, url, "ner-a", [TEXTS[i]], 600) for i in range(4)]
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            answers = [slow.result()] + [s.result() for s in small]
        assert process.wait(timeout=120) == 0
        log = process.stdout.read()
        assert "Traceback" not in log, log
        codes = [a.status_code for a in answers]
        if expect == 200:
            assert codes == [200] * 5, [a.text for a in answers]
        else:
            assert 503 in codes and set(codes) <= {200, 503}, codes
            assert all("shutting down" in a.json()["error"] for a in answers if a.status_code == 503)


def test_schema_fuzz_finds_no_server_error(fault_server):
    """Requests generated from the OpenAPI schema (schemathesis, valid and invalid ones): none gets
    a 5xx but the broken entries' own."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings, strategies

    url, _ = fault_server
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    # DELETE only ever names an adapter nobody uses: the other tests' adapters stay
    modes = [schema.as_strategy(mode, path_parameters={"name": "not-served"}) for mode in schemathesis.GenerationMode]
    seen: list[int] = []

    @given(strategies.one_of(modes))
    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        response = case.call(base_url=url, timeout=60)
        seen.append(response.status_code)
        body = case.body if isinstance(case.body, dict) else {}
        assert response.status_code < 500 or str(body.get("adapter", "")).startswith("broken"), \
            (case.method, case.path, case.body, response.text)

    check()
    assert len(seen) >= 1000 and 200 in seen, (len(seen), sorted(set(seen)))


def test_the_page_shows_hostile_labels_as_text_and_takes_a_token(tiny_runs, tmp_path, browser):
    """Cases 4 and 5 in a real browser: labels from an archive that carry markup and script are
    shown as text and run nothing; the page asks for the token after a 401 and then works; entity
    highlights after an emoji sit on the right characters."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    home = tmp_path / "hub"
    hostile = ["<img src=x onerror=window.pwned=1>", "PER' onmouseover='window.pwned=1"]
    run = _broken_copy(tiny_runs["classify"], tmp_path / "hostile", lambda r: (r / "labels.json").write_text(json.dumps(hostile)))
    _add(home, run, "hostile")
    _add(home, tiny_runs["ner"], "ner-a")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "peft_hub", "serve", "--port", str(port), "--token-env", "SERVE_TOKEN"],
                               env={**os.environ, "PEFT_HUB_HOME": str(home), "HF_HUB_OFFLINE": "1", "SERVE_TOKEN": "s3cret"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        auth = {"Authorization": "Bearer s3cret"}
        page = httpx.get(url + "/")
        assert "script-src 'self'" in page.headers["content-security-policy"] and "<script>" not in page.text

        wait = WebDriverWait(browser, 60)
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.ID, "token-row").is_displayed())
        assert "needs a token" in browser.find_element(By.ID, "result").text
        browser.find_element(By.ID, "token").send_keys("s3cret")
        browser.find_element(By.ID, "use-token").click()
        wait.until(lambda d: "hostile" in d.find_element(By.ID, "adapters").text)

        def ask(adapter: str, text: str):
            Select(browser.find_element(By.ID, "adapter")).select_by_visible_text(adapter)
            box = browser.find_element(By.ID, "text")
            box.clear()
            box.send_keys(text)
            browser.find_element(By.ID, "go").click()
            wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-done") == "1")
            return browser.find_element(By.ID, "result")

        want = post(url, "hostile", [TEXTS[0]], headers=auth).json()["predictions"][0]["label"]
        result = ask("hostile", TEXTS[0])
        assert want in result.text and "label" in result.text and "score" in result.text
        assert not result.find_elements(By.TAG_NAME, "img")
        for element in result.find_elements(By.CSS_SELECTOR, "*"):
            browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", element)
        assert browser.execute_script("return window.pwned") is None

        # code points before the entities that are two UTF-16 units each, in the first sentence of
        # the tiny model's own training data in which it finds entities
        sentences = [" ".join(s.tokens) for s in read_columns(SAMPLES / "ner" / "train.txt")]
        for sentence in [TEXTS[0], *sentences]:
            text = "🙂🙂 " + sentence
            entities = post(url, "ner-a", [text], headers=auth).json()["predictions"][0]["entities"]
            if entities:
                break
        assert entities
        marks = [m.text for m in ask("ner-a", text).find_elements(By.TAG_NAME, "mark")]
        assert marks == [f"{text[e['start']:e['end']]}{e['type']}" for e in entities]
    finally:
        process.kill()
