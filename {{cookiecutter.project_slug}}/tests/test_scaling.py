"""Scaling out: two instances of the project share logins, data and (with Redis) the cache;
worker processes write concurrently without "database is locked"; and the sample nginx
configuration in deploy/ balances two instances and passes the client's address and scheme."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import PROJECT_DIR, free_port, manage, need, second_loopback_address

pytestmark = pytest.mark.slow


@pytest.fixture
def two_instances(start_server):
    return start_server("--threads", "4"), start_server("--threads", "4")


@pytest.fixture(scope="module")
def superuser(server_env) -> tuple[str, str]:
    username, password = f"admin_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    manage("createsuperuser", "--noinput", "--username", username, "--email", "admin@example.com",
           env={**server_env, "DJANGO_SUPERUSER_PASSWORD": password})
    return username, password


def admin_login(client: httpx.Client, base_url: str, username: str, password: str) -> None:
    form = client.get(f"{base_url}/admin/login/?next=/admin/")
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = client.post(f"{base_url}/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/",
    })
    assert response.status_code == 302, response.text[:2000]
    assert response.headers["location"] == "/admin/"


def test_login_on_one_instance_is_valid_on_the_other(two_instances, superuser):
    a, b = two_instances
    with httpx.Client(timeout=30) as client:
        # Not logged in yet: B sends us to the login form.
        assert client.get(f"{b.url}/admin/").status_code == 302
        admin_login(client, a.url, *superuser)
        # The cookie jar holds A's session cookie (cookies ignore the port); B accepts it.
        page = client.get(f"{b.url}/admin/")
        assert page.status_code == 200
        assert "Site administration" in page.text
        assert superuser[0] in page.text


def test_data_written_through_one_instance_is_read_through_the_other(two_instances):
    a, b = two_instances
    name = f"scaling-{secrets.token_hex(4)}"
    assert httpx.get(f"{b.url}/__test__/group", params={"name": name}).json()["exists"] is False
    assert httpx.post(f"{a.url}/__test__/group", params={"name": name}).json()["exists"] is True
    assert httpx.get(f"{b.url}/__test__/group", params={"name": name}).json()["exists"] is True

{% if cookiecutter.cache == "redis" %}
def test_cache_is_shared_between_instances(redis_cache_url, two_instances):
    a, b = two_instances
    key = f"scaling-{secrets.token_hex(4)}"
    set_a = httpx.post(f"{a.url}/__test__/cache", params={"key": key, "value": "set through A"}).json()
    read_b = httpx.get(f"{b.url}/__test__/cache", params={"key": key}).json()
    assert set_a["pid"] != read_b["pid"]
    assert read_b["value"] == "set through A"
{% else %}
def test_locmem_cache_is_per_process(two_instances):
    """Why several instances want cache=redis: the in-process cache is not shared."""
    a, b = two_instances
    key = f"scaling-{secrets.token_hex(4)}"
    assert httpx.post(f"{a.url}/__test__/cache", params={"key": key, "value": "A"}).json()["value"] == "A"
    assert httpx.get(f"{b.url}/__test__/cache", params={"key": key}).json()["value"] is None
{% endif %}

def test_concurrent_writes_from_two_workers(start_server):
    """200 write transactions, 20 at a time, from two processes: all succeed (SQLite: WAL,
    IMMEDIATE transactions and a lock timeout; PostgreSQL: row locks)."""
    server = start_server("--workers", "2", "--threads", "10")

    def write(_):
        with httpx.Client(timeout=60) as http:
            response = http.post(f"{server.url}/__test__/db-write")
            return response.status_code, response.text

    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(write, range(200)))
    elapsed = time.monotonic() - started
    failures = [result for result in results if result[0] != 200]
    assert not failures, f"{len(failures)} of 200 failed, e.g. {failures[0]}"
    assert "database is locked" not in server.output()
    print(f"200 concurrent writes through 2 workers in {elapsed:.2f}s")


# --- nginx in front (deploy/nginx.conf) --------------------------------------------------


def render_nginx_conf(tmp, upstream_ports, http_port, https_port, cert, key) -> str:
    """deploy/nginx.conf with test ports and paths, inside a minimal main configuration."""
    site = (PROJECT_DIR / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    ports = iter(upstream_ports)
    site, count = re.subn(r"server 127\.0\.0\.1:\d+", lambda _: f"server 127.0.0.1:{next(ports)}", site)
    assert count == len(upstream_ports)
    replacements = {
        r"listen 80;": f"listen 127.0.0.1:{http_port};",
        r"listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        r"ssl_certificate\s+\S+;": f"ssl_certificate {cert};",
        r"ssl_certificate_key\s+\S+;": f"ssl_certificate_key {key};",
    }
    for pattern, value in replacements.items():
        site, count = re.subn(pattern, value, site)
        assert count == 1, pattern
    temp = {name: tmp / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    lines = [
        "daemon off;",
        "master_process off;",
        f"pid {tmp / 'nginx.pid'};",
        f"error_log {tmp / 'error.log'} info;",
        "events { worker_connections 256; }",
        "http {",
        f"access_log {tmp / 'access.log'};",
        *(f"{name}_temp_path {path};" for name, path in temp.items()),
        site,
        "}",
    ]
    return "\n".join(lines) + "\n"


def make_certificate(tmp):
    openssl = shutil.which("openssl")
    need(openssl is not None, "openssl not found (needed for the nginx HTTPS check)")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def wait_for_port(port: int, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on {port}:\n{log.read_text()}")


def test_nginx_sample_balances_two_instances(start_server, tmp_path):
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    need(nginx is not None, "nginx not installed (apt-get install nginx)")
    need(second_loopback_address(), "127.0.0.2 is not a loopback address here (needed to tell "
         "the client's address from the proxy's)")
    cert, key = make_certificate(tmp_path)
    instances = [start_server("--threads", "4", "--trusted-proxies", "127.0.0.1") for _ in range(2)]
    http_port = https_port = free_port()
    while https_port == http_port:  # two calls may be handed the same free port
        https_port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf(tmp_path, [s.port for s in instances], http_port, https_port,
                                      cert, key), encoding="utf-8")
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                              "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                                "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, process, tmp_path / "error.log")
        wait_for_port(https_port, process, tmp_path / "error.log")
        # The client comes from 127.0.0.2; nginx reaches the instances from 127.0.0.1.
        transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=False)
        with httpx.Client(transport=transport, timeout=30) as client:
            plain = [client.get(f"http://127.0.0.1:{http_port}/__test__/whoami").json() for _ in range(10)]
            secure = [client.get(f"https://127.0.0.1:{https_port}/__test__/whoami").json()
                      for _ in range(10)]
            # The server takes X-Forwarded-Host as the host: nginx must set it, not pass the client's.
            spoofed = client.get(f"http://127.0.0.1:{http_port}/__test__/whoami",
                                 headers={"X-Forwarded-Host": "localhost"}).json()
            static = client.get(f"http://127.0.0.1:{http_port}/static/css/site.css")
            home = client.get(f"http://127.0.0.1:{http_port}/")
            # Straight to an instance the client is not a trusted proxy: its header is ignored.
            direct = client.get(f"{instances[0].url}/__test__/whoami",
                                headers={"X-Forwarded-For": "203.0.113.9"}).json()
    finally:
        process.terminate()
        process.wait(20)
    instance_pids = {s.process.pid for s in instances}
    assert {r["pid"] for r in plain + secure} == instance_pids  # both instances answered
    assert {(r["remote_addr"], r["scheme"], r["is_secure"]) for r in plain} == {("127.0.0.2", "http", False)}
    assert {(r["remote_addr"], r["scheme"], r["is_secure"]) for r in secure} == {("127.0.0.2", "https", True)}
    assert {r["host"] for r in plain} == {"127.0.0.1"}  # nginx's $host, the name the client asked for
    assert spoofed["host"] == "127.0.0.1"
    assert direct["remote_addr"] == "127.0.0.2"
    assert static.status_code == 200 and "max-age" in static.headers.get("cache-control", "")
    assert home.status_code == 200
