"""Windows sign-on (--windows-auth, docs/windows-signon.md) end to end: the real server, a real
socket and pyspnego's client with a user name and password; the server's acceptor is
pyspnego's NTLM, which checks passwords against NTLM_USER_FILE, and the users' groups come
from NTLM_GROUP_FILE (Kerberos has its own test)."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import trustme

from ..conftest import free_port, need, second_loopback_address
from ..test_scaling import wait_for_port

spnego = pytest.importorskip("spnego")
from spnego.channel_bindings import GssChannelBindings  # noqa: E402

DOMAIN = "TESTDOM"
PASSWORD = "Sign-on-Passw0rd"
USER_HEADERS = {"Remote-User": "mallory", "X-Remote-User": "mallory", "X-Forwarded-User": "mallory",
                "Remote_User": "mallory", "X-Authenticated-User": "mallory", "Auth-User": "mallory"}
# Headers posing as the server's groups key (windows_auth.GROUPS_KEY) or naming groups.
GROUP_HEADERS = {"X-Windows-Groups": "BUILTIN\\Administrators",
                 "Tornado-Wsgi-Server.Windows-Auth.Groups": "BUILTIN\\Administrators",
                 "tornado_wsgi_server.windows_auth.groups": "BUILTIN\\Administrators"}
GROUPS_KEY = "tornado_wsgi_server.windows_auth.groups"
NOBODY = {"user": None, "remote_user": None, "users_with_that_name": 0, "headers": [], "groups": None,
          "groups_type": "NoneType", "group_keys": [], "django_groups": [], "is_staff": False, "is_superuser": False}


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> dict:
    """Names new to the test database (so a sign-on must create them), in NTLM_USER_FILE."""
    names = {key: f"{key}{secrets.token_hex(3)}" for key in ("alice", "bob", "carol", "dave", "erin")}
    folder = tmp_path_factory.mktemp("ntlm")
    path = folder / "users"
    path.write_text("".join(f"{DOMAIN}:{name}:{PASSWORD}\n" for name in names.values()))
    groups = folder / "groups"  # alice's name in another case: Windows' names ignore case
    groups.write_text(f"# NTLM_GROUP_FILE\n\n{DOMAIN.lower()}\\{names['alice'].upper()}: Site Editors, BUILTIN\\Users\n"
                      f"{DOMAIN}\\{names['bob']}:Reviewers\n", encoding="utf-8")
    return {**names, "file": str(path), "groups": str(groups)}


@pytest.fixture(scope="module")
def server(start_module_server, users):
    return start_module_server("--windows-auth", "negotiate",
                               env={"NTLM_USER_FILE": users["file"], "NTLM_GROUP_FILE": users["groups"]})


def connect(server, source: str = "127.0.0.1") -> http.client.HTTPConnection:
    """One keep-alive connection that never silently reconnects (auto_open off)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15,
                                      source_address=(source, 0))
    conn.connect()
    conn.auto_open = 0
    return conn


def get(conn, path: str = "/__test__/user", headers: dict | None = None):
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def challenges(response) -> list[str]:
    return response.headers.get_all("WWW-Authenticate") or []


def sign_on(conn, name: str, password: str = PASSWORD, protocol: str = "ntlm",
            path: str = "/__test__/user", headers: dict | None = None, channel_bindings=None):
    """The client's side of RFC 4559 on ``conn``: (last response, its body, requests sent)."""
    context = spnego.client(f"{DOMAIN}\\{name}", password, hostname="localhost", service="HTTP",
                            protocol=protocol, channel_bindings=channel_bindings)
    scheme = "NTLM" if protocol == "ntlm" else "Negotiate"
    token, sent = context.step(), 0
    while True:
        sent += 1
        response, body = get(conn, path, {"Authorization": f"{scheme} {base64.b64encode(token).decode()}",
                                          **(headers or {})})
        offered = [value for value in challenges(response) if value.startswith(scheme + " ")]
        if response.status != 401 or not offered or sent > 3:
            return response, body, sent
        token = context.step(base64.b64decode(offered[0].split(" ", 1)[1]))


def test_no_credentials_get_401_offering_negotiate_and_ntlm_on_a_kept_connection(server):
    conn = connect(server)
    response, body = get(conn)
    assert response.status == 401
    assert challenges(response) == ["Negotiate", "NTLM"]
    assert b"sign-on" in body
    assert get(conn)[0].status == 401  # the same connection: kept open for the handshake
    conn.close()


