"""The service commands' decisions (service_control.py) against a stand-in service manager
whose states change as a script says, on a clock that moves only when the command waits:
what install creates and grants, what it refuses, how long start/stop wait and what they say
and return."""

from __future__ import annotations

import io
import os
import shlex
import time
from pathlib import Path

import pytest

from tornado_wsgi_server import service_control, windows_admin
from tornado_wsgi_server.project import load_project

from ..conftest import PROJECT_DIR
from .service_fakes import FakeManager

PROJECT = load_project(PROJECT_DIR)
SLUG = PROJECT.slug
ALL_USERS_PYTHON = "C:\\Program Files\\Python313"
ENVIRON = {"USERPROFILE": "C:\\Users\\admin", "USERNAME": "admin", "USERDOMAIN": "CORP"}


@pytest.fixture(autouse=True)
def restore_environment():
    """The commands load .env into os.environ, as the service does: undo it after each test."""
    saved = dict(os.environ)
    os.environ.pop("SERVICE_NAME", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def run(manager, *argv, base_prefix=ALL_USERS_PYTHON, environ=None, project=PROJECT, clock=None):
    out = io.StringIO()
    clock = clock or Clock()
    code = service_control.main(project, list(argv), manager, environ=dict(environ or ENVIRON),
                                base_prefix=base_prefix, clock=clock, sleep=clock.sleep, now=time.time,
                                ask_password=lambda prompt: "typed secret", out=out)
    return code, out.getvalue()


# --- install: the account and what it may touch ---------------------------------------------------


def test_install_runs_the_service_as_its_virtual_account_with_exact_folder_rights():
    manager = FakeManager()
    code, output = run(manager, "install")
    assert code == 0, output
    spec = manager.calls[0][1]
    assert manager.calls[0][0] == "create" and spec.account == f"NT SERVICE\\{SLUG}" and spec.password is None
    project = str(PROJECT_DIR)
    account = f"NT SERVICE\\{SLUG}"
    icacls = [command for command in manager.commands if command[0] == "icacls"]
    assert icacls == [
        ["icacls", project, "/inheritance:r", "/grant:r", "*S-1-5-32-544:(OI)(CI)F", "*S-1-5-18:(OI)(CI)F",
         "CORP\\admin:(OI)(CI)F", f"{account}:(OI)(CI)RX"],
        ["icacls", ALL_USERS_PYTHON, "/grant", f"{account}:(OI)(CI)RX"],
        ["icacls", f"{project}\\data", "/grant:r", f"{account}:(OI)(CI)M"],
        ["icacls", f"{project}\\logs", "/grant:r", f"{account}:(OI)(CI)M"],
    ]
    assert ["sc.exe", "sidtype", SLUG, "unrestricted"] in manager.commands
    assert (PROJECT_DIR / "data").is_dir() and (PROJECT_DIR / "logs").is_dir()
    assert manager.services[SLUG]["options"][service_control.ACCOUNT_OPTION] == account


def test_folder_rights_for_a_python_inside_the_project_add_nothing():
    commands = windows_admin.folder_rights_commands("NT SERVICE\\s", "C:\\Sites\\s", "me",
                                                    ["C:\\Sites\\s\\.venv", "c:\\sites\\S\\python"])
    assert [command[1] for command in commands] == ["C:\\Sites\\s", "C:\\Sites\\s\\data", "C:\\Sites\\s\\logs"]


@pytest.mark.parametrize("account,kind", [("LocalSystem", "system"), ("localsystem", "system"),
                                          ("NT SERVICE\\x", "virtual"), ("NT AUTHORITY\\NetworkService", "builtin"),
                                          ("CORP\\svc-web", "user"), (".\\web", "user")])
def test_account_kinds(account, kind):
    assert windows_admin.account_kind(account) == kind


def test_install_as_localsystem_grants_nothing():
    manager = FakeManager()
    code, output = run(manager, "install", "--account", "localsystem")
    assert code == 0, output
    assert manager.calls[0][1].account == "LocalSystem"
    assert not [command for command in manager.commands if command[0] == "icacls"]


def test_install_as_a_named_account_takes_the_password_and_grants_log_on_as_a_service():
    manager = FakeManager()
    code, output = run(manager, "--account", "CORP\\svc-web", "install",
                       environ={**ENVIRON, "SERVICE_ACCOUNT_PASSWORD": "from env"})
    assert code == 0, output
    assert manager.calls[0][1].password == "from env"
    assert ("grant_logon_right", "CORP\\svc-web") in manager.calls
    assert [command for command in manager.commands if command[0] == "icacls"][0][-1] == "CORP\\svc-web:(OI)(CI)RX"
    manager = FakeManager()
    assert run(manager, "install", "--account=CORP\\svc-web")[0] == 0
    assert manager.calls[0][1].password == "typed secret"


def test_a_reinstall_keeps_the_account_chosen_before():
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.services[SLUG]["options"][service_control.ACCOUNT_OPTION] = "LocalSystem"
    code, output = run(manager, "install")
    assert code == 0, output
    assert manager.calls[0][0] == "update" and manager.calls[0][1].account == "LocalSystem"


@pytest.mark.parametrize("prefix", ["C:\\Users\\admin\\AppData\\Local\\Programs\\Python\\Python313",
                                    "c:\\users\\other\\AppData\\Local\\Python\\pythoncore-3.14-64",
                                    "C:\\Program Files\\WindowsApps\\PythonSoftwareFoundation.Python.3.13_x64"])
def test_a_per_user_python_is_refused_for_the_virtual_account_with_the_fix(prefix):
    manager = FakeManager()
    code, output = run(manager, "install", base_prefix=prefix)
    assert code == 1 and not manager.calls, output
    assert prefix in output and "for all users" in output and "--account LocalSystem" in output
    assert run(FakeManager(), "install", "--account", "LocalSystem", base_prefix=prefix)[0] == 0


# --- several sites: names and the takeover refusal ------------------------------------------------


def test_install_refuses_to_take_over_a_service_installed_from_another_folder():
    live = "C:\\Sites\\live"
    manager = FakeManager(installed_from=Path(live), state="running")
    for command in ("install", "update", "start", "remove"):
        manager.calls.clear()
        code, output = run(manager, command)
        assert code == 1, (command, output)
        assert live in output and str(PROJECT_DIR) in output and "--name" in output, output
        assert not [call for call in manager.calls if call[0] in ("update", "create", "delete", "stop", "start")]
    assert manager.services[SLUG]["class"].startswith(live)
    assert not [command for command in manager.commands if command[0] == "netsh"]  # its rule is untouched


def test_a_second_service_name_from_the_same_folder_is_refused_but_a_reinstall_is_not():
    """Two services from one folder would share data\\ and logs\\ (the database, the control
    file): install under another name says which service runs the folder and the two fixes."""
    manager = FakeManager(installed_from=PROJECT_DIR, state="running")
    code, output = run(manager, "--name", "site_b", "install")
    assert code == 2, output
    assert f"already runs the service {SLUG}" in output and str(PROJECT_DIR) in output, output
    assert f"service.bat remove --name {SLUG}" in output and "another folder" in output, output
    assert set(manager.services) == {SLUG} and not manager.calls and not manager.commands
    # The same name is a reinstall.
    assert run(manager, "install")[0] == 0 and manager.calls[0][0] == "update"
    # A service of that other name from another folder does not count.
    elsewhere = FakeManager(installed_from=Path("C:\\Sites\\live"))
    assert run(elsewhere, "--name", "site_b", "install")[0] == 0


def test_a_service_of_another_program_with_that_name_is_refused_too():
    manager = FakeManager()
    manager.services[SLUG] = {"class": None, "state": "running", "options": {}}
    code, output = run(manager, "install")
    assert code == 1 and "not a service of this project" in output, output


def test_install_of_the_same_folder_updates_the_service():
    manager = FakeManager(installed_from=PROJECT_DIR)
    code, output = run(manager, "install", "--", "--port", "8123")
    assert code == 0 and manager.calls[0][0] == "update", output
    assert manager.services[SLUG]["options"][service_control.SERVER_ARGS_OPTION] == "--port 8123"
    assert "Stored options (they win over .env): --port 8123" in output


def test_name_from_the_option_then_the_env_file_then_the_slug(monkeypatch):
    manager = FakeManager(installed_from=Path("C:\\Sites\\live"))
    code, output = run(manager, "--name", "site_staging", "install", "--", "--host", "0.0.0.0", "--port", "8100")
    assert code == 0, output
    assert "site_staging" in manager.services and manager.calls[0][1].account == "NT SERVICE\\site_staging"
    assert ["netsh", "advfirewall", "firewall", "add", "rule", "name=site_staging-web", "dir=in", "action=allow",
            "protocol=TCP", "localport=8100", "profile=domain,private"] in manager.commands
    assert not [command for command in manager.commands if f"name={SLUG}-web" in command]
    monkeypatch.setenv("SERVICE_NAME", "from_env")
    assert service_control.service_name(PROJECT, None) == "from_env"
    assert service_control.service_name(PROJECT, "given") == "given"
    monkeypatch.delenv("SERVICE_NAME")
    assert service_control.service_name(PROJECT, None) == SLUG


@pytest.mark.parametrize("bad", ["my site", "a\\b", "-x", "x" * 81, "é"])
def test_a_bad_service_name_is_refused(monkeypatch, bad):
    monkeypatch.setenv("SERVICE_NAME", bad)
    code, output = run(FakeManager(), "install")
    assert code == 2 and "SERVICE_NAME" in output and "not a usable service name" in output, output


def test_command_line_parsing():
    parsed = service_control.parse(["--name", "a", "start", "--wait=5", "--", "--port", "1"])
    assert (parsed.command, parsed.name, parsed.wait, parsed.server_args) == ("start", "a", 5.0, ["--port", "1"])
    assert service_control.parse(["--startup", "manual", "install"]).startup == "manual"
    assert service_control.parse(["--name", "a", "status", "--json"]).as_json
    assert not service_control.parse(["status"]).as_json
    for bad in (["start", "stop"], ["begin"], ["--startup", "soon", "install"], ["--name"], ["--force", "stop"],
                ["start", "--json"]):
        with pytest.raises(service_control.CommandError) as refused:
            service_control.parse(bad)
        assert refused.value.code == 2


# --- commands that wait and tell --------------------------------------------------------------------


def test_start_waits_until_running_and_resyncs_the_firewall_rule(monkeypatch):
    monkeypatch.setenv("SERVER_HOST", "0.0.0.0")
    monkeypatch.setenv("SERVER_PORT", "8765")
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.after_start = ["start_pending"] * 6 + ["running"]
    clock = Clock()
    code, output = run(manager, "start", clock=clock)
    assert code == 0 and f"{SLUG}: running, http://127.0.0.1:8765/" in output, output
    assert clock.slept == pytest.approx(6 * service_control.POLL_SECONDS)
    rule = f"name={SLUG}-web"
    assert manager.commands == [["netsh", "advfirewall", "firewall", "delete", "rule", rule],
                                ["netsh", "advfirewall", "firewall", "add", "rule", rule, "dir=in", "action=allow",
                                 "protocol=TCP", "localport=8765", "profile=domain,private"]]
    assert manager.services[SLUG]["options"][service_control.FIREWALL_OPTION] == "TCP 8765"
    # Back on the loopback address: the rule goes.
    monkeypatch.setenv("SERVER_HOST", "127.0.0.1")
    manager.commands.clear()
    assert run(manager, "restart")[0] == 0
    assert manager.commands == [["netsh", "advfirewall", "firewall", "delete", "rule", rule]]


def test_a_start_that_fails_exits_non_zero_with_the_reason():
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.after_start = ["start_pending", "stopped"]
    manager.events.append(f"{SLUG} could not start: ERROR: cannot listen on 127.0.0.1:8000: in use")
    code, output = run(manager, "start")
    assert code == 1 and "did not start" in output and "cannot listen on 127.0.0.1:8000" in output, output


def test_a_start_that_fails_without_an_event_shows_the_log_tail(tmp_path):
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.after_start = ["stopped"]
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(40)) + "ImproperlyConfigured: bad DJANGO_TIME_ZONE\n")
    manager.services[SLUG]["options"][service_control.SERVER_ARGS_OPTION] = shlex.join(["--log-file", str(log)])
    code, output = run(manager, "start")
    assert code == 1 and "bad DJANGO_TIME_ZONE" in output and "line 39" in output and "line 20" not in output


