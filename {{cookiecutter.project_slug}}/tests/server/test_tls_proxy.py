"""HTTPS served directly (--certfile/--keyfile, or a PFX file), and X-Forwarded-* believed
only from trusted proxies."""

from __future__ import annotations

import ssl
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import trustme

from ..conftest import need, second_loopback_address


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(certfile, append=True)
    cert.private_key_pem.write_to_path(keyfile)
    return ca, str(certfile), str(keyfile)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_with_certificate(start_server, certificate):
    ca, certfile, keyfile = certificate
    server = start_server("--certfile", certfile, "--keyfile", keyfile, scheme="https")
    assert server.url.startswith("https://")
    assert f"is running at https://127.0.0.1:{server.port}/" in server.output()
    with httpx.Client(verify=trusting(ca), timeout=10) as http:
        info = http.get(f"{server.url}/__test__/whoami").json()
        assert info["is_secure"] is True
        assert info["scheme"] == "https"
        assert http.get(f"{server.url}/healthz").text == "ok"
    # A client that does not trust the throwaway CA is refused, as it should be.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=10)
    # Plain HTTP to the TLS port: the handshake fails and the connection is closed at
    # once, with no HTTP answer (not a hang until the client gives up).
    started = time.monotonic()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
    assert time.monotonic() - started < 5
    with httpx.Client(verify=trusting(ca), timeout=10) as http:
        assert http.get(f"{server.url}/healthz").status_code == 200


def test_missing_certificate_file_is_a_clear_error(start_server, tmp_path):
    server = start_server("--certfile", str(tmp_path / "nope.pem"), wait=False)
    assert server.process.wait(30) == 2
    output = server.output()
    assert "--certfile" in output and "does not exist" in output


