"""Windows sign-on under hostile clients: what a client may try beyond a wrong password, with
the real server, real sockets and pyspnego's NTLM client, as in test_windows_signon.py."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import ssl
import time

import pytest
import spnego
import spnego._ntlm
import trustme
from spnego.channel_bindings import GssChannelBindings

from ..conftest import PROJECT_DIR, second_loopback_address
from . import test_windows_signon as signon
from .test_windows_signon import DOMAIN, PASSWORD, connect, get, sign_on

# The fixtures of the module sign-on tests: its users (NTLM_USER_FILE) and HTTPS server.
users, https_server = signon.users, signon.https_server

# Loaded by the server through PYTHONPATH: while the file SIGNON_HANG exists, pyspnego's NTLM
# takes as long to check a password as a domain controller that does not answer.
SLOW_PASSWORD_CHECK = '''
import os, time
import spnego._ntlm as ntlm
checked = ntlm._get_credential
def slow(*args, **kwargs):
    deadline = time.monotonic() + 60
    while os.path.exists(os.environ["SIGNON_HANG"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return checked(*args, **kwargs)
ntlm._get_credential = slow
'''


def ntlm_token(context, data: bytes | None = None) -> str:
    return "NTLM " + base64.b64encode(context.step(data)).decode()


def client_context(name: str, password: str = PASSWORD):
    return spnego.client(f"{DOMAIN}\\{name}", password, hostname="localhost", service="HTTP", protocol="ntlm")


def test_a_failed_new_handshake_on_a_signed_on_connection_forgets_the_user(start_server, users):
    server = start_server("--windows-auth", "negotiate", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    assert sign_on(conn, users["alice"])[0].status == 200
    # Starting over as someone else: the old user is gone at once, even if this one fails.
    response, _ = get(conn, headers={"Authorization": ntlm_token(client_context(users["bob"]))})
    assert response.status == 401
    response, body = get(conn)
    assert response.status == 401, body
    conn.close()


def test_an_unfinished_handshake_signs_nobody_on(start_server, users):
    server = start_server("--windows-auth", "negotiate", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    response, _ = get(conn, headers={"Authorization": ntlm_token(client_context(users["alice"]))})
    assert response.status == 401  # the challenge
    assert get(conn)[0].status == 401  # a request without the answer is not signed on
    conn.close()


# SPNEGO's NegTokenInit offering a mechanism list pyspnego cannot match: its acceptor raises
# StopIteration, which no asyncio future can carry.
MALFORMED_SPNEGO = bytes.fromhex(
    "604806062b0601050502a03e303c0c0e300c060a2b06010401823702020aa22a042896544c4d5353500001000000"
    "378208e20000000028000000a400000028f20000005604000000000f")


def test_a_token_the_acceptor_chokes_on_gets_401_at_once(start_server, users):
    server = start_server("--windows-auth", "negotiate", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    conn.sock.settimeout(20)  # past STEP_TIMEOUT: a 503 would show too
    started = time.monotonic()
    response, body = get(conn, headers={"Authorization": "Negotiate " + base64.b64encode(MALFORMED_SPNEGO).decode()})
    assert (response.status, time.monotonic() - started < 5) == (401, True), body
    conn.close()
    assert "malformed token" in server.wait_for_output("Windows sign-on failed for")
    assert "Traceback" not in server.output()


def hanging_server(start_server, users, tmp_path):
    """A server whose password checks hang while the returned file exists."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_PASSWORD_CHECK, encoding="utf-8")
    hang = tmp_path / "hang"
    hang.touch()
    server = start_server("--windows-auth", "negotiate", env={
        "NTLM_USER_FILE": users["file"], "PYTHONPATH": str(tmp_path), "SIGNON_HANG": str(hang)})
    return server, hang


def hanging_sign_ons(server, name: str, sources: list[str]) -> list[http.client.HTTPConnection]:
    """A connection from each of ``sources``, each with a challenge; then each sends its
    answer, whose password check hangs. The answers are left unread."""
    started = []
    for source in sources:
        conn = connect(server, source=source)
        context = client_context(name)
        response, _ = get(conn, headers={"Authorization": ntlm_token(context)})
        challenge = next(value for value in response.headers.get_all("WWW-Authenticate")
                         if value.startswith("NTLM "))
        started.append((conn, context, base64.b64decode(challenge.split(" ", 1)[1])))
    for conn, context, challenge in started:
        conn.request("GET", "/__test__/user", headers={"Authorization": ntlm_token(context, challenge)})
    return [conn for conn, _, _ in started]


