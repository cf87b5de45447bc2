#!/usr/bin/env python
"""Hostile clients against tornado_server.py and waitress: does a normal visitor still get in?

    python benchmarks/attack.py            # 6 attacks x 3 servers, 1,500 connections, ~18 minutes
    python benchmarks/attack.py --quick    # smoke run: 200 connections, a few seconds each

Bakes the project the way run.py does (same ``bench`` app, same cached virtual environment),
then for each attack and each server starts a fresh server and lets the attack open its
connections: slowhttptest (slow headers, slow body, slow read) from 127.0.0.1, or hostile.py
(slow body with a duplicated Content-Length, a 4 MB page never read) from 40 addresses
127.0.1.x. Once they are all open, a normal client on 127.0.0.2 asks for a normal page twice
a second. The last row has no attacker: 20 browsers behind one address (an office behind
NAT) with 6 keep-alive connections each load pages, and their requests are measured. Prints
success rate and latency per server and attack; writes ``results/attack-latest.md``.
Every connection goes to 127.0.0.1 from an address in 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import http.client
import ipaddress
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile  # the sibling attacker for what slowhttptest cannot send
import run as bench  # the sibling benchmark: baking, venv, servers
from report import add_environment_options, leave_workdir, write_results

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
CLIENT_ADDRESS = "127.0.0.2"  # the normal visitor; slowhttptest's connections come from 127.0.0.1
NORMAL_PAGE = "/items"  # a template and an SQLite query, the way a real page is made
BIG_FILE_SIZE = 20 * 1024**2
HOSTILE = Path(hostile.__file__).resolve()
PER_ADDRESS = 40  # hostile.py connections per source address, below the server's cap of 50
OFFICE_ADDRESS = "127.0.0.3"  # the office's one public address
OFFICE_BROWSERS = 20
OFFICE_CONNECTIONS = 6  # what a browser keeps open to one site
OFFICE_ASSET = "/static/bench/data.txt"  # 50 KB, fetched on the other 5 connections
OFFICE_THINK = (1.0, 3.0)  # seconds between a browser's page views
assert all(ipaddress.ip_address(a) in LOOPBACK for a in (CLIENT_ADDRESS, OFFICE_ADDRESS, hostile.TARGET))


@dataclass
class Attack:
    name: str
    label: str
    args: list  # slowhttptest arguments besides -c, -r, -l, -u; or hostile.py's kind
    path: str
    tool: str = "slowhttptest"  # or "hostile" (hostile.py), or "office" (no attacker)


ATTACKS = [
    # Slowloris: headers that never end, one more header line every 10 s.
    Attack("headers", "slow headers (-H)", ["-H", "-i", "10", "-x", "24"], "/hello"),
    # R-U-Dead-Yet: a POST announcing 100 KB of body, sent a few bytes every 10 s.
    Attack("body", "slow body (-B)", ["-B", "-i", "10", "-x", "24", "-s", "100000"], "/hello"),
    # Slow read of a 20 MB FileResponse: a tiny receive window, 32 bytes read every 5 s. A
    # FileResponse is streamed, so it shows whether a reader that does not read holds a thread.
    Attack("read", "slow read (-X) of a 20 MB FileResponse",
           ["-X", "-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "1"], "/big"),
    # A 100 KB body trickled as above, announced with a duplicated Content-Length (two equal
    # lines, or "N, N"), from many addresses so the per-address cap does not stop it first.
    Attack("dup-length", "slow body, duplicated Content-Length, many addresses", ["dup-length"], "/hello",
           "hostile"),
    # A 4 MB HttpResponse (sent whole, unlike a FileResponse) to clients with a 4 KB receive
    # buffer that read nothing, from many addresses.
    Attack("unread", "4 MB HttpResponse never read, many addresses", ["unread"], "/page", "hostile"),
    # No attack: 20 browsers behind one address, 6 keep-alive connections each.
    Attack("nat", "office behind NAT: 20 browsers x 6 keep-alive conns, 1 address", [], NORMAL_PAGE,
           "office"),
]

SERVERS = {
    "tornado_server": bench.ServerSpec(
        "tornado_server", ["{python}", "tornado_server.py", "--port", "{port}"],
        "1 process, default options (8 threads, access log on)"),
    # The same, with the per-address cap lifted: as if the attack came from many addresses,
    # so the other defences (eviction, minimum body rate, files sent from the loop) carry it.
    "tornado_server (no per-address cap)": bench.ServerSpec(
        "tornado_server (no per-address cap)",
        ["{python}", "tornado_server.py", "--port", "{port}", "--max-connections-per-ip", "100000"],
        "1 process, default options but --max-connections-per-ip 100000"),
    "waitress": bench.ServerSpec(
        "waitress", ["{python}", "-m", "waitress", "--listen=127.0.0.1:{port}",
                     f"{bench.SLUG}.wsgi:application"],
        "waitress defaults (4 threads, connection_limit 100)", signal.SIGTERM),
}


def log(message: str) -> None:
    print(f"[attack] {message}", flush=True)


# ----------------------------------------------------------------------------------------
# The normal client.
# ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    outcome: str  # "200", another status, or why there was no response
    retried: bool = False  # sent again on a new connection: the keep-alive one had been closed

    @property
    def ok(self) -> bool:
        return self.outcome == "200"


def normal_request(port: int, timeout: float) -> Sample:
    """One GET on a new connection from CLIENT_ADDRESS; a response later than ``timeout`` fails."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                            source_address=(CLIENT_ADDRESS, 0))
    try:
        connection.request("GET", NORMAL_PAGE)
        response = connection.getresponse()
        response.read()
        outcome = str(response.status)
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except (http.client.HTTPException, OSError) as exc:
        outcome = type(exc).__name__
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    if outcome == "200" and elapsed > timeout:
        outcome = "timeout"
    return Sample(elapsed, outcome)