def test_a_start_still_pending_gives_up_at_its_bound():
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.after_start = ["start_pending"]
    clock = Clock()
    code, output = run(manager, "start", clock=clock)
    assert code == 1 and "still starting after 120 s" in output, output
    assert service_control.START_TIMEOUT <= clock.slept <= service_control.START_TIMEOUT + 1


def test_start_of_a_running_service_and_stop_of_a_stopped_one_are_refused():
    assert run(FakeManager(installed_from=PROJECT_DIR, state="running"), "start")[0] == 1056
    assert run(FakeManager(installed_from=PROJECT_DIR), "stop")[0] == 1062
    assert run(FakeManager(installed_from=PROJECT_DIR), "reload")[0] == 1062
    for command in ("start", "stop", "restart", "reload", "remove"):
        assert run(FakeManager(), command)[0] == 1060
    code, output = run(FakeManager(), "status")  # as every status: 3 when it does not run
    assert code == 3 and f"{SLUG}: not installed" in output, output


def test_stop_waits_for_the_drain_time_plus_the_margin(monkeypatch):
    monkeypatch.setenv("SERVER_DRAIN_TIMEOUT", "45")
    manager = FakeManager(installed_from=PROJECT_DIR, state="running")
    manager.after_stop = ["stop_pending"] * 100 + ["stopped"]  # 50 s of draining: inside 45 + 30
    clock = Clock()
    code, output = run(manager, "stop", clock=clock)
    assert code == 0 and f"{SLUG}: stopped" in output, output
    manager.services[SLUG]["state"] = "running"
    manager.after_stop = ["stop_pending"]  # never stops
    clock = Clock()
    code, output = run(manager, "stop", clock=clock)
    assert code == 1 and "still stopping after 75 s" in output, output
    assert 75 <= clock.slept <= 76


