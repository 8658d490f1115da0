"""Serving benchmark: the mlstack service against a naive server and the HTTP ceiling.

Four setups, started one after another on 127.0.0.1 with the same champion, the same
worker count and the same machine:

- (a) ``mlstack``: ``bentoml serve serving.service:Classifier`` as shipped (params.yaml
  untouched, capture and metrics on; the capture log goes to a temporary folder);
- (b) ``mlstack, capture off``: the same with ``capture.enabled: false``
  (``MLSTACK_PARAMS`` points at a temporary copy of params.yaml);
- (c) ``naive``: FastAPI + uvicorn, one ``predict_proba`` per request (bench/naive_server.py);
- (d) ``ceiling``: a BentoML endpoint that answers a constant (bench/constant_service.py);
- (m) ``MLServer``: Seldon's MLServer with its scikit-learn runtime, adaptive batching on,
  from a tool environment of its own (bench/mlserver.py says how, and why joblib);
- (r) ``mlstack regressor``: the same service serving a regression task: a
  ``HistGradientBoostingRegressor`` fitted with ``examples/regression/params.yaml``'s
  hyperparameters on 40,000 rows of ``data/raw/car_price/reference.parquet``, its interval
  tags packed into the Bento model's labels (testbeds/regressor.py), answered with
  ``prediction`` and ``interval`` per row, capture and metrics on; its bodies are car-price
  production rows (seven features, against the classifier's sixteen);
- (o) with ``--baseline PATH``: the service as shipped from another checkout of this
  repository (its own ``.venv``, e.g. the last release), same champion and settings as
  (a): a change to the service measured against what it replaces, in the same run.

All servers are up at once and the loads interleave: each round runs every load against
every setup in turn (the order rotating by round), so a burst of noise from other work
on the machine falls on all setups alike. Each figure is the median over ``--rounds``;
each ratio is the median of the ratios paired within a round, with their range.

Load comes from Debian's ``wrk`` (closed loop: each connection sends its next request
when the previous answer arrives), driven by a generated Lua script that cycles through
real 2016-2018 production rows, counts answers by status and stops each thread after
``--max-requests`` (or ``--duration`` seconds, whichever comes first). A good answer is
a 200. Latency percentiles are wrk's, over every answered request.

Needs the champion in the project's MLflow store (``uv run dvc repro``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import mlserver
from bench.harness import (
    ROOT,
    Server,
    free_port,
    header,
    load_average,
    markdown,
    running,
    stop_on_sigterm,
    tool_env,
    versions,
)

SETUPS = {
    "a": "mlstack (capture + metrics)",
    "b": "mlstack, capture off",
    "c": "naive FastAPI + uvicorn",
    "d": "BentoML constant (ceiling)",
    "m": "MLServer + sklearn runtime",
    "o": "mlstack at the baseline checkout",
    "r": "mlstack regressor (car prices)",
}
CAR_PRODUCTION = ROOT / "data" / "raw" / "car_price" / "production.parquet"


@dataclass(frozen=True)
class Load:
    name: str
    concurrency: int
    rows: int  # rows per request


LOADS = (
    Load("1 row, c=1", 1, 1),
    Load("1 row, c=16", 16, 1),
    Load("1 row, c=64", 64, 1),
    Load("100 rows, c=8", 8, 100),
)


@dataclass
class Result:
    setup: str
    load: Load
    seconds: float
    ok: int
    client_errors: int
    server_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    rows_per_call: float | None = None
    round: int = 0

    @property
    def good_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors + self.socket_errors


LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long sec; long usec; } mlstack_timeval;
int gettimeofday(mlstack_timeval *tv, void *tz);
]]
local clock = ffi.new("mlstack_timeval")
local function now_us()
  ffi.C.gettimeofday(clock, nil)
  return tonumber(clock.sec) * 1000000 + tonumber(clock.usec)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {
%(bodies)s
}
local requests = {}
local next_index = 0
local limit = 0
ok = 0
client_errors = 0
server_errors = 0
first_us = 0
last_us = 0

function init(args)
  limit = tonumber(args[1]) or 0
  for k, body in ipairs(bodies) do requests[k] = wrk.format(nil, nil, nil, body) end
  next_index = math.random(#requests)
end

function request()
  if first_us == 0 then first_us = now_us() end
  next_index = next_index %% #requests + 1
  return requests[next_index]
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status >= 500 then server_errors = server_errors + 1
  else client_errors = client_errors + 1 end
  last_us = now_us()
  if limit > 0 and ok + client_errors + server_errors >= limit then wrk.thread:stop() end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local o, c, s, first, last = 0, 0, 0, math.huge, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); c = c + t:get("client_errors"); s = s + t:get("server_errors")
    if t:get("first_us") > 0 then first = math.min(first, t:get("first_us")) end
    last = math.max(last, t:get("last_us"))
  end
  -- Active time, first request to last answer: with every thread stopped by the request
  -- cap, wrk still reports its full -d duration.
  local active = last > first and last - first or summary.duration
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %%d, "ok": %%d, "client_errors": %%d, "server_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    active, o, c, s, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_script(bodies: Sequence[str], path: Path) -> Path:
    quoted = ",\n".join(f"[==[{body}]==]" for body in bodies)
    path.write_text(LUA % {"bodies": quoted})
    return path


def production_rows(model: Any, count: int, seed: int) -> list[dict[str, Any]]:
    """Real 2016-2018 rows as JSON instances, only categories the champion knows.

    The service refuses unseen categories with 400 (``serving.reject_unknown_categories``)
    and the baselines would not: rows it would refuse are left out so every setup
    answers the same requests.
    """
    import pandas as pd

    from mlstack.replay import feature_records
    from pipeline.settings import load_settings
    from serving.inputs import known_categories, unknown_categories

    settings = load_settings()
    frame = pd.read_parquet(ROOT / "data" / "raw" / "production_2016_2018.parquet")
    frame = frame.sample(n=min(count * 2, len(frame)), random_state=seed)
    known = known_categories(model, settings.data.features.categorical)
    rows = [row for row in feature_records(frame, settings) if not unknown_categories([row], known)]
    return rows[:count]


def champion_or_exit() -> str:
    """The champion's registered name and version, or exit saying how to train one."""
    from pipeline.settings import load_settings
    from pipeline.tracking import champion_uri, client, find_champion

    settings = load_settings()
    try:
        champion = find_champion(client(settings), settings)
    except Exception as error:  # noqa: BLE001 - any failure means: no champion to serve
        sys.exit(
            f"no champion {champion_uri(settings)} in the project's MLflow store "
            f"({error}); train one first: dvc repro"
        )
    return f"{champion.name} v{champion.version}"


