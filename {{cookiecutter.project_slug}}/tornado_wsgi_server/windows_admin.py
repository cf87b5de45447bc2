"""Windows set-up around the service and the console: the service's account and its folder
rights, the firewall rule for the port, who may control the service, restart on failure,
delayed start (commands built as data, run by ``service.bat install``/``start``/``remove``), and
QuickEdit turned off in the console window (ctypes; does nothing off Windows).
"""

from __future__ import annotations

import ipaddress
import ntpath
import subprocess
import sys

# Restart 5 s after the first and second failure, 60 s after the third; the count starts
# again after a day without failures.
RECOVERY_RESET_SECONDS = 86400
RECOVERY_ACTIONS = "restart/5000/restart/5000/restart/60000"

# Console input modes (wincon.h).
STD_INPUT_HANDLE = -10
ENABLE_QUICK_EDIT_MODE = 0x0040
ENABLE_EXTENDED_FLAGS = 0x0080  # must be set for a change of QuickEdit to take effect


def firewall_rule_name(name: str) -> str:
    """One rule per service, whatever the port: ``install`` replaces it, ``remove`` deletes it."""
    return f"{name}-web"


def firewall_open_commands(name: str, port: int) -> list[list[str]]:
    """Let other computers reach TCP ``port`` on domain and private networks (not public ones).

    A port rule, not a program rule: the service runs as ``.venv\\pythonservice.exe`` and the
    console server as the base ``python.exe``, and the rule must cover both.
    """
    return [
        firewall_close_command(name),  # a rule an earlier install made for another port
        ["netsh", "advfirewall", "firewall", "add", "rule", f"name={firewall_rule_name(name)}",
         "dir=in", "action=allow", "protocol=TCP", f"localport={port}", "profile=domain,private"],
    ]


def firewall_close_command(name: str) -> list[str]:
    return ["netsh", "advfirewall", "firewall", "delete", "rule", f"name={firewall_rule_name(name)}"]


def recovery_commands(name: str) -> list[list[str]]:
    """Restart the service when it fails. The failure flag makes the actions apply also when
    the service stops itself with an error (a port taken at boot, a bad .env), not only when
    its process crashes."""
    return [
        ["sc.exe", "failure", name, "reset=", str(RECOVERY_RESET_SECONDS), "actions=", RECOVERY_ACTIONS],
        ["sc.exe", "failureflag", name, "1"],
    ]


# The service's permissions (SDDL; sc.exe sdset). Windows' default lets every interactive
# and service-logon user send it user-defined controls (CR: `sc control NAME 128` reloads).
# Here only SYSTEM and Administrators may start, stop, pause or control it (and
# Administrators change or delete it); interactive, service-logon and authenticated users may
# query its configuration and state and interrogate it (CC LC SW LO RC), no more.
SERVICE_SDDL = ("D:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)"
                "(A;;CCLCSWLORC;;;IU)(A;;CCLCSWLORC;;;SU)(A;;CCLCSWLORC;;;AU)")


def permissions_command(name: str) -> list[str]:
    """Only Administrators and SYSTEM may control the service (reload it, start or stop it)."""
    return ["sc.exe", "sdset", name, SERVICE_SDDL]


def delayed_start_command(name: str) -> list[str]:
    """Start a little after boot, once the network and local databases are up."""
    return ["sc.exe", "config", name, "start=", "delayed-auto"]


def serves_other_computers(host: str) -> bool:
    """False for a loopback address (IIS or nginx in front on this machine): no rule needed."""
    if host == "localhost":
        return False
    if host == "":  # every interface
        return True
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it resolves to some interface
        return True


def install_commands(name: str, host: str, port: int, delayed_start: bool) -> list[list[str]]:
    """What ``service.bat install`` runs after pywin32 made the service."""
    commands = [permissions_command(name), *recovery_commands(name)]
    if delayed_start:
        commands.append(delayed_start_command(name))
    if serves_other_computers(host):
        commands += firewall_open_commands(name, port)
    return commands


def remove_commands(name: str) -> list[list[str]]:
    """What ``service.bat remove`` runs after the service is gone."""
    return [firewall_close_command(name)]


# --- the service's account and what it may touch ----------------------------------------------

LOCAL_SYSTEM = "LocalSystem"
VIRTUAL_ACCOUNT_DOMAIN = "NT SERVICE"
# Well-known SIDs: names are translated on non-English Windows, SIDs are not.
ADMINISTRATORS_SID = "*S-1-5-32-544"
SYSTEM_SID = "*S-1-5-18"


def virtual_account(name: str) -> str:
    """The service's own account: no password, no rights but those granted to it."""
    return f"{VIRTUAL_ACCOUNT_DOMAIN}\\{name}"


