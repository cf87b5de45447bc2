#!/usr/bin/env python
"""Windows sign-on benchmark: signed-on requests per second against anonymous ones, same view.

    python benchmarks/signon.py            # 10 s per case (about 2 minutes)
    python benchmarks/signon.py --quick    # smoke run, 2 s per case

tornado_server (8 threads, one process, no access log) answers the bench ``hello`` view,
once without sign-on and once with ``--windows-auth negotiate``. Kerberos goes through a
throwaway MIT KDC (the baked project's tests/kerberos_realm.py; Debian's krb5-kdc,
krb5-admin-server, krb5-user) with the server's keytab; NTLM is pyspnego's own against
NTLM_USER_FILE, as on Linux in production. Cases, each with CLIENTS client threads:

- keep-alive: one connection per client, reused; signed on (NTLM) once per connection;
- a new connection per request: anonymous, Kerberos (one request, the client checks the
  server's mutual-authentication token) and NTLM (three requests: 401, challenge, 200).

Signed-on requests also run Django's RemoteUserMiddleware: the first logs the user in, and the
session cookie, which the clients keep as a browser does, carries it after that. The clients
are Python (pyspnego) on the same cores as the server: they share the CPU.
Writes ``benchmarks/results/signon-latest.md``. Linux (needs the KDC's programs).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import add_environment_options, machine, write_results
from run import (  # noqa: E402  (benchmarks/ is not a package)
    RunningServer,
    bake,
    bench_env,
    cached_venv,
    log,
    run,
    server_specs,
    write_bench_app,
)

CLIENTS = 4
VIEW = "/hello"  # the bench app's smallest view
DOMAIN = "BENCH"
NTLM_USER, NTLM_PASSWORD = "bob", "Bench-pass-1"
# (name, how the client signs on, whether the server signs on, the anonymous row it compares with)
CASES = [
    ("anonymous, keep-alive", "anonymous-keepalive", False, None),
    ("signed on (NTLM once per connection), keep-alive", "ntlm-keepalive", True, "anonymous-keepalive"),
    ("anonymous, new connection per request", "anonymous-new", False, None),
    ("Kerberos, new connection per request (1 request)", "kerberos-new", True, "anonymous-new"),
    ("NTLM, new connection per request (3 requests)", "ntlm-new", True, "anonymous-new"),
]


# ----------------------------------------------------------------------------------------
# The client side: run by the bench venv's Python (it has pyspnego), ``--client MODE``.
# ----------------------------------------------------------------------------------------


def request(conn: http.client.HTTPConnection, authorization: str | None = None, cookies: dict | None = None):
    """GET /hello; ``cookies``, when given, is sent and kept as a browser keeps them."""
    headers = {"Authorization": authorization} if authorization else {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    conn.request("GET", VIEW, headers=headers)
    response = conn.getresponse()
    response.read()
    if cookies is not None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            cookies[name.strip()] = value.strip()
    return response


def sign_on(conn: http.client.HTTPConnection, mode: str, cookies: dict) -> None:
    """One sign-on on ``conn`` that ends with the view's 200, or an exception."""
    import spnego

    if mode.startswith("kerberos"):
        context = spnego.client(hostname="localhost", service="HTTP", protocol="kerberos")
        response = request(conn, "Negotiate " + base64.b64encode(context.step()).decode(), cookies)
        token = response.headers.get("WWW-Authenticate", "").partition(" ")[2]
        if response.status != 200 or not token:
            raise RuntimeError(f"Kerberos: {response.status}")
        context.step(base64.b64decode(token))  # the server's mutual-authentication token
        if not context.complete:
            raise RuntimeError("Kerberos: the server's token did not complete the context")
        return
    context = spnego.client(f"{DOMAIN}\\{NTLM_USER}", NTLM_PASSWORD, hostname="localhost", service="HTTP",
                            protocol="ntlm")
    token = context.step()
    for _ in range(2):
        response = request(conn, "NTLM " + base64.b64encode(token).decode(), cookies)
        if response.status == 200:
            return
        offered = [value for value in response.headers.get_all("WWW-Authenticate") or []
                   if value.startswith("NTLM ")]
        if response.status != 401 or not offered:
            break
        token = context.step(base64.b64decode(offered[0][5:]))
    raise RuntimeError(f"NTLM: {response.status}")


def client_load(port: int, mode: str, seconds: float) -> dict:
    """Requests that ended in the view's 200 (a sign-on counts as one), per second."""
    done, errors = [0] * CLIENTS, []
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        conn, cookies = None, {}
        try:
            while time.monotonic() < stop:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.connect()
                    conn.auto_open = 0
                    if mode == "ntlm-keepalive":
                        sign_on(conn, mode, cookies)
                        done[index] += 1
                        continue
                if mode.startswith("anonymous") or mode == "ntlm-keepalive":
                    status = request(conn, cookies=cookies).status
                    if status != 200:
                        raise RuntimeError(f"{mode}: {status}")
                else:
                    sign_on(conn, mode, cookies)
                done[index] += 1
                if mode.endswith("-new"):
                    conn.close()
                    conn = None
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if conn is not None:
                conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return {"rps": sum(done) / (time.monotonic() - started), "errors": errors[:3]}


