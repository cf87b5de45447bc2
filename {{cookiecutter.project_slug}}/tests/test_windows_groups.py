"""Windows groups to Django groups, staff and superuser at each sign-on
(tornado_wsgi_server/windows_groups.py, the settings' "Windows sign-on" section).

The settings module runs in a fresh process with the variables set, as a start would; its
middleware and values then drive Django's test client, whose requests carry REMOTE_USER and
the groups key as the server's environ does on the request that completed a sign-on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group, User
from django.core import checks
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from tornado_wsgi_server.windows_auth import GROUPS_KEY
from tornado_wsgi_server.windows_groups import CHECK_ID, MIDDLEWARE, STRIP_DOMAIN_CHECK_ID, bring_in_line

from .conftest import PROJECT_DIR

DOMAIN_SID = "S-1-5-21-1004336348-1177238915-682003330"
EDITORS = (f"{DOMAIN_SID}-1013", "CORP\\Site Editors")
ADMINS = (f"{DOMAIN_SID}-1014", "CORP\\Site Admins")
READERS = ("S-1-5-21-4100000000-200000000-300000000-1001", "WEB01\\Report Readers")
EVERYONE = (f"{DOMAIN_SID}-513", "CORP\\Domain Users", "S-1-5-32-545", "BUILTIN\\Users")
# Each form of entry: DOMAIN\Name in another case, a SID, a bare Name (any domain).
MAPPING = {
    "SERVER_WINDOWS_AUTH": "negotiate",
    "DJANGO_WINDOWS_GROUPS": f"corp\\site editors=Editors, {ADMINS[0].lower()}=Admins , Report Readers=Readers,",
    "DJANGO_WINDOWS_STAFF_GROUPS": "CORP\\SITE EDITORS",
    "DJANGO_WINDOWS_SUPERUSER_GROUPS": ADMINS[0],
}
SIGNON_SETTINGS = ("MIDDLEWARE", "AUTHENTICATION_BACKENDS", "WINDOWS_AUTH", "WINDOWS_GROUPS",
                   "WINDOWS_STAFF_GROUPS", "WINDOWS_SUPERUSER_GROUPS", "WINDOWS_AUTH_USER_FORMAT")
SHOW = (
    "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = '{{ cookiecutter.project_slug }}.settings';"
    "from django.conf import settings;"
    "print(json.dumps({name: getattr(settings, name, None) for name in " + repr(SIGNON_SETTINGS) + "}))"
)
REMOTE_USER = "django.contrib.auth.middleware.RemoteUserMiddleware"
PERSISTENT_REMOTE_USER = "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"
# Each test client loads WhiteNoise, which notes that no collectstatic ran: not this test's business.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


def load_settings(**variables: str) -> subprocess.CompletedProcess:
    """The project's settings module imported in a new process with ``variables`` set."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 60, "SERVER_WINDOWS_AUTH": "off",
           "SERVER_WINDOWS_AUTH_HEADER": "", "SERVER_WINDOWS_AUTH_USER_FORMAT": "", "DJANGO_WINDOWS_GROUPS": "",
           "DJANGO_WINDOWS_STAFF_GROUPS": "", "DJANGO_WINDOWS_SUPERUSER_GROUPS": "", **variables}
    return subprocess.run([sys.executable, "-c", SHOW], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=60)


