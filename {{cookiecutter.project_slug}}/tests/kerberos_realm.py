"""A throwaway MIT Kerberos realm: its own KDC process on a free loopback port.

Made from the Debian packages krb5-kdc and krb5-admin-server (kdb5_util, kadmin.local,
krb5kdc) in a temporary folder; nothing outside that folder is read or written, as every
program and library is pointed at it through the environment (``KerberosRealm.env``):

- KRB5_CONFIG: the clients' krb5.conf (realm, KDC address, no DNS look-ups);
- KRB5_KDC_PROFILE: the KDC's kdc.conf (database, stash file, ports);
- KRB5_KTNAME: the keytab with the web server's key (``HTTP/localhost``);
- KRB5CCNAME: the credential cache that ``kinit`` fills;
- KRB5RCACHEDIR: the acceptor's replay cache.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REALM = "SITE.TEST"
PROGRAMS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")
# The host name in the service principal: clients ask for HTTP/<the host in the URL>.
SERVICE_HOST = "localhost"
# A principal the KDC knows but the server has no key for: its tickets must be refused.
OTHER_SERVICE_HOST = "other.localhost"
START_TIMEOUT = 30


def missing_programs() -> list[str]:
    """The realm's programs not found on PATH (nor in /usr/sbin, where Debian puts them)."""
    return [name for name in PROGRAMS if find_program(name) is None]


def find_program(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=path)


def free_port() -> int:
    """A loopback port free for TCP and for UDP: krb5kdc listens on both."""
    for _ in range(100):
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no loopback port free for both TCP and UDP")


class KerberosRealm:
    """``start()`` makes the database and principals and starts krb5kdc; ``stop()`` kills it."""

    def __init__(self, directory: Path, user: str = "alice", password: str = "Alice-pass-1") -> None:
        self.directory = directory
        self.user = user
        self.password = password
        self.principal = f"{user}@{REALM}"
        self.service_principal = f"HTTP/{SERVICE_HOST}@{REALM}"
        self.keytab = directory / "http.keytab"
        self.ccache = directory / "ccache"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log = directory / "krb5kdc.log"

    @property
    def env(self) -> dict[str, str]:
        return {
            "KRB5_CONFIG": str(self.directory / "krb5.conf"),
            "KRB5_KDC_PROFILE": str(self.directory / "kdc.conf"),
            "KRB5_KTNAME": f"FILE:{self.keytab}",
            "KRB5CCNAME": f"FILE:{self.ccache}",
            "KRB5RCACHEDIR": str(self.directory),
            # Tracing off even when the caller's environment turned it on.
            "KRB5_TRACE": "/dev/null",
        }

    def run(self, *args: str, input: str | None = None) -> str:
        program = find_program(args[0]) or args[0]
        result = subprocess.run(
            [program, *args[1:]], env={**os.environ, **self.env}, input=input,
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited with {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}")
        return result.stdout

    def write_config(self) -> None:
        (self.directory / "krb5.conf").write_text(
            "[libdefaults]\n"
            f"    default_realm = {REALM}\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            # TCP: the protocol start() checks the KDC is listening on.
            "    udp_preference_limit = 1\n"
            "[realms]\n"
            f"    {REALM} = " + "{\n"
            f"        kdc = 127.0.0.1:{self.port}\n"
            "    }\n"
            "[domain_realm]\n"
            f"    {SERVICE_HOST} = {REALM}\n"
            f"    {OTHER_SERVICE_HOST} = {REALM}\n",
            encoding="utf-8",
        )
        (self.directory / "kdc.conf").write_text(
            "[kdcdefaults]\n"
            f"    kdc_listen = 127.0.0.1:{self.port}\n"
            f"    kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f"    {REALM} = " + "{\n"
            f"        database_name = {self.directory / 'principal'}\n"
            f"        key_stash_file = {self.directory / 'stash'}\n"
            f"        acl_file = {self.directory / 'kadm5.acl'}\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{self.log}\n",
            encoding="utf-8",
        )

    def start(self) -> KerberosRealm:
        self.port = free_port()
        self.write_config()
        self.run("kdb5_util", "-r", REALM, "create", "-s", "-P", "master-key-for-tests")
        self.add_principal(f"-pw {self.password} {self.principal}")
        self.add_principal(f"-randkey {self.service_principal}")
        self.add_principal(f"-randkey HTTP/{OTHER_SERVICE_HOST}@{REALM}")
        self.run("kadmin.local", "-r", REALM, "-q", f"ktadd -k {self.keytab} {self.service_principal}")
        self.process = subprocess.Popen(
            [find_program("krb5kdc") or "krb5kdc", "-n", "-r", REALM],
            env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"krb5kdc did not listen on port {self.port} in "
                                       f"{START_TIMEOUT}s:\n{self.log_text()}") from None
                time.sleep(0.05)

    def add_principal(self, spec: str) -> None:
        self.run("kadmin.local", "-r", REALM, "-q", f"addprinc {spec}")

    def kinit(self) -> None:
        """A ticket-granting ticket for the user in the realm's credential cache."""
        self.run("kinit", self.principal, input=self.password + "\n")

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
