"""A stand-in for the service manager seam of service_control.py (windows_service's
Win32ServiceManager on Windows): every service command, ``status`` included, runs on it."""

from __future__ import annotations

from pathlib import Path

from tornado_wsgi_server import service_manager
from tornado_wsgi_server.project import load_project
from tornado_wsgi_server.service_manager import ServiceDetails, ServiceState

from ..conftest import PROJECT_DIR

SLUG = load_project(PROJECT_DIR).slug


class FakeManager:
    """One service manager: ``after_start`` and ``after_stop`` list the states a service goes
    through after a start or stop request, one per poll; the last one stays."""

    def __init__(self, installed_from: Path | None = None, state: str = "stopped") -> None:
        self.services: dict[str, dict] = {}
        self.calls: list = []
        self.commands: list[list[str]] = []
        self.after_start = ["start_pending", "running"]
        self.after_stop = ["stop_pending", "stopped"]
        self.queue: list[str] = []
        self.events: list[str] = []
        self.exit_code = 0
        if installed_from is not None:
            self.services[SLUG] = {"class": f"{installed_from}\\{service_manager.SERVICE_MODULE}."
                                            f"{service_manager.SERVICE_CLASS}", "state": state, "options": {},
                                   "account": f"NT SERVICE\\{SLUG}", "startup": "delayed", "pid": None}

    def state(self, name):
        service = self.services.get(name)
        if service is None:
            return None
        if self.queue:
            service["state"] = self.queue.pop(0)
        return ServiceState(service["state"], self.exit_code if service["state"] == "stopped" else 0)

    def details(self, name):
        service = self.services.get(name)
        if service is None:
            return None
        return ServiceDetails(service.get("pid"), service.get("account", "LocalSystem"), service.get("startup", "auto"))

    def python_services(self):
        return {name: service["class"] for name, service in self.services.items() if service.get("class")}

    def installed_class(self, name):
        return self.services.get(name, {}).get("class")

    def create(self, spec):
        self.calls.append(("create", spec))
        self.services[spec.name] = {"class": spec.class_string, "state": "stopped", "options": {},
                                    "account": spec.account, "startup": spec.startup}

    def update(self, spec):
        self.calls.append(("update", spec))
        self.services[spec.name].update({"class": spec.class_string, "account": spec.account,
                                         "startup": spec.startup})

    def get_option(self, name, option, default=None):
        return self.services[name]["options"].get(option, default)

    def set_option(self, name, option, value):
        self.services[name]["options"][option] = value

    def start(self, name, args):
        self.calls.append(("start", name))
        self.queue = list(self.after_start)

    def stop(self, name):
        self.calls.append(("stop", name))
        self.queue = list(self.after_stop)

    def delete(self, name):
        self.calls.append(("delete", name))
        del self.services[name]

    def prepare_host(self, name):
        self.calls.append(("prepare_host", name))

    def grant_logon_right(self, account):
        self.calls.append(("grant_logon_right", account))

    def last_event(self, name, since):
        return self.events[-1] if self.events else None

    def run(self, command):
        self.commands.append(command)
        return 0, ""
