"""Windows sign-on in the server (RFC 4559): Kerberos and NTLM through ``Authorization:
Negotiate`` / ``NTLM``, for ``--windows-auth negotiate`` (every request) or ``paths``.

NTLM signs on a TCP connection, not a request, so this cannot be Django middleware: the
handshake's state lives on the connection (``ServerConnection.signon``), never anywhere
another connection could reach. A request without a token on a connection not signed on
gets 401 with ``WWW-Authenticate: Negotiate`` and ``NTLM``; NTLM then takes two more
requests on the same keep-alive connection, Kerberos one (its mutual-authentication token
goes back in the 200's ``WWW-Authenticate``). The acceptor (SSPI through pywin32 on
Windows; pyspnego's GSSAPI, or its own NTLM with ``NTLM_USER_FILE``) runs on a small thread pool off
the event loop, each step bounded by ``STEP_TIMEOUT``: a domain controller that is slow to
answer holds neither the loop nor Django's threads. Failed handshakes are counted per
address (``FAILURES_PER_MINUTE``, then 429) and logged at most once a minute per address.
NTLMv1 and LM answers are refused where pyspnego accepts (``refuse_ntlmv1()``).

A step can hang, and a client can make it; signon_threads.py says how the threads bound that.

``new_acceptor()`` is the one place a handshake's acceptor is made. The connection's first request
that Django handles after a handshake (the one that completed it, unless that is a static
file answered on the loop) carries the user's Windows groups (``GROUPS_KEY``), looked up on the same
threads: from the token on Windows (windows_sspi.py), from ``NTLM_GROUP_FILE`` with
``NTLM_USER_FILE``; none with Kerberos through GSSAPI.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import logging
import os
import sys
import time
from typing import NamedTuple

from tornado import gen, httputil

from .logs import log
from .options import ServerOptions
from .signon_threads import Step, StepThreads

SCHEMES = {"negotiate": "Negotiate", "ntlm": "NTLM"}
STEP_THREADS = 4
STEP_TIMEOUT = 10.0  # seconds one acceptor step may take (waiting its turn too) before 503
STEPS_PER_ADDRESS = 2  # one client address's steps on the threads at once; its others wait
LOST_THREADS = 16  # threads stuck past STEP_TIMEOUT that get a replacement, at most
FAILURES_PER_MINUTE = 20  # failed handshakes per client address, then 429 for the minute
FAILURES_REMEMBERED = 10000
# The environ key the reply token travels in to with_reply_header().
REPLY_KEY = "tornado_wsgi_server.windows_auth.reply"
# The environ key of the signed-on user's Windows groups (a tuple of SIDs and DOMAIN\Name
# names), set only on a connection's first request to Django after its handshake, when the
# acceptor knows them.
GROUPS_KEY = "tornado_wsgi_server.windows_auth.groups"
_CHALLENGE_TEXT = b"Windows sign-on required.\n"


class SignedOn(NamedTuple):
    """What a request carries to the environ: the user, the token for the response, and the
    user's groups (only on the connection's first request to Django after the handshake,
    None if unknown)."""

    user: str
    reply: str | None
    groups: tuple[str, ...] | None = None


class ConnectionSignOn:
    """One connection's handshake and, once complete, its user, and the user's groups until
    a request of this connection goes to Django (``hand_over_groups()``). Never shared."""

    __slots__ = ("acceptor", "scheme", "user", "groups")

    def __init__(self) -> None:
        self.acceptor = None
        self.scheme = ""
        self.user = None
        self.groups = None


def new_acceptor(protocol: str, channel_bindings=None):
    """The server's context for one handshake. ``protocol``: "negotiate" (Kerberos or NTLM
    inside SPNEGO) or "ntlm" (a raw NTLM token). On Windows it is SSPI through pywin32
    (windows_sspi.py, which can also read the user's groups from the token) with the account
    the server runs as (for a service, the computer account on the network). Elsewhere it is
    pyspnego's: GSSAPI when python-gssapi is installed (Kerberos, with any key of the keytab that
    ``KRB5_KTNAME`` names), and pyspnego's own NTLM, which checks passwords against the file
    ``NTLM_USER_FILE`` names (``DOMAIN:user:password`` lines). With ``NTLM_USER_FILE`` set,
    NTLM is pyspnego's own on Windows too (SSPI would check Windows' accounts instead), so
    the same tests and trials run there; Kerberos inside Negotiate still goes to SSPI/GSSAPI."""
    if sys.platform == "win32" and not os.environ.get("NTLM_USER_FILE"):
        from .windows_sspi import SSPIAcceptor

        return SSPIAcceptor(protocol, channel_bindings)
    import spnego

    options = spnego.NegotiateOptions.none
    if os.environ.get("NTLM_USER_FILE"):
        options = spnego.NegotiateOptions.use_negotiate if protocol == "negotiate" else spnego.NegotiateOptions.use_ntlm
    return spnego.server(protocol=protocol, channel_bindings=channel_bindings, options=options)


# pyspnego's NTLM (and gss-ntlmssp's) read the LAN Manager authentication level from the
# environment when each context is made; 5 makes an acceptor refuse LM and NTLMv1 answers.
LM_COMPAT_VARIABLE = "LM_COMPAT_LEVEL"
NTLMV2_ONLY = "5"


def refuse_ntlmv1() -> None:
    """Make the process's NTLM acceptors take NTLMv2 answers only: NTLMv1 and LM carry no
    channel binding, and their hashes are cracked offline. The level is process-wide (no
    acceptor option sets it); for the process's NTLM clients 5 is what the default (3)
    already is, NTLMv2 only. A level set to anything else stops the server (SystemExit)."""
    level = os.environ.get(LM_COMPAT_VARIABLE)
    if level is None or not level.strip():
        os.environ[LM_COMPAT_VARIABLE] = NTLMV2_ONLY
    elif level.strip() != NTLMV2_ONLY:
        raise SystemExit(f"ERROR: {LM_COMPAT_VARIABLE}={level.strip()} would let Windows sign-on take "
                         "NTLMv1 or LM answers (no channel binding, weak hashes); unset it (the server "
                         f"then uses {NTLMV2_ONLY}) or set it to {NTLMV2_ONLY} (see docs/windows-signon.md)")


GROUP_FILE_FORMAT = "DOMAIN\\user: Group One, Group Two"


def load_group_file(path: str) -> dict[str, tuple[str, ...]]:
    """``NTLM_GROUP_FILE``: each user's groups for pyspnego's NTLM (trials and tests without a
    domain), lines ``DOMAIN\\user: Group One, OTHER\\Group Two``; blank lines and lines
    starting with ``#`` are skipped. Keys are the lower-case user names (Windows names ignore
    case); a group without a domain stays so here and gets the signed-on user's domain in
    ``qualified_groups()``. Read once: a change needs a restart. Raises ValueError naming the
    file and line."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ValueError(f"NTLM_GROUP_FILE {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"NTLM_GROUP_FILE {path}: not UTF-8 text") from None
    groups: dict[str, tuple[str, ...]] = {}
    seen_at: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"NTLM_GROUP_FILE {path}, line {number}"
        user, colon, names = line.partition(":")
        domain, backslash, account = user.strip().partition("\\")
        if not colon or not backslash or not domain.strip() or not account.strip():
            raise ValueError(f'{where}: expected "{GROUP_FILE_FORMAT}", got "{line}"')
        key = f"{domain.strip()}\\{account.strip()}".lower()
        if key in seen_at:
            raise ValueError(f"{where}: {user.strip()} already has its groups on line {seen_at[key]}")
        found = []
        for name in names.split(",") if names.strip() else []:
            group_domain, qualified, group = name.strip().rpartition("\\")
            if not group.strip() or "=" in name or ":" in name or (qualified and not group_domain.strip()):
                raise ValueError(f'{where}: "{name.strip()}" is not a group name (names are separated by '
                                 "commas and cannot contain , : or =)")
            found.append(f"{group_domain.strip()}\\{group.strip()}" if qualified else group.strip())
        seen_at[key] = number
        groups[key] = tuple(found)
    return groups


