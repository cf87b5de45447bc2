"""Fixtures that run the real tornado_server.py in a subprocess on a free port."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tornado_wsgi_server.options import options_for
from tornado_wsgi_server.project import load_project

from .settings import TEST_ENVIRONMENT

PROJECT_DIR = Path(__file__).resolve().parent.parent
IS_WINDOWS = sys.platform == "win32"
READY_LINE = "is running at"
SLUG = "{{ cookiecutter.project_slug }}"
# Where the project's settings look when neither the environment nor .env names a database.
DEFAULT_DATABASE_URL = {% if cookiecutter.database == "postgresql" %}f"postgres://postgres@127.0.0.1:5432/{SLUG}"{% else %}""{% endif %}
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Every server option at its default, so that no SERVER_* line in .env or the environment
# changes what the tests see (.env never overrides a variable that is set). The pytest
# process takes them too: tests that build options in-process read .env the way the
# server does.
SERVER_DEFAULTS = {
    **{option.env_name: option.default or "" for option in options_for(load_project(PROJECT_DIR))},
    "DJANGO_SETTINGS_MODULE": "tests.settings",
}
os.environ.update(SERVER_DEFAULTS)


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip when an outside service or program is missing; fail with REQUIRE_SERVICES=1."""
    if condition:
        return
    if services_required():
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def database_url() -> str:
    """The DATABASE_URL the project would use (environment, then .env, then its default)."""
    return os.environ.get("DATABASE_URL") or read_env_file().get("DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or read_env_file().get("REDIS_URL") or DEFAULT_REDIS_URL


def read_env_file() -> dict:
    path = PROJECT_DIR / ".env"
    values = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def is_postgresql(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql", "postgis")


def with_database_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def postgresql_connect(url: str, dbname: str = "postgres"):
    """A psycopg connection (autocommit) to ``dbname`` on the server ``url`` names."""
    import psycopg

    parts = urlsplit(with_database_name(url, dbname))
    return psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True,
                           connect_timeout=5)


def postgresql_problem(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -r requirements-dev.txt)"
    try:
        postgresql_connect(url).close()
    except Exception as exc:  # any failure to connect means "not usable here"
        location = urlsplit(url).hostname or "localhost"
        port = urlsplit(url).port or 5432
        return f"PostgreSQL not reachable at {location}:{port}: {str(exc).strip().splitlines()[0]}"
    return None


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -r requirements-dev.txt)"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:  # any failure to connect means "not usable here"
        parts = urlsplit(url)
        return f"Redis not reachable at {parts.hostname}:{parts.port or 6379}: {exc}"
    return None


def uses_redis_cache() -> bool:
    from django.conf import settings

    return "redis" in settings.CACHES["default"]["BACKEND"].lower()


def copy_bootstrap(project: Path) -> None:
    """What a copy of the project needs to run bootstrap.py: the script and the package
    module that does the work (standard library only)."""
    shutil.copy(PROJECT_DIR / "bootstrap.py", project)
    package = project / "tornado_wsgi_server"
    package.mkdir(exist_ok=True)
    for name in ("__init__.py", "bootstrap.py"):
        shutil.copy(PROJECT_DIR / "tornado_wsgi_server" / name, package)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_and_read_to_close(port: int, request: bytes, timeout: float = 30) -> bytes:
    """Send ``request`` to 127.0.0.1:``port`` on a new connection and return all the server
    sends until it closes it (what came before, if the connection fails or times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        try:
            while part := sock.recv(65536):
                data += part
        except OSError:
            pass
    return data


# A server with one thread and no queue is busy, and says so with a 503, exactly while a
# request is running on its thread (see wait_until_busy).
ONE_AT_A_TIME = ("--threads", "1", "--max-queue", "0")


def wait_until_busy(port: int, timeout: float = 30) -> None:
    """Wait until a request sent before runs on the only thread of a server (ONE_AT_A_TIME).

    The probe declares a body far over --max-body-size: a free server refuses it with 413,
    a busy one with 503, and neither takes the thread, so the probe cannot get in the way.
    With several worker processes any of them may answer; one answers 503 soon enough.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Length: 999999999999\r\n\r\n")
            status = sock.recv(12)
        if status == b"HTTP/1.1 503":
            return
        assert status == b"HTTP/1.1 413", status
        time.sleep(0.02)
    pytest.fail(f"the request did not reach the server on port {port} in {timeout}s")


