"""The Windows-only acceptor (tornado_wsgi_server/windows_sspi.py) on any OS, against a fake of
the pywin32 modules it uses (win32security, sspicon) put in sys.modules. The fake keeps pywin32's
shapes: PySecBuffer refuses data longer than its size, AcceptSecurityContext returns
(status, attributes, expiry) and raises for a failure, GetTokenInformation(TokenGroups) gives
(PySID, attributes) pairs with attributes as signed 32-bit numbers, a closed handle is useless.
The real thing runs in ci/windows_signon_check.py on Windows."""

from __future__ import annotations

import struct
import sys
import types

import pytest

spnego = pytest.importorskip("spnego")
from spnego.channel_bindings import AddressType, GssChannelBindings  # noqa: E402

from tornado_wsgi_server import windows_auth, windows_sspi  # noqa: E402

TOKEN_GROUPS = 2
ENABLED, MANDATORY, ENABLED_BY_DEFAULT, DENY_ONLY = 0x4, 0x1, 0x2, 0x10
LOGON_ID = -0x40000000  # 0xC0000000 as pywin32's signed long
CHANNEL_BINDINGS = 14


def signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


class FakeError(Exception):
    pass


class FakeSid:
    def __init__(self, text: str) -> None:
        self.text = text


class FakeHandle:
    def __init__(self, groups: list) -> None:
        self.groups = groups
        self.closed = False

    def Close(self) -> None:  # noqa: N802 (pywin32's name)
        self.closed = True


class FakeBuffer:
    """PySecBuffer: ``Buffer`` holds at most the size it was made with."""

    def __init__(self, size: int, kind: int) -> None:
        self.size, self.BufferType, self._data = size, kind, b""

    @property
    def Buffer(self) -> bytes:  # noqa: N802
        return self._data

    @Buffer.setter
    def Buffer(self, data: bytes) -> None:  # noqa: N802
        if len(data) > self.size:
            raise ValueError(f"Data size ({len(data)}) greater than allocated buffer size ({self.size})")
        self._data = bytes(data)


class FakeContext:
    def __init__(self, security) -> None:
        self.security = security
        self.completed = False

    def QueryContextAttributes(self, attribute: int):  # noqa: N802
        assert attribute == 1  # SECPKG_ATTR_NAMES
        return self.security.user

    def QuerySecurityContextToken(self):  # noqa: N802
        handle = FakeHandle(self.security.token_groups)
        self.security.handles.append(handle)
        return handle

    def CompleteAuthToken(self, outputs) -> None:  # noqa: N802
        self.completed = True


def fake_pywin32(steps: list, user: str = "MYPC\\alice", token_groups: list | None = None,
                 names: dict | None = None):
    """(win32security, sspicon) fakes. ``steps``: what each AcceptSecurityContext does, as
    (status, output token) or an exception to raise; ``names``: SID -> (name, domain)."""
    sspicon = types.SimpleNamespace(
        SECPKG_CRED_INBOUND=1, SECBUFFER_TOKEN=2, SECBUFFER_CHANNEL_BINDINGS=CHANNEL_BINDINGS,
        SECURITY_NATIVE_DREP=16, SEC_E_OK=0, SEC_I_CONTINUE_NEEDED=590610, SEC_I_COMPLETE_NEEDED=590611,
        SEC_I_COMPLETE_AND_CONTINUE=590612, SECPKG_ATTR_NAMES=1, ASC_REQ_MUTUAL_AUTH=2,
        ASC_REQ_REPLAY_DETECT=4, ASC_REQ_SEQUENCE_DETECT=8, ASC_REQ_CONFIDENTIALITY=16,
        ASC_REQ_INTEGRITY=131072)
    security = types.ModuleType("win32security")
    security.error = FakeError
    security.user = user
    security.token_groups = token_groups or []
    security.handles, security.calls, security.lookups = [], [], []
    security.TokenGroups = TOKEN_GROUPS
    security.SE_GROUP_ENABLED, security.SE_GROUP_USE_FOR_DENY_ONLY = ENABLED, DENY_ONLY
    security.SE_GROUP_LOGON_ID = LOGON_ID
    security.PySecBufferType = FakeBuffer
    security.PySecBufferDescType = list
    security.PyCtxtHandleType = lambda: FakeContext(security)
    security.QuerySecurityPackageInfo = lambda name: {"Name": name, "MaxToken": 48256}
    security.AcquireCredentialsHandle = lambda *args: (("credentials", args), None)
    remaining = list(steps)

    def accept(credentials, context, inputs, flags, representation, new_context, outputs):
        security.calls.append({"context": context, "new_context": new_context, "flags": flags,
                               "inputs": [(b.BufferType, b.Buffer) for b in inputs],
                               "outputs": [(b.BufferType, b.size) for b in outputs]})
        step = remaining.pop(0)
        if isinstance(step, Exception):
            raise step
        status, token = step
        outputs[0].Buffer = token
        return status, 0, None

    def token_information(handle, kind):
        assert kind == TOKEN_GROUPS and not handle.closed
        if isinstance(handle.groups, Exception):
            raise handle.groups
        return tuple((FakeSid(text), attributes) for text, attributes in handle.groups)

    def lookup(system, sid):
        security.lookups.append(sid.text)
        if sid.text not in (names or {}):
            raise FakeError(1332, "LookupAccountSid", "No mapping between account names and security IDs was done.")
        name, domain = names[sid.text]
        return name, domain, 2

    security.AcceptSecurityContext = accept
    security.GetTokenInformation = token_information
    security.ConvertSidToStringSid = lambda sid: sid.text
    security.LookupAccountSid = lookup
    return security, sspicon


