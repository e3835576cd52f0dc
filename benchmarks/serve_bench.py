"""Serving many adapters on one base (issue 16): `peft-hub serve` with 8 LoRA adapters on MiniLM
(4 NER, 4 classification), loaded on 127.0.0.1 only, in a bounded number of requests and time.

  mixed   one server, requests for different adapters in one forward pass (the default)
  switch  the same server with --no-mixed: one pass per adapter (peft's set_adapter), baseline (y)
  x       one server process per adapter (8 processes), baseline (x)

For each: resident memory (VmRSS, summed over processes), and at concurrency 1 / 8 / 32 (clients
each sending one-sentence requests for random adapters, back to back): requests/s, p50 and p99
latency, failed requests. Then a soak: the mixed server at concurrency 32 for --soak seconds,
counting failed and lost (unanswered) requests.

    python benchmarks/serve_bench.py                 # trains the 8 adapters once (runs/serve-bench), ~30 min
    python benchmarks/serve_bench.py --soak 0 --requests 100   # quicker
Writes benchmarks/results/serve_bench.json and prints a markdown table.

--faults (issue 25) runs three workloads on one mixed server instead, with the code of --code (a
checkout of another commit, to compare before and after on the same machine):

  throughput  the 8 adapters, concurrency 8, one-sentence requests
  long/short  one request of --long-texts texts of ~10,000 characters (NER), and meanwhile clients
              at concurrency 4 sending one-sentence requests: the long one's time, the short ones' p50/p99
  eviction    --max-adapters 2 with requests for all 8 adapters at concurrency 16: failures

    git worktree add /tmp/before <commit>; python benchmarks/serve_bench.py --faults --code /tmp/before --label before
    python benchmarks/serve_bench.py --faults --label after      # -> benchmarks/results/serve_faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PEFT_HUB = str(ROOT / ".venv" / "bin" / "peft-hub")
ADAPTERS = {  # name: (task, data arguments, seed)
    "conll-a": ("ner", ["--data", f"{DATA}/conll2003"], 42),
    "conll-b": ("ner", ["--data", f"{DATA}/conll2003"], 43),
    "ncbi-a": ("ner", ["--data", f"{DATA}/NCBI-disease-IOB"], 42),
    "ncbi-b": ("ner", ["--data", f"{DATA}/NCBI-disease-IOB"], 43),
    "sst2": ("classify", ["--data", f"{DATA}/sst2"], 42),
    "agnews": ("classify", ["data.train=" + f"{DATA}/agnews/dev.tsv", "data.test=" + f"{DATA}/agnews/test.tsv"], 42),
    "trec": ("classify", ["--data", f"{DATA}/trec", "data.encoding=latin-1"], 42),
    "banking77": ("classify", ["--data", f"{DATA}/banking77", "--max-train-samples", "100000"], 42),  # sorted by label: all of it
}


def prepare(out: Path, samples: int) -> dict[str, Path]:
    runs = {}
    for name, (task, data, seed) in ADAPTERS.items():
        run = out / name
        if not (run / "run.json").exists():
            print(f"training {name} ({task}, {samples} examples)", file=sys.stderr)
            subprocess.run([PEFT_HUB, "adapt", "--method", "lora", "--task", task, "--seed", str(seed),
                            "--max-train-samples", str(samples), *data, "--max-eval-samples", "200", "--epochs", "1",
                            "--output", str(run), "--overwrite", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        runs[name] = run
    return runs


def sentences(limit: int = 400) -> list[str]:
    texts = []
    for line in (DATA / "sst2" / "stsa.binary.test").read_text(encoding="utf-8").splitlines()[:limit // 2]:
        texts.append(line.split(" ", 1)[-1])
    words = []
    for line in (DATA / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                texts.append(" ".join(words))
                words = []
            if len(texts) >= limit:
                break
            continue
        words.append(line.split()[0])
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MiB."""
    total = 0.0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