def qualified_groups(group_file: dict, user: str) -> tuple[str, ...]:
    """``user``'s groups in NTLM_GROUP_FILE, each as ``DOMAIN\\Name`` (the user's domain for a
    name given without one); none if the file has no line for the user."""
    domain = user.partition("\\")[0]
    return tuple(name if "\\" in name else f"{domain}\\{name}" for name in group_file.get(user.lower(), ()))


def normalise_user(name: str, user_format: str) -> str:
    """``DOMAIN\\user`` (or Kerberos' ``user@REALM``) as --windows-auth-user-format says."""
    if user_format.startswith("strip-domain"):
        name = name.rsplit("\\", 1)[-1].split("@", 1)[0]
    if user_format.endswith("lower"):
        name = name.lower()
    return name


def channel_bindings(options: ServerOptions):
    """Over HTTPS, ``tls-server-end-point`` (RFC 5929) of the server's certificate, so that a
    sign-on relayed through another TLS connection fails (Extended Protection); else None."""
    if not options.certfile:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
    from spnego.channel_bindings import GssChannelBindings

    from .tls import PASSWORD_VARIABLE, is_pkcs12

    with open(options.certfile, "rb") as file:
        data = file.read()
    if is_pkcs12(options.certfile):
        password = os.environ.get(PASSWORD_VARIABLE, "")
        certificate = pkcs12.load_key_and_certificates(data, password.encode() if password else None)[1]
    else:
        certificate = x509.load_pem_x509_certificate(data)
    algorithm = certificate.signature_hash_algorithm
    # RFC 5929 4.1: the certificate's own hash, SHA-256 in place of MD5 or SHA-1.
    name = "sha256" if algorithm is None or algorithm.name in ("md5", "sha1") else algorithm.name
    digest = hashlib.new(name, certificate.public_bytes(Encoding.DER)).digest()
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