@pytest.fixture
def pywin32(monkeypatch):
    """install(steps, ...) puts the fakes in sys.modules; windows_sspi's name cache starts empty."""
    monkeypatch.setattr(windows_sspi, "_names", {})

    def install(*args, **kwargs):
        security, sspicon = fake_pywin32(*args, **kwargs)
        monkeypatch.setitem(sys.modules, "win32security", security)
        monkeypatch.setitem(sys.modules, "sspicon", sspicon)
        return security

    return install


def signed_on(pywin32, **kwargs):
    security = pywin32([(0, b"")], **kwargs)
    acceptor = windows_sspi.SSPIAcceptor("ntlm")
    acceptor.step(b"NTLMSSP\x00\x03")
    return security, acceptor


def test_ntlm_takes_two_steps_on_one_context_and_names_the_user(pywin32):
    security = pywin32([(590610, b"challenge"), (0, b"")])
    acceptor = windows_sspi.SSPIAcceptor("ntlm")
    assert acceptor.step(b"NTLMSSP\x00\x01") == b"challenge" and not acceptor.complete
    assert acceptor.step(b"NTLMSSP\x00\x03") is None and acceptor.complete
    assert acceptor.client_principal == "MYPC\\alice"
    first, second = security.calls
    assert first["context"] is None and second["context"] is first["new_context"]  # one context
    assert first["inputs"] == [(2, b"NTLMSSP\x00\x01")]  # no channel binding over plain HTTP
    assert first["outputs"] == [(2, 48256)]
    assert first["flags"] == 2 | 4 | 8 | 16 | 131072


def test_kerberos_completes_in_one_step_with_the_mutual_authentication_token(pywin32):
    pywin32([(0, b"mutual")])
    acceptor = windows_sspi.SSPIAcceptor("negotiate")
    assert acceptor.step(b"\x60kerberos") == b"mutual" and acceptor.complete


def test_complete_needed_completes_the_token(pywin32):
    security = pywin32([(590611, b"")])
    acceptor = windows_sspi.SSPIAcceptor("negotiate")
    acceptor.step(b"\x60token")
    assert acceptor.complete and security.calls[0]["new_context"].completed


def test_a_refused_token_raises(pywin32):
    pywin32([FakeError(-2146893044, "AcceptSecurityContext", "The logon attempt failed")])
    acceptor = windows_sspi.SSPIAcceptor("ntlm")
    with pytest.raises(FakeError):
        acceptor.step(b"NTLMSSP\x00\x03")
    assert not acceptor.complete


def test_the_channel_binding_goes_as_a_sec_channel_bindings_buffer(pywin32):
    security = pywin32([(0, b"")])
    digest = bytes(range(32))
    bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + digest)
    windows_sspi.SSPIAcceptor("negotiate", bindings).step(b"\x60token")
    token, binding = security.calls[0]["inputs"]
    assert token == (2, b"\x60token") and binding[0] == CHANNEL_BINDINGS
    data = b"tls-server-end-point:" + digest
    # Eight little-endian ULONGs: no addresses, 53 bytes of application data at offset 32.
    assert binding[1][:32] == bytes([0] * 24) + bytes([53, 0, 0, 0, 32, 0, 0, 0])
    assert binding[1][32:] == data and len(binding[1]) == 32 + 53


