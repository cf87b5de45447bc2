#!/usr/bin/env python
"""Overload benchmark: a step to 5x what the server can answer, against tornado_server and waitress.

    python benchmarks/overload.py              # 10 s to measure capacity, 30 s at 5x (about 2 minutes)
    python benchmarks/overload.py --quick      # smoke run: 3 s and 6 s

The view sleeps 0.2 s (a slow query) on 8 threads, so either server answers about 40 per
second. First its no-overload throughput is measured with 8 clients back to back; then
new clients arrive at 5x that rate, each on its own connection, open loop (arrivals do not
wait for answers, as users do not), and give up after 10 s. Reported per server: goodput
(200s per second), p50/p99 latency of the 200s, share answered 503, and share left without
any answer within 10 s. Writes ``benchmarks/results/overload-latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import add_environment_options, machine, write_results
from run import (  # noqa: E402  (benchmarks/ is not a package)
    THREADS,
    RunningServer,
    bake,
    bench_env,
    cached_venv,
    log,
    run,
    server_specs,
    write_bench_app,
)

VIEW_SECONDS = 0.2
OVERLOAD = 5.0
GIVE_UP = 10.0


@dataclass
class Outcome:
    server: str
    capacity: float = 0.0  # requests/s with no overload
    offered: float = 0.0
    seconds: float = 0.0
    latencies: list = field(default_factory=list)  # of the 200s
    slowest_answer: float = 0.0  # seconds, of any status
    last_success: float = 0.0  # seconds from the start of the step to the last 200
    shed: int = 0  # 503
    unanswered: int = 0  # nothing within GIVE_UP
    other: int = 0  # any other status or a reset

    @property
    def sent(self) -> int:
        return len(self.latencies) + self.shed + self.unanswered + self.other


async def one_request(port: int, path: str) -> tuple[int, float, float]:
    """(status, seconds, monotonic time of the end) of one request on a new connection;
    status 0: no answer in time, -1: an error or reset."""
    started = time.monotonic()
    connection = []

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection.append(writer)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read()
        return head

    try:
        status = int((await asyncio.wait_for(exchange(), GIVE_UP))[9:12])
    except asyncio.TimeoutError:
        status = 0
    except (OSError, asyncio.IncompleteReadError, ValueError):
        status = -1
    finally:
        for writer in connection:
            writer.close()
    finished = time.monotonic()
    return status, finished - started, finished


async def capacity(port: int, path: str, seconds: float) -> float:
    """Requests per second with THREADS clients back to back: the server's no-overload pace."""
    done = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop:
            status, _, _ = await one_request(port, path)
            done += status == 200

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(THREADS)))
    return done / (time.monotonic() - started)


async def overload(port: int, path: str, rate: float, seconds: float, outcome: Outcome) -> None:
    tasks = []
    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * rate) + 1
        for _ in range(due - sent):
            tasks.append(asyncio.create_task(one_request(port, path)))
        sent = due
        await asyncio.sleep(0.005)
    outcome.offered, outcome.seconds = sent / seconds, seconds
    for status, elapsed, finished in await asyncio.gather(*tasks):
        if status > 0:
            outcome.slowest_answer = max(outcome.slowest_answer, elapsed)
        if status == 200:
            outcome.latencies.append(elapsed)
            outcome.last_success = max(outcome.last_success, finished - started)
        elif status == 503:
            outcome.shed += 1
        elif status == 0:
            outcome.unanswered += 1
        else:
            outcome.other += 1


def percentile(values: list, share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| server | capacity req/s | offered req/s | goodput req/s | goodput / capacity "
        "| p50 of 200s | p99 of 200s | slowest answer | 503 | no answer in 10 s | other |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        # Over the whole time answers kept coming, not just while clients arrived.
        span = max(o.seconds, o.last_success)
        goodput = len(o.latencies) / span if span else 0.0
        lines.append(
            f"| {o.server} | {o.capacity:.1f} | {o.offered:.1f} | {goodput:.1f} "
            f"| {goodput / o.capacity if o.capacity else 0:.2f} "
            f"| {percentile(o.latencies, 0.5) * 1000:.0f} ms | {percentile(o.latencies, 0.99) * 1000:.0f} ms "
            f"| {o.slowest_answer:.1f} s "
            f"| {o.shed / max(o.sent, 1):.0%} | {o.unanswered / max(o.sent, 1):.1%} | {o.other} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s capacity, 6 s overload")
    add_environment_options(parser)
    args = parser.parse_args(argv)
    capacity_seconds, overload_seconds = (3.0, 6.0) if args.quick else (10.0, 30.0)
    path = f"/work?seconds={VIEW_SECONDS}"

    workdir = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    outcomes = []
    try:
        log(f"baking the template into {workdir}")
        project = bake(workdir)
        write_bench_app(project)
        python = cached_venv(project, args.python, args.cache_dir.resolve())
        env = bench_env(workdir)
        run([python, "manage.py", "migrate", "-v0"], cwd=project, env=env)
        specs = server_specs()
        # The load comes from one address here, from many in real life: lift the per-address cap.
        specs["tornado_server"].args += ["--max-connections-per-ip", "100000"]
        for name in ("tornado_server", "waitress"):
            server = RunningServer(specs[name], python, project, env, workdir)
            try:
                server.wait_ready()
                outcome = Outcome(name)
                outcome.capacity = asyncio.run(capacity(server.port, path, capacity_seconds))
                rate = OVERLOAD * outcome.capacity
                log(f"{name}: capacity {outcome.capacity:.1f} req/s; offering {rate:.0f} req/s "
                    f"for {overload_seconds:.0f} s")
                asyncio.run(overload(server.port, path, rate, overload_seconds, outcome))
                outcomes.append(outcome)
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    write_results(
        args.results, "overload-latest.md", f"Overload: {OVERLOAD:g}x the capacity for {overload_seconds:.0f} s",
        f"View: sleeps {VIEW_SECONDS} s; {THREADS} threads; one process each; default options "
        "(tornado_server: no per-address cap, as the load comes from one address) "
        f"otherwise. Clients give up after {GIVE_UP:g} s. {machine()}",
        table(outcomes), echo=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