def signon_settings(**variables: str) -> dict:
    result = load_settings(**variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mapped():
    """The settings a start with MAPPING gives, to use in this process."""
    return signon_settings(**MAPPING)


@pytest.fixture
def signed_on(mapped, db):
    """A function that signs ``user`` on with ``groups`` (None: no groups key) through the
    settings' middleware, returning the name Django then has as the request's user."""
    with override_settings(**mapped):
        client = Client()

        def sign_on(user: str, groups: tuple[str, ...] | None, **settings) -> str | None:
            extra = {"REMOTE_USER": user}
            if groups is not None:
                extra[GROUPS_KEY] = groups
            with override_settings(**settings):
                response = client.get("/__test__/user", **extra)
            assert response.status_code == 200, response.content[:500]
            return response.json()["user"]

        sign_on.client = client
        yield sign_on


def group_names(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def rights(username: str) -> tuple[bool, bool]:
    user = User.objects.get(username=username)
    return user.is_staff, user.is_superuser


@pytest.mark.parametrize(("mode", "remote_user"), [("negotiate", REMOTE_USER), ("paths", PERSISTENT_REMOTE_USER)])
def test_settings_place_the_middleware_right_after_the_remote_user_middleware(mode, remote_user):
    values = signon_settings(**{**MAPPING, "SERVER_WINDOWS_AUTH": mode})
    middleware = values["MIDDLEWARE"]
    assert middleware[middleware.index(remote_user) + 1] == MIDDLEWARE
    assert values["WINDOWS_GROUPS"] == [["corp\\site editors", "Editors"], [ADMINS[0].lower(), "Admins"],
                                        ["Report Readers", "Readers"]]
    assert values["WINDOWS_STAFF_GROUPS"] == ["CORP\\SITE EDITORS"]
    assert values["WINDOWS_SUPERUSER_GROUPS"] == [ADMINS[0]]


def test_no_middleware_without_a_mapping_or_without_sign_on():
    assert MIDDLEWARE not in signon_settings(SERVER_WINDOWS_AUTH="negotiate")["MIDDLEWARE"]
    assert MIDDLEWARE not in signon_settings(**{**MAPPING, "SERVER_WINDOWS_AUTH": "off"})["MIDDLEWARE"]


def test_first_sign_on_gives_the_mapped_groups_creating_them_and_staff(signed_on):
    assert not Group.objects.filter(name__in=["Editors", "Readers"]).exists()
    assert signed_on("CORP\\alice", EVERYONE + EDITORS + READERS) == "CORP\\alice"
    assert group_names("CORP\\alice") == {"Editors", "Readers"}
    assert rights("CORP\\alice") == (True, False)


def test_a_superuser_group_makes_superuser_and_staff(signed_on):
    signed_on("CORP\\root", EVERYONE + ADMINS)
    assert group_names("CORP\\root") == {"Admins"}
    assert rights("CORP\\root") == (True, True)


def test_leaving_a_windows_group_takes_effect_at_the_next_sign_on_and_unmapped_groups_stay(signed_on):
    signed_on("CORP\\alice", EVERYONE + EDITORS + ADMINS + READERS)
    alice = User.objects.get(username="CORP\\alice")
    alice.groups.add(Group.objects.create(name="Auditors"))  # given by hand in the admin
    assert rights("CORP\\alice") == (True, True)
    # The same browser session, a new connection's sign-on after changes in Active Directory.
    assert signed_on("CORP\\alice", EVERYONE + READERS) == "CORP\\alice"
    assert group_names("CORP\\alice") == {"Readers", "Auditors"}
    assert rights("CORP\\alice") == (False, False)
    assert Group.objects.filter(name="Editors").exists()  # emptied, never deleted


@pytest.mark.parametrize(("windows_groups", "expected"), [
    (("CORP\\SITE EDITORS",), {"Editors"}),  # the configured "corp\site editors", any case
    (("OTHER\\Site Editors",), set()),  # DOMAIN\Name matches that domain only
    (("site editors",), set()),  # nor a bare name
    ((ADMINS[0].lower(), "CORP\\Renamed Admins"), {"Admins"}),  # a SID survives renames
    (("CORP\\Report Readers",), {"Readers"}),  # a bare entry: any domain
    (("WEB01\\report readers",), {"Readers"}),
    (("Report Readers Old", "CORP\\Report Readers Old"), set()),  # whole names only
])
def test_entries_match_by_sid_qualified_or_bare_name_whatever_the_case(signed_on, windows_groups, expected):
    signed_on("CORP\\bob", windows_groups)
    assert group_names("CORP\\bob") == expected


def test_a_group_named_like_a_sid_is_not_that_sid(signed_on):
    """Whoever may name a group (an administrator of the server, of a trusted domain) must not
    reach the rights a SID entry gives by naming a group after that SID."""
    signed_on("CORP\\mallory", EVERYONE + (f"OTHER\\{ADMINS[0]}", f"WEB01\\{ADMINS[0].lower()}"))
    assert group_names("CORP\\mallory") == set()
    assert rights("CORP\\mallory") == (False, False)


def test_nothing_is_written_when_nothing_changed(signed_on):
    signed_on("CORP\\alice", EVERYONE + EDITORS + READERS)
    with CaptureQueriesContext(connection) as queries:
        signed_on("CORP\\alice", EVERYONE + EDITORS + READERS)
    statements = [query["sql"].lstrip().split()[0].upper() for query in queries.captured_queries]
    assert not {"INSERT", "UPDATE", "DELETE", "SAVEPOINT"} & set(statements), queries.captured_queries
    alice = User.objects.get(username="CORP\\alice")
    with CaptureQueriesContext(connection) as queries:
        changes = bring_in_line(alice, EVERYONE + EDITORS + READERS, [("CORP\\Site Editors", "Editors")],
                                ["CORP\\Site Editors"], [ADMINS[0]])
    assert changes == []
    assert len(queries.captured_queries) == 1, queries.captured_queries  # the user's mapped groups


def test_a_map_written_by_hand_as_a_dict_works_too(signed_on):
    signed_on("CORP\\alice", EVERYONE + EDITORS, WINDOWS_GROUPS={"CORP\\Site Editors": "Writers"})
    assert group_names("CORP\\alice") == {"Writers"}


def test_nothing_happens_without_the_groups_key(signed_on):
    """Later requests of a signed-on connection, Kerberos on Linux, IIS in front."""
    assert signed_on("CORP\\alice", None) == "CORP\\alice"
    assert group_names("CORP\\alice") == set()
    signed_on("CORP\\alice", EVERYONE + EDITORS)
    signed_on("CORP\\alice", None)
    assert group_names("CORP\\alice") == {"Editors"}
    assert rights("CORP\\alice") == (True, False)


def test_a_user_the_sign_on_did_not_replace_keeps_its_rights(signed_on):
    """Signed in with a password as bob; a sign-on as an inactive user cannot replace him,
    so the groups (the administrators') are nobody's: neither bob nor alice gets them."""
    User.objects.create_user("bob", password="x")
    User.objects.create_user("CORP\\alice", is_active=False)
    signed_on.client.force_login(User.objects.get(username="bob"),
                                 backend="django.contrib.auth.backends.ModelBackend")
    assert signed_on("CORP\\alice", EVERYONE + ADMINS + EDITORS) == "bob"
    assert group_names("bob") == group_names("CORP\\alice") == set()
    assert rights("bob") == rights("CORP\\alice") == (False, False)


def test_rights_are_left_alone_when_their_setting_is_empty(signed_on):
    User.objects.create_user("CORP\\carol", is_staff=True, is_superuser=True)
    signed_on("CORP\\carol", EVERYONE + EDITORS, WINDOWS_STAFF_GROUPS=[], WINDOWS_SUPERUSER_GROUPS=[])
    assert group_names("CORP\\carol") == {"Editors"}
    assert rights("CORP\\carol") == (True, True)


def test_superuser_groups_alone_make_staff_and_never_take_staff_away(signed_on):
    User.objects.create_user("CORP\\dave", is_staff=True)  # staff by hand
    signed_on("CORP\\dave", EVERYONE + ADMINS, WINDOWS_STAFF_GROUPS=[])
    assert rights("CORP\\dave") == (True, True)
    signed_on("CORP\\dave", EVERYONE, WINDOWS_STAFF_GROUPS=[])
    assert rights("CORP\\dave") == (True, False)
    signed_on("CORP\\erin", EVERYONE + ADMINS, WINDOWS_STAFF_GROUPS=[])
    assert rights("CORP\\erin") == (True, True)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DJANGO_WINDOWS_GROUPS", "CORP\\Site Editors", "'CORP\\\\Site Editors' has no '='"),
    ("DJANGO_WINDOWS_GROUPS", "CORP\\Site Editors=", "names no Django group"),
    ("DJANGO_WINDOWS_GROUPS", "=Editors", "an empty Windows group"),
    ("DJANGO_WINDOWS_GROUPS", "CORP\\Site Editors=" + "E" * 151, "longer than 150 characters"),
    ("DJANGO_WINDOWS_STAFF_GROUPS", "CORP\\", "is not DOMAIN\\Name"),
    ("DJANGO_WINDOWS_SUPERUSER_GROUPS", "S-1-5-21-x", "is not a SID"),
])
def test_a_bad_value_stops_the_start_naming_the_variable(variable, value, message):
    result = load_settings(SERVER_WINDOWS_AUTH="negotiate", **{variable: value})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"django.core.exceptions.ImproperlyConfigured: {variable}: "), result.stderr
    assert message in last_line, last_line