def test_invalid_certificate_is_a_clear_error(start_server, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    server = start_server("--certfile", str(bogus), wait=False)
    assert server.process.wait(30) == 1
    assert f"ERROR: cannot load TLS certificate {str(bogus)!r}" in server.output()


@pytest.fixture(scope="module")
def pfx_certificate(tmp_path_factory):
    """A trustme certificate with its chain and key, exported as Windows does (PKCS#12)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    certificate, *chain = [x509.load_pem_x509_certificate(pem.bytes()) for pem in issued.cert_chain_pems]
    folder = tmp_path_factory.mktemp("pfx")
    blob = pkcs12.serialize_key_and_certificates(
        b"site", key, certificate, chain or None,
        serialization.BestAvailableEncryption(PFX_PASSWORD.encode()))
    (folder / "site.pfx").write_bytes(blob)
    # The same file under a name that does not say what it is: found by its content.
    (folder / "site-certificate").write_bytes(blob)
    return ca, folder


PFX_PASSWORD = "corp pässword 1"


@pytest.mark.parametrize("name", ["site.pfx", "site-certificate"])
def test_https_with_a_pfx_file_and_its_password_from_the_environment(start_server, pfx_certificate, name):
    ca, folder = pfx_certificate
    before = set(Path(tempfile.gettempdir()).iterdir())
    server = start_server("--certfile", str(folder / name), scheme="https",
                          env={"SERVER_CERT_PASSWORD": PFX_PASSWORD})
    with httpx.Client(verify=trusting(ca), timeout=10) as http:
        assert http.get(f"{server.url}/__test__/whoami").json()["scheme"] == "https"
    assert PFX_PASSWORD not in " ".join(server.process.args)
    # The key taken out of the PFX is not left on disk.
    left = [path for path in set(Path(tempfile.gettempdir()).iterdir()) - before if path.suffix == ".pem"]
    assert left == []


@pytest.mark.parametrize("password, expected", [
    ("not the password", "wrong password, or not a PFX/PKCS#12 file (check SERVER_CERT_PASSWORD)"),
    ("", "wrong password, or not a PFX/PKCS#12 file (set SERVER_CERT_PASSWORD)"),
])
def test_a_wrong_pfx_password_is_a_clear_error(start_server, pfx_certificate, password, expected):
    _, folder = pfx_certificate
    server = start_server("--certfile", str(folder / "site.pfx"), wait=False,
                          env={"SERVER_CERT_PASSWORD": password})
    assert server.process.wait(30) == 1
    output = server.output()
    assert f"ERROR: cannot load TLS certificate {str(folder / 'site.pfx')!r}: {expected}" in output
    assert "Traceback" not in output


def whoami(server, headers, local_address: str | None = None) -> dict:
    """What Django sees (REMOTE_ADDR, scheme) for a request from ``local_address``."""
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    with httpx.Client(transport=transport, timeout=10) as http:
        return http.get(f"{server.url}/__test__/whoami", headers=headers).json()


FORWARDED = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_ignored_by_default(start_server):
    server = start_server()
    info = whoami(server, FORWARDED)
    assert info["remote_addr"] == "127.0.0.1"
    assert info["scheme"] == "http"
    assert info["is_secure"] is False


def test_forwarded_headers_from_trusted_proxy(start_server):
    server = start_server("--trusted-proxies", "127.0.0.1")
    info = whoami(server, FORWARDED)
    assert info["remote_addr"] == "1.2.3.4"
    assert info["scheme"] == "https"
    assert info["is_secure"] is True
    # The client may send its own X-Forwarded-For; only the hop the proxy added counts.
    assert whoami(server, {"X-Forwarded-For": "1.2.3.4, 5.6.7.8"})["remote_addr"] == "5.6.7.8"
    # Nothing forwarded: the proxy's own address.
    assert whoami(server, {})["remote_addr"] == "127.0.0.1"
    # Garbage is not taken for an address.
    assert whoami(server, {"X-Forwarded-For": "not-an-ip"})["remote_addr"] == "127.0.0.1"
    assert whoami(server, {"X-Forwarded-Proto": "gopher"})["scheme"] == "http"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start_server):
    """Only the listed proxies are believed: 127.0.0.1 is not one of them here, so a client
    there cannot pose as another address or as HTTPS."""
    server = start_server("--trusted-proxies", "10.0.0.0/8,127.0.0.2")
    info = whoami(server, FORWARDED)
    assert (info["remote_addr"], info["scheme"], info["is_secure"]) == ("127.0.0.1", "http", False)
    chained = whoami(server, {"X-Forwarded-For": "1.2.3.4, 10.0.0.1", "X-Forwarded-Proto": "https"})
    assert (chained["remote_addr"], chained["scheme"]) == ("127.0.0.1", "http")


def test_same_headers_from_the_trusted_address_are_believed(start_server):
    """The control for the test above: the same server believes the same headers when they
    come from 127.0.0.2, the address it trusts."""
    need(second_loopback_address(), "127.0.0.2 is not a loopback address here (macOS)")
    server = start_server("--trusted-proxies", "10.0.0.0/8,127.0.0.2")
    info = whoami(server, FORWARDED, local_address="127.0.0.2")
    assert (info["remote_addr"], info["scheme"], info["is_secure"]) == ("1.2.3.4", "https", True)
    assert whoami(server, {}, local_address="127.0.0.2")["remote_addr"] == "127.0.0.2"
    untrusted = whoami(server, FORWARDED)  # from 127.0.0.1 at the same time
    assert (untrusted["remote_addr"], untrusted["scheme"]) == ("127.0.0.1", "http")


UNTRUSTED_WARNING = "sent X-Forwarded-For, but is not a trusted proxy"


def test_forwarded_headers_from_an_untrusted_peer_are_logged_once_a_minute_per_address(start_server, tmp_path):
    """A proxy left out of --trusted-proxies is named in the log, once for many requests
    (one of them a static file the event loop answers), per address, and never for the
    trusted one."""
    need(second_loopback_address(), "127.0.0.2 is not a loopback address here (macOS)")
    log_file = tmp_path / "server.log"
    server = start_server("--trusted-proxies", "127.0.0.2", "--log-file", str(log_file),
                          env={"TEST_PLAIN_WSGI": "1"})
    with httpx.Client(timeout=10) as http:
        static = http.get(f"{server.url}/static/css/site.css", headers=FORWARDED)
        assert static.status_code == 200
    for _ in range(20):
        assert whoami(server, FORWARDED)["remote_addr"] == "127.0.0.1"
        assert whoami(server, FORWARDED, local_address="127.0.0.2")["remote_addr"] == "1.2.3.4"
    whoami(server, {"X-Real-IP": "1.2.3.4"}, local_address="127.0.0.3")
    output = server.wait_for_output("127.0.0.3 sent X-Real-Ip, but is not a trusted proxy")
    assert output.count(UNTRUSTED_WARNING) == 1, output
    assert "WARNING" in output and "127.0.0.1 " + UNTRUSTED_WARNING in output
    assert "--trusted-proxies (SERVER_TRUSTED_PROXIES in .env)" in output
    assert "127.0.0.2 sent" not in output
    # In the log file the service keeps, too.
    assert log_file.read_text(encoding="utf-8").count(UNTRUSTED_WARNING) == 1


def test_the_untrusted_sender_warning_comes_back_after_a_minute_and_its_memory_is_bounded():
    from tornado_wsgi_server.proxies import UntrustedSenders

    now = [1000.0]
    senders = UntrustedSenders(clock=lambda: now[0])
    assert senders.due("10.0.0.1") and not senders.due("10.0.0.1")
    now[0] += 59.9
    assert not senders.due("10.0.0.1")
    now[0] += 0.1
    assert senders.due("10.0.0.1")
    # Many addresses in one minute: at most MAX_ADDRESSES lines and entries.
    warned = sum(senders.due(f"10.1.{n // 256}.{n % 256}") for n in range(1000))
    assert warned == UntrustedSenders.MAX_ADDRESSES - 1
    assert len(senders.warned_at) == UntrustedSenders.MAX_ADDRESSES
    now[0] += 60
    assert senders.due("10.2.0.1") and len(senders.warned_at) == 1


def test_forwarded_proto_takes_the_last_value(start_server):
    """Each proxy appends what it saw; the last value is the one the trusted proxy added."""
    server = start_server("--trusted-proxies", "127.0.0.1")
    assert whoami(server, {"X-Forwarded-Proto": "https, http"})["scheme"] == "http"
    assert whoami(server, {"X-Forwarded-Proto": "http, https"})["scheme"] == "https"
    # Two header lines are one comma-separated list.
    assert whoami(server, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")])["scheme"] == "http"


def test_trusted_proxy_chain(start_server):
    server = start_server("--trusted-proxies", "127.0.0.1,10.0.0.0/8")
    # Trusted hops are skipped from the right; the first untrusted one is the client.
    assert whoami(server, {"X-Forwarded-For": "1.2.3.4, 5.6.7.8, 10.1.1.1"})["remote_addr"] == "5.6.7.8"
    # Every hop trusted (traffic from inside the network): the first hop is the client.
    assert whoami(server, {"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 10.0.0.3"})["remote_addr"] == "10.0.0.1"


def test_underscore_header_is_dropped(start_server):
    """X_Forwarded_For would reach Django as HTTP_X_FORWARDED_FOR, like the real header."""
    server = start_server("--trusted-proxies", "127.0.0.1")
    info = whoami(server, {"X_Forwarded_For": "9.9.9.9", "X_Forwarded_Proto": "https"})
    assert info["remote_addr"] == "127.0.0.1"
    assert info["scheme"] == "http"
