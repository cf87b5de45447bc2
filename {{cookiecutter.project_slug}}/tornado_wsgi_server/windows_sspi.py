"""Windows only: the sign-on's acceptor through SSPI with pywin32, chosen by
``windows_auth.new_acceptor()`` on Windows (without ``NTLM_USER_FILE``). It does what pyspnego's
SSPI acceptor did (Negotiate or NTLM with the account the server runs as, the channel binding
of --certfile) and also reads the signed-on user's groups from the context's token, which
pyspnego's sspilib cannot reach (no QuerySecurityContextToken).

The acceptor has the interface windows_auth.py uses: ``step(token) -> token or None``,
``complete``, ``client_principal``, and ``groups()``. Every call runs on the sign-on's threads.
"""

from __future__ import annotations

import struct
import threading
import time

PACKAGES = {"negotiate": "Negotiate", "ntlm": "NTLM"}
# What pyspnego asked for as an acceptor: mutual authentication (Kerberos' reply token),
# replay and sequence detection, confidentiality and integrity.
ACCEPT_FLAGS = ("ASC_REQ_MUTUAL_AUTH", "ASC_REQ_REPLAY_DETECT", "ASC_REQ_SEQUENCE_DETECT",
                "ASC_REQ_CONFIDENTIALITY", "ASC_REQ_INTEGRITY")
NAME_CACHE_SECONDS = 600.0  # a group renamed or deleted shows within ten minutes
NAME_CACHE_SIZE = 10000
_ULONG = 0xFFFFFFFF  # pywin32 may give attributes and flags as signed 32-bit numbers

_names: dict[str, tuple[float, str | None]] = {}  # SID string -> (looked up at, DOMAIN\Name or None)
_names_lock = threading.Lock()
_clock = time.monotonic


def channel_bindings_struct(bindings) -> bytes:
    """pyspnego's GssChannelBindings as SSPI's SEC_CHANNEL_BINDINGS: eight little-endian ULONGs
    (initiator address type, length, offset; acceptor's; application data length, offset),
    then the bytes the offsets point at."""
    initiator = bindings.initiator_address or b""
    acceptor = bindings.acceptor_address or b""
    data = bindings.application_data or b""
    header = 8 * 4
    return struct.pack(
        "<8L",
        int(bindings.initiator_addrtype), len(initiator), header if initiator else 0,
        int(bindings.acceptor_addrtype), len(acceptor), header + len(initiator) if acceptor else 0,
        len(data), header + len(initiator) + len(acceptor) if data else 0,
    ) + initiator + acceptor + data


def account_name(win32security, sid, sid_text: str) -> str | None:
    """``DOMAIN\\Name`` of a SID (``Everyone``: a name without a domain), or None when it does
    not resolve (a deleted group, a domain that does not answer); cached for a while."""
    now = _clock()
    with _names_lock:
        cached = _names.get(sid_text)
    if cached is not None and now - cached[0] < NAME_CACHE_SECONDS:
        return cached[1]
    try:
        name, domain, _kind = win32security.LookupAccountSid(None, sid)
        found = f"{domain}\\{name}" if domain else name
    except win32security.error:
        found = None
    with _names_lock:
        if len(_names) >= NAME_CACHE_SIZE:
            _names.clear()
        _names[sid_text] = (now, found)
    return found


class SSPIAcceptor:
    """One handshake's server context (see the module docstring)."""

    def __init__(self, protocol: str, channel_bindings=None) -> None:
        import sspicon
        import win32security

        self._sspicon, self._security = sspicon, win32security
        package = win32security.QuerySecurityPackageInfo(PACKAGES[protocol])
        self._max_token = package["MaxToken"]
        self._credentials, _expiry = win32security.AcquireCredentialsHandle(
            None, package["Name"], sspicon.SECPKG_CRED_INBOUND, None, None)
        self._bindings = channel_bindings_struct(channel_bindings) if channel_bindings is not None else None
        self._flags = 0
        for flag in ACCEPT_FLAGS:
            self._flags |= getattr(sspicon, flag)
        self._context = None
        self.complete = False

    def _buffer(self, data: bytes, kind: int):
        buffer = self._security.PySecBufferType(len(data), kind)
        buffer.Buffer = data
        return buffer

    def step(self, token: bytes) -> bytes | None:
        """One AcceptSecurityContext; the token for the client, or None. A refused token
        raises win32security.error."""
        security, sspicon = self._security, self._sspicon
        inputs = security.PySecBufferDescType()
        inputs.append(self._buffer(token, sspicon.SECBUFFER_TOKEN))
        if self._bindings is not None:
            inputs.append(self._buffer(self._bindings, sspicon.SECBUFFER_CHANNEL_BINDINGS))
        outputs = security.PySecBufferDescType()
        outputs.append(security.PySecBufferType(self._max_token, sspicon.SECBUFFER_TOKEN))
        previous = self._context
        if self._context is None:
            self._context = security.PyCtxtHandleType()
        status, _attributes, _expiry = security.AcceptSecurityContext(
            self._credentials, previous, inputs, self._flags, sspicon.SECURITY_NATIVE_DREP,
            self._context, outputs)
        if status in (sspicon.SEC_I_COMPLETE_NEEDED, sspicon.SEC_I_COMPLETE_AND_CONTINUE):
            self._context.CompleteAuthToken(outputs)
        self.complete = status in (sspicon.SEC_E_OK, sspicon.SEC_I_COMPLETE_NEEDED)
        return outputs[0].Buffer or None

    @property
    def client_principal(self) -> str:
        """``DOMAIN\\user`` of the signed-on user."""
        return self._context.QueryContextAttributes(self._sspicon.SECPKG_ATTR_NAMES)

    def groups(self) -> tuple[str, ...]:
        """The user's enabled groups from the token, each as its SID string and, when it
        resolves, as ``DOMAIN\\Name``. Groups only for deny (a restricted token) and the logon
        session's own SID are left out."""
        security = self._security
        token = self._context.QuerySecurityContextToken()
        try:
            entries = security.GetTokenInformation(token, security.TokenGroups)
        finally:
            token.Close()
        enabled = security.SE_GROUP_ENABLED & _ULONG
        deny_only = security.SE_GROUP_USE_FOR_DENY_ONLY & _ULONG
        logon_id = security.SE_GROUP_LOGON_ID & _ULONG
        found: list[str] = []
        for sid, attributes in entries:
            attributes &= _ULONG
            if not attributes & enabled or attributes & deny_only or (attributes & logon_id) == logon_id:
                continue
            sid_text = security.ConvertSidToStringSid(sid)
            found.append(sid_text)
            name = account_name(security, sid, sid_text)
            if name:
                found.append(name)
        return tuple(found)