def windows_group_warnings() -> list[checks.CheckMessage]:
    return [message for message in checks.run_checks() if message.id == CHECK_ID]


def test_a_check_warns_when_a_mapping_is_set_but_groups_never_arrive(mapped):
    with override_settings(**{**mapped, "WINDOWS_AUTH": "off", "WINDOWS_AUTH_HEADER": ""}):
        [warning] = windows_group_warnings()
    assert warning.level == checks.WARNING
    assert "DJANGO_WINDOWS_GROUPS" in warning.msg and "SERVER_WINDOWS_AUTH=off" in warning.msg
    assert "docs/windows-signon.md" in warning.hint
    with override_settings(**{**mapped, "WINDOWS_AUTH": "off", "WINDOWS_AUTH_HEADER": "X-Forwarded-User"}):
        [warning] = windows_group_warnings()
    assert "IIS" in warning.msg
    with override_settings(**mapped, WINDOWS_AUTH_HEADER=""):
        assert windows_group_warnings() == []
    with override_settings(WINDOWS_AUTH="off", WINDOWS_GROUPS=[], WINDOWS_STAFF_GROUPS=[],
                           WINDOWS_SUPERUSER_GROUPS=[]):
        assert windows_group_warnings() == []


@pytest.mark.parametrize("user_format", ["strip-domain", "strip-domain-lower"])
def test_a_check_warns_while_a_strip_domain_user_format_is_on(user_format):
    """OTHERDOMAIN\\admin would sign in as the password-made superuser admin."""
    values = signon_settings(SERVER_WINDOWS_AUTH="negotiate", SERVER_WINDOWS_AUTH_USER_FORMAT=user_format.upper())
    assert values["WINDOWS_AUTH_USER_FORMAT"] == user_format

    def warnings(**settings) -> list[checks.CheckMessage]:
        with override_settings(**settings):
            return [message for message in checks.run_checks() if message.id == STRIP_DOMAIN_CHECK_ID]

    [warning] = warnings(WINDOWS_AUTH="negotiate", WINDOWS_AUTH_USER_FORMAT=user_format)
    assert warning.level == checks.WARNING
    assert f"SERVER_WINDOWS_AUTH_USER_FORMAT={user_format}" in warning.msg and "OTHERDOMAIN\\admin" in warning.msg
    assert "docs/windows-signon.md" in warning.hint
    # IIS's header is named the same way.
    assert len(warnings(WINDOWS_AUTH="off", WINDOWS_AUTH_HEADER="X-Forwarded-User", WINDOWS_AUTH_USER_FORMAT=user_format)) == 1
    assert warnings(WINDOWS_AUTH="off", WINDOWS_AUTH_HEADER="", WINDOWS_AUTH_USER_FORMAT=user_format) == []
    for kept in ("as-is", "lower"):
        assert warnings(WINDOWS_AUTH="paths", WINDOWS_AUTH_USER_FORMAT=kept) == []