class NormalClient:
    """Sends a request every ``interval`` seconds, each on its own thread, whatever the
    earlier ones are doing (a visitor does not wait for the previous visitor)."""

    def __init__(self, port: int, interval: float, timeout: float) -> None:
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _one(self) -> None:
        sample = normal_request(self.port, self.timeout)
        with self._lock:
            self.samples.append(sample)

    def run_for(self, seconds: float) -> list[Sample]:
        started = time.monotonic()
        n = 0
        while (due := started + n * self.interval) < started + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            thread = threading.Thread(target=self._one, daemon=True)
            thread.start()
            self._threads.append(thread)
            n += 1
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.samples


class Browser:
    """A browser on OFFICE_ADDRESS: 6 keep-alive connections, a page and 5 assets per view.

    As browsers do, a request on a reused connection that the server had closed (it fails
    before any answer) is sent once more on a new connection; the sample says so."""

    def __init__(self, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.connections = [
            http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(OFFICE_ADDRESS, 0))
            for _ in range(OFFICE_CONNECTIONS)]

    def fetch(self, index: int, path: str) -> Sample:
        started = time.monotonic()
        retried = False
        while True:
            connection = self.connections[index]
            reused = connection.sock is not None
            answered = False
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                answered = True
                response.read()
                outcome = str(response.status)
            except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected too
                connection.close()
                if reused and not answered and not retried:
                    retried = True
                    continue
                outcome = "reset"
            except TimeoutError:
                connection.close()
                outcome = "timeout"
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                outcome = type(exc).__name__
            break
        elapsed = time.monotonic() - started
        if outcome == "200" and elapsed > self.timeout:
            outcome = "timeout"
        return Sample(elapsed, outcome, retried)

    def page_view(self) -> list[Sample]:
        paths = [NORMAL_PAGE] + [OFFICE_ASSET] * (OFFICE_CONNECTIONS - 1)
        samples: list[Sample | None] = [None] * len(paths)

        def one(i: int) -> None:
            samples[i] = self.fetch(i, paths[i])

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(1, len(paths))]
        for thread in threads:
            thread.start()
        one(0)
        for thread in threads:
            thread.join(2 * self.timeout + 5)
        return [s if s is not None else Sample(2 * self.timeout, "timeout") for s in samples]

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