def import_champion(env: dict[str, str]) -> str:
    """The champion into the temporary BentoML store, as the package stage does."""
    return run_or_exit(
        "importing the champion into BentoML", env, "-m", "pipeline.package", "--model-only"
    )


def run_or_exit(what: str, env: dict[str, str], *args: str) -> str:
    """``python *args`` in the project; the last line it printed, or exit naming ``what``."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        sys.exit(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def path(setup: str) -> str:
    """Where each setup takes its predictions."""
    return mlserver.PATH if setup == "m" else "/predict"


def server_command(
    setup: str, port: int, workers: int, access_log: bool, baseline: Path | None = None
) -> list[str]:
    python = sys.executable
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if setup == "o" and baseline is not None:
        python = str(baseline / ".venv" / "bin" / "python")
        return [python, "-m", "bentoml", "serve", "serving.service:Classifier", *host]
    if setup in ("a", "b", "r"):
        return [python, "-m", "bentoml", "serve", "serving.service:Classifier", *host]
    if setup == "c":
        uvicorn = [python, "-m", "uvicorn", "bench.naive_server:app", "--workers", str(workers)]
        quiet = [] if access_log else ["--no-access-log"]  # as the service's serving.access_log
        return [*uvicorn, *host, "--log-level", "warning", *quiet]
    return [python, "-m", "bentoml", "serve", "bench.constant_service:Constant", *host]


def server_env(setup: str, base: dict[str, str], work: Path, model_threads: int) -> dict[str, str]:
    env = dict(base)
    if setup in ("a", "o", "r"):
        env["MLSTACK_CAPTURE_PATH"] = str(work / f"capture-{setup}")
    if setup == "r":
        env["MLSTACK_PARAMS"] = str(work / "regressor" / "params.yaml")
    elif setup == "b":
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["capture"]["enabled"] = False
        path = work / "params-capture-off" / "params.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        env["MLSTACK_PARAMS"] = str(path)
    elif setup == "c":
        # The service caps OpenMP at serving.model_threads per model call; the naive
        # server gets the same cap from the environment, so the comparison is about
        # batching and the stack, not about thread oversubscription.
        env["OMP_NUM_THREADS"] = str(model_threads)
    return env


@contextmanager
def started(
    setup: str, base: dict[str, str], work: Path, serving: Any, args: argparse.Namespace
) -> Iterator[Server]:
    from serving.launcher import own_bentoml_home

    port = free_port()
    if setup == "m":
        folder = mlserver.model_folder(
            args.model,
            work,
            serving.workers,
            serving.batching.max_batch_size,
            args.mlserver_batch_ms,
        )
        command = mlserver.command(args.mlserver, folder)
        env = mlserver.env(base, port, serving.model_threads)
        log = work / "server-m.log"
        with running(
            SETUPS[setup], command, env, log, port, cwd=folder, ready=mlserver.READY
        ) as server:
            yield server
        return
    baseline = args.baseline
    env = server_env(setup, base, work, serving.model_threads)
    # All servers run at once: each its own BentoML home, or they wipe each other's /metrics.
    env["BENTOML_HOME"] = str(own_bentoml_home(Path(base["BENTOML_HOME"]), work / setup))
    log = work / f"server-{setup}.log"
    access_log = bool(getattr(serving, "access_log", True))
    command = server_command(setup, port, serving.workers, access_log, baseline)
    cwd = baseline if setup == "o" and baseline is not None else ROOT
    with running(SETUPS[setup], command, env, log, port, cwd=cwd) as server:
        yield server


def run_wrk(
    url: str, script: Path, load: Load, seconds: float, max_requests: int, setup: str
) -> Result:
    threads = min(load.concurrency, 2)
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{load.concurrency}",
        f"-d{max(int(seconds), 1)}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"{url}{path(setup)}",
        "--",
        str(max(max_requests // threads, 1)),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    return Result(
        setup=setup,
        load=load,
        seconds=raw["duration_us"] / 1e6,
        ok=raw["ok"],
        client_errors=raw["client_errors"],
        server_errors=raw["server_errors"],
        socket_errors=raw["socket_errors"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def batch_rows(url: str) -> tuple[float, float] | None:
    """(sum, count) of the service's ``mlstack_batch_rows`` histogram, if it has one."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(f"{url}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    total = count = 0.0
    found = False
    try:
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "mlstack_batch_rows_sum":
                    total += sample.value
                    found = True
                elif sample.name == "mlstack_batch_rows_count":
                    count += sample.value
    except ValueError:
        return None
    return (total, count) if found else None


