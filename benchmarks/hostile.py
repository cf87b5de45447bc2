#!/usr/bin/env python
"""Hostile clients that slowhttptest cannot be: attack.py starts this as its attacker process.

    python benchmarks/hostile.py dup-length --port 8000 --connections 1500 --rate 250
    python benchmarks/hostile.py unread --port 8000 --path /page

Opens ``--connections`` connections to 127.0.0.1:PORT at ``--rate`` per second, spread over
``--addresses`` loopback source addresses (127.0.1.1, 127.0.1.2, ...), so a per-address cap
does not turn them away, and holds them until it is stopped (SIGINT or SIGTERM) or
``--duration`` has passed. A connection the server closes is not reopened.

* ``dup-length``: ``POST PATH`` announcing a 100 KB body with a duplicated Content-Length
  (two equal lines on even connections, ``N, N`` on odd ones), then a few body bytes every
  ``--interval`` seconds.
* ``unread``: ``GET PATH`` with a 4 KB receive buffer, and not one byte of the answer read.

Every connection goes to 127.0.0.1 from an address in 127.0.0.0/8: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import socket
import sys
import time

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
TARGET = "127.0.0.1"
FIRST_SOURCE = ipaddress.ip_address("127.0.1.1")
BODY_SIZE = 100_000
TRICKLE = b"a=" + b"x" * 6  # bytes sent per connection every --interval seconds
RECEIVE_BUFFER = 4096
ETHERNET_MSS = 1460
KINDS = ("dup-length", "unread")


assert ipaddress.ip_address(TARGET) in LOOPBACK


def sources(count: int) -> list[str]:
    """``count`` source addresses from 127.0.1.1 on, all inside 127.0.0.0/8."""
    addresses = [FIRST_SOURCE + n for n in range(count)]
    if not all(address in LOOPBACK for address in addresses):
        raise SystemExit(f"ERROR: {count} addresses from {FIRST_SOURCE} leave 127.0.0.0/8")
    return [str(address) for address in addresses]


def request(kind: str, path: str, port: int, n: int) -> bytes:
    host = f"Host: {TARGET}:{port}\r\n"
    if kind == "unread":
        return f"GET {path} HTTP/1.1\r\n{host}User-Agent: hostile\r\n\r\n".encode()
    length = (f"Content-Length: {BODY_SIZE}\r\nContent-Length: {BODY_SIZE}\r\n" if n % 2 == 0
              else f"Content-Length: {BODY_SIZE}, {BODY_SIZE}\r\n")
    return (f"POST {path} HTTP/1.1\r\n{host}User-Agent: hostile\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n").encode() + TRICKLE


class Attacker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sources = sources(args.addresses)
        self.open: set[socket.socket] = set()
        self.opened = 0
        self.refused = 0  # connect or first send failed
        self.dropped = 0  # open, then found closed by the server
        self.peak = 0

    async def connect(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.args.kind == "unread":
            # Before connect, so the window the server sees is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            # And an Ethernet-sized segment, as a client across a network has: with loopback's
            # 64 KB segments the server's kernel would take ~3 MB of each answer into its send
            # buffer, and a thousand such connections would exhaust the machine's TCP memory.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, ETHERNET_MSS)
        if hasattr(socket, "IP_BIND_ADDRESS_NO_PORT"):  # pick the port at connect: no port shortage
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
        try:
            sock.bind((self.sources[n % len(self.sources)], 0))
            await loop.sock_connect(sock, (TARGET, self.args.port))
            await loop.sock_sendall(sock, request(self.args.kind, self.args.path, self.args.port, n))
        except OSError:
            self.refused += 1
            sock.close()
            return
        self.opened += 1
        self.open.add(sock)
        self.peak = max(self.peak, len(self.open))

    def trickle(self) -> None:
        """A few more body bytes on every open connection; drop those the server answered or
        closed (the non-reader only notices a reset: it reads nothing)."""
        for sock in list(self.open):
            try:
                if self.args.kind == "unread":
                    sock.recv(1, socket.MSG_PEEK)  # raises on a reset; data is left unread
                elif sock.recv(4096) is not None:  # an answer (400...) or the end: it is over
                    raise ConnectionResetError
            except BlockingIOError:
                pass  # nothing to read: still open
            except OSError:
                self.drop(sock)
                continue
            if self.args.kind == "dup-length":
                try:
                    sock.send(TRICKLE)
                except BlockingIOError:
                    pass
                except OSError:
                    self.drop(sock)

    def drop(self, sock: socket.socket) -> None:
        self.open.discard(sock)
        self.dropped += 1
        sock.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        started = time.monotonic()
        end = started + self.args.duration
        next_trickle = started + self.args.interval
        tasks = set()
        n = 0
        while not stop.is_set() and time.monotonic() < end:
            now = time.monotonic()
            while n < self.args.connections and started + n / self.args.rate <= now:
                task = asyncio.ensure_future(self.connect(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if now >= next_trickle:
                self.trickle()
                next_trickle += self.args.interval
            try:
                await asyncio.wait_for(stop.wait(), 0.02 if n < self.args.connections else 0.5)
            except asyncio.TimeoutError:
                pass
        for task in tasks:
            task.cancel()
        self.trickle()  # counts what the server closed meanwhile
        print(f"hostile {self.args.kind}: {n} started, {self.opened} opened, {self.refused} refused "
              f"or failed, {self.dropped} closed by the server, {len(self.open)} still open at "
              f"the end, at most {self.peak} open at once, from {len(self.sources)} addresses",
              flush=True)
        for sock in self.open:
            sock.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True, help="the server's port on 127.0.0.1")
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--connections", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=250, help="new connections per second")
    parser.add_argument("--addresses", type=int, default=40,
                        help="source addresses from 127.0.1.1 on, used in turn (40)")
    parser.add_argument("--interval", type=float, default=10,
                        help="seconds between body bytes (dup-length) and checks for closed connections")
    parser.add_argument("--duration", type=float, default=3600, help="stop after this many seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535 or args.connections < 1 or args.rate <= 0 or args.addresses < 1:
        parser.error("--port, --connections, --rate and --addresses must be positive")
    asyncio.run(Attacker(args).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
