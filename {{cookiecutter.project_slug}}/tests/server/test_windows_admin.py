"""The Windows set-up around the service, as data (the commands `service.bat install` and
`remove` run, the QuickEdit mode arithmetic), and the start-up banner's network addresses:
what other computers can type, and the names ALLOWED_HOSTS would refuse."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tornado_wsgi_server import lan, windows_admin

from ..conftest import PROJECT_DIR

SLUG = "{{ cookiecutter.project_slug }}"
RULE = f"name={SLUG}-web"


def test_install_sets_restart_on_failure_with_the_failure_flag():
    commands = windows_admin.install_commands(SLUG, "127.0.0.1", 8000, delayed_start=False)
    assert ["sc.exe", "failure", SLUG, "reset=", "86400",
            "actions=", "restart/5000/restart/5000/restart/60000"] in commands
    # Without the flag Windows restarts only after a crash, not after a stop with an error.
    assert ["sc.exe", "failureflag", SLUG, "1"] in commands


def test_install_makes_the_start_delayed_unless_a_start_type_was_given():
    delayed = ["sc.exe", "config", SLUG, "start=", "delayed-auto"]
    assert delayed in windows_admin.install_commands(SLUG, "127.0.0.1", 8000, delayed_start=True)
    assert delayed not in windows_admin.install_commands(SLUG, "127.0.0.1", 8000, delayed_start=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "ops01.corp.example"])
def test_install_opens_the_port_in_the_firewall_when_serving_the_network(host):
    commands = windows_admin.install_commands(SLUG, host, 8123, delayed_start=True)
    add = ["netsh", "advfirewall", "firewall", "add", "rule", RULE, "dir=in", "action=allow",
           "protocol=TCP", "localport=8123", "profile=domain,private"]
    delete = ["netsh", "advfirewall", "firewall", "delete", "rule", RULE]
    assert add in commands
    # A rule an earlier install made (perhaps for another port) is replaced, not doubled.
    assert commands.index(delete) < commands.index(add)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_no_firewall_rule_for_a_loopback_server(host):
    commands = windows_admin.install_commands(SLUG, host, 8000, delayed_start=True)
    assert not [command for command in commands if command[0] == "netsh"]


def test_remove_deletes_the_firewall_rule():
    assert windows_admin.remove_commands(SLUG) == [
        ["netsh", "advfirewall", "firewall", "delete", "rule", RULE]]


@pytest.mark.parametrize(("mode", "expected"), [
    (0x01F7, 0x01B7),  # the Windows default: QuickEdit (0x40) and extended flags (0x80) set
    (0x0047, 0x0087),  # QuickEdit without the extended flags: the flag is added, or no change sticks
    (0x0087, 0x0087),  # already off
    (0x0000, 0x0080),
])
def test_quick_edit_is_cleared_and_extended_flags_set(mode, expected):
    assert windows_admin.mode_without_quick_edit(mode) == expected


def test_quick_edit_is_a_no_op_without_a_windows_console():
    # Off Windows it does nothing; on Windows a process whose input is not a console (a
    # service, redirected input) has no QuickEdit to turn off: it says so, and never raises.
    completed = subprocess.run(
        [sys.executable, "-c", "from tornado_wsgi_server import windows_admin; "
                               "print(windows_admin.disable_quick_edit())"],
        cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False", completed.stdout + completed.stderr


# --- the banner: the addresses other computers use ---------------------------------------------


def test_network_urls_list_the_machine_name_and_each_network_address():
    urls = lan.network_urls("http", 8000, "OPS01", ["10.20.30.40", "127.0.0.1", "192.168.1.5", "169.254.3.4"])
    assert urls == ["http://OPS01:8000/", "http://10.20.30.40:8000/", "http://192.168.1.5:8000/"]


def test_network_urls_fall_back_to_the_loopback_without_a_network():
    assert lan.network_urls("https", 8443, "OPS01", ["127.0.0.1", "127.0.1.1"]) == ["https://127.0.0.1:8443/"]
    assert lan.network_urls("http", 8000, "OPS01", []) == ["http://127.0.0.1:8000/"]


def test_names_missing_from_allowed_hosts_are_named():
    lines = lan.network_lines("http", 8000, "OPS01", ["10.20.30.40"], ["localhost", "127.0.0.1", "ops01"])
    assert "http://OPS01:8000/" in lines[0] and "http://10.20.30.40:8000/" in lines[0]
    refused = [line for line in lines if "DJANGO_ALLOWED_HOSTS" in line]
    assert len(refused) == 1 and "10.20.30.40" in refused[0] and "OPS01" not in refused[0]
    # A leading dot matches the domain's hosts; every name allowed: no hint.
    allowed = lan.network_lines("http", 8000, "ops01.corp.example", ["10.20.30.40"],
                                [".corp.example", "10.20.30.40"])
    assert not [line for line in allowed if "DJANGO_ALLOWED_HOSTS" in line]


def this_machines_network_address() -> str | None:
    """Found independently of the server's code: the address of the default route."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.7", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith(("127.", "169.254.", "0.")) else address