def test_restart_stops_then_starts_and_stops_there_when_the_stop_fails():
    manager = FakeManager(installed_from=PROJECT_DIR, state="running")
    assert run(manager, "restart")[0] == 0
    assert [call[0] for call in manager.calls] == ["stop", "start"]
    manager.calls.clear()
    manager.after_stop = ["stop_pending"]
    assert run(manager, "restart")[0] == 1
    assert [call[0] for call in manager.calls] == ["stop"]


def test_remove_stops_first_then_deletes_the_service_and_its_rule():
    manager = FakeManager(installed_from=PROJECT_DIR, state="running")
    code, output = run(manager, "remove")
    assert code == 0, output
    assert [call[0] for call in manager.calls] == ["stop", "delete"]
    assert manager.commands[-1] == ["netsh", "advfirewall", "firewall", "delete", "rule", f"name={SLUG}-web"]
    manager = FakeManager(installed_from=PROJECT_DIR, state="running")
    manager.after_stop = ["stop_pending"]
    code, output = run(manager, "remove")
    assert code == 1 and "was not removed" in output and SLUG in manager.services


def removals(manager) -> list[list[str]]:
    return [command for command in manager.commands if command[2:3] == ["/remove"]]


def test_remove_takes_back_the_folder_rights_install_gave_while_the_account_still_resolves():
    manager = FakeManager()
    assert run(manager, "install", base_prefix="C:\\Python\\A")[0] == 0
    assert run(manager, "install", base_prefix="C:\\Python\\B")[0] == 0  # .venv made again from another Python
    present = []
    recorded = manager.run
    manager.run = lambda command: present.append(SLUG in manager.services) or recorded(command)
    code, output = run(manager, "remove")
    assert code == 0 and SLUG not in manager.services, output
    account, project = f"NT SERVICE\\{SLUG}", str(PROJECT_DIR)
    assert removals(manager) == [["icacls", folder, "/remove", account] for folder in
                                 (project, "C:\\Python\\A", f"{project}\\data", f"{project}\\logs", "C:\\Python\\B")]
    assert all(present[:5]), "the rights must go before the service: its account's name resolves only then"
    assert f"removed, with its firewall rule and the folder rights of {account}" in output, output