def check(server: Server, setup: str, body: str) -> None:
    import httpx

    response = httpx.post(
        f"{server.url}{path(setup)}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    if response.status_code != 200:
        raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text}")


def profile(
    server: Server, setup: str, script: Path, load: Load, seconds: float, out: Path
) -> None:
    """py-spy over every process of the server while ``load`` runs (not a measured run)."""
    spy = [shutil.which("py-spy") or "", "record"] if shutil.which("py-spy") else None
    uvx = shutil.which("uvx") or str(Path.home() / ".local" / "bin" / "uvx")  # uv's own
    spy = spy or [uvx, "py-spy", "record"]
    out.parent.mkdir(parents=True, exist_ok=True)
    for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
        target = out.with_suffix(f".{suffix}")
        recorder = subprocess.Popen(
            [
                *spy,
                "--pid",
                str(server.process.pid),
                "--subprocesses",
                "--nonblocking",
                "--duration",
                str(int(seconds)),
                "--format",
                fmt,
                "--output",
                str(target),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            run_wrk(server.url, script, load, seconds, 10**9, setup)
            recorder.wait(timeout=seconds + 60)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait(10)


def measure_one(
    server: Server, setup: str, script: Path, load: Load, args: argparse.Namespace
) -> Result:
    """One load against one server, with the service's rows per model call over it."""
    before = batch_rows(server.url)
    result = run_wrk(server.url, script, load, args.duration, args.max_requests, setup)
    after = batch_rows(server.url)
    if before and after and after[1] > before[1]:
        result.rows_per_call = (after[0] - before[0]) / (after[1] - before[1])
    return result


def kind(setup: str) -> str:
    """The request format a setup speaks: the service's JSON, or the V2 protocol; the
    regressor's bodies hold car-price rows."""
    return {"m": "v2", "r": "car"}.get(setup, "json")


def regression_bodies(base: dict[str, str], work: Path, count: int) -> tuple[list[str], list[str]]:
    """A car-price champion packed into the benchmark's BentoML store (its project under
    ``work/regressor``), and one-row and 100-row bodies of car-price production rows."""
    import pandas as pd

    run_or_exit(
        "packing the car-price regressor",
        base,
        "-m",
        "testbeds.regressor",
        str(work / "regressor"),
        "--full",
    )
    params = yaml.safe_load((work / "regressor" / "params.yaml").read_text())
    features = params["data"]["features"]
    frame = pd.read_parquet(CAR_PRODUCTION).sample(n=count, random_state=0)
    frame = frame[[*features["numerical"], *features["categorical"]]].astype(object)
    rows = [{c: (None if v != v else v) for c, v in r.items()} for r in frame.to_dict("records")]
    one_row = [json.dumps({"instances": [row]}) for row in rows]
    hundred = [json.dumps({"instances": rows[i : i + 100]}) for i in range(0, count - 99, 100)]
    return one_row, hundred


def measure(args: argparse.Namespace) -> list[Result]:
    from pipeline.settings import load_settings
    from pipeline.tracking import champion_uri, load_model, tracking_uri

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: sudo apt-get install wrk (or make system-deps)")
    settings = load_settings()
    workers = settings.serving.workers
    champion = champion_or_exit()
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-serving-"))
    results: list[Result] = []
    try:
        base = tool_env(BENTOML_HOME=str(work / "bentoml"), MLSTACK_WORKERS=str(workers))
        base.pop("MLSTACK_PARAMS", None)
        base.pop("MLSTACK_CAPTURE_PATH", None)
        tag = import_champion(base)
        args.model = load_model(champion_uri(settings), tracking_uri(settings))
        rows = production_rows(args.model, args.rows, seed=0)
        chunks = [rows[i : i + 100] for i in range(0, len(rows) - 99, 100)]
        one_row = [json.dumps({"instances": [row]}) for row in rows]
        hundred = [json.dumps({"instances": chunk}) for chunk in chunks]
        scripts = {
            ("json", 1): lua_script(one_row, work / "one_row.lua"),
            ("json", 100): lua_script(hundred, work / "hundred_rows.lua"),
        }
        first = {"json": one_row[0]}
        if "r" in args.setups:
            car_one, car_hundred = regression_bodies(base, work, args.rows)
            first["car"] = car_one[0]
            scripts[("car", 1)] = lua_script(car_one, work / "one_row_car.lua")
            scripts[("car", 100)] = lua_script(car_hundred, work / "hundred_rows_car.lua")
        if "m" in args.setups:
            numerical = settings.data.features.numerical
            args.mlserver = mlserver.environment(args.mlserver_venv)
            v2_one = [mlserver.body([row], numerical) for row in rows]
            first["v2"] = v2_one[0]
            scripts[("v2", 1)] = lua_script(v2_one, work / "one_row_v2.lua")
            scripts[("v2", 100)] = lua_script(
                [mlserver.body(chunk, numerical) for chunk in chunks],
                work / "hundred_rows_v2.lua",
            )
        print(
            f"champion {champion} (BentoML model {tag}); {workers} workers per server; "
            f"{len(one_row)} distinct one-row bodies, {len(hundred)} of 100 rows",
            file=sys.stderr,
        )
        with ExitStack() as stack:
            servers = {}
            for setup in args.setups:
                servers[setup] = stack.enter_context(
                    started(setup, base, work, settings.serving, args)
                )
                check(servers[setup], setup, first[kind(setup)])
            if "m" in servers:
                gap = mlserver.same_answers(
                    servers["m"].url, rows[:100], args.model, settings.data.features.numerical
                )
                print(f"MLServer's probabilities: {gap:.2g} from the champion's", file=sys.stderr)
                if gap > 1e-9:
                    sys.exit(f"MLServer does not serve the same model: {gap} apart")
            for setup, server in servers.items():
                run_wrk(server.url, scripts[(kind(setup), 1)], LOADS[1], args.warmup, 10**9, setup)
            for round_ in range(args.rounds):
                shift = round_ % len(args.setups)
                order = [*args.setups[shift:], *args.setups[:shift]]
                for load in LOADS:
                    for setup in order:
                        server = servers[setup]
                        result = measure_one(
                            server, setup, scripts[(kind(setup), load.rows)], load, args
                        )
                        result.round = round_
                        results.append(result)
                        print(
                            f"round {round_ + 1} {setup} {load.name}: "
                            f"{result.good_per_second:.0f} good/s, "
                            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                            f"errors {result.errors} (load {load_average()})",
                            file=sys.stderr,
                        )
            if args.py_spy is not None:
                load = next(x for x in LOADS if x.name == args.profile_load)
                slug = f"{load.rows}row-c{load.concurrency}"
                for setup, server in servers.items():
                    out = args.py_spy / f"serving-{setup}-{slug}"
                    chosen = scripts[(kind(setup), load.rows)]
                    profile(server, setup, chosen, load, args.profile_seconds, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def tables(results: Sequence[Result]) -> str:
    """Medians over rounds per setup and load; ratios paired within each round."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.setup, r.load.name), []).append(r)
    rows = []
    for (setup, _), runs in groups.items():
        load = runs[0].load
        good = _median([r.good_per_second for r in runs])
        calls = [r.rows_per_call for r in runs if r.rows_per_call is not None]
        server, client = sum(r.server_errors for r in runs), sum(r.client_errors for r in runs)
        sockets = sum(r.socket_errors for r in runs)
        rows.append(
            [
                f"({setup}) {SETUPS[setup]}",
                load.name,
                f"{good:,.0f}",
                " / ".join(f"{r.good_per_second:,.0f}" for r in runs),
                f"{good * load.rows:,.0f}",
                f"{_median([r.p50_ms for r in runs]):.1f}",
                f"{_median([r.p99_ms for r in runs]):.1f}",
                f"{server + client + sockets} ({server} 5xx, {client} 4xx, {sockets} socket)",
                f"{_median(calls):.1f}" if calls else "",
                f"{sum(r.ok for r in runs):,} in {sum(r.seconds for r in runs):.0f} s",
            ]
        )
    first = markdown(
        [
            "setup",
            "load",
            "good answers/s (median)",
            "per round",
            "rows/s",
            "p50 ms",
            "p99 ms",
            "errors (all rounds)",
            "rows per model call",
            "good answers",
        ],
        rows,
    )
    by = {(r.setup, r.load.name, r.round): r.good_per_second for r in results}
    rounds = sorted({r.round for r in results})

    def ratio(top: str, bottom: str, load: Load) -> str:
        paired = [
            by[(top, load.name, n)] / by[(bottom, load.name, n)]
            for n in rounds
            if by.get((top, load.name, n)) is not None and by.get((bottom, load.name, n))
        ]
        if not paired:
            return "n/a"
        spread = f" ({min(paired):.2f}-{max(paired):.2f})" if len(paired) > 1 else ""
        return f"{statistics.median(paired):.2f}{spread}"

    headers = ["load", "a/c (vs naive)", "a/d (vs ceiling)", "b/a (capture off vs on)"]
    pairs = [("a", "c"), ("a", "d"), ("b", "a")]
    if any(r.setup == "m" for r in results):
        headers.append("a/m (vs MLServer)")
        pairs.append(("a", "m"))
    if any(r.setup == "o" for r in results):
        headers.append("a/o (vs baseline checkout)")
        pairs.append(("a", "o"))
    if any(r.setup == "r" for r in results):
        headers.append("r/a (regressor vs classifier)")
        pairs.append(("r", "a"))
    second = markdown(headers, [[x.name, *(ratio(t, b, x) for t, b in pairs)] for x in LOADS])
    return (
        f"{first}\n\nRatios of good answers per second, the median of the {len(rounds)} "
        f"rounds' paired ratios (their range):\n\n{second}"
    )


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per load (max)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per load")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per load")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load")
    parser.add_argument("--rows", type=int, default=1000, help="distinct production rows")
    parser.add_argument("--setups", default="abcdmr", help="which setups, e.g. 'ar'")
    parser.add_argument(
        "--mlserver-venv",
        type=Path,
        default=mlserver.VENV,
        help="MLServer's tool environment (made with uv on first use)",
    )
    parser.add_argument(
        "--mlserver-batch-ms",
        type=float,
        default=5,
        help="MLServer's max_batch_time: how long a batch waits for more requests",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout of this repository with its own .venv: adds setup (o)",
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="profile into this folder")
    parser.add_argument("--profile-seconds", type=float, default=15)
    parser.add_argument(
        "--profile-load",
        default=LOADS[2].name,
        choices=[x.name for x in LOADS],
        help="the load --py-spy profiles under",
    )
    args = parser.parse_args()
    args.setups = [s for s in args.setups if s in SETUPS and s != "o"]
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / ".venv" / "bin" / "python").exists():
            parser.error(f"--baseline {args.baseline} has no .venv: run `uv sync` there first")
        args.setups.append("o")
    results = measure(args)
    print(header("Serving: one-row and batch clients against each setup"))
    print(f"- versions: {versions('bentoml', 'fastapi', 'uvicorn', 'scikit-learn', 'pandas')}")
    print(
        f"- load: wrk, closed loop, at most {args.max_requests:,} requests or "
        f"{args.duration:.0f} s per row, {args.rounds} interleaved rounds, "
        f"after {args.warmup:.0f} s of warm-up per server"
    )
    print()
    print(tables(results))


if __name__ == "__main__":
    main()
