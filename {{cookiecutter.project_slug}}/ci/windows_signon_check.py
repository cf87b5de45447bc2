"""Windows sign-on for real: a local user made for this run (``net user``), in a local group
made for it (``net localgroup``), signs on through SSPI to the server started with
``--windows-auth negotiate``, and Django sees that user as REMOTE_USER (``COMPUTER\\user``)
and the group among the groups the server read from the token (``COMPUTER\\group``); the
server maps that group (DJANGO_WINDOWS_GROUPS, DJANGO_WINDOWS_STAFF_GROUPS), so Django puts the
user in its group "Editors" with staff status; no credentials and a wrong password get 401.

Run by the Windows job of .github/workflows/ci.yml (``python ci/windows_signon_check.py``)
from an Administrator's shell (creating a user needs one). The calls that are Windows' own go
through ``ci/windows.py``; elsewhere its fake keeps the users and groups and hands them to
pyspnego's NTLM (NTLM_USER_FILE, NTLM_GROUP_FILE), so this runs on Linux as far as it can. Exits 0 when every check
passed, else 1.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CheckSuite, expect  # noqa: E402
from console_checks import ConsoleServer, console_env  # noqa: E402
from windows import PROJECT_DIR, Windows, system  # noqa: E402
from windows_service_checks import free_port  # noqa: E402

USER_VIEW = "/__test__/user"  # tests/views.py: who Django says is signed in, REMOTE_USER, the groups
DJANGO_GROUP = "Editors"  # what the server's mapping makes of the local group


def get(conn: http.client.HTTPConnection, authorization: str | None = None):
    conn.request("GET", USER_VIEW, headers={"Authorization": authorization} if authorization else {})
    response = conn.getresponse()
    return response, response.read()


class SignOnChecks(CheckSuite):
    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.folder = Path(tempfile.mkdtemp(prefix="signon-check-"))
        # A name of at most 20 characters; a password Windows' complexity rules accept, of at
        # most 14 characters (net user asks "continue (Y/N)?" for a longer one).
        self.user = f"signon{secrets.token_hex(4)}"
        self.password = f"Sg-{secrets.token_hex(4)}-9a"
        self.group = f"Signon Editors {secrets.token_hex(3)}"  # a space, as group names often have
        self.created = False
        self.group_created = False
        self.server: ConsoleServer | None = None

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        conn.connect()
        conn.auto_open = 0  # NTLM signs on this connection: never silently another
        return conn

    def sign_on(self, protocol: str, password: str):
        """RFC 4559's client side with pyspnego (SSPI on Windows): (last response, its body, legs)."""
        import spnego

        context = spnego.client(f"{self.windows.local_domain()}\\{self.user}", password,
                                hostname="localhost", service="HTTP", protocol=protocol)
        scheme = "NTLM" if protocol == "ntlm" else "Negotiate"
        conn = self.connect()
        try:
            token, legs = context.step(), 0
            while True:
                legs += 1
                response, body = get(conn, f"{scheme} {base64.b64encode(token).decode()}")
                offered = [value for value in response.headers.get_all("WWW-Authenticate") or []
                           if value.startswith(scheme + " ")]
                if response.status != 401 or not offered or legs > 3:
                    return response, body, legs
                token = context.step(base64.b64decode(offered[0].split(" ", 1)[1]))
        finally:
            conn.close()

    def local_user_is_created(self) -> None:
        done = self.windows.add_local_user(self.user, self.password)
        expect(done.code == 0, f"net user {self.user} /add exited with {done.code}: {done.output}")
        self.created = True

    def local_group_is_created_with_the_user_in_it(self) -> None:
        done = self.windows.add_local_group(self.group)
        expect(done.code == 0, f"net localgroup {self.group} /add exited with {done.code}: {done.output}")
        self.group_created = True
        done = self.windows.add_to_local_group(self.group, self.user)
        expect(done.code == 0, f"net localgroup {self.group} {self.user} /add exited with {done.code}: "
                               f"{done.output}")

    def server_starts_with_negotiate_mapping_the_group(self) -> None:
        env = {**self.windows.signon_env(self.folder),
               # A bare group name matches it in any domain: COMPUTER\group here.
               "DJANGO_WINDOWS_GROUPS": f"{self.group}={DJANGO_GROUP}", "DJANGO_WINDOWS_STAFF_GROUPS": self.group,
               # tests/settings.py would otherwise set its own (empty) values of these.
               "TEST_ENVIRONMENT_KEEP": "DJANGO_WINDOWS_GROUPS,DJANGO_WINDOWS_STAFF_GROUPS"}
        # RemoteUserBackend creates the user in the database on the first sign-on.
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--settings", "tests.settings"],
            cwd=PROJECT_DIR, env=console_env(self.folder, env), timeout=300,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        expect(migrated.returncode == 0, f"migrate exited with {migrated.returncode}:\n{migrated.stdout}")
        self.server = ConsoleServer(self.windows, self.folder, free_port(), "--windows-auth", "negotiate", env=env)
        self.server.wait_ready()

    def no_credentials_get_401(self) -> None:
        conn = self.connect()
        try:
            response, _ = get(conn)
            offered = response.headers.get_all("WWW-Authenticate") or []
        finally:
            conn.close()
        expect(response.status == 401 and offered == ["Negotiate", "NTLM"],
               f"no credentials got {response.status} offering {offered}")

    def expect_signed_on(self, protocol: str) -> None:
        response, body, legs = self.sign_on(protocol, self.password)
        expect(response.status == 200, f"{protocol}: {response.status} after {legs} request(s): {body[:300]!r}\n"
                                       f"{self.server.output()[-3000:]}")
        seen = json.loads(body)
        wanted = f"{self.windows.local_domain()}\\{self.user}".lower()
        expect((seen["remote_user"] or "").lower() == wanted and (seen["user"] or "").lower() == wanted,
               f"{protocol}: Django saw {seen}, wanted {wanted}")

    def user_signs_on_with_ntlm(self) -> None:
        self.expect_signed_on("ntlm")

    def user_signs_on_with_negotiate(self) -> None:
        self.expect_signed_on("negotiate")

    def django_sees_the_users_local_group(self) -> None:
        response, body, legs = self.sign_on("ntlm", self.password)
        expect(response.status == 200, f"{response.status} after {legs} request(s): {body[:300]!r}")
        groups = json.loads(body)["groups"]
        wanted = f"{self.windows.local_domain()}\\{self.group}".lower()
        expect(groups is not None and wanted in (group.lower() for group in groups),
               f"the signed-on request's groups {groups} lack {wanted}")

    def django_puts_the_user_in_the_mapped_group_with_staff_status(self) -> None:
        response, body, legs = self.sign_on("ntlm", self.password)
        expect(response.status == 200, f"{response.status} after {legs} request(s): {body[:300]!r}")
        seen = json.loads(body)  # as the database has them once the sign-on's request is done
        expect(DJANGO_GROUP in seen["django_groups"] and seen["is_staff"] and not seen["is_superuser"],
               f"Django has {seen['user']} in {seen['django_groups']}, staff {seen['is_staff']}, superuser "
               f"{seen['is_superuser']}; wanted {DJANGO_GROUP}, staff, not superuser\n{self.server.output()[-3000:]}")

    def wrong_password_gets_401(self) -> None:
        response, body, legs = self.sign_on("ntlm", self.password + "x")
        expect(response.status == 401, f"a wrong password got {response.status}: {body[:300]!r}")

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.kill()
        if self.created:
            self.windows.remove_local_user(self.user)
        if self.group_created:
            self.windows.remove_local_group(self.group)

    def checks(self) -> list:
        return [
            ("a local user is created (net user /add)", self.local_user_is_created),
            ("a local group is created with the user in it (net localgroup /add)",
             self.local_group_is_created_with_the_user_in_it),
            ("the server starts with --windows-auth negotiate, the group mapped to Django's Editors and staff",
             self.server_starts_with_negotiate_mapping_the_group),
            ("no credentials get 401 offering Negotiate and NTLM", self.no_credentials_get_401),
            ("the user signs on with NTLM and Django sees COMPUTER\\user", self.user_signs_on_with_ntlm),
            ("the user signs on with Negotiate (SPNEGO)", self.user_signs_on_with_negotiate),
            ("Django sees COMPUTER\\group among the signed-on request's groups", self.django_sees_the_users_local_group),
            ("Django puts the user in Editors with staff status (DJANGO_WINDOWS_GROUPS, _STAFF_GROUPS)",
             self.django_puts_the_user_in_the_mapped_group_with_staff_status),
            ("a wrong password gets 401", self.wrong_password_gets_401),
        ]


def main(windows: Windows | None = None) -> int:
    return SignOnChecks(windows or system()).run()


if __name__ == "__main__":
    sys.exit(main())