def account_kind(account: str) -> str:
    """The kind of ``account``: "system" (LocalSystem), "virtual" (``NT SERVICE\\...``), "builtin"
    (``NT AUTHORITY\\...``, no password) or "user" (a local or domain account: a password, and
    the right to log on as a service)."""
    folded = account.casefold()
    if folded in ("localsystem", ".\\localsystem", "nt authority\\system"):
        return "system"
    if folded.startswith("nt service\\"):
        return "virtual"
    if folded.startswith("nt authority\\"):
        return "builtin"
    return "user"


def is_inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (Windows paths, compared as Windows does)."""
    path, folder = (ntpath.normcase(ntpath.normpath(p)).rstrip("\\") for p in (path, folder))
    return path == folder or path.startswith(folder + "\\")


def per_user_python(base_prefix: str, profiles_folder: str) -> bool:
    """True for a Python installed for one user (python.org's "Install Now", the Python install
    manager, the Microsoft Store): under a user profile (``C:\\Users\\<user>\\...``), which other
    accounts cannot read."""
    return is_inside(base_prefix, profiles_folder) or "\\windowsapps\\" in ntpath.normcase(base_prefix) + "\\"


def folder_rights_commands(account: str, project_dir: str, installer: str,
                           read_folders: list[str] = ()) -> list[list[str]]:
    """The service account's rights, exactly: read and run the project (code, ``.venv``,
    ``.env``) and each of ``read_folders`` (the base Python when it lies outside the project),
    change ``data\\`` and ``logs\\`` only.

    The project folder stops inheriting from its parent (a folder made under ``C:\\`` lets
    every signed-in user change files in it): Administrators, SYSTEM and the installing user
    ``installer`` keep full control, the service account may read and run.
    """
    grant = f"{account}:(OI)(CI)RX"
    commands = [["icacls", project_dir, "/inheritance:r", "/grant:r", f"{ADMINISTRATORS_SID}:(OI)(CI)F",
                 f"{SYSTEM_SID}:(OI)(CI)F", f"{installer}:(OI)(CI)F", grant]]
    for folder in read_folders:
        if not is_inside(folder, project_dir):
            commands.append(["icacls", folder, "/grant", grant])
    for writable in ("data", "logs"):
        commands.append(["icacls", ntpath.join(project_dir, writable), "/grant:r", f"{account}:(OI)(CI)M"])
    return commands


def rights_removal_command(account: str, path: str) -> list[str]:
    """Every entry ``account`` has on ``path`` (allowed or denied), taken back; the folders
    below lose what they inherited from it."""
    return ["icacls", path, "/remove", account]


def service_sid_command(name: str) -> list[str]:
    """The service's own SID in its token, which its virtual account and the folder rights
    granted to ``NT SERVICE\\<name>`` rely on."""
    return ["sc.exe", "sidtype", name, "unrestricted"]


def firewall_sync_commands(name: str, host: str, port: int) -> list[list[str]]:
    """The rule for the port and host the service is about to serve: replaced, or deleted when
    it listens on a loopback address only."""
    return firewall_open_commands(name, port) if serves_other_computers(host) else [firewall_close_command(name)]


def firewall_state(host: str, port: int) -> str:
    """What the rule opens, stored with the service so that a start can tell it changed."""
    return f"TCP {port}" if serves_other_computers(host) else "none"


def run_commands(commands: list[list[str]], run=None) -> int:
    """Run each command (through ``run(command) -> (exit code, output)``, by default the real
    program), printing it and any failure; returns how many failed (a missing firewall rule on
    delete is not a failure)."""
    failures = 0
    for command in commands:
        print(">", subprocess.list2cmdline(command), flush=True)
        code, output = (run or run_program)(command)
        if code and command[:5] != firewall_close_command("")[:5]:
            failures += 1
            print(f"  failed (exit code {code}): {output.strip()}", file=sys.stderr, flush=True)
    return failures


def run_program(command: list[str]) -> tuple[int, str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return result.returncode, result.stdout + result.stderr


def mode_without_quick_edit(mode: int) -> int:
    """The console input mode with QuickEdit off (and the flag that makes that stick)."""
    return (mode & ~ENABLE_QUICK_EDIT_MODE) | ENABLE_EXTENDED_FLAGS


def disable_quick_edit() -> bool:
    """Turn QuickEdit off in this process's console window, so that a click or a selection in
    it cannot pause the console output, and with it every thread that logs (the whole site).
    True when changed; False off Windows, without a console (a service, redirected input),
    or when Windows refuses."""
    if sys.platform != "win32":
        return False
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetStdHandle.restype = wintypes.HANDLE
    kernel32.GetStdHandle.argtypes = [wintypes.DWORD]
    kernel32.GetConsoleMode.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    kernel32.SetConsoleMode.argtypes = [wintypes.HANDLE, wintypes.DWORD]
    handle = kernel32.GetStdHandle(wintypes.DWORD(STD_INPUT_HANDLE & 0xFFFFFFFF))
    mode = wintypes.DWORD()
    if not handle or handle == ctypes.c_void_p(-1).value or not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
        return False
    wanted = mode_without_quick_edit(mode.value)
    return wanted != mode.value and bool(kernel32.SetConsoleMode(handle, wanted))