def with_reply_header(application):
    """The WSGI application with the acceptor's last token (Kerberos' mutual authentication)
    added to the response as ``WWW-Authenticate``."""

    def signed_on_application(environ, start_response):
        reply = environ.get(REPLY_KEY)
        if not reply:
            return application(environ, start_response)

        def add_reply(status, headers, exc_info=None):
            return start_response(status, [*headers, ("WWW-Authenticate", reply)], exc_info)

        return application(environ, add_reply)

    return signed_on_application


class WindowsSignOn:
    """The server's side of the handshake, for the container (see the module docstring)."""

    def __init__(self, container, options: ServerOptions) -> None:
        try:
            import spnego  # noqa: F401
        except ImportError:
            raise SystemExit("ERROR: --windows-auth needs the pyspnego package "
                             "(pip install -r requirements.txt)") from None
        if sys.platform != "win32" or os.environ.get("NTLM_USER_FILE"):
            refuse_ntlmv1()  # on Windows SSPI the machine's LmCompatibilityLevel decides
        self.container = container
        self.paths = options.windows_auth_paths if options.windows_auth == "paths" else None
        self.user_format = options.windows_auth_user_format
        self.bindings = channel_bindings(options)
        self.group_file = None  # lower-case DOMAIN\user -> groups, from NTLM_GROUP_FILE
        if os.environ.get("NTLM_GROUP_FILE"):
            if not os.environ.get("NTLM_USER_FILE"):
                raise SystemExit("ERROR: NTLM_GROUP_FILE is set without NTLM_USER_FILE: it gives the "
                                 "groups of NTLM_USER_FILE's users (see docs/windows-signon.md)")
            try:
                self.group_file = load_group_file(os.environ["NTLM_GROUP_FILE"])
            except ValueError as exc:
                raise SystemExit(f"ERROR: {exc}") from None
        self.pool = StepThreads(STEP_THREADS, STEPS_PER_ADDRESS, LOST_THREADS, STEP_TIMEOUT)
        self.failures: dict = {}  # address -> (minute start, failed handshakes in it)
        if sys.platform != "win32" and not os.environ.get("NTLM_USER_FILE"):
            try:
                import gssapi  # noqa: F401
            except ImportError:
                log.warning("--windows-auth: neither NTLM_USER_FILE nor python-gssapi (Kerberos) "
                            "is set up, so every sign-on will fail; see docs/windows-signon.md")

    def guards(self, path: str) -> bool:
        if self.paths is None:
            return True
        path = path.partition("?")[0]
        return any(path.startswith(prefix) for prefix in self.paths)

    def holds(self, task) -> bool:
        """True if the sign-on answers ``task`` itself (401, 429) or will call its
        ``dispatch()`` once the handshake step is done; False: dispatch it now."""
        if not self.guards(task.start_line.path):
            return False
        state = task.server_conn.signon
        scheme, _, token = task.headers.get("Authorization", "").strip().partition(" ")
        scheme = SCHEMES.get(scheme.lower())
        if scheme is None or not token.strip():
            # This connection signed on before; not through a proxy, whose one connection
            # may carry the requests of many people.
            if state is not None and state.user is not None and not self.via_proxy(task):
                task.signon = SignedOn(state.user, None)
                return False
            self.challenge(task)
            return True
        if self.blocked(task.client):
            self.answer(task, 429, "Too Many Requests", b"Too many failed sign-ons; wait a minute.\n",
                        {"Retry-After": "60", "Connection": "close"})
            return True
        try:
            data = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            self.failed(task, "the token is not base64")
            return True
        if state is None:
            state = task.server_conn.signon = ConnectionSignOn()
        if state.acceptor is None or state.scheme != scheme or _starts_handshake(data):
            state.acceptor, state.scheme, state.user, state.groups = None, scheme, None, None
        if self.pool.exhausted:
            self.lost_threads_warning()
            self.unavailable(task)
            return True
        step = self.pool.submit(task.client, self._step, state, scheme, data)
        timed = gen.with_timeout(datetime.timedelta(seconds=STEP_TIMEOUT), step.future)
        self.container.loop.add_future(timed, lambda done: self._stepped(task, state, scheme, step, done))
        return True

    def via_proxy(self, task) -> bool:
        return self.container.proxies.trusts(task.request_conn.context.remote_ip)

    def _step(self, state: ConnectionSignOn, scheme: str, data: bytes):
        """On a sign-on thread: one step of the handshake; (token out or None, user or None,
        the user's groups or None)."""
        if state.acceptor is None:
            state.acceptor = new_acceptor(scheme.lower(), self.bindings)
        acceptor = state.acceptor
        out = acceptor.step(data)
        if not acceptor.complete:
            return out, None, None
        user = acceptor.client_principal
        return out, user, self.groups_of(acceptor, user)

    def groups_of(self, acceptor, user: str) -> tuple[str, ...] | None:
        """The signed-on user's groups: the token's (Windows' SSPI), NTLM_GROUP_FILE's for
        pyspnego's NTLM, else None (Kerberos through GSSAPI cannot tell)."""
        if hasattr(acceptor, "groups"):
            return acceptor.groups()
        if self.group_file is not None and getattr(acceptor, "negotiated_protocol", None) == "ntlm":
            return qualified_groups(self.group_file, user)
        return None

    def _stepped(self, task, state: ConnectionSignOn, scheme: str, step: Step, done) -> None:
        timed_out = not done.cancelled() and isinstance(done.exception(), gen.TimeoutError)
        if timed_out and self.pool.overran(step):
            self.lost_threads_warning()
        if task.closed or task.server_conn.stream.closed():
            state.acceptor = None
            task.discard_body()
            task.log_access(499, 0)
            return
        try:
            out, user, groups = done.result()
        except gen.TimeoutError:
            state.acceptor = None
            self.container.note(task.client, "signon-timeout", "Windows sign-on of %s: no answer "
                                "within %gs (is the domain controller reachable?); logged once a "
                                "minute per address", task.client, STEP_TIMEOUT, level=logging.WARNING)
            self.unavailable(task)
            return
        except Exception as exc:
            state.acceptor = None
            self.failed(task, f"{type(exc).__name__}: {exc}")
            return
        reply = f"{scheme} {base64.b64encode(out).decode()}" if out else None
        if user is None:  # NTLM's challenge: the client answers on this connection
            self.answer(task, 401, "Unauthorized", _CHALLENGE_TEXT, {"WWW-Authenticate": reply or scheme})
            return
        state.acceptor = None  # done: the connection keeps only the user
        state.user = normalise_user(user, self.user_format)
        # The groups wait for the connection's first request that Django handles (this one,
        # unless it is a static file answered on the loop, where no middleware runs).
        state.groups = groups
        task.signon = SignedOn(state.user, reply)
        task.dispatch()

    def hand_over_groups(self, task) -> None:
        """On the loop, as ``task`` goes to Django: its connection's pending groups go with it,
        once. Only a request signed on by this connection's handshake has ``signon``."""
        state = task.server_conn.signon
        if task.signon is None or state is None or state.groups is None:
            return
        groups, state.groups = state.groups, None
        task.signon = task.signon._replace(groups=groups)
        if task.environ is not None:  # built on the loop when it looked for a static file
            task.environ[GROUPS_KEY] = groups

    def unavailable(self, task) -> None:
        self.answer(task, 503, "Service Unavailable", b"Sign-on timed out; please retry.\n",
                    {"Retry-After": "5", "Connection": "close"})

    def lost_threads_warning(self) -> None:
        pool = self.pool
        self.container.note("", "signon-lost-threads", "Windows sign-on: a step has run past %gs and "
                            "still holds its thread (%d such threads now, %d of them replaced by new "
                            "ones, at most %d; past that, sign-ons get 503): a domain controller does "
                            "not answer, often one of a trusted domain that NTLM passes a password "
                            "check on to; logged once a minute", STEP_TIMEOUT, pool.lost, pool.replaced,
                            pool.replaceable, level=logging.WARNING)

    def blocked(self, address: str) -> bool:
        started, count = self.failures.get(address, (0.0, 0))
        return count >= FAILURES_PER_MINUTE and time.monotonic() - started < 60.0

    def failed(self, task, reason: str) -> None:
        now = time.monotonic()
        started, count = self.failures.pop(task.client, (now, 0))
        if now - started >= 60.0:
            started, count = now, 0
        while len(self.failures) >= FAILURES_REMEMBERED:
            del self.failures[next(iter(self.failures))]  # the oldest entry
        self.failures[task.client] = (started, count + 1)
        self.container.note(task.client, "signon-failed", "Windows sign-on failed for %s (%s); "
                            "logged once a minute per address", task.client, reason)
        self.challenge(task)

    def challenge(self, task) -> None:
        """401 offering both schemes; the connection stays open for the handshake."""
        head = {"WWW-Authenticate": ["Negotiate", "NTLM"]}
        self.answer(task, 401, "Unauthorized", _CHALLENGE_TEXT, head)

    def answer(self, task, code: int, reason: str, body: bytes, extra: dict) -> None:
        """A short answer from the loop; the request never held a place in the queue."""
        task.released = True
        task.discard_body()
        if task.server_conn.stream.closed():
            task.log_access(499, 0)
            return
        head = task.plain_head(body, {})
        for name, value in extra.items():
            for item in value if isinstance(value, list) else [value]:
                head.add(name, item)
        if task.start_line.method == "HEAD":
            body = b""
        task.send_whole(httputil.ResponseStartLine("HTTP/1.1", code, reason), head, body)

    def close(self) -> None:
        self.pool.close()


def _starts_handshake(data: bytes) -> bool:
    """A first token: NTLM's NEGOTIATE_MESSAGE, or SPNEGO's / Kerberos' initial token (an
    ASN.1 application tag 0x60), which begin a new handshake on the connection."""
    return data.startswith(b"NTLMSSP\x00\x01\x00\x00\x00") or data[:1] == b"\x60"

