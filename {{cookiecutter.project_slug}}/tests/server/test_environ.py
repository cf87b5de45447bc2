"""The WSGI environ the server builds: PEP 3333 paths, proxy headers only from trusted
proxies, the request target forms of RFC 9112 and the server's own address."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

PROXY_HEADERS = {
    "X-Forwarded-For": "1.2.3.4",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "localhost:8443",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": "for=1.2.3.4;proto=https;host=evil.example",
    "X-Real-IP": "1.2.3.4",
}


@pytest.fixture(scope="module")
def server(start_module_server):
    """Nobody trusted."""
    return start_module_server()


@pytest.fixture(scope="module")
def behind_proxy(start_module_server):
    """127.0.0.1 is the trusted proxy."""
    return start_module_server("--trusted-proxies", "127.0.0.1")


def environ(server, headers=None, path="/__test__/environ") -> dict:
    response = httpx.get(f"{server.url}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def raw_request(server, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as it is; (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = int(dict(
                    line.split(b": ", 1) for line in head.split(b"\r\n")[1:]
                ).get(b"Content-Length", b"0"))
                if len(rest) >= length:
                    return int(head.split(b" ")[1]), rest[:length]
            block = sock.recv(65536)
            if not block:
                raise AssertionError(f"connection closed after {data!r}")
            data += block


def raw_environ(server, request: bytes) -> dict:
    status, body = raw_request(server, request)
    assert status == 200, body
    return json.loads(body)


def test_proxy_headers_from_an_untrusted_peer_never_reach_django(server):
    """Django's USE_X_FORWARDED_HOST or SECURE_PROXY_SSL_HEADER would believe them."""
    seen = environ(server, PROXY_HEADERS)
    leaked = {key for key in seen if key.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED", "HTTP_X_REAL"))}
    assert leaked == set()
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    assert seen["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert seen["HTTP_USER_AGENT"].startswith("python-httpx")  # other headers pass


def test_proxy_headers_from_a_trusted_proxy_are_kept(behind_proxy):
    seen = environ(behind_proxy, PROXY_HEADERS)
    assert seen["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert seen["HTTP_FORWARDED"] == PROXY_HEADERS["Forwarded"]


@pytest.mark.parametrize(("hop", "client"), [
    ("1.2.3.4:5678", "1.2.3.4"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("9.9.9.9, 1.2.3.4:5678", "1.2.3.4"),
])
def test_forwarded_for_hops_with_ports(behind_proxy, hop, client):
    """IIS ARR adds the client's port; Azure and CDNs send bracketed IPv6 with a port."""
    assert environ(behind_proxy, {"X-Forwarded-For": hop})["REMOTE_ADDR"] == client


def test_unparseable_hop_keeps_the_proxy_address_and_warns_once(start_server):
    server = start_server("--trusted-proxies", "127.0.0.1")
    for _ in range(3):
        assert environ(server, {"X-Forwarded-For": "1.2.3.4, unknown"})["REMOTE_ADDR"] == "127.0.0.1"
        assert environ(server, {"X-Forwarded-For": "1.2.3.4:x"})["REMOTE_ADDR"] == "127.0.0.1"
    server.wait_for_output("has a hop that is not an IP address")
    assert server.output().count("has a hop that is not an IP address") == 1


def test_forwarded_host_from_a_trusted_proxy(behind_proxy):
    seen = environ(behind_proxy, {"X-Forwarded-Host": "localhost:8443", "X-Forwarded-Proto": "https"})
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("localhost:8443", "localhost", "8443")
    # No port: the scheme's own; several proxies: the nearest one's.
    seen = environ(behind_proxy, {"X-Forwarded-Host": "evil.example, localhost", "X-Forwarded-Proto": "https"})
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("localhost", "localhost", "443")
    seen = environ(behind_proxy, {"X-Forwarded-Host": "localhost"})
    assert seen["SERVER_PORT"] == "80"


def test_forwarded_host_from_an_untrusted_peer_is_ignored(server):
    seen = environ(server, {"X-Forwarded-Host": "localhost:8443"})
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"]) == (f"127.0.0.1:{server.port}", "127.0.0.1")
    assert seen["SERVER_PORT"] == str(server.port)


def test_path_info_is_the_raw_path_as_latin1(server):
    """PEP 3333: raw UTF-8 bytes and %-escapes both become the same bytes, as Latin-1."""
    seen = raw_environ(server, b"GET /__test__/environ/caf\xc3\xa9%20x%C3%A9 HTTP/1.1\r\n"
                               b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    # Django decodes PATH_INFO as UTF-8 in place; a doubly encoded one gives "cafÃ©".
    assert seen["path"] == seen["PATH_INFO"] == "/__test__/environ/café xé"


def test_chunked_body_is_given_with_its_length_and_no_transfer_encoding(server):
    """Werkzeug reads nothing from a chunked body unless wsgi.input_terminated says it may."""
    seen = raw_environ(server, b"POST /__test__/environ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert "HTTP_TRANSFER_ENCODING" not in seen
    assert seen["CONTENT_LENGTH"] == "5"
    assert seen["body"] == "abcde"
    assert seen["wsgi.input_terminated"] is True


@pytest.mark.parametrize("scheme", [b"http", b"HTTP", b"Https"])
def test_absolute_form_keeps_its_query_and_its_authority_is_the_host(server, scheme):
    seen = raw_environ(server, b"GET " + scheme + b"://localhost:9/__test__/environ?q=1&r=%20 HTTP/1.1\r\n"
                               b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (seen["PATH_INFO"], seen["QUERY_STRING"]) == ("/__test__/environ", "q=1&r=%20")
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"]) == ("localhost:9", "localhost")


def test_absolute_form_without_a_path(server):
    status, body = raw_request(server, b"GET http://localhost?q=1 HTTP/1.1\r\n"
                                       b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 200  # the project's home page, not a 400 or the query lost on the way
    status, _ = raw_request(server, b"GET http://user@localhost/ HTTP/1.1\r\n"
                                    b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 400


def test_duplicate_content_type_is_refused(server):
    """A firewall may have judged the body by the first, Django by the last."""
    body = b"a=1"
    status, answer = raw_request(
        server, b"POST /__test__/environ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Type: multipart/form-data; boundary=x\r\n"
                b"Content-Length: 3\r\nConnection: close\r\n\r\n" + body)
    assert status == 400, answer
    assert b"Content-Type" in answer
    # The server still serves the next request (on a new connection).
    assert environ(server)["REQUEST_METHOD"] == "GET"


def test_server_port_is_the_listening_port(server):
    """CGI: SERVER_PORT is where the request arrived, not what Host claims."""
    seen = raw_environ(server, b"GET /__test__/environ HTTP/1.1\r\nHost: localhost:99999\r\n"
                               b"Connection: close\r\n\r\n")
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("localhost", str(server.port))
    seen = raw_environ(server, b"GET /__test__/environ HTTP/1.0\r\n\r\n")
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
