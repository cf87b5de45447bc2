"""Kerberos sign-on (--windows-auth negotiate) end to end: a real MIT KDC (tests/kerberos_realm.py),
the user's ticket from kinit, the real server with the keytab of HTTP/localhost, and pyspnego's
client on a real socket. Kerberos signs on in one request and proves the server back (mutual
authentication) in the 200's WWW-Authenticate."""

from __future__ import annotations

import base64
import http.client
import json

import pytest

spnego = pytest.importorskip("spnego")


@pytest.fixture(scope="module")
def server(start_module_server, kerberos_realm):
    return start_module_server("--windows-auth", "negotiate", env=kerberos_realm.env)


def connect(server) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    conn.connect()
    conn.auto_open = 0  # never silently a new connection
    return conn


def get(conn, token: bytes | None = None):
    conn.request("GET", "/__test__/user",
                 headers={"Authorization": f"Negotiate {base64.b64encode(token).decode()}"} if token else {})
    response = conn.getresponse()
    return response, response.read()


def kerberos_client(host: str = "localhost"):
    """The user's side, with the ticket kinit put in the realm's credential cache."""
    return spnego.client(hostname=host, service="HTTP", protocol="kerberos")


def test_kerberos_signs_on_in_one_request_with_mutual_authentication(server, kerberos_realm):
    conn = connect(server)
    response, _ = get(conn)
    assert response.status == 401
    client = kerberos_client()
    response, body = get(conn, client.step())
    assert response.status == 200, body
    seen = json.loads(body)
    assert seen["user"] == seen["remote_user"] == kerberos_realm.principal
    assert seen["users_with_that_name"] == 1
    assert (seen["groups"], seen["group_keys"]) == (None, [])  # GSSAPI cannot tell the groups
    # The server's token proves it holds the service's key: the client checks it.
    scheme, _, token = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Negotiate" and token
    assert client.step(base64.b64decode(token)) is None
    assert client.complete
    conn.close()


def test_a_ticket_for_another_service_is_refused(server):
    conn = connect(server)
    response, body = get(conn, kerberos_client("other.localhost").step())
    assert response.status == 401, body
    assert response.headers.get_all("WWW-Authenticate") == ["Negotiate", "NTLM"]
    conn.close()


def test_a_token_replayed_on_another_connection_is_refused(server, kerberos_realm):
    token = kerberos_client().step()
    first = connect(server)
    assert get(first, token)[0].status == 200
    first.close()
    # Someone who captured the token cannot sign on with it: the acceptor's replay cache.
    second = connect(server)
    response, body = get(second, token)
    assert response.status == 401, body
    second.close()


def test_a_static_file_answered_on_the_event_loop_carries_the_mutual_token(start_module_server, kerberos_realm,
                                                                           server_env):
    """WhiteNoise's files skip the thread pool (static_files.py); the first request of a
    connection may be one, and its 200 must still prove the server to the client."""
    from .test_static_files import PLAIN, static_path

    server = start_module_server("--windows-auth", "negotiate", env={**kerberos_realm.env, **PLAIN})
    conn = connect(server)
    client = kerberos_client()
    conn.request("GET", static_path(server_env),
                 headers={"Authorization": f"Negotiate {base64.b64encode(client.step()).decode()}"})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200 and body, body[:200]
    assert response.headers["Cache-Control"].endswith("immutable")  # WhiteNoise's answer
    scheme, _, token = (response.headers.get("WWW-Authenticate") or "").partition(" ")
    assert scheme == "Negotiate" and token, response.headers
    assert client.step(base64.b64decode(token)) is None and client.complete
    conn.close()