def test_banner_lists_the_network_addresses_when_serving_every_interface(start_server):
    server = start_server("--host", "0.0.0.0")
    output = server.output()
    address = this_machines_network_address()
    if address:
        assert f"http://{address}:{server.port}/" in output
        assert f"http://{socket.gethostname()}:{server.port}/" in output
        # tests/settings.py allows only localhost names: the machine's name is refused.
        refused = next(line for line in output.splitlines() if "Not in DJANGO_ALLOWED_HOSTS" in line)
        assert address in refused
    else:
        assert f"only http://127.0.0.1:{server.port}/ works" in output


def test_banner_has_no_network_lines_for_a_loopback_server(start_server):
    assert "Other computers" not in start_server().output()


def test_machine_addresses_are_network_addresses():
    addresses = lan.machine_addresses()
    assert all(lan.is_network_address(address) for address in addresses)
    if this_machines_network_address():
        assert this_machines_network_address() in addresses


def test_install_keeps_the_services_other_environment_variables():
    from tornado_wsgi_server.windows_service import service_environment

    existing = ["HTTPS_PROXY=http://proxy.corp:8080", "Path=C:\\old", "DJANGO_LOG_LEVEL=WARNING"]
    assert service_environment(existing, "C:\\Python313;C:\\Windows") == [
        "HTTPS_PROXY=http://proxy.corp:8080", "DJANGO_LOG_LEVEL=WARNING", "PATH=C:\\Python313;C:\\Windows"]
    assert service_environment([], "C:\\Windows") == ["PATH=C:\\Windows"]


def service_aces(sddl: str) -> dict[str, set[str]]:
    """{trustee: rights} of an SDDL DACL of allow entries, rights as two-letter codes."""
    assert sddl.startswith("D:") and "S:" not in sddl  # the audit entries (SACL) stay as they are
    aces = {}
    for ace in sddl[2:].strip("()").split(")("):
        kind, _, rights, _, _, trustee = ace.split(";")
        assert kind == "A"
        aces[trustee] = {rights[i:i + 2] for i in range(0, len(rights), 2)}
    return aces


def test_install_lets_only_administrators_and_system_control_the_service():
    """`sc control NAME 128` reloads: no other local user may send it, or start or stop it."""
    ran = windows_admin.install_commands(SLUG, "127.0.0.1", 8000, delayed_start=False)
    sdset = [line for line in ran if line[:2] == ["sc.exe", "sdset"]]
    assert len(sdset) == 1 and sdset[0][2] == SLUG, ran
    aces = service_aces(sdset[0][3])
    control = {"CR", "RP", "WP", "DT"}  # user-defined control (reload), start, stop, pause
    assert {trustee for trustee, rights in aces.items() if rights & control} == {"SY", "BA"}
    assert {trustee for trustee, rights in aces.items() if rights & {"DC", "SD", "WD", "WO"}} == {"BA"}
    for users in ("IU", "AU", "SU"):  # everyone signed in may still see it and its state
        assert {"CC", "LC", "RC"} <= aces[users], users
    assert control <= aces["SY"] and control <= aces["BA"]
