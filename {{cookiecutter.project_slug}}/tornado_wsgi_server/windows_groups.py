"""Windows groups to Django groups, staff and superuser, at each Windows sign-on.

The server puts the signed-on user's Windows groups in the environ (``windows_auth.GROUPS_KEY``:
SIDs, and ``DOMAIN\\Name`` where the name resolves) on the request that completed the
handshake, or the connection's next one that Django handles if that was a static file the
server answered itself; once per signed-on connection. ``WindowsGroupsMiddleware``, right after Django's
RemoteUserMiddleware, then brings that user's Django groups named in ``WINDOWS_GROUPS`` in
line with them, and ``is_staff`` / ``is_superuser`` when ``WINDOWS_STAFF_GROUPS`` /
``WINDOWS_SUPERUSER_GROUPS`` are set. Django groups the map does not name are never touched,
so rights given by hand stay. Nothing is written when nothing changed.

Settings (from ``DJANGO_WINDOWS_GROUPS`` and the like, see ``windows_group_map()``): an entry
is a SID (``S-1-5-32-544``), ``DOMAIN\\Name``, or a bare ``Name`` (that name in any domain),
compared without regard to case, as Windows does.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

from .logs import log
from .windows_auth import GROUPS_KEY

MIDDLEWARE = "tornado_wsgi_server.windows_groups.WindowsGroupsMiddleware"
SID = re.compile(r"S-1-\d+(?:-\d+)+", re.IGNORECASE)
DJANGO_GROUP_NAME_LIMIT = 150  # auth.Group.name's max_length
CHECK_ID = "tornado_wsgi_server.W001"
STRIP_DOMAIN_CHECK_ID = "tornado_wsgi_server.W002"
_MAP_FORMAT = r"WINDOWS GROUP=DJANGO GROUP, ... (e.g. CORP\Site Editors=Editors)"
_LIST_FORMAT = r"WINDOWS GROUP, ... (e.g. CORP\Site Admins, S-1-5-21-...-1013)"


def _entries(value: str) -> list[str]:
    # Windows group names cannot hold a comma or "=", so both are safe separators.
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _windows_group(variable: str, entry: str, example: str) -> str:
    """``entry`` when it is a SID, DOMAIN\\Name or Name, else ImproperlyConfigured."""
    if not entry:
        raise ImproperlyConfigured(f"{variable}: an entry has an empty Windows group; write {example}")
    if entry.upper().startswith("S-1-") and not SID.fullmatch(entry):
        raise ImproperlyConfigured(f"{variable}: {entry!r} is not a SID (S-1-5-21-...-1013); write {example}")
    domain, backslash, name = entry.partition("\\")
    if backslash and (not domain.strip() or not name.strip() or "\\" in name):
        raise ImproperlyConfigured(
            f"{variable}: {entry!r} is not DOMAIN\\Name (one backslash, a name on each side); "
            f"write {example}")
    return entry


def windows_group_map(variable: str, value: str) -> list[tuple[str, str]]:
    """``CORP\\Site Editors=Editors, S-1-5-21-...-1013=Admins`` as (Windows group, Django
    group) pairs; a Windows group may give several Django groups and the other way round."""
    pairs = []
    for entry in _entries(value):
        windows, equals, django = entry.partition("=")
        if not equals:
            raise ImproperlyConfigured(f"{variable}: {entry!r} has no '='; write {_MAP_FORMAT}")
        django = django.strip()
        if not django:
            raise ImproperlyConfigured(f"{variable}: {entry!r} names no Django group; write {_MAP_FORMAT}")
        if len(django) > DJANGO_GROUP_NAME_LIMIT:
            raise ImproperlyConfigured(f"{variable}: the Django group {django[:40]!r}... is longer than "
                                       f"{DJANGO_GROUP_NAME_LIMIT} characters")
        pairs.append((_windows_group(variable, windows.strip(), _MAP_FORMAT), django))
    return pairs


def windows_group_list(variable: str, value: str) -> list[str]:
    """``CORP\\Site Admins, S-1-5-21-...-1013`` as a list of Windows groups."""
    return [_windows_group(variable, entry, _LIST_FORMAT) for entry in _entries(value)]


def group_keys(windows_groups) -> set[str]:
    """Every form a configured entry may take that matches one of the user's groups, case
    folded: each SID, each DOMAIN\\Name, and each Name alone (a bare entry: any domain). A
    name that reads as a SID (a group named "S-1-5-32-544" in some domain) is not one: a SID
    entry matches the user's SIDs only."""
    keys = set()
    for group in windows_groups:
        group = str(group).casefold()
        keys.add(group)
        _, backslash, name = group.rpartition("\\")
        if backslash and not SID.fullmatch(name):
            keys.add(name)
    return keys


def _member(keys: set[str], entries) -> bool:
    return any(entry.casefold() in keys for entry in entries)