class Server:
    #: the checkout whose peft_hub serves (python -m peft_hub from there)
    code = ROOT

    def __init__(self, runs: list[Path], *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PEFT_HUB_HOME": "/nonexistent-peft-hub-home", "PYTHONPATH": str(self.code)}
        self.process = subprocess.Popen([sys.executable, "-m", "peft_hub", "serve", *map(str, runs), "--port", str(self.port),
                                         *extra], env=env, cwd=self.code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        import httpx

        for _ in range(1200):
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                raise RuntimeError(f"server on {self.port} exited with {self.process.returncode}")
        raise RuntimeError("server did not start")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


async def load(routes: dict[str, str], texts: list[str], concurrency: int, requests: int | None, seconds: float | None,
               seed: int = 0) -> dict:
    """``concurrency`` clients, each sending requests back to back until ``requests`` in all were
    sent or ``seconds`` passed; ``routes`` maps adapter -> server URL."""
    import httpx

    rng = random.Random(seed)
    names = sorted(routes)
    latencies, failures, lost = [], 0, 0
    sent = 0
    deadline = time.perf_counter() + seconds if seconds else None

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, failures, lost
        while (requests is None or sent < requests) and (deadline is None or time.perf_counter() < deadline):
            sent += 1
            name = rng.choice(names)
            started = time.perf_counter()
            try:
                answer = await http.post(routes[name] + "/v1/predict", json={"adapter": name, "inputs": [rng.choice(texts)]}, timeout=120)
                ok = answer.status_code == 200 and len(answer.json()["predictions"]) == 1
            except httpx.HTTPError:
                lost += 1
                continue
            latencies.append(time.perf_counter() - started)
            failures += not ok

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"concurrency": concurrency, "requests": sent, "answered": len(latencies), "failed": failures, "lost": lost,
            "seconds": round(elapsed, 2), "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None}


def warm(routes: dict[str, str], texts: list[str]) -> None:
    """One request per adapter: every adapter loaded before memory and speed are measured."""
    import httpx

    for name, url in routes.items():
        answer = httpx.post(url + "/v1/predict", json={"adapter": name, "inputs": texts[:2]}, timeout=300)
        answer.raise_for_status()


def measure(label: str, servers: list[Server], routes: dict[str, str], texts: list[str], levels: list[int], requests: int) -> dict:
    for server in servers:
        server.wait()
    warm(routes, texts)
    result = {"mode": label, "processes": len(servers), "rss_mb": round(sum(rss_mb(s.process.pid) for s in servers), 1), "load": []}
    for concurrency in levels:
        result["load"].append(asyncio.run(load(routes, texts, concurrency, requests, None)))
        print(f"{label} c={concurrency}: {result['load'][-1]}", file=sys.stderr)
    return result


def long_text(chars: int = 10_000) -> str:
    words = []
    for line in (DATA / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        if sum(len(w) + 1 for w in words) >= chars:
            break
    return " ".join(words)[:chars]


async def long_and_short(url: str, names: list[str], texts: list[str], long_texts: int) -> dict:
    """One long request, and short ones at concurrency 4 for as long as it runs."""
    import httpx

    rng = random.Random(2)
    latencies, failures = [], 0
    done = asyncio.Event()
    async with httpx.AsyncClient(timeout=900) as http:
        async def long() -> tuple[float, int]:
            started = time.perf_counter()
            answer = await http.post(url + "/v1/predict", json={"adapter": "conll-a", "inputs": [long_text()] * long_texts})
            done.set()
            return time.perf_counter() - started, answer.status_code

        async def short() -> None:
            nonlocal failures
            await asyncio.sleep(0.5)
            while not done.is_set():
                name = rng.choice(names)
                started = time.perf_counter()
                answer = await http.post(url + "/v1/predict", json={"adapter": name, "inputs": [rng.choice(texts)]})
                latencies.append(time.perf_counter() - started)
                failures += answer.status_code != 200

        (seconds, status), *_ = await asyncio.gather(long(), *(short() for _ in range(4)))
    latencies.sort()
    return {"long_texts": long_texts, "long_seconds": round(seconds, 1), "long_status": status, "short_requests": len(latencies),
            "short_failed": failures,
            "short_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "short_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None,
            "short_max_ms": round(1000 * latencies[-1], 1) if latencies else None}


def faults(runs: dict[str, Path], texts: list[str], args) -> None:
    """Issue 25's workloads with the code of ``Server.code``; results under ``args.label``."""
    result = {"code": str(Server.code), "commit": subprocess.run(["git", "-C", str(Server.code), "rev-parse", "--short", "HEAD"],
                                                                capture_output=True, text=True).stdout.strip()}
    routes = list(runs)
    server = Server(list(runs.values()))
    server.wait()
    warm({name: server.url for name in runs}, texts)
    result["throughput"] = asyncio.run(load({name: server.url for name in runs}, texts, 8, args.requests, None))
    print(f"throughput: {result['throughput']}", file=sys.stderr)
    result["long_short"] = asyncio.run(long_and_short(server.url, routes, texts, args.long_texts))
    print(f"long/short: {result['long_short']}", file=sys.stderr)
    server.stop()
    server = Server(list(runs.values()), "--no-mixed")  # the same load, one pass per adapter
    server.wait()
    warm({name: server.url for name in runs}, texts)
    result["throughput_switch"] = asyncio.run(load({name: server.url for name in runs}, texts, 8, args.requests, None))
    print(f"throughput --no-mixed: {result['throughput_switch']}", file=sys.stderr)
    server.stop()
    server = Server(list(runs.values()), "--max-adapters", "2")
    server.wait()
    result["eviction"] = asyncio.run(load({name: server.url for name in runs}, texts, 16, args.requests, None, seed=3))
    print(f"eviction: {result['eviction']}", file=sys.stderr)
    server.stop()
    output = Path(args.output).with_name("serve_faults.json")
    everything = json.loads(output.read_text()) if output.exists() else {}
    everything[args.label] = result
    output.write_text(json.dumps(everything, indent=2) + "\n")
    print("| code | 8 adapters c=8 requests/s (failed) | --no-mixed | long request s | short p50 / p99 / max ms beside it "
          "(failed) | eviction c=16 requests/s (failed) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in everything.items():
        t, l, e = r["throughput"], r["long_short"], r["eviction"]
        switch = r.get("throughput_switch", {}).get("requests_per_s", "")
        print(f"| {label} ({r['commit']}) | {t['requests_per_s']} ({t['failed'] + t['lost']}) | {switch} | {l['long_seconds']} | "
              f"{l['short_p50_ms']} / {l['short_p99_ms']} / {l['short_max_ms']} ({l['short_failed']}) | "
              f"{e['requests_per_s']} ({e['failed'] + e['lost']}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "serve-bench"))
    parser.add_argument("--samples", type=int, default=1000, help="training examples per adapter")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--soak", type=float, default=300, help="seconds of the soak at concurrency 32 (0: none)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "serve_bench.json"))
    parser.add_argument("--faults", action="store_true", help="issue 25's workloads (long/short, eviction) instead")
    parser.add_argument("--code", default=str(ROOT), help="with --faults: the checkout whose server runs")
    parser.add_argument("--label", default="after", help="with --faults: the name of this run in serve_faults.json")
    parser.add_argument("--long-texts", type=int, default=20, help="with --faults: texts of ~10,000 characters in the long request")
    args = parser.parse_args()
    runs = prepare(Path(args.runs), args.samples)
    texts = sentences()
    if args.faults:
        Server.code = Path(args.code).resolve()
        return faults(runs, texts, args)
    levels = [int(x) for x in args.levels.split(",")]
    results = {"adapters": list(runs), "texts": len(texts), "levels": levels}

    one = Server([runs["conll-a"]])  # the memory of one base model serving one adapter
    one.wait()
    warm({"conll-a": one.url}, texts)
    results["one_adapter_rss_mb"] = round(rss_mb(one.process.pid), 1)
    one.stop()

    modes = []
    for label, extra in (("mixed", ()), ("switch", ("--no-mixed",))):
        server = Server(list(runs.values()), *extra)
        modes.append(measure(label, [server], {name: server.url for name in runs}, texts, levels, args.requests))
        if label == "mixed" and args.soak:
            soak = asyncio.run(load({name: server.url for name in runs}, texts, 32, None, args.soak, seed=1))
            results["soak"] = soak
            print(f"soak: {soak}", file=sys.stderr)
        modes[-1]["exit_status"] = server.stop()
    servers = {name: Server([run]) for name, run in runs.items()}
    modes.append(measure("x", list(servers.values()), {name: s.url for name, s in servers.items()}, texts, levels, args.requests))
    for server in servers.values():
        server.stop()
    results["modes"] = modes
    base = results["one_adapter_rss_mb"]
    by = {m["mode"]: m for m in modes}
    results["memory_ratio_mixed"] = round(by["mixed"]["rss_mb"] / base, 3)
    results["memory_ratio_x"] = round(by["x"]["rss_mb"] / base, 3)
    top = {m["mode"]: m["load"][-1]["requests_per_s"] for m in modes}
    results["throughput_ratio_mixed_vs_switch"] = round(top["mixed"] / top["switch"], 2)
    results["throughput_ratio_mixed_vs_x"] = round(top["mixed"] / top["x"], 2)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")

    print(f"One server with one adapter: {base:.0f} MiB resident.\n")
    print("| mode | processes | resident MiB | x one adapter | concurrency | requests/s | p50 ms | p99 ms | failed + lost |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in modes:
        for row in m["load"]:
            print(f"| {m['mode']} | {m['processes']} | {m['rss_mb']:.0f} | {m['rss_mb'] / base:.2f} | {row['concurrency']} | "
                  f"{row['requests_per_s']:.1f} | {row['p50_ms']} | {row['p99_ms']} | {row['failed'] + row['lost']} |")
    print(f"\nmixed / switch requests/s at concurrency {levels[-1]}: {results['throughput_ratio_mixed_vs_switch']}x; "
          f"mixed / x: {results['throughput_ratio_mixed_vs_x']}x")
    if "soak" in results:
        s = results["soak"]
        print(f"soak: {s['answered']:,} answered of {s['requests']:,} in {s['seconds']:.0f} s at concurrency 32, "
              f"{s['failed']} failed, {s['lost']} lost, p99 {s['p99_ms']} ms")


if __name__ == "__main__":
    main()
