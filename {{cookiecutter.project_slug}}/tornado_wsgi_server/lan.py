"""How other computers reach a server listening on every interface: this machine's name and
non-loopback IPv4 addresses (standard library only, no packet sent), the URLs built from them,
and which of those names Django's ALLOWED_HOSTS would refuse. Used by the start-up banner.
"""

from __future__ import annotations

import ipaddress
import socket

EVERY_INTERFACE = ("0.0.0.0", "::", "")
# A documentation address (TEST-NET-1): connecting a UDP socket to it only asks the routing
# table which local address would be used; nothing is sent.
_ROUTE_PROBE = ("192.0.2.1", 9)


def is_network_address(address: str) -> bool:
    """True for an IPv4 address another computer could use (not loopback, link-local or 0)."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def machine_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, the one of the default route first."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(_ROUTE_PROBE)
        found.append(probe.getsockname()[0])
    except OSError:  # no default route
        pass
    finally:
        probe.close()
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
        found += [info[4][0] for info in infos]
    except OSError:  # the machine's own name does not resolve
        pass
    addresses: list[str] = []
    for address in found:
        if is_network_address(address) and address not in addresses:
            addresses.append(address)
    return addresses


def network_urls(scheme: str, port: int, hostname: str, addresses: list[str]) -> list[str]:
    """The URLs other computers can try: the machine name and each address. With no network
    address there is only this machine's loopback."""
    network = [address for address in addresses if is_network_address(address)]
    if not network:
        return [f"{scheme}://127.0.0.1:{port}/"]
    names = ([hostname] if hostname else []) + network
    return [f"{scheme}://{name}:{port}/" for name in names]


def refused_hosts(names: list[str], allowed_hosts: list[str]) -> list[str]:
    """The names Django would answer with 400 Bad Request (not matched by ALLOWED_HOSTS)."""
    from django.http.request import validate_host

    return [name for name in names if not validate_host(name.lower(), allowed_hosts)]


def network_lines(scheme: str, port: int, hostname: str, addresses: list[str],
                  allowed_hosts: list[str] | None) -> list[str]:
    """The banner's lines for a server on every interface (``allowed_hosts`` None: unknown)."""
    urls = network_urls(scheme, port, hostname, addresses)
    network = [address for address in addresses if is_network_address(address)]
    if not network:
        return [f"  This machine has no network address yet: only {urls[0]} works."]
    lines = ["  Other computers: " + "  ".join(urls),
             f"  (the firewall must let TCP port {port} in: README, \"Let other computers reach it\")"]
    names = ([hostname] if hostname else []) + network
    refused = refused_hosts(names, allowed_hosts) if allowed_hosts is not None else []
    if refused:
        lines.append("  Not in DJANGO_ALLOWED_HOSTS (answered with 400 Bad Request): "
                     + ", ".join(refused) + ". Add the names people will type to .env.")
    return lines