# ----------------------------------------------------------------------------------------
# The run: bake, realm, servers, a client process per case, the table.
# ----------------------------------------------------------------------------------------


def wait_listening(server: RunningServer, timeout: float = 90) -> None:
    """Until the server answers anything (with sign-on on, /hello answers 401)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}; see {server.logfile.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            try:
                request(conn)
                return
            finally:
                conn.close()
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout}s")


def with_kerberos(python: Path, project: Path) -> None:
    """python-gssapi and krb5 (the project's requirements-kerberos.txt pins) in the bench venv;
    pip builds them on libkrb5-dev (no Linux wheels), so its krb5-config must be there first."""
    if shutil.which("krb5-config") is None:
        raise SystemExit("ERROR: krb5-config not found: python-gssapi builds on it (apt-get install libkrb5-dev)")
    pins = [line.split(";")[0].strip() for line in (project / "requirements-kerberos.txt").read_text().splitlines()
            if line.split("==")[0] in ("gssapi", "krb5", "decorator")]
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins])


def table(rows: list[tuple[str, float, float | None]]) -> list[str]:
    lines = ["| case | requests/s | vs anonymous, same connections |", "| --- | ---: | ---: |"]
    for name, rps, ratio in rows:
        lines.append(f"| {name} | {rps:,.0f} | {'1.00' if ratio is None else f'{ratio:.2f}'} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per case")
    parser.add_argument("--duration", type=float, default=None, help="seconds per case (default 10)")
    add_environment_options(parser)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # MODE PORT SECONDS: the load, as JSON
    args, rest = parser.parse_known_args(argv)
    if args.client:
        port, seconds = int(rest[0]), float(rest[1])
        print(json.dumps(client_load(port, args.client, seconds)))
        return 0
    seconds = args.duration or (2.0 if args.quick else 10.0)

    workdir = Path(tempfile.mkdtemp(prefix="bench-signon-"))
    realm = None
    rows: list[tuple[str, float, float | None]] = []
    try:
        log(f"baking the template into {workdir}")
        project = bake(workdir)
        write_bench_app(project)
        python = cached_venv(project, args.python, args.cache_dir.resolve())
        with_kerberos(python, project)
        sys.path.insert(0, str(project))
        from tests.kerberos_realm import KerberosRealm, missing_programs

        if missing := missing_programs():
            raise SystemExit(f"ERROR: {', '.join(missing)} not found (apt-get install krb5-kdc "
                             "krb5-admin-server krb5-user)")
        (workdir / "realm").mkdir()
        realm = KerberosRealm(workdir / "realm").start()
        realm.kinit()
        users = workdir / "ntlm-users"
        users.write_text(f"{DOMAIN}:{NTLM_USER}:{NTLM_PASSWORD}\n", encoding="utf-8")
        env = {**bench_env(workdir), **realm.env, "NTLM_USER_FILE": str(users)}
        run([python, "manage.py", "migrate", "-v0"], cwd=project, env=env)
        spec = server_specs()["tornado_server"]
        spec.args += ["--max-connections-per-ip", "100000"]  # all clients come from one address
        by_mode: dict[str, float] = {}
        for signed_on in (False, True):
            if signed_on:
                spec.args += ["--windows-auth", "negotiate"]
            server = RunningServer(spec, python, project, env, workdir)
            try:
                wait_listening(server)
                for name, mode, needs_signon, compared in CASES:
                    if needs_signon != signed_on:
                        continue
                    log(f"{name}: {seconds:g} s, {CLIENTS} clients")
                    done = subprocess.run([python, Path(__file__).resolve(), "--client", mode, str(server.port),
                                           str(seconds)], cwd=project, env=env, capture_output=True, text=True,
                                          timeout=seconds + 120, check=True)
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    if result["errors"]:
                        raise SystemExit(f"ERROR: {name}: {result['errors']}; see {server.logfile.name}")
                    by_mode[mode] = result["rps"]
                    rows.append((name, result["rps"], result["rps"] / by_mode[compared] if compared else None))
            finally:
                server.stop()
    finally:
        if realm is not None:
            realm.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    order = [name for name, *_ in CASES]
    rows.sort(key=lambda row: order.index(row[0]))
    write_results(
        args.results, "signon-latest.md", "Windows sign-on: requests per second",
        f"tornado_server, 8 threads, one process, no access log; the bench `hello` view; {CLIENTS} "
        f"Python clients (pyspnego) on the same machine, {seconds:g} s per case. {machine()}",
        table(rows), echo=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