def first_leg_answer(server, name: str, source: str) -> tuple[int, float]:
    """(status, seconds) of a first sign-on request from ``source``."""
    other = connect(server, source=source)
    other.sock.settimeout(30)  # past STEP_TIMEOUT: a 503 shows
    started = time.monotonic()
    response, _ = get(other, headers={"Authorization": ntlm_token(client_context(name))})
    other.close()
    return response.status, time.monotonic() - started


@pytest.mark.skipif(not second_loopback_address(), reason="127.0.0.2 is not a loopback address here")
def test_one_address_with_slow_sign_ons_does_not_hold_everyone_elses(start_server, users, tmp_path):
    """Four hanging password checks (NTLM passed on to a domain controller that does not
    answer) from one address, as many as there are sign-on threads: that address gets two of
    them, its other steps wait their turn, and other addresses still sign on."""
    server, hang = hanging_server(start_server, users, tmp_path)
    slow = []
    try:
        slow = hanging_sign_ons(server, users["alice"], ["127.0.0.1"] * 4)
        time.sleep(1)  # the password checks have started, and hang
        status, waited = first_leg_answer(server, users["bob"], "127.0.0.2")
        assert (status, waited < 5) == (401, True), f"{status} after {waited:.1f}s"
    finally:
        hang.unlink()
        for conn in slow:
            conn.close()


@pytest.mark.skipif(not second_loopback_address(), reason="127.0.0.2 is not a loopback address here")
def test_threads_stuck_past_the_time_out_are_replaced_and_logged(start_server, users, tmp_path):
    """Two addresses whose password checks hang hold all four threads; once those steps have
    run past STEP_TIMEOUT (10 s), new threads take their place."""
    server, hang = hanging_server(start_server, users, tmp_path)
    slow = []
    try:
        slow = hanging_sign_ons(server, users["alice"], ["127.0.0.1", "127.0.0.1", "127.0.0.3", "127.0.0.3"])
        time.sleep(11.5)  # past STEP_TIMEOUT: each of the four has had its 503
        status, waited = first_leg_answer(server, users["bob"], "127.0.0.2")
        assert (status, waited < 5) == (401, True), f"{status} after {waited:.1f}s"
        server.wait_for_output("a step has run past 10s and still holds its thread")
    finally:
        hang.unlink()
        for conn in slow:
            conn.close()


# With SLOW_PASSWORD_CHECK: the sign-on's time-out and bound on lost threads made small, so
# that losing every thread takes two rounds of 2 s, not five of 10 s.
SMALL_BOUNDS = '''
import tornado_wsgi_server.windows_auth as signon
signon.STEP_TIMEOUT = 2.0
signon.LOST_THREADS = 4
'''


