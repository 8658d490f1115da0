"""The serving benchmark's load: the setups, wrk's Lua script, one measured result, and
the probes around a run (a server's rows per model call, a first request, py-spy).

Load comes from Debian's ``wrk`` (closed loop: each connection sends its next request
when the previous answer arrives), driven by a generated Lua script that cycles through
real 2016-2018 production rows, counts answers by status and stops each thread after
``--max-requests`` (or ``--duration`` seconds, whichever comes first). A good answer is
a 200. Latency percentiles are wrk's, over every answered request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import mlserver
from bench.harness import Server

SETUPS = {
    "a": "mlstack (capture + metrics)",
    "b": "mlstack, capture off",
    "c": "naive FastAPI + uvicorn",
    "d": "BentoML constant (ceiling)",
    "m": "MLServer + sklearn runtime",
    "o": "mlstack at the baseline checkout",
    "r": "mlstack regressor (car prices)",
    "l": "in-process limit (scoring only)",
}


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


def path(setup: str) -> str:
    """Where each setup takes its predictions."""
    return mlserver.PATH if setup == "m" else "/predict"


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
