"""Where a served request's time goes, from a py-spy raw profile of the service.

``python -m bench.profile_share PROFILE.txt`` reads the collapsed stacks that
``bench.serving --py-spy`` writes (``--format raw``: one stack and its sample count a
line, idle stacks left out) and prints each part's share of the busy samples, per worker
process and for all of them. A stack belongs to the first part, in the order below, that
one of its frames names (a frame is ``function (file:line)``), so a part's share includes
what it calls: the scoring part holds the tree walk, the parse part pydantic.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from bench.harness import markdown

# (part, frame patterns), first match wins: the request path's parts before the frames
# that hold them all (the HTTP stack, the event loop).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("capture: write-ahead append (request path)", (r"CaptureWriter\.add ",)),
    ("capture: compaction (background thread)", (r"CaptureWriter\._run ",)),
    ("scoring: input matrix", (r"CompiledInput\.(matrix|encode) ",)),
    ("scoring: model (tree walk)", (r"Scorer\.(predict(_proba)?|scored) ",)),
    (
        "parse + validation: JSON body to rows",
        (
            r"parse_request ",
            r"model_validate_json ",
            r"as_rows ",
            r"RowParser\.",
            r"from_http_request ",
        ),
    ),
    ("validation: known categories", (r"unknown_categories ", r"unknown_in_columns ")),
    ("batching: request ids", (r"RequestIds\.new ",)),
    ("batching: queue and hand-over", (r"batching\.py", r"_predict_batches ", r"to_thread")),
    ("metrics", (r"prometheus_client", r"service_metrics")),
    ("response: build and serialise", (r"_answer ", r"Classifier\.predict ", r"responses\.py")),
    ("champion follower", (r"ChampionFollower",)),
    ("HTTP: uvicorn, starlette, BentoML, event loop", (r".",)),
)
IDLE = "(waiting: the loop's poll, parked threads; left out of the shares)"
PROCESS = re.compile(r'^process (\d+):"(.*)"')
# py-spy counts a thread as busy in a few waits it does not see as idle: the event loop
# in its poll (the leaf frame is asyncio's Runner.run) and a thread parked on a condition
# (the capture compactor, anyio's idle worker threads). Those samples are set aside.
WAITING = re.compile(r"^(Runner\.run|Condition\.wait|Queue\.get|Event\.wait|select) ")


def part_of(frames: list[str]) -> str:
    if frames and WAITING.match(frames[-1]):
        return IDLE
    for part, patterns in PARTS:
        if any(re.search(p, frame) for p in patterns for frame in frames):
            return part
    return PARTS[-1][0]


def shares(profile: Path) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Busy samples per (worker, part), and per worker (its first process frame)."""
    by_part: Counter[tuple[str, str]] = Counter()
    by_worker: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        processes = [m.group(1) for f in frames if (m := PROCESS.match(f))]
        worker = processes[-1] if processes else "?"
        code = [f for f in frames if not PROCESS.match(f)]
        part = part_of(code)
        by_part[(worker, part)] += int(count)
        if part != IDLE:
            by_worker[worker] += int(count)
    return by_part, by_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    args = parser.parse_args()
    if not args.profile.is_file():
        parser.error(f"{args.profile} is not a file")
    by_part, by_worker = shares(args.profile)
    total = sum(by_worker.values())
    if not total:
        parser.error(f"{args.profile} holds no samples")
    workers = [w for w, _ in by_worker.most_common()]
    headers = ["part", "all processes", *(f"pid {w} ({by_worker[w]:,} samples)" for w in workers)]
    rows = []
    for part in [p for p, _ in PARTS]:
        every = sum(by_part[(w, part)] for w in workers)
        cells = [f"{100 * by_part[(w, part)] / by_worker[w]:.1f} %" for w in workers]
        rows.append([part, f"{100 * every / total:.1f} %", *cells])
    idle = sum(by_part[(w, IDLE)] for w in workers)
    print(f"{total:,} busy samples in {args.profile.name} ({idle:,} waiting set aside)\n")
    print(markdown(headers, rows))


if __name__ == "__main__":
    main()