def test_remove_passes_over_a_folder_that_is_gone_and_keeps_the_service_when_rights_stay(tmp_path):
    manager = FakeManager(installed_from=PROJECT_DIR)  # installed before the folders were recorded
    deleted_python = str(tmp_path / "Python313")  # the base Python, uninstalled since
    ran = []
    manager.run = lambda command: ran.append(command) or ((2, "The system cannot find the file specified.")
                                                          if command[1] == deleted_python else (0, "processed file"))
    code, output = run(manager, "remove", base_prefix=deleted_python)
    assert code == 0 and SLUG not in manager.services, output
    assert ["icacls", deleted_python, "/remove", f"NT SERVICE\\{SLUG}"] in ran
    manager = FakeManager(installed_from=PROJECT_DIR)
    manager.run = lambda command: (5, "Access is denied.") if command[1] == str(PROJECT_DIR) else (0, "")
    code, output = run(manager, "remove")
    assert code == 1 and SLUG in manager.services, output
    assert "Access is denied." in output and f"{SLUG} was not removed" in output and str(PROJECT_DIR) in output


def test_remove_leaves_a_named_accounts_rights_and_says_how_to_take_them_back():
    manager = FakeManager()
    assert run(manager, "install", "--account", "CORP\\svc-web",
               environ={**ENVIRON, "SERVICE_ACCOUNT_PASSWORD": "pw"})[0] == 0
    code, output = run(manager, "remove")
    assert code == 0, output
    assert not [command for command in removals(manager) if "CORP\\svc-web" in command]
    assert "CORP\\svc-web keeps its folder rights" in output and "icacls <folder> /remove CORP\\svc-web" in output