class Office:
    """OFFICE_BROWSERS browsers behind one address, each viewing a page every 1-3 s."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._lock = threading.Lock()

    def _browse(self, end: float, seed: int) -> None:
        rng = random.Random(seed)
        browser = Browser(self.port, self.timeout)
        try:
            time.sleep(rng.uniform(0, 1))  # colleagues do not all start at the same instant
            while time.monotonic() < end:
                samples = browser.page_view()
                with self._lock:
                    self.samples.extend(samples)
                time.sleep(max(0.0, min(rng.uniform(*OFFICE_THINK), end - time.monotonic())))
        finally:
            browser.close()

    def run_for(self, seconds: float) -> list[Sample]:
        end = time.monotonic() + seconds
        threads = [threading.Thread(target=self._browse, args=(end, n), daemon=True)
                   for n in range(OFFICE_BROWSERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 4 * self.timeout + 10)
        with self._lock:
            return list(self.samples)


class ConnectionCounter:
    """Samples, from /proc/net/tcp, how many connections from ``addresses`` the server's port
    holds established (accepted or still in the listen backlog); keeps the most."""

    def __init__(self, port: int, addresses: set[str]) -> None:
        self.port = port
        self.addresses = addresses
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def count(self) -> int:
        seen = set()  # the file is read in pieces, so a socket can show up twice while others come and go
        try:
            with open("/proc/net/tcp") as f:
                next(f)
                for line in f:
                    local, remote, state = line.split()[1:4]
                    if state != "01" or int(local.rsplit(":", 1)[1], 16) != self.port:
                        continue
                    address = socket.inet_ntoa(int(remote.split(":")[0], 16).to_bytes(4, sys.byteorder))
                    if address in self.addresses:
                        seen.add(remote)
        except (OSError, StopIteration, ValueError):
            pass
        return len(seen)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self.count())

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def attack_addresses(connections: int) -> int:
    """How many source addresses hostile.py needs to keep each below the per-address cap."""
    return max(40, -(-connections // PER_ADDRESS))


# ----------------------------------------------------------------------------------------
# One attack against one server.
# ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    server: str
    attack: Attack
    samples: list[Sample] = field(default_factory=list)
    attack_connected: int = 0  # most attack (or office) connections open at once
    server_died: bool = False
    failure: str = ""

    @property
    def ok_count(self) -> int:
        return sum(s.ok for s in self.samples)

    def failures(self) -> str:
        counts: dict[str, int] = {}
        for s in self.samples:
            if not s.ok:
                counts[s.outcome] = counts.get(s.outcome, 0) + 1
        text = ", ".join(f"{n} {what}" for what, n in sorted(counts.items(), key=lambda i: -i[1]))
        resent = sum(s.retried for s in self.samples)
        return "; ".join(filter(None, [text, f"{resent} resent after a closed keep-alive" if resent else ""]))


def peak_connected(csv_path: Path) -> int:
    """The largest "connected" count in slowhttptest's statistics file (-g -o)."""
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return 0
    if not rows:
        return 0
    header = [h.strip().lower() for h in rows[0]]
    if "connected" not in header:
        return 0
    column = header.index("connected")
    return max((int(r[column]) for r in rows[1:] if len(r) > column and r[column].strip().isdigit()),
               default=0)


def run_attack(spec: bench.ServerSpec, attack: Attack, python: Path, project: Path, env: dict,
               logdir: Path, connections: int, rate: int, hold: float, timeout: float) -> Outcome:
    outcome = Outcome(spec.name, attack)
    # A log file of its own per attack (RunningServer names it after the spec).
    server = bench.RunningServer(dataclasses.replace(spec, name=f"{spec.name} {attack.name}"),
                                 python, project, env, logdir)
    stats = logdir / f"{spec.name}-{attack.name}"
    attack_log = logdir / f"{spec.name}-{attack.name}.{attack.tool}.log"
    addresses = attack_addresses(connections)
    counted = ({OFFICE_ADDRESS} if attack.tool == "office"
               else set(hostile.sources(addresses)) if attack.tool == "hostile" else set())
    counter = ConnectionCounter(server.port, counted) if counted else None
    attacker = None
    try:
        server.wait_ready()
        with counter or contextlib.nullcontext():
            if attack.tool == "office":  # no attacker: the office's own requests are the row
                outcome.samples = Office(server.port, timeout).run_for(hold)
                outcome.server_died = server.process.poll() is not None
                return outcome
            ramp = connections / rate
            lifetime = str(round(ramp + hold + timeout + 30))
            if attack.tool == "hostile":
                command = [sys.executable, HOSTILE, *attack.args, "--port", str(server.port),
                           "--path", attack.path, "--connections", str(connections), "--rate", str(rate),
                           "--addresses", str(addresses), "--duration", lifetime]
            else:
                command = ["slowhttptest", *attack.args, "-c", str(connections), "-r", str(rate),
                           "-l", lifetime, "-p", "5", "-g", "-o", str(stats),
                           "-u", f"{server.url}{attack.path}"]
            with open(attack_log, "wb") as out:
                attacker = subprocess.Popen([str(a) for a in command], stdout=out, stderr=subprocess.STDOUT,
                                            cwd=logdir, start_new_session=True)
            # The attack has opened its connections once it has been running ramp seconds (and
            # a little more for the loop to catch up); the normal visitor comes afterwards.
            time.sleep(ramp + 2)
            if attacker.poll() is not None:
                outcome.failure = f"{attack.tool} exited with {attacker.returncode}; see {attack_log}"
                return outcome
            outcome.samples = NormalClient(server.port, 0.5, timeout).run_for(hold)
            outcome.server_died = server.process.poll() is not None
    finally:
        if attacker is not None and attacker.poll() is None:
            attacker.send_signal(signal.SIGINT)  # it writes its statistics on the way out
            try:
                attacker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(attacker.pid, signal.SIGKILL)
                attacker.wait(5)
        server.stop()
        if counter is None:
            outcome.attack_connected = peak_connected(Path(f"{stats}.csv"))
        else:
            outcome.attack_connected = counter.peak
    return outcome


