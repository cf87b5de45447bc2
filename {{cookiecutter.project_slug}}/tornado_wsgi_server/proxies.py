"""Proxy headers: who the client is, believing X-Forwarded-* only from trusted proxies.

Trust is by the peer's IP address alone (``--trusted-proxies``). From any other peer the
forwarded headers are dropped before the application sees them; see ``is_proxy_header``.
"""

from __future__ import annotations

import ipaddress
import re

from .logs import log

_PROXY_KEYS = ("FORWARDED", "X_REAL_IP")
# Headers that name a signed-on user (Remote-User, X-Remote-User, X-Authenticated-User,
# Logon-User, X-MS-Client-Principal-Name, X-IIS-WindowsAuthToken...): an application or a
# RemoteUserMiddleware subclass may believe them, so only a trusted proxy may send them.
_USER_CLAIM = re.compile(r"(X_)?(REMOTE|AUTH|AUTHENTICATED|LOGON|AUTH_REQUEST)_USER(NAME)?|X_USER"
                         r"|X_MS_CLIENT_PRINCIPAL\w*|X_IIS_WINDOWSAUTHTOKEN")


def is_proxy_header(key: str) -> bool:
    """``key`` (a header name upper-cased, dashes as underscores) is only a proxy's to set."""
    return key.startswith("X_FORWARDED_") or key in _PROXY_KEYS or (
        ("USER" in key or key.startswith(("X_MS_", "X_IIS_"))) and _USER_CLAIM.fullmatch(key) is not None)


def hop_address(hop: str):
    """The IP address in one X-Forwarded-For hop (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[2001:db8::1]:443``), or None when it is not one."""
    hop = hop.strip()
    if hop.startswith("["):
        hop, sep, port = hop[1:].partition("]")
        if not sep or (port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit())):
            return None
    elif hop.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        hop, _, port = hop.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


def last_value(header: str | None) -> str:
    """The value the nearest proxy added to a comma-separated header ("" if none)."""
    return header.rsplit(",", 1)[-1].strip() if header else ""


def split_host(host: str) -> tuple[str, str | None]:
    """``host[:port]`` (also ``[v6]:port``) -> (name, port or None)."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        name += "]"
    else:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, ""
    if port.isascii() and port.isdigit():
        return name, port
    return host, None


class Proxies:
    """The trusted proxy networks, and the client a request's forwarded headers name."""

    def __init__(self, networks: tuple) -> None:
        self.networks = networks
        self._warned = False

    def trusts(self, address) -> bool:
        if not self.networks:
            return False
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """Walk the X-Forwarded-For chain from the right: the first untrusted hop is the
        client; every hop trusted: the first one. A hop that is no address stops the
        walk (what lies left of it cannot be checked) and the peer's address stays."""
        first = None
        for hop in reversed(forwarded_for.split(",")):
            if not hop.strip():
                continue
            address = hop_address(hop)
            if address is None:
                if not self._warned:
                    self._warned = True  # a race here costs at most a second line
                    log.warning(
                        "X-Forwarded-For from trusted proxy %s has a hop that is not an IP "
                        "address (%r); using the proxy's address. Logged once.", peer, hop.strip())
                return peer
            if not self.trusts(address):
                return str(address)
            first = address
        return str(first) if first is not None else peer