def failing(manager, program: str, word: str, output: str, code: int = 5) -> None:
    """The manager's native commands, with ``program word ...`` failing as Windows would."""
    recorded = manager.run
    manager.run = lambda command: (code, output) if command[:2] == [program, word] else recorded(command)


def test_install_that_cannot_make_the_service_usable_removes_it_and_says_why():
    """sc.exe sidtype fails: the virtual account could not use its folder rights, so the new
    service is taken away again, its rights first; exit 1 with the command and its output."""
    manager = FakeManager()
    failing(manager, "sc.exe", "sidtype", "[SC] ChangeServiceConfig2 FAILED 5:\n\nAccess is denied.")
    code, output = run(manager, "install")
    assert code == 1, output
    assert f"`sc.exe sidtype {SLUG} unrestricted` (exit code 5: [SC] ChangeServiceConfig2 FAILED 5:" in output
    assert "Access is denied." in output and "nothing of it is left" in output, output
    assert SLUG not in manager.services and removals(manager), output
    assert not [command for command in manager.commands if command[0] == "netsh"]  # no rule was made


def test_install_whose_account_windows_refuses_leaves_no_service():
    manager = FakeManager()
    made = manager.create

    def create(spec):
        made(spec)  # made as LocalSystem, then given its account, as Windows does
        raise service_control.ServiceManagerError(1057, "The account name is invalid or does not exist")

    manager.create = create
    code, output = run(manager, "install", "--account", "CORP\\nobody", environ={**ENVIRON, "SERVICE_ACCOUNT_PASSWORD": "x"})
    assert code == 1057 and "account name is invalid" in output, output
    assert SLUG not in manager.services and "nothing of it is left" in output, output


@pytest.mark.parametrize("program,word,output", [
    ("sc.exe", "failure", "[SC] ChangeServiceConfig2 FAILED 1072:\n\nThe specified service has been marked for deletion."),
    ("sc.exe", "sdset", "[SC] SetServiceObjectSecurity FAILED 87:\n\nThe parameter is incorrect."),
    ("netsh", "advfirewall", "An error occurred while attempting to contact the Windows Defender Firewall service."),
])
def test_install_whose_other_set_up_fails_exits_1_with_the_command_and_keeps_a_usable_service(
        monkeypatch, program, word, output):
    monkeypatch.setenv("SERVER_HOST", "0.0.0.0")
    manager = FakeManager()
    failing(manager, program, word, output)
    code, said = run(manager, "install")
    assert code == 1, said
    assert said.count("(exit code 5: ") >= 1 and output.splitlines()[-1] in said, said
    assert "is installed and can start" in said and "service.bat install again" in said, said
    assert SLUG in manager.services and not removals(manager)
    if program == "netsh":  # deleting a rule that is not there is not a failure; adding one is
        assert "add rule" in said.split("ERROR:")[-1]