def test_addresses_in_the_binding_come_before_the_application_data():
    bindings = GssChannelBindings(initiator_addrtype=AddressType.inet, initiator_address=b"\x7f\x00\x00\x01",
                                  acceptor_addrtype=AddressType.inet, acceptor_address=b"\x0a\x00\x00\x02\x05",
                                  application_data=b"app")
    packed = windows_sspi.channel_bindings_struct(bindings)
    assert struct.unpack("<8L", packed[:32]) == (2, 4, 32, 2, 5, 36, 3, 41)
    assert packed[32:] == b"\x7f\x00\x00\x01" + b"\x0a\x00\x00\x02\x05" + b"app"


GROUPS = [
    ("S-1-5-32-544", MANDATORY | ENABLED_BY_DEFAULT | ENABLED),  # BUILTIN\Administrators
    ("S-1-5-21-1-2-3-1001", ENABLED),  # MYPC\Site Editors
    ("S-1-5-21-1-2-3-512", DENY_ONLY),  # a UAC-filtered token's group: for deny only
    ("S-1-5-21-1-2-3-513", DENY_ONLY | ENABLED),  # deny only wins even if marked enabled
    ("S-1-5-5-0-123456", signed(0xC0000000 | MANDATORY | ENABLED_BY_DEFAULT | ENABLED)),  # the logon session
    ("S-1-5-21-1-2-3-1002", MANDATORY),  # not enabled
    ("S-1-5-21-9-9-9-1234", ENABLED),  # does not resolve (a deleted group)
    ("S-1-1-0", MANDATORY | ENABLED),  # Everyone: no domain
    ("S-1-16-8192", signed(0x20 | 0x40)),  # the integrity label: not a group to speak of
]
NAMES = {"S-1-5-32-544": ("Administrators", "BUILTIN"), "S-1-5-21-1-2-3-1001": ("Site Editors", "MYPC"),
         "S-1-5-21-1-2-3-512": ("Domain Admins", "CORP"), "S-1-5-21-1-2-3-513": ("Domain Users", "CORP"),
         "S-1-5-5-0-123456": ("LogonSessionId_0_123456", "NT AUTHORITY"),
         "S-1-5-21-1-2-3-1002": ("Disabled", "MYPC"), "S-1-1-0": ("Everyone", ""),
         "S-1-16-8192": ("Medium Mandatory Level", "Mandatory Label")}


def test_groups_are_the_enabled_ones_as_sid_and_name_and_the_token_is_closed(pywin32):
    security, acceptor = signed_on(pywin32, token_groups=GROUPS, names=NAMES)
    assert acceptor.groups() == (
        "S-1-5-32-544", "BUILTIN\\Administrators",
        "S-1-5-21-1-2-3-1001", "MYPC\\Site Editors",
        "S-1-5-21-9-9-9-1234",  # kept by its SID though its name is unknown
        "S-1-1-0", "Everyone",
    )
    assert [handle.closed for handle in security.handles] == [True]


def test_the_token_is_closed_when_reading_it_fails(pywin32):
    security, acceptor = signed_on(pywin32, token_groups=FakeError(5, "GetTokenInformation", "Access is denied."))
    with pytest.raises(FakeError):
        acceptor.groups()
    assert [handle.closed for handle in security.handles] == [True]


def test_names_are_cached_for_a_while(pywin32, monkeypatch):
    security, acceptor = signed_on(pywin32, token_groups=GROUPS[:2] + GROUPS[6:7], names=NAMES)
    now = [1000.0]
    monkeypatch.setattr(windows_sspi, "_clock", lambda: now[0])
    first = acceptor.groups()
    assert acceptor.groups() == first
    assert sorted(security.lookups) == sorted(["S-1-5-32-544", "S-1-5-21-1-2-3-1001", "S-1-5-21-9-9-9-1234"])
    now[0] += windows_sspi.NAME_CACHE_SECONDS + 1
    security.lookups.clear()
    assert acceptor.groups() == first
    assert len(security.lookups) == 3  # looked up again: a renamed group shows


def test_windows_without_ntlm_user_file_uses_the_sspi_acceptor(pywin32, monkeypatch, tmp_path):
    pywin32([])
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("NTLM_USER_FILE", raising=False)
    assert isinstance(windows_auth.new_acceptor("negotiate"), windows_sspi.SSPIAcceptor)
    (tmp_path / "users").write_text("MYPC:alice:secret\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(tmp_path / "users"))  # trials on Windows: pyspnego's NTLM
    assert not isinstance(windows_auth.new_acceptor("ntlm"), windows_sspi.SSPIAcceptor)
