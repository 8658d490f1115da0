"""Serving benchmark: the mlstack service against a naive server and the HTTP ceiling.

The setups, started one after another on 127.0.0.1 with the same champion, the same
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
  (a): a change to the service measured against what it replaces, in the same run;
- (l) ``in-process limit``: the service's own scoring function on the same batches, in as
  many processes, no HTTP, no JSON (bench/serving_limit.py): the most the model can do.

All servers are up at once and the loads interleave: each round runs every load against
every setup in turn (the order rotating by round), so a burst of noise from other work
on the machine falls on all setups alike. Each figure is the median over ``--rounds``;
each ratio is the median of the ratios paired within a round, with their range.

Load comes from Debian's ``wrk`` (bench/serving_load.py says how it is counted); the
tables are bench/serving_tables.py's.

Needs the champion in the project's MLflow store (``uv run dvc repro``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import mlserver, serving_limit
from bench.harness import (
    ROOT,
    Server,
    free_port,
    header,
    load_average,
    running,
    stop_on_sigterm,
    tool_env,
    versions,
)
from bench.serving_load import (
    LOADS,
    SETUPS,
    Load,
    Result,
    batch_rows,
    check,
    lua_script,
    profile,
    run_wrk,
)
from bench.serving_tables import tables

CAR_PRODUCTION = ROOT / "data" / "raw" / "car_price" / "production.parquet"


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


@dataclass
class Bodies:
    """What each setup is sent: a wrk script per (request format, rows per body), the first
    body of each format (a check before any load), and the limit's batches per rows per
    body (the same rows as the JSON bodies, decoded)."""

    scripts: dict[tuple[str, int], Path]
    first: dict[str, str]
    batches: dict[int, list[list[dict[str, Any]]]]
    rows: list[dict[str, Any]]


def bodies(args: argparse.Namespace, base: dict[str, str], work: Path, settings: Any) -> Bodies:
    """The production rows as each setup's request bodies, written as wrk scripts."""
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
            [mlserver.body(chunk, numerical) for chunk in chunks], work / "hundred_rows_v2.lua"
        )
    batches = {1: [[row] for row in rows], 100: chunks}
    return Bodies(scripts, first, batches, rows)


def limit_result(
    limit: serving_limit.Limit, batches: Sequence[Any], load: Load, seconds: float
) -> Result:
    """Setup (l) for one load: every worker scores the load's batches for ``seconds``."""
    shares = limit.run(batches, seconds)
    timings = [t for share in shares for t in share.call_seconds]
    return Result(
        setup="l",
        load=load,
        seconds=max(share.seconds for share in shares),
        ok=sum(share.calls for share in shares),
        client_errors=0,
        server_errors=0,
        socket_errors=0,
        p50_ms=serving_limit.percentile(timings, 0.5) * 1000,
        p99_ms=serving_limit.percentile(timings, 0.99) * 1000,
        rows_per_call=float(load.rows),
    )


def interleaved(
    args: argparse.Namespace,
    servers: dict[str, Server],
    limit: serving_limit.Limit | None,
    sent: Bodies,
) -> list[Result]:
    """``--rounds`` rounds of every load against every setup, the order rotating by round."""
    results: list[Result] = []
    for round_ in range(args.rounds):
        shift = round_ % len(args.setups)
        order = [*args.setups[shift:], *args.setups[:shift]]
        for load in LOADS:
            for setup in order:
                if setup == "l" and limit is not None:
                    result = limit_result(limit, sent.batches[load.rows], load, args.duration)
                else:
                    script = sent.scripts[(kind(setup), load.rows)]
                    result = measure_one(servers[setup], setup, script, load, args)
                result.round = round_
                results.append(result)
                print(
                    f"round {round_ + 1} {setup} {load.name}: "
                    f"{result.good_per_second:.0f} good/s, "
                    f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"errors {result.errors} (load {load_average()})",
                    file=sys.stderr,
                )
    return results


def measure(args: argparse.Namespace) -> list[Result]:
    """Start every setup, check each answers, warm up, then the interleaved rounds (and
    py-spy after them, if asked)."""
    from pipeline.settings import load_settings
    from pipeline.tracking import champion_uri, load_model, tracking_uri

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: sudo apt-get install wrk (or make system-deps)")
    settings = load_settings()
    workers = settings.serving.workers
    champion = champion_or_exit()
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-serving-"))
    try:
        base = tool_env(BENTOML_HOME=str(work / "bentoml"), MLSTACK_WORKERS=str(workers))
        base.pop("MLSTACK_PARAMS", None)
        base.pop("MLSTACK_CAPTURE_PATH", None)
        tag = import_champion(base)
        args.model = load_model(champion_uri(settings), tracking_uri(settings))
        sent = bodies(args, base, work, settings)
        print(
            f"champion {champion} (BentoML model {tag}); {workers} workers per server; "
            f"{len(sent.batches[1])} distinct one-row bodies, {len(sent.batches[100])} of 100 rows",
            file=sys.stderr,
        )
        with ExitStack() as stack:
            servers: dict[str, Server] = {}
            limit = None
            for setup in args.setups:
                if setup == "l":
                    limit = stack.enter_context(serving_limit.started(workers))
                    continue
                servers[setup] = stack.enter_context(
                    started(setup, base, work, settings.serving, args)
                )
                check(servers[setup], setup, sent.first[kind(setup)])
            if "m" in servers:
                gap = mlserver.same_answers(
                    servers["m"].url, sent.rows[:100], args.model, settings.data.features.numerical
                )
                print(f"MLServer's probabilities: {gap:.2g} from the champion's", file=sys.stderr)
                if gap > 1e-9:
                    sys.exit(f"MLServer does not serve the same model: {gap} apart")
            for setup, server in servers.items():
                script = sent.scripts[(kind(setup), 1)]
                run_wrk(server.url, script, LOADS[1], args.warmup, 10**9, setup)
            if limit is not None:
                limit.run(sent.batches[1], args.warmup)
            results = interleaved(args, servers, limit, sent)
            if args.py_spy is not None:
                load = next(x for x in LOADS if x.name == args.profile_load)
                slug = f"{load.rows}row-c{load.concurrency}"
                for setup, server in servers.items():
                    out = args.py_spy / f"serving-{setup}-{slug}"
                    chosen = sent.scripts[(kind(setup), load.rows)]
                    profile(server, setup, chosen, load, args.profile_seconds, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per load (max)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per load")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per load")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load")
    parser.add_argument("--rows", type=int, default=1000, help="distinct production rows")
    parser.add_argument("--setups", default="abcdlmr", help="which setups, e.g. 'ar'")
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