def bring_in_line(user, windows_groups, group_map, staff_groups, superuser_groups) -> list[str]:
    """Give ``user`` the mapped Django groups and rights its Windows groups call for; return
    what changed (empty: nothing was written; one query read the user's mapped groups)."""
    from django.contrib.auth.models import Group
    from django.db import transaction

    keys = group_keys(windows_groups)
    if isinstance(group_map, dict):  # settings written by hand: {Windows group: Django group}
        group_map = group_map.items()
    managed = {django for _, django in group_map}
    wanted = {django for windows, django in group_map if windows.casefold() in keys}
    flags = {}
    superuser = _member(keys, superuser_groups)
    if superuser_groups:
        flags["is_superuser"] = superuser
    if staff_groups:
        flags["is_staff"] = superuser or _member(keys, staff_groups)
    elif superuser:
        flags["is_staff"] = True  # the admin lets only staff in
    flags = {name: value for name, value in flags.items() if getattr(user, name) != value}
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True)) if managed else set()
    joined, left = sorted(wanted - current), sorted(current - wanted)
    if not (flags or joined or left):
        return []
    with transaction.atomic():
        if joined:
            user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in joined))
        if left:
            user.groups.remove(*Group.objects.filter(name__in=left))
        if flags:
            for name, value in flags.items():
                setattr(user, name, value)
            user.save(update_fields=sorted(flags))
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):  # ModelBackend's
        if hasattr(user, cache):
            delattr(user, cache)
    return ([f"joined {name}" for name in joined] + [f"left {name}" for name in left]
            + [f"{name} {'on' if value else 'off'}" for name, value in sorted(flags.items())])


def signed_on_user(request):
    """The request's user when it is the one the server signed on (REMOTE_USER), else None:
    a user signed in otherwise, whom the sign-on did not replace, keeps its rights as they are."""
    from django.contrib import auth

    remote_user = request.META.get("REMOTE_USER")
    user = getattr(request, "user", None)
    if not remote_user or user is None or not user.is_authenticated:
        return None
    # RemoteUserMiddleware's own comparison: the name as the session's backend cleans it.
    try:
        backend = auth.load_backend(request.session[auth.BACKEND_SESSION_KEY])
    except (AttributeError, KeyError, ImportError):
        return None
    clean = getattr(backend, "clean_username", None)
    return user if user.get_username() == (clean(remote_user) if clean else remote_user) else None


class WindowsGroupsMiddleware:
    """Placed by the settings right after RemoteUserMiddleware when Windows sign-on is on and
    a mapping is set. Acts only on a request that carries the sign-on's groups."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        windows_groups = request.META.get(GROUPS_KEY)
        if windows_groups is not None:
            user = signed_on_user(request)
            if user is not None:
                from django.conf import settings

                changes = bring_in_line(user, windows_groups, getattr(settings, "WINDOWS_GROUPS", ()),
                                        getattr(settings, "WINDOWS_STAFF_GROUPS", ()),
                                        getattr(settings, "WINDOWS_SUPERUSER_GROUPS", ()))
                if changes:
                    log.info("Windows groups of %s: %s", user.get_username(), ", ".join(changes))
        return self.get_response(request)


def check_groups_can_arrive(app_configs=None, **kwargs):
    """A mapping with no sign-on of the server's own: the groups never arrive."""
    from django.conf import settings
    from django.core.checks import Warning

    names = [name for name in ("WINDOWS_GROUPS", "WINDOWS_STAFF_GROUPS", "WINDOWS_SUPERUSER_GROUPS")
             if getattr(settings, name, None)]
    if not names or getattr(settings, "WINDOWS_AUTH", "off") != "off":
        return []
    variables = ", ".join("DJANGO_" + name for name in names)
    if getattr(settings, "WINDOWS_AUTH_HEADER", ""):
        why = ("only IIS signs people on (SERVER_WINDOWS_AUTH_HEADER), and a header carries no "
               "groups")
    else:
        why = "Windows sign-on is off (SERVER_WINDOWS_AUTH=off)"
    return [Warning(f"{variables} set, but {why}: Windows groups never arrive and nobody's "
                    "groups or rights change.",
                    hint="Turn on SERVER_WINDOWS_AUTH (negotiate or paths), or see "
                         "docs/windows-signon.md, \"Groups and admin rights\", for "
                         "django-auth-ldap behind IIS.",
                    id=CHECK_ID)]


def check_user_format(app_configs=None, **kwargs):
    """A strip-domain user format: users of every trusted domain share one Django name space."""
    import os

    from django.conf import settings
    from django.core.checks import Warning

    user_format = getattr(settings, "WINDOWS_AUTH_USER_FORMAT", None)
    if user_format is None:  # settings older than the setting: the server's own variable
        user_format = os.environ.get("SERVER_WINDOWS_AUTH_USER_FORMAT", "as-is")
    signs_on = getattr(settings, "WINDOWS_AUTH", "off") != "off" or getattr(settings, "WINDOWS_AUTH_HEADER", "")
    if not signs_on or not user_format.strip().lower().startswith("strip-domain"):
        return []
    return [Warning(f"SERVER_WINDOWS_AUTH_USER_FORMAT={user_format.strip()} drops the domain: "
                    "OTHERDOMAIN\\admin signs in as the Django user admin, so a Windows user of "
                    "any trusted domain gets the rights of the Django user of the same name, a "
                    "superuser made with a password included.",
                    hint="Use as-is or lower unless one domain alone can sign on and no "
                         "password-made user shares a name with a Windows user; see "
                         "docs/windows-signon.md, \"Modes\". Silence with SILENCED_SYSTEM_CHECKS "
                         "once checked.",
                    id=STRIP_DOMAIN_CHECK_ID)]
