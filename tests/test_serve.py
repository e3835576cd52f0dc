"""`peft-hub serve`: one base, many adapters, mixed batches that give the same predictions as
each run alone; every bad request a 4xx while the server keeps serving; a damaged adapter fails
alone; eviction; a real uvicorn process stopped by SIGTERM; the page in a real headless browser."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import train_tiny
from peft_hub import registry, serving, finished
from peft_hub.server import Limits, create_app

TEXTS = [f"Anna Schmidt number {i} flew from Paris to Tokyo ." for i in range(12)]


def _client(sources: dict, **kwargs):
    from fastapi.testclient import TestClient

    registry.load_plugins()
    limits = kwargs.pop("limits", Limits(max_wait_ms=50))
    return TestClient(create_app(serving.AdapterPool(sources, **kwargs), limits))


def _labels(predictions):
    """What must not change between serving paths: labels and entity spans (scores to 3 places)."""
    return [(p.get("label"), round(p.get("score", 0), 3), [(e["type"], e["start"], e["end"]) for e in p.get("entities", [])])
            for p in predictions]


@pytest.mark.parametrize("mixed", [True, False])
def test_mixed_batches_predict_what_each_run_predicts_alone(tiny_runs, mixed):
    sources = {"ner": tiny_runs["ner"], "cls": tiny_runs["classify"]}
    alone = {name: finished.load_run(path).predict(TEXTS) for name, path in sources.items()}
    with _client(sources, mixed=mixed) as client:
        requests = [(["ner", "cls"][i % 2], [TEXTS[i]]) for i in range(len(TEXTS))]
        with ThreadPoolExecutor(len(requests)) as pool:  # concurrent: different adapters share passes
            answers = list(pool.map(lambda r: client.post("/v1/predict", json={"adapter": r[0], "inputs": r[1]}), requests))
        assert [a.status_code for a in answers] == [200] * len(requests)
        for i, (name, _) in enumerate(requests):
            assert _labels(answers[i].json()["predictions"]) == _labels([alone[name][i]])
        health = client.get("/health").json()
        assert health["loaded"] == 2 and health["batches"] < len(requests)  # requests were batched together
        whole = client.post("/v1/predict", json={"adapter": "cls", "inputs": TEXTS}).json()["predictions"]
        assert _labels(whole) == _labels(alone["cls"])


def test_question_answering_and_pairs_share_passes_with_the_rest(tiny_runs, tiny_model, tmp_path):
    runs = {task: train_tiny(tiny_model, tmp_path / task, task, **{"training.epochs": 1}).directory for task in ("qa", "pair")}
    inputs = {"qa": {"question": "Who founded it?", "context": "It was founded by Ada Lovelace in 1840."},
              "pair": {"text": "A cat sat.", "text_pair": "An animal sat."}, "ner": TEXTS[0]}
    alone = {task: finished.load_run(path).predict([inputs[task]]) for task, path in runs.items()}
    with _client({**runs, "ner": tiny_runs["ner"]}) as client:
        with ThreadPoolExecutor(3) as pool:
            answers = dict(zip(inputs, pool.map(lambda t: client.post("/v1/predict", json={"adapter": t, "inputs": [inputs[t]]}), inputs)))
        assert all(a.status_code == 200 for a in answers.values())
        for task in runs:  # the same answer; scores to float noise (rows padded to the longest of the pass)
            got, want = answers[task].json()["predictions"][0], alone[task][0]
            assert {k: v for k, v in got.items() if "score" not in k} == {k: v for k, v in want.items() if "score" not in k}
            assert got["score"] == pytest.approx(want["score"], abs=1e-3)
        answer = client.post("/v1/predict", json={"adapter": "qa", "inputs": ["one text"]})
        assert answer.status_code == 422 and "takes 2 texts per input (question, context)" in answer.json()["error"]


def test_a_generation_request_is_answered_next_to_an_ner_request(tiny_runs, tiny_model, tmp_path):
    """A generation run (an encoder-decoder of its own) beside NER on the shared encoder: each answers
    what its run answers alone, concurrently, and the page is told to show the generated text."""
    run = train_tiny(tiny_model, tmp_path / "translate", "translate", **{"training.epochs": 1, "task.options.num_beams": 1,
                                                                         "task.options.max_new_tokens": 8})
    inputs = {"translate": ["ein hund läuft im park ."], "ner": [TEXTS[0]]}
    alone = {"translate": finished.load_run(run.directory).predict(inputs["translate"]),
             "ner": finished.load_run(tiny_runs["ner"]).predict(inputs["ner"])}
    with _client({"translate": run.directory, "ner": tiny_runs["ner"]}) as client:
        with ThreadPoolExecutor(2) as pool:
            answers = dict(zip(inputs, pool.map(lambda t: client.post("/v1/predict", json={"adapter": t, "inputs": inputs[t]}), inputs)))
        assert {t: a.status_code for t, a in answers.items()} == {"translate": 200, "ner": 200}
        assert answers["translate"].json()["predictions"] == alone["translate"]
        assert answers["translate"].json()["predictions"][0]["generated"]  # the tiny model says something
        assert _labels(answers["ner"].json()["predictions"]) == _labels(alone["ner"])
        described = {a["name"]: a for a in client.get("/v1/adapters").json()["adapters"]}
        assert described["translate"]["display"] == "generated"


def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(tiny_runs):
    sources = {"ner": tiny_runs["ner"]}
    limits = Limits(max_inputs=4, max_chars=100, max_body_bytes=5000, max_wait_ms=1)
    with _client(sources, limits=limits) as client:
        cases = [
            ({"adapter": "nope", "inputs": ["a"]}, 404, "Unknown adapter 'nope'"),
            ({"adapter": "../ner", "inputs": ["a"]}, 400, "not an adapter name"),
            ({"adapter": "ner", "inputs": []}, 422, "inputs is empty"),
            ({"adapter": "ner", "inputs": ["  "]}, 422, "inputs[0] is empty"),
            ({"adapter": "ner", "inputs": ["a"] * 5}, 413, "at most 4"),
            ({"adapter": "ner", "inputs": ["a" * 101]}, 413, "longer than 100"),
            ({"adapter": "ner", "inputs": ["a " * 3000]}, 413, "larger than 5,000 bytes"),
            ({"adapter": "ner"}, 422, "Bad request body at inputs"),
            ({"adapter": "ner", "inputs": [1]}, 422, "Bad request body"),
        ]
        for body, status, message in cases:
            answer = client.post("/v1/predict", json=body)
            assert answer.status_code == status and message in answer.json()["error"], (body, answer.text)
        bad_json = client.post("/v1/predict", content=b'{"adapter": ', headers={"content-type": "application/json"})
        assert bad_json.status_code == 422 and "JSON" in bad_json.json()["error"]
        assert client.post("/v1/predict", json={"adapter": "ner", "inputs": ["Paris"]}).status_code == 200


def test_token_guards_the_api(tiny_runs):
    with _client({"ner": tiny_runs["ner"]}, limits=Limits(token="s3cret")) as client:
        body = {"adapter": "ner", "inputs": ["Paris"]}
        assert client.post("/v1/predict", json=body).status_code == 401
        assert client.post("/v1/predict", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/v1/predict", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200 and client.get("/").status_code == 200


def test_a_damaged_or_unservable_adapter_fails_alone(tiny_runs, tiny_model, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_runs["ner"], damaged)
    weights = damaged / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    ia3 = train_tiny(tiny_model, tmp_path / "ia3", "classify", "ia3").directory
    sources = {"ner": tiny_runs["ner"], "damaged": damaged, "ia3": ia3}
    with _client(sources) as client:
        answer = client.post("/v1/predict", json={"adapter": "damaged", "inputs": ["Paris"]})
        assert answer.status_code == 500 and "damaged" in answer.json()["error"]
        answer = client.post("/v1/predict", json={"adapter": "ia3", "inputs": ["Paris"]})
        assert answer.status_code == 422 and "'ia3' run" in answer.json()["error"]
        assert client.post("/v1/predict", json={"adapter": "ner", "inputs": ["Paris"]}).status_code == 200
        listed = {a["name"]: a for a in client.get("/v1/adapters").json()["adapters"]}
        assert listed["ner"]["loaded"] and not listed["damaged"]["loaded"]


def test_least_recently_used_adapters_are_evicted(tiny_runs):
    sources = {"ner": tiny_runs["ner"], "cls": tiny_runs["classify"]}
    alone = finished.load_run(tiny_runs["ner"]).predict(TEXTS[:2])
    with _client(sources, max_adapters=1) as client:
        for name in ("ner", "cls", "ner"):
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": TEXTS[:2]})
            assert answer.status_code == 200
            assert client.get("/health").json()["loaded"] == 1
        assert _labels(answer.json()["predictions"]) == _labels(alone)


def test_sources_are_hub_names_or_run_directories(tiny_runs, hub_home, tmp_path):
    from peft_hub import hub

    hub.add(tiny_runs["ner"], "conll-x")
    assert serving.sources_for(("conll-x",)) == {"conll-x": hub.entry_dir("conll-x")}
    assert serving.sources_for(()) == {"conll-x": hub.entry_dir("conll-x")}
    assert serving.sources_for((str(tiny_runs["classify"]),)) == {"classify": tiny_runs["classify"]}
    with pytest.raises(serving.ServeError, match="neither a hub entry"):
        serving.sources_for(("missing",))
    with pytest.raises(serving.ServeError, match="Nothing to serve"):
        serving.AdapterPool({})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_runs, hub_home):
    """`peft-hub serve` in its own process on 127.0.0.1, serving a hub entry imported from an export."""
    import httpx

    from peft_hub import hub

    hub.add(tiny_runs["ner"], "ner-tiny")
    hub.export("ner-tiny", hub_home.parent / "ner.tar.gz")
    hub.remove("ner-tiny")
    hub.import_(hub_home.parent / "ner.tar.gz")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "peft_hub", "serve", "ner-tiny", "--port", str(port)],
                               env={**os.environ, "PEFT_HUB_HOME": str(hub_home)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
        assert process.poll() is None, process.stdout.read()
    yield url, process
    if process.poll() is None:
        process.kill()


def test_a_real_server_answers_and_stops_cleanly_on_sigterm(server):
    import httpx

    url, process = server
    answer = httpx.post(url + "/v1/predict", json={"adapter": "ner-tiny", "inputs": TEXTS[:3]}, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3
    assert "/v1/predict" in httpx.get(url + "/openapi.json", timeout=60).json()["paths"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "Shutting down" in process.stdout.read()


def test_the_page_shows_a_prediction_in_a_real_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    import httpx

    expected = httpx.post(url + "/v1/predict", json={"adapter": "ner-tiny", "inputs": [TEXTS[0]]}, timeout=120).json()
    browser.get(url + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: "ner-tiny" in d.find_element(By.ID, "adapters").text)
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(TEXTS[0])
    browser.find_element(By.ID, "go").click()
    wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-done") == "1")
    result = browser.find_element(By.ID, "result")
    marks = [m.text for m in result.find_elements(By.TAG_NAME, "mark")]
    entities = expected["predictions"][0]["entities"]
    assert marks == [f"{TEXTS[0][e['start']:e['end']]}{e['type']}" for e in entities]
    assert TEXTS[0].split()[0] in result.text
    browser.save_screenshot(os.environ.get("PEFT_HUB_SCREENSHOT", str(tmp_path / "page.png")))


def test_the_method_plugins_are_served_or_refused_with_the_reason(tiny_model, tiny_runs, tmp_path, hub_home):
    """loraplus (LoRA with its own optimizer) and a multilabel run share passes with a LoRA NER run;
    adalora, whose layers take no per-row adapter names, is refused with the reason, alone."""
    from peft_hub import hub

    runs = {"plus": train_tiny(tiny_model, tmp_path / "plus", "classify", "loraplus", **{"training.max_steps": 2}).directory,
            "ada": train_tiny(tiny_model, tmp_path / "ada", "classify", "adalora", **{"training.max_steps": 2}).directory,
            "emotions": train_tiny(tiny_model, tmp_path / "ml", "multilabel", **{"training.max_steps": 2}).directory}
    for name, path in runs.items():
        hub.add(path, name)  # every one goes into the hub with its card
    alone = {name: finished.load_run(name).predict(["what a surprise"]) for name in ("plus", "emotions")}
    with _client({name: hub.entry_dir(name) for name in runs} | {"ner": tiny_runs["ner"]}) as client:
        adapters = {a["name"]: a for a in client.get("/v1/adapters").json()["adapters"]}
        assert adapters["emotions"]["display"] == "labels" and adapters["plus"]["display"] == "label"
        for name in ("plus", "emotions"):
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": ["what a surprise"]})
            (got,), (want,) = answer.json()["predictions"], alone[name]
            assert answer.status_code == 200 and got.get("label") == want.get("label") and got.get("labels") == want.get("labels")
            assert got["scores"] == pytest.approx(want["scores"], abs=2e-3)
        refused = client.post("/v1/predict", json={"adapter": "ada", "inputs": ["what a surprise"]})
        assert refused.status_code == 422 and "is a 'adalora' run" in refused.text and "peft-hub predict ada" in refused.text
        assert client.post("/v1/predict", json={"adapter": "ner", "inputs": [TEXTS[0]]}).status_code == 200