# ----------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return bench.fmt_ms(seconds * 1000)


def table(outcomes: list[Outcome], timeout: float) -> list[str]:
    rows = ["| attack | server | normal client OK | p50 ms | worst ms | attack conns open | failures |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for o in outcomes:
        if o.failure:
            rows.append(f"| {o.attack.label} | {o.server} | could not run: {o.failure} | | | | |")
            continue
        n = len(o.samples)
        latencies = [s.seconds for s in o.samples]
        worst = max(latencies, default=float("nan"))
        worst_text = (f">= {timeout * 1000:.0f} (timeout)"
                      if any(s.outcome == "timeout" for s in o.samples) else ms(worst))
        notes = o.failures() + ("; server process died" if o.server_died else "")
        rows.append(
            f"| {o.attack.label} | {o.server} | {o.ok_count}/{n} ({100 * o.ok_count / n:.0f} %) | "
            f"{ms(statistics.median(latencies)) if latencies else '-'} | {worst_text} | "
            f"{o.attack_connected or '-'} | {notes} |")
    return rows


def versions(python: Path, slowhttptest: bool) -> str:
    script = ("import importlib.metadata as m, sys; print(f'Python {sys.version.split()[0]}, "
              "Django {m.version(\"Django\")}, tornado {m.version(\"tornado\")}, waitress "
              "{m.version(\"waitress\")}')")
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    if not slowhttptest:
        return out
    tool = subprocess.run(["slowhttptest", "-h"], capture_output=True, text=True, check=False).stdout
    version = next((w for line in tool.splitlines() if "version" in line
                    for w in line.split() if w[:1].isdigit()), "?")
    return f"{out}, slowhttptest {version}"


# ----------------------------------------------------------------------------------------
# Main.
# ----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 connections, 3 s of normal traffic per attack")
    parser.add_argument("--connections", type=int, default=None, help="attack connections (1500)")
    parser.add_argument("--rate", type=int, default=None,
                        help="new attack connections per second while ramping up (250)")
    parser.add_argument("--hold", type=float, default=None,
                        help="seconds of normal traffic once the attack is up (40)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="a normal request not answered in this many seconds fails (10, quick 3)")
    parser.add_argument("--attacks", default="", help="comma-separated subset of: "
                        + ",".join(a.name for a in ATTACKS))
    parser.add_argument("--servers", default="", help="comma-separated subset of: "
                        + ",".join(SERVERS))
    add_environment_options(parser)
    parser.add_argument("--keep", action="store_true", help="keep the baked project and logs")
    args = parser.parse_args(argv)

    if sys.platform != "linux":
        raise SystemExit("ERROR: the attack benchmark needs Linux (slowhttptest, 127.0.0.0/8, /proc)")
    connections = args.connections or (200 if args.quick else 1500)
    rate = args.rate or (200 if args.quick else 250)
    hold = args.hold or (3.0 if args.quick else 40.0)
    args.timeout = args.timeout or (3.0 if args.quick else 10.0)
    attacks = ATTACKS
    if args.attacks:
        wanted = {a.strip() for a in args.attacks.split(",")}
        attacks = [a for a in ATTACKS if a.name in wanted]
        if not attacks or wanted - {a.name for a in ATTACKS}:
            parser.error(f"--attacks: choose from {[a.name for a in ATTACKS]}")
    servers = list(SERVERS)
    if args.servers:
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        if set(servers) - set(SERVERS):
            parser.error(f"--servers: choose from {list(SERVERS)}")
    tools = {a.tool for a in attacks}
    if "slowhttptest" in tools and shutil.which("slowhttptest") is None:
        raise SystemExit("ERROR: slowhttptest is not installed (Debian/Ubuntu: apt-get install slowhttptest)")
    own = [CLIENT_ADDRESS] if tools - {"office"} else []
    own += hostile.sources(attack_addresses(connections))[:1] if "hostile" in tools else []
    own += [OFFICE_ADDRESS] if "office" in tools else []
    for address in own:
        try:
            with socket.socket() as sock:
                sock.bind((address, 0))
        except OSError as exc:
            raise SystemExit(f"ERROR: cannot bind a client to {address}: {exc}") from None

    # slowhttptest and the servers need a descriptor per connection.
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = connections + 1024
        if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass

    workdir = Path(tempfile.mkdtemp(prefix="bench-attack-"))
    try:
        log(f"baking the template into {workdir}")
        project = bench.bake(workdir)
        bench.write_bench_app(project)
        python = bench.cached_venv(project, args.python, args.cache_dir.resolve())
        big = workdir / "big.bin"
        with open(big, "wb") as f:
            f.truncate(BIG_FILE_SIZE)  # sparse: no disk used, reads return zeros
        env = bench.bench_env(workdir, big)
        for command in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            bench.run([python, "manage.py", *command], cwd=project, env=env)
        logdir = workdir / "logs"
        logdir.mkdir()
        about = versions(python, "slowhttptest" in tools)
        log(f"{about}; {connections} attack connections at {rate}/s, then {hold:g} s of "
            f"normal traffic from {CLIENT_ADDRESS}")

        outcomes: list[Outcome] = []
        for attack in attacks:
            for name in servers:
                log(f"{attack.label} against {name} ...")
                try:
                    o = run_attack(SERVERS[name], attack, python, project, env, logdir,
                                   connections, rate, hold, args.timeout)
                except RuntimeError as exc:  # the server did not start
                    o = Outcome(name, attack, failure=str(exc))
                outcomes.append(o)
                log(table([o], args.timeout)[-1])
        lines = table(outcomes, args.timeout)
        print()
        print("\n".join(lines))
        stamp = time.strftime("%Y-%m-%d %H:%M")
        description = (
            f"{about}. Each attack opens {connections} connections at {rate} per second: "
            f"slowhttptest from 127.0.0.1, hostile.py from {attack_addresses(connections)} "
            f"addresses 127.0.1.x; once they are open, a normal client on "
            f"{CLIENT_ADDRESS} asks for `{NORMAL_PAGE}` (a template and an SQLite query) on a new "
            f"connection every 0.5 s for {hold:g} s. The office row has no attacker: "
            f"{OFFICE_BROWSERS} browsers on {OFFICE_ADDRESS}, {OFFICE_CONNECTIONS} keep-alive "
            f"connections each, ask for `{NORMAL_PAGE}` and {OFFICE_CONNECTIONS - 1} x "
            f"`{OFFICE_ASSET}` every {OFFICE_THINK[0]:g}-{OFFICE_THINK[1]:g} s for {hold:g} s, "
            f"and their requests are the row's. A request not answered with 200 within "
            f"{args.timeout:g} s fails. A fresh server for every attack: " + "; ".join(
                f"{name}: {SERVERS[name].note}" for name in servers) + ".")
        counted = ("`attack conns open` is the most attack connections open at once (the office's own "
                   "in its row), counted once the kernel has accepted them, so a server that stops "
                   "accepting still shows its listen backlog as open: as slowhttptest saw them, or "
                   "as /proc/net/tcp showed them for the others.")
        stem = "attack-quick" if args.quick else "attack-latest"
        page = write_results(args.results, f"{stem}.md",
                             f"Attack results ({'quick smoke run' if args.quick else 'full run'}, {stamp})",
                             description, lines, counted)
        log(f"table: {page}")
        return 0
    finally:
        leave_workdir(workdir, args.keep, log)


if __name__ == "__main__":
    sys.exit(main())