def second_loopback_address() -> bool:
    """127.0.0.2 is a loopback address on Linux and Windows, not on macOS."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def manage(*args: str, env: dict) -> None:
    # Bounded: a lock left on the database by a killed server would otherwise block migrate.
    subprocess.run([sys.executable, "manage.py", *args, "--settings", "tests.settings"],
                   cwd=PROJECT_DIR, env=env, check=True, timeout=300)


class RunningServer:
    """A tornado_server.py process; ``url`` is its base URL, ``output()`` what it printed."""

    def __init__(self, args: list[str], env: dict, port: int, scheme: str = "http",
                 preexec_fn=None) -> None:
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if IS_WINDOWS else 0
        self.process = subprocess.Popen(
            [sys.executable, "tornado_server.py", *args], cwd=PROJECT_DIR, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, creationflags=flags, preexec_fn=preexec_fn,
        )

    def output(self) -> str:
        return Path(self.log.name).read_bytes().decode("utf-8", "replace")

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """The output once ``text`` appears ``count`` times: log lines lag behind events."""
        deadline = time.monotonic() + timeout
        while (output := self.output()).count(text) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not printed {count} time(s) in {timeout}s:\n{output}")
            time.sleep(0.02)
        return output

    def wait_ready(self, timeout: float = 60) -> RunningServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.output():
                return self
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"server did not start in {timeout}s:\n{self.output()}")

    def signal_stop(self) -> None:
        """What Ctrl+C (Ctrl+Break on Windows) does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.CTRL_BREAK_EVENT if IS_WINDOWS else signal.SIGINT)

    def stop(self, timeout: float = 60) -> int:
        self.signal_stop()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not stop in {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        # A killed server leaves its control file (reload/status) behind.
        (PROJECT_DIR / "data" / f"server-{self.port}.control").unlink(missing_ok=True)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


@pytest.fixture
def restored_environ():
    """os.environ as it was before the test (code that loads .env into it, as the service
    does, leaves nothing behind)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    """DATABASE_URL of the project's PostgreSQL (skips, or fails with REQUIRE_SERVICES=1,
    when it does not answer)."""
    url = database_url()
    need(is_postgresql(url), "the project's DATABASE_URL is not PostgreSQL")
    problem = postgresql_problem(url)
    need(problem is None, problem or "")
    return url


@pytest.fixture(scope="session")
def redis_cache_url() -> str:
    """REDIS_URL of the project's Redis cache (skips, or fails with REQUIRE_SERVICES=1,
    when it does not answer)."""
    url = redis_url()
    problem = redis_problem(url)
    need(problem is None, problem or "")
    return url


@pytest.fixture(scope="session")
def database_reachable() -> None:
    url = database_url()
    if is_postgresql(url):
        problem = postgresql_problem(url)
        need(problem is None, problem or "")


@pytest.fixture(scope="session")
def django_db_setup(database_reachable, django_db_setup):
    # pytest-django makes its test database on the project's server: say so when it is down.
    return django_db_setup


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """pytest-django's test database (tests that use ``db``) gets a name of its own on a
    database server, so two runs against one server (two copies of the project, CI beside a
    developer) never drop each other's."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        test = database.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + database['NAME']}_{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def server_env(request, tmp_path_factory) -> dict:
    """Environment for test servers: throwaway database and static files, migrated.

    Complete and explicit: every server option at its default and every variable the
    project's settings read at its test value (tests/settings.py), so .env decides nothing;
    what the operating system needs (PATH...) comes from this process's environment.
    SQLite: a new file. PostgreSQL: a new database ``<slug>_srv_<random>`` on the server
    DATABASE_URL names, dropped at the end, so servers the tests start never touch the
    real one. Redis: the project's Redis with a key prefix of its own. When PostgreSQL or
    Redis does not answer (and REQUIRE_SERVICES is not 1), a new SQLite file and the local
    memory cache instead: the server's behaviour does not depend on them, and the tests that
    are about them ask for ``postgresql_url`` or ``redis_cache_url``, which skip.
    """
    tmp = tmp_path_factory.mktemp("server")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SERVER_", "DJANGO_")) and name not in TEST_ENVIRONMENT}
    env.update(SERVER_DEFAULTS)
    env.update(TEST_ENVIRONMENT)
    env.update({
        "TEST_ENVIRONMENT_SET": "1",
        "DJANGO_SECRET_KEY": "test-only-" + "s" * 60,
        "DJANGO_STATIC_ROOT": str(tmp / "staticfiles"),
        "DJANGO_MEDIA_ROOT": str(tmp / "media"),
        "DJANGO_EMAIL_FILE_PATH": str(tmp / "mail"),
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("TEST_CACHE_KEY_PREFIX", None)
    env.pop("TEST_CACHE_LOCAL", None)
    env.pop("TEST_FILE", None)
    env.pop("TEST_PLAIN_WSGI", None)
    url = database_url()
    if is_postgresql(url) and (services_required() or postgresql_problem(url) is None):
        url = request.getfixturevalue("postgresql_url")
        name = f"{SLUG}_srv_{secrets.token_hex(4)}"
        with postgresql_connect(url) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: drop_postgresql_database(url, name))
        env["DATABASE_URL"] = with_database_name(url, name)
    else:
        # SQLite, a PostgreSQL that is not there, or a database these fixtures cannot make a
        # throwaway copy of: servers get a new SQLite file rather than the project's own data.
        env["DATABASE_URL"] = f"sqlite:///{(tmp / 'db.sqlite3').as_posix()}"
    if uses_redis_cache() and not services_required() and redis_problem(redis_url()) is not None:
        env["TEST_CACHE_LOCAL"] = "1"  # tests/settings.py: the local memory cache
    elif uses_redis_cache():
        request.getfixturevalue("redis_cache_url")
        env["TEST_CACHE_KEY_PREFIX"] = f"{SLUG}_test_{secrets.token_hex(4)}"
    manage("migrate", "--noinput", "--verbosity", "0", env=env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    return env


def drop_postgresql_database(url: str, name: str) -> None:
    with postgresql_connect(url) as admin:
        # FORCE (PostgreSQL 13+) ends connections a killed server may have left behind.
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def kerberos_realm(tmp_path_factory):
    """A throwaway MIT Kerberos realm with its KDC running (tests/kerberos_realm.py); this
    process's environment points at it while it lives. Skips (or fails with REQUIRE_SERVICES=1)
    without the KDC's programs or python-gssapi."""
    from .kerberos_realm import KerberosRealm, missing_programs

    if IS_WINDOWS:
        pytest.skip("the test realm is an MIT KDC; Windows signs on through SSPI (ci/windows_signon_check.py)")
    missing = missing_programs()
    need(not missing, f"Kerberos KDC programs not found ({', '.join(missing)}): install Debian's krb5-kdc, "
                      "krb5-admin-server and krb5-user for the Kerberos tests")
    try:
        import gssapi  # noqa: F401
        import krb5  # noqa: F401
    except ImportError as exc:
        need(False, "python-gssapi and krb5 not installed: pip install -r requirements-kerberos.txt "
                    f"(it builds them on Debian's libkrb5-dev) for the Kerberos tests ({exc})")
    realm = KerberosRealm(tmp_path_factory.mktemp("kerberos")).start()
    saved = {name: os.environ.get(name) for name in realm.env}
    os.environ.update(realm.env)
    try:
        realm.kinit()
        yield realm
    finally:
        realm.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def start_server(server_env):
    """start_server('--threads', '2', env={...}) -> RunningServer, stopped after the test."""
    servers: list[RunningServer] = []

    def start(*args: str, env: dict | None = None, wait: bool = True, scheme: str = "http",
              port: int | None = None, preexec_fn=None) -> RunningServer:
        port = port or free_port()
        server = RunningServer(
            ["--settings", "tests.settings", "--port", str(port), *args],
            {**server_env, **(env or {})}, port, scheme, preexec_fn,
        )
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def start_module_server(server_env):
    """start_server for a server that several tests of one module share."""
    servers: list[RunningServer] = []

    def start(*args: str, env: dict | None = None, scheme: str = "http") -> RunningServer:
        port = free_port()
        server = RunningServer(
            ["--settings", "tests.settings", "--port", str(port), *args],
            {**server_env, **(env or {})}, port, scheme,
        )
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.close()