@pytest.mark.skipif(not second_loopback_address(), reason="127.0.0.2 is not a loopback address here")
def test_once_every_thread_is_lost_and_none_may_be_replaced_new_sign_ons_get_503_at_once(start_server, users, tmp_path):
    """Replacement is bounded (LOST_THREADS): the 4 threads and their 4 replacements all hang,
    and a new step then gets 503 at once, not after waiting for a thread; once the hanging
    steps end, sign-ons work again."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_PASSWORD_CHECK + SMALL_BOUNDS, encoding="utf-8")
    hang = tmp_path / "hang"
    hang.touch()
    server = start_server("--windows-auth", "negotiate", env={
        "NTLM_USER_FILE": users["file"], "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_DIR)]),
        "SIGNON_HANG": str(hang)})
    slow = []
    try:
        for wave in range(2):  # 4 hanging steps, 2 each from two addresses; 2 s later they are lost
            slow += hanging_sign_ons(server, users["alice"], [f"127.0.1.{wave * 2 + number // 2 + 1}" for number in range(4)])
            time.sleep(3)
        status, waited = first_leg_answer(server, users["bob"], "127.0.0.2")
        assert (status, waited < 1) == (503, True), f"{status} after {waited:.1f}s"
    finally:
        hang.unlink()
        for conn in slow:
            conn.close()
    deadline = time.monotonic() + 15
    while (answer := first_leg_answer(server, users["bob"], "127.0.0.2"))[0] != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer[0] == 401
    assert "(8 such threads now, 4 of them replaced by new ones, at most 4" not in server.output()  # logged once a minute
    server.wait_for_output("(1 such threads now, 1 of them replaced by new ones, at most 4;")


def https_connection(https_server) -> http.client.HTTPSConnection:
    server, context = https_server
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=15, context=context)
    conn.connect()
    conn.auto_open = 0
    return conn


def test_known_limit_over_https_pyspnego_lets_an_all_zero_binding_through(https_server, users, monkeypatch):
    """What a client that knows of no TLS channel sends (MsvAvChannelBindings of 16 zero bytes),
    as a sign-on relayed from a plain connection would. pyspnego's NTLM acceptor (NTLM_USER_FILE,
    for trials) takes it as no binding given and lets it through, as docs/windows-signon.md
    says; when this fails, pyspnego refuses it now: the docs and this test change with it."""
    conn = https_connection(https_server)
    hashed = spnego._ntlm.md5
    bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + b"\x02" * 32)
    packed = bindings.pack()
    monkeypatch.setattr(spnego._ntlm, "md5", lambda data: b"\x00" * 16 if data == packed else hashed(data))
    response, body, _ = sign_on(conn, users["alice"], channel_bindings=bindings)
    conn.close()
    assert response.status == 200, body


def test_over_https_an_ntlmv1_answer_is_refused(https_server, users, monkeypatch):
    """NTLMv1 carries no channel binding to check: over HTTPS it would skip Extended Protection."""
    monkeypatch.setenv("LM_COMPAT_LEVEL", "2")  # the client sends NTLMv1 (with NTLM2 session security)
    conn = https_connection(https_server)
    response, body, _ = sign_on(conn, users["alice"])
    conn.close()
    assert response.status == 401, body
    assert "reject NTv1" in https_server[0].wait_for_output("Windows sign-on failed for")


@pytest.mark.parametrize("level", ["0", "1"])  # NTLMv1 and LM answers, without and with NTLM2 session security
def test_ntlmv1_and_lm_answers_are_refused_and_the_right_password_then_signs_on(start_server, users, monkeypatch, level):
    server = start_server("--windows-auth", "negotiate", env={"NTLM_USER_FILE": users["file"]})
    conn = connect(server)
    with monkeypatch.context() as client_level:
        client_level.setenv("LM_COMPAT_LEVEL", level)
        response, body, _ = sign_on(conn, users["alice"])
    assert response.status == 401, body
    assert sign_on(conn, users["alice"])[0].status == 200  # NTLMv2, the clients' default
    conn.close()


@pytest.mark.parametrize("level", ["3", "4", "six"])
def test_a_level_that_lets_ntlmv1_through_stops_the_server(start_server, users, level):
    server = start_server("--windows-auth", "negotiate", wait=False,
                          env={"NTLM_USER_FILE": users["file"], "LM_COMPAT_LEVEL": level})
    assert server.process.wait(60) != 0
    assert f"ERROR: LM_COMPAT_LEVEL={level} would let Windows sign-on take NTLMv1" in server.output(), server.output()


def test_known_limit_over_https_mit_kerberos_takes_a_ticket_without_a_binding(start_server, kerberos_realm, tmp_path):
    """A wrong binding is refused, but MIT Kerberos (GSSAPI, Linux) ignores the acceptor's
    binding when the ticket carries none, as docs/windows-signon.md says; when this fails,
    GSSAPI refuses it now: the docs and this test change with it."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    issued.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    issued.private_key_pem.write_to_path(tmp_path / "key.pem")
    server = start_server("--windows-auth", "negotiate", "--certfile", str(tmp_path / "cert.pem"),
                          "--keyfile", str(tmp_path / "key.pem"), env=kerberos_realm.env, scheme="https")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    statuses = {}
    for binding in ("right", "none"):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=15, context=context)
        conn.connect()
        conn.auto_open = 0
        digest = hashlib.sha256(conn.sock.getpeercert(binary_form=True)).digest()
        bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + digest) if binding == "right" else None
        client = spnego.client(hostname="localhost", service="HTTP", protocol="kerberos", channel_bindings=bindings)
        response, _ = get(conn, headers={"Authorization": "Negotiate " + base64.b64encode(client.step()).decode()})
        statuses[binding] = response.status
        conn.close()
    assert statuses == {"right": 200, "none": 200}