def test_right_password_signs_on_in_two_legs_on_one_connection_and_django_creates_the_user(server, users):
    conn = connect(server)
    response, body, sent = sign_on(conn, users["alice"])
    assert (response.status, sent) == (200, 2), body
    seen = json.loads(body)
    assert seen["user"] == seen["remote_user"] == f"{DOMAIN}\\{users['alice']}"
    assert seen["users_with_that_name"] == 1  # created by this first sign-on
    # The connection stays signed on without another handshake...
    response, body = get(conn)
    assert response.status == 200 and json.loads(body)["user"] == f"{DOMAIN}\\{users['alice']}"
    conn.close()
    # ...and no other connection is.
    other = connect(server)
    assert get(other)[0].status == 401
    other.close()


def test_through_a_trusted_proxy_the_connection_keeps_no_sign_on(start_server, users):
    """A proxy's one connection may carry many people's requests: each must sign on."""
    server = start_server("--windows-auth", "negotiate", "--trusted-proxies", "127.0.0.1",
                          env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    response, body, _ = sign_on(conn, users["alice"])
    assert response.status == 200, body
    assert get(conn)[0].status == 401
    conn.close()


def test_negotiate_scheme_carries_ntlm_inside_spnego(server, users):
    conn = connect(server)
    response, body, _ = sign_on(conn, users["bob"], protocol="negotiate")
    assert response.status == 200, body
    assert json.loads(body)["user"] == f"{DOMAIN}\\{users['bob']}"
    assert json.loads(body)["groups"] == [f"{DOMAIN}\\Reviewers"]
    conn.close()


def test_wrong_password_and_unknown_user_get_401_again(server, users):
    conn = connect(server)
    response, body, sent = sign_on(conn, users["carol"], password="wrong")
    assert (response.status, sent) == (401, 2)
    assert challenges(response) == ["Negotiate", "NTLM"]
    response, body, _ = sign_on(conn, "nobody" + secrets.token_hex(3))
    assert response.status == 401
    assert get(conn)[0].status == 401  # nothing signed on
    conn.close()
    server.wait_for_output("Windows sign-on failed for 127.0.0.1")


def test_a_burst_of_sign_ons_from_one_address_all_succeed(server, users):
    """Many people signing on at once from one address (a terminal server at 9:00): more
    steps than that address may have on the sign-on threads at once wait their turn."""
    names = [users[key] for key in ("alice", "bob", "carol", "dave", "erin")]
    for name in names:  # each user exists before the burst, which then only signs on
        conn = connect(server)
        assert sign_on(conn, name)[0].status == 200
        conn.close()
    count = 40
    ready = threading.Barrier(count, timeout=30)

    def one(number: int) -> tuple[int, str]:
        conn = connect(server)
        try:
            ready.wait()
            response, body, _ = sign_on(conn, names[number % len(names)])
            return response.status, json.loads(body)["user"] if response.status == 200 else body
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    assert results == [(200, f"{DOMAIN}\\{names[number % len(names)]}") for number in range(count)]


def test_a_header_naming_a_user_never_signs_anyone_on(server, users):
    conn = connect(server)
    response, _ = get(conn, headers=USER_HEADERS)
    assert response.status == 401
    response, body, _ = sign_on(conn, users["dave"], headers=USER_HEADERS)
    seen = json.loads(body)
    assert seen["user"] == f"{DOMAIN}\\{users['dave']}"
    assert seen["headers"] == ["REMOTE_USER"]  # none of the client's user headers reached Django
    conn.close()


def test_client_user_headers_are_removed_with_sign_on_off(start_server):
    server = start_server()
    conn = connect(server)
    response, body = get(conn, headers=USER_HEADERS)
    assert response.status == 200
    assert json.loads(body) == NOBODY
    conn.close()


def test_the_request_that_signs_on_carries_the_users_groups_and_later_ones_do_not(server, users):
    conn = connect(server)
    response, body, sent = sign_on(conn, users["alice"])
    assert (response.status, sent) == (200, 2), body
    seen = json.loads(body)
    assert seen["groups"] == [f"{DOMAIN}\\Site Editors", "BUILTIN\\Users"]
    assert seen["groups_type"] == "tuple" and seen["group_keys"] == [GROUPS_KEY]
    # The connection stays signed on; its later requests carry no groups (Django has them).
    response, body = get(conn)
    seen = json.loads(body)
    assert (response.status, seen["user"]) == (200, f"{DOMAIN}\\{users['alice']}")
    assert (seen["groups"], seen["group_keys"]) == (None, [])
    conn.close()


def test_groups_of_a_sign_on_completed_on_a_static_file_go_with_the_connections_next_django_request(
        start_server, server_env, users):
    """A static file the server answers itself runs no Django middleware: the groups wait on
    the connection for its first request to Django, once, and never reach another connection."""
    from .test_static_files import PLAIN, static_path

    server = start_server("--windows-auth", "negotiate", env={
        **PLAIN, "NTLM_USER_FILE": users["file"], "NTLM_GROUP_FILE": users["groups"]})
    static = static_path(server_env)
    conn = connect(server)
    response, body, sent = sign_on(conn, users["alice"], path=static)
    assert (response.status, sent, response.headers["Content-Type"][:8]) == (200, 2, "text/css"), body
    other = connect(server)  # bob signs on through a static file as well, and then asks Django
    assert sign_on(other, users["bob"], path=static)[0].status == 200
    response, body = get(conn, static)  # still on the loop: the groups keep waiting
    assert response.status == 200
    seen = json.loads(get(conn)[1])
    assert (seen["user"], seen["groups"]) == (f"{DOMAIN}\\{users['alice']}", [f"{DOMAIN}\\Site Editors", "BUILTIN\\Users"])
    seen = json.loads(get(conn)[1])
    assert (seen["user"], seen["groups"], seen["group_keys"]) == (f"{DOMAIN}\\{users['alice']}", None, [])
    seen = json.loads(get(other)[1])
    assert (seen["user"], seen["groups"]) == (f"{DOMAIN}\\{users['bob']}", [f"{DOMAIN}\\Reviewers"])
    assert json.loads(get(other)[1])["groups"] is None
    conn.close()
    other.close()
    assert "Traceback" not in server.output()


def test_each_user_gets_only_their_own_groups(server, users):
    alice, bob, carol = connect(server), connect(server), connect(server)
    assert json.loads(sign_on(alice, users["alice"])[1])["groups"] == [f"{DOMAIN}\\Site Editors", "BUILTIN\\Users"]
    assert json.loads(sign_on(bob, users["bob"])[1])["groups"] == [f"{DOMAIN}\\Reviewers"]
    seen = json.loads(sign_on(carol, users["carol"])[1])  # in NTLM_USER_FILE, not in NTLM_GROUP_FILE
    assert (seen["user"], seen["groups"], seen["group_keys"]) == (f"{DOMAIN}\\{users['carol']}", [], [GROUPS_KEY])
    for conn in (alice, bob, carol):
        assert json.loads(get(conn)[1])["groups"] is None
        conn.close()


def test_a_header_naming_groups_never_reaches_the_groups_key(server, users):
    conn = connect(server)
    response, body = get(conn, headers=GROUP_HEADERS)
    assert response.status == 401
    response, body, _ = sign_on(conn, users["dave"], headers=GROUP_HEADERS)
    seen = json.loads(body)
    assert seen["user"] == f"{DOMAIN}\\{users['dave']}"
    assert seen["groups"] == []  # dave has no line in NTLM_GROUP_FILE: none of the headers' groups
    assert GROUPS_KEY in seen["group_keys"]
    response, body = get(conn, headers=GROUP_HEADERS)  # signed on, no handshake: no groups at all
    seen = json.loads(body)
    assert seen["user"] == f"{DOMAIN}\\{users['dave']}" and seen["groups"] is None
    assert GROUPS_KEY not in seen["group_keys"], seen["group_keys"]
    conn.close()


def test_without_sign_on_a_header_cannot_set_the_groups_key(start_server):
    server = start_server()
    conn = connect(server)
    response, body = get(conn, headers=GROUP_HEADERS)
    seen = json.loads(body)
    assert response.status == 200 and seen["groups"] is None
    # The headers arrive as headers (HTTP_...), never as the server's key.
    assert seen["group_keys"] == ["HTTP_TORNADO_WSGI_SERVER.WINDOWS_AUTH.GROUPS", "HTTP_X_WINDOWS_GROUPS"]
    conn.close()


@pytest.mark.parametrize("content, error", [
    (None, "cannot be read"),
    ("TESTDOM\\alice: Editors\nTESTDOM\\bob Editors\n", "line 2: expected \"DOMAIN\\user: Group One, Group Two\", got \"TESTDOM\\bob Editors\""),
    ("alice: Editors\n", "line 1: expected"),
    ("\nTESTDOM\\alice: Editors,, Readers\n", "line 2: \"\" is not a group name"),
    ("TESTDOM\\alice: Editors=all\n", "line 1: \"Editors=all\" is not a group name"),
    ("TESTDOM\\alice: Editors\n# a note\ntestdom\\ALICE: Readers\n", "line 3: testdom\\ALICE already has its groups on line 1"),
])
def test_a_bad_group_file_stops_the_server_with_the_line_at_fault(start_server, users, tmp_path, content, error):
    path = tmp_path / "groups"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    server = start_server("--windows-auth", "negotiate", wait=False,
                          env={"NTLM_USER_FILE": users["file"], "NTLM_GROUP_FILE": str(path)})
    assert server.process.wait(60) != 0
    assert f"ERROR: NTLM_GROUP_FILE {path}" in server.output() and error in server.output(), server.output()


def test_a_group_file_without_a_user_file_stops_the_server(start_server, users):
    server = start_server("--windows-auth", "negotiate", wait=False, env={"NTLM_GROUP_FILE": users["groups"]})
    assert server.process.wait(60) != 0
    assert "ERROR: NTLM_GROUP_FILE is set without NTLM_USER_FILE" in server.output(), server.output()


def test_failed_handshakes_are_limited_per_address(start_server, users):
    server = start_server("--windows-auth", "negotiate", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    for _ in range(20):
        assert sign_on(conn, users["erin"], password="guess")[0].status == 401
    response, _, _ = sign_on(conn, users["erin"])  # even the right password, for a minute
    assert response.status == 429 and response.headers["Retry-After"] == "60"
    conn.close()
    assert server.output().count("Windows sign-on failed for") == 1  # once a minute


def test_paths_mode_signs_on_once_and_the_session_keeps_the_user(start_server, users):
    server = start_server("--windows-auth", "paths", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    response, body = get(conn, "/admin/login/?next=/admin/")
    assert response.status == 200 and b"Sign in with Windows" in body  # no sign-on outside the paths
    response, body, _ = sign_on(conn, users["erin"], path="/accounts/windows/?next=/__test__/user")
    assert response.status == 302 and response.headers["Location"] == "/__test__/user"
    cookie = next(value.split(";", 1)[0] for value in response.headers.get_all("Set-Cookie")
                  if value.startswith("sessionid="))
    conn.close()
    other = connect(server)  # a new connection: only the session says who this is
    response, body = get(other, "/__test__/user", {"Cookie": cookie})
    assert json.loads(body)["user"] == f"{DOMAIN}\\{users['erin']}"
    assert json.loads(body)["remote_user"] is None
    other.close()


@pytest.mark.skipif(not second_loopback_address(), reason="127.0.0.2 is not a loopback address here")
@pytest.mark.parametrize("header", ["X-Forwarded-User", "X-Windows-Login"])
def test_iis_header_is_believed_from_a_trusted_proxy_only(start_server, header):
    server = start_server("--windows-auth-header", header, "--trusted-proxies", "127.0.0.2",
                          "--windows-auth-user-format", "strip-domain-lower")
    name = "Frank" + secrets.token_hex(3)
    trusted = connect(server, source="127.0.0.2")
    response, body = get(trusted, headers={header: f"CORP\\{name}"})
    seen = json.loads(body)
    assert seen["user"] == seen["remote_user"] == name.lower()
    assert seen["users_with_that_name"] == 1
    trusted.close()
    untrusted = connect(server)
    response, body = get(untrusted, headers={header: f"CORP\\{name}"})
    assert json.loads(body) == NOBODY
    untrusted.close()


def nginx_signing_on(tmp_path, upstream_port: int, users_file) -> tuple[subprocess.Popen, int]:
    """nginx standing in for IIS: it signs people on itself (here with a password, where IIS
    uses Windows Authentication) and passes the user on as X-Forwarded-User, as the URL
    Rewrite rule in docs/windows-signon.md does with {LOGON_USER}."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    need(nginx is not None, "nginx not installed (apt-get install nginx)")
    port = free_port()
    temp = {name: tmp_path / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text("\n".join([
        "daemon off;", "master_process off;", f"pid {tmp_path / 'nginx.pid'};",
        f"error_log {tmp_path / 'error.log'} info;", "events { worker_connections 64; }", "http {",
        f"access_log {tmp_path / 'access.log'};",
        *(f"{name}_temp_path {path};" for name, path in temp.items()),
        "server {", f"  listen 127.0.0.1:{port};",
        f'  auth_basic "intranet"; auth_basic_user_file {users_file};',
        "  location / {", f"    proxy_pass http://127.0.0.1:{upstream_port};",
        "    proxy_set_header Host $host; proxy_set_header X-Forwarded-User $remote_user; } }",
        "}"]) + "\n", encoding="utf-8")
    process = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(port, process, tmp_path / "error.log")
    return process, port


@pytest.mark.skipif(not second_loopback_address(), reason="127.0.0.2 is not a loopback address here")
def test_behind_a_proxy_that_signs_on_the_user_header_is_believed_from_it_only(start_server, tmp_path):
    server = start_server("--windows-auth-header", "X-Forwarded-User", "--trusted-proxies", "127.0.0.1")
    name = "Grace" + secrets.token_hex(3)
    users_file = tmp_path / "htpasswd"
    users_file.write_text(name + ":" + "{PLAIN}" + PASSWORD + "\n")  # nginx's plain-text scheme
    process, port = nginx_signing_on(tmp_path, server.port, users_file)
    proxy = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=("127.0.0.2", 0))
    try:
        signed_on = {"Authorization": "Basic " + base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()}
        response, body = get(proxy, headers={**signed_on, "X-Forwarded-User": "mallory"})
        assert response.status == 200, body
        seen = json.loads(body)
        assert (seen["user"], seen["users_with_that_name"], seen["headers"]) == (name, 1, ["REMOTE_USER"])
        response, _ = get(proxy, headers={"X-Forwarded-User": name})  # the proxy signs on, not the client
        assert response.status == 401
    finally:
        proxy.close()
        process.terminate()
        process.wait(20)
    direct = connect(server, source="127.0.0.2")  # not through the proxy: not believed
    response, body = get(direct, headers={"X-Forwarded-User": name})
    assert json.loads(body) == NOBODY
    direct.close()


def test_a_token_past_the_header_limit_is_refused_before_the_acceptor(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        token = base64.b64encode(b"N" * 50000).decode()  # past 64K, under 68K
        sock.sendall(f"GET /__test__/user HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: NTLM {token}\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 431"


@pytest.fixture(scope="module")
def https_server(start_module_server, users, tmp_path_factory):
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("signon-tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    issued.cert_chain_pems[0].write_to_path(certfile)
    issued.private_key_pem.write_to_path(keyfile)
    server = start_module_server("--windows-auth", "negotiate", "--certfile", str(certfile),
                                 "--keyfile", str(keyfile), env={"NTLM_USER_FILE": users["file"]},
                                 scheme="https")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return server, context


def tls_server_end_point(conn) -> bytes:
    """RFC 5929's binding of the certificate this client sees (trustme signs with SHA-256)."""
    return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).digest()


@pytest.mark.parametrize("binding, status", [("right", 200), ("other certificate", 401), ("none", 401)])
def test_over_https_the_sign_on_is_bound_to_the_servers_certificate(https_server, users, binding, status):
    server, context = https_server
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=15, context=context)
    conn.connect()
    conn.auto_open = 0
    digest = {"right": tls_server_end_point(conn), "other certificate": b"\x01" * 32, "none": None}[binding]
    bindings = None if digest is None else GssChannelBindings(application_data=b"tls-server-end-point:" + digest)
    response, body, _ = sign_on(conn, users["alice"], channel_bindings=bindings)
    assert response.status == status, body
    conn.close()


# --- Windows groups to Django groups and rights (tornado_wsgi_server/windows_groups.py), through
# the server: the groups it read at the handshake reach the settings' middleware.
GROUP_MAPPING = {
    "DJANGO_WINDOWS_GROUPS": f"{DOMAIN}\\Site Editors=Editors, Reviewers=Reviewers",
    "DJANGO_WINDOWS_STAFF_GROUPS": "Site Editors",
    "DJANGO_WINDOWS_SUPERUSER_GROUPS": f"{DOMAIN}\\Site Admins",
}


class MappedUsers:
    """Users new to the database in an NTLM_USER_FILE of their own; ``env(groups)`` writes an
    NTLM_GROUP_FILE ({key: "Group, Group"}) and gives a server's environment with GROUP_MAPPING."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.names = {key: f"{key}{secrets.token_hex(3)}" for key in ("editor", "reviewer", "admin", "none",
                                                                      "leaver", "visitor")}
        self.users_file = folder / "users"
        self.users_file.write_text("".join(f"{DOMAIN}:{name}:{PASSWORD}\n" for name in self.names.values()))
        self.files = 0

    def env(self, groups: dict[str, str]) -> dict:
        self.files += 1
        path = self.folder / f"groups-{self.files}"
        path.write_text("".join(f"{DOMAIN}\\{self.names[key]}: {value}\n" for key, value in groups.items()),
                        encoding="utf-8")
        return {"NTLM_USER_FILE": str(self.users_file), "NTLM_GROUP_FILE": str(path), **GROUP_MAPPING}


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> MappedUsers:
    return MappedUsers(tmp_path_factory.mktemp("ntlm-mapped"))


@pytest.fixture(scope="module")
def mapped_server(start_module_server, mapped):
    return start_module_server("--windows-auth", "negotiate", env=mapped.env({
        "editor": "Site Editors, BUILTIN\\Users", "reviewer": "Reviewers", "admin": "Site Admins"}))


def django_rights(seen: dict) -> tuple[list[str], bool, bool]:
    return seen["django_groups"], seen["is_staff"], seen["is_superuser"]


def signed_on_rights(server, name: str) -> tuple[list[str], bool, bool]:
    """Sign ``name`` on; its Django groups and rights as the database has them, read on the
    request that signed on and again on a later one of that connection (which carries no groups)."""
    conn = connect(server)
    try:
        response, body, _ = sign_on(conn, name)
        assert response.status == 200, body
        seen = json.loads(body)
        assert seen["user"] == f"{DOMAIN}\\{name}" and seen["groups"] is not None, seen
        response, body = get(conn)
        later = json.loads(body)
        assert (later["user"], later["groups"]) == (seen["user"], None), later
        assert django_rights(later) == django_rights(seen)
        return django_rights(seen)
    finally:
        conn.close()


def test_a_windows_group_gives_its_django_group_and_staff_at_sign_on_and_others_get_none(mapped_server, mapped):
    names = mapped.names
    assert signed_on_rights(mapped_server, names["editor"]) == (["Editors"], True, False)
    mapped_server.wait_for_output(f"Windows groups of {DOMAIN}\\{names['editor']}: joined Editors, is_staff on")
    assert signed_on_rights(mapped_server, names["reviewer"]) == (["Reviewers"], False, False)
    assert signed_on_rights(mapped_server, names["admin"]) == ([], True, True)
    assert signed_on_rights(mapped_server, names["none"]) == ([], False, False)  # in no group at all
    # Signing on again changes nothing and writes nothing.
    assert signed_on_rights(mapped_server, names["editor"]) == (["Editors"], True, False)
    assert mapped_server.output().count(f"Windows groups of {DOMAIN}\\{names['editor']}:") == 1


def test_leaving_the_windows_group_takes_the_django_group_and_staff_away_at_the_next_sign_on(start_server, mapped):
    """NTLM_GROUP_FILE is read at start: the server starts again with the user out of the group."""
    name = mapped.names["leaver"]
    server = start_server("--windows-auth", "negotiate", env=mapped.env({"leaver": "Site Editors, Reviewers"}))
    assert signed_on_rights(server, name) == (["Editors", "Reviewers"], True, False)
    assert server.stop() == 0
    server = start_server("--windows-auth", "negotiate", env=mapped.env({"leaver": "Reviewers"}))
    assert signed_on_rights(server, name) == (["Reviewers"], False, False)
    server.wait_for_output(f"Windows groups of {DOMAIN}\\{name}: left Editors, is_staff off")


def test_paths_mode_applies_the_groups_at_the_sign_on_path_and_staff_reach_the_admin(start_server, mapped):
    server = start_server("--windows-auth", "paths", env=mapped.env({"visitor": "Site Editors"}))
    conn = connect(server)
    response, body = get(conn, "/admin/")
    assert response.status == 302 and response.headers["Location"].startswith("/admin/login/")
    response, body, _ = sign_on(conn, mapped.names["visitor"], path="/accounts/windows/?next=/admin/")
    assert response.status == 302 and response.headers["Location"] == "/admin/", body
    cookie = next(value.split(";", 1)[0] for value in response.headers.get_all("Set-Cookie")
                  if value.startswith("sessionid="))
    conn.close()
    other = connect(server)  # only the session says who this is, and the database what they may do
    response, body = get(other, "/__test__/user", {"Cookie": cookie})
    seen = json.loads(body)
    assert (seen["user"], seen["remote_user"]) == (f"{DOMAIN}\\{mapped.names['visitor']}", None)
    assert django_rights(seen) == (["Editors"], True, False)
    response, body = get(other, "/admin/", {"Cookie": cookie})
    assert response.status == 200 and b"Site administration" in body, body[:300]
    other.close()