def test_a_reinstall_whose_rights_fail_keeps_the_service_and_says_what_to_do():
    manager = FakeManager(installed_from=PROJECT_DIR)
    failing(manager, "icacls", str(PROJECT_DIR), "Access is denied.")
    code, output = run(manager, "install")
    assert code == 1 and SLUG in manager.services, output
    assert f"`icacls {PROJECT_DIR} /inheritance:r" in output and "is updated but may not start" in output, output


def test_firewall_at_service_start_follows_a_changed_port_or_says_why_not():
    from tornado_wsgi_server.options import ServerOptions
    from tornado_wsgi_server.windows_service import sync_firewall_at_start

    ran = []
    options = ServerOptions(host="0.0.0.0", port=8080)
    assert sync_firewall_at_start("s", options, "TCP 8080", lambda c: ran.append(c) or (0, "")) is None
    assert ran == []  # unchanged: nothing to do
    assert sync_firewall_at_start("s", options, "TCP 8000", lambda c: ran.append(c) or (0, "")) is None
    assert ran[-1][-2] == "localport=8080"
    warning = sync_firewall_at_start("s", options, "TCP 8000", lambda c: (1, "The requested operation "
                                                                               "requires elevation."))
    assert "TCP 8000" in warning and "TCP 8080" in warning and "service.bat restart" in warning


def test_a_sqlite_database_outside_data_is_named_at_install(tmp_path):
    from tornado_wsgi_server.project import Project

    project = Project(name="x", slug="x", directory=tmp_path, settings="x.settings")
    outside = service_control.sqlite_outside_data
    assert outside(project, None) is None
    (tmp_path / "db.sqlite3").write_bytes(b"")
    assert outside(project, None) == str(tmp_path / "db.sqlite3")
    assert outside(project, f"sqlite:///{(tmp_path / 'data' / 'db.sqlite3').as_posix()}") is None
    assert outside(project, "sqlite:///C:/Sites/x/db.sqlite3") == "C:/Sites/x/db.sqlite3"
    assert outside(project, "postgres://u@127.0.0.1/x") is None


def test_the_windows_service_manager_gives_the_account_as_windows_takes_it(monkeypatch):
    """Made as LocalSystem, then given its account: no password for LocalSystem and the
    virtual account, the start type and delayed start as pywin32 takes them."""
    import dataclasses
    import sys
    import types

    from tornado_wsgi_server import windows_service

    calls = []
    pywin32 = types.SimpleNamespace(
        InstallService=lambda *args, **kwargs: calls.append(("install", args, kwargs)),
        ChangeServiceConfig=lambda *args, **kwargs: calls.append(("change", args, kwargs)))
    monkeypatch.setattr(windows_service, "win32serviceutil", pywin32, raising=False)
    monkeypatch.setitem(sys.modules, "pywintypes", types.SimpleNamespace(error=OSError))
    manager = windows_service.Win32ServiceManager()
    spec = service_control.ServiceSpec("s", "S", "d", "C:\\Sites\\s\\m.C", "NT SERVICE\\s", None, "delayed")
    manager.create(spec)
    (first, args, kwargs), (second, _, changed) = calls
    assert first == "install" and args[:3] == ("C:\\Sites\\s\\m.C", "s", "S") and "userName" not in kwargs
    assert second == "change" and (changed["userName"], changed["password"]) == ("NT SERVICE\\s", "")
    assert (changed["startType"], changed["delayedstart"]) == (2, True)
    manager.update(dataclasses.replace(spec, account="localsystem", startup="manual"))
    assert (calls[-1][2]["userName"], calls[-1][2]["password"], calls[-1][2]["startType"]) == ("LocalSystem", "", 3)
    manager.update(dataclasses.replace(spec, account="CORP\\web", password="pw"))
    assert (calls[-1][2]["userName"], calls[-1][2]["password"]) == ("CORP\\web", "pw")
