"""service.bat's command line: the commands, their options, the service's name, and the
exit codes a refusal gives."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .options import read_dotenv
from .project import Project

NAME_VARIABLE = "SERVICE_NAME"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")

# Exit codes (Windows' own error numbers for the refusals: service_manager.py).
OK, FAILED, USAGE = 0, 1, 2

COMMANDS = ("install", "update", "start", "stop", "restart", "reload", "remove", "status")
USAGE_TEXT = (
    "Usage: tornado_server.py service [--name NAME] install|start|stop|restart|reload|remove|status|run|update\n"
    "       install/update also take --account ACCOUNT (default NT SERVICE\\<name>; LocalSystem;\n"
    "       DOMAIN\\user with the password in SERVICE_ACCOUNT_PASSWORD or typed) and\n"
    "       --startup delayed|auto|manual|disabled; server options after --; status takes --json")



class CommandError(Exception):
    """A refusal: the message says why and what to do; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Command:
    command: str
    name: str | None = None
    account: str | None = None
    startup: str | None = None
    wait: float | None = None
    server_args: list[str] = field(default_factory=list)
    as_json: bool = False


def parse(argv: list[str]) -> Command:
    """``[options] COMMAND [options] [-- server options]``; options anywhere before ``--``."""
    server_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, server_args = argv[:cut], argv[cut + 1:]
    values: dict[str, str] = {}
    words: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        option, equals, value = arg.partition("=")
        if option in ("--name", "--account", "--startup", "--wait"):
            if not equals:
                index += 1
                if index >= len(argv):
                    raise CommandError(f"{option} needs a value\n{USAGE_TEXT}", USAGE)
                value = argv[index]
            values[option[2:]] = value
        elif arg == "--json":
            values["json"] = "1"
        elif arg.startswith("-"):
            raise CommandError(f"unknown option {arg}\n{USAGE_TEXT}", USAGE)
        else:
            words.append(arg)
        index += 1
    if len(words) != 1 or words[0] not in COMMANDS:
        raise CommandError(USAGE_TEXT, USAGE)
    startup = values.get("startup")
    if startup is not None and startup not in ("delayed", "auto", "manual", "disabled"):
        raise CommandError(f"--startup {startup}: use delayed, auto, manual or disabled", USAGE)
    try:
        wait = float(values["wait"]) if "wait" in values else None
    except ValueError:
        raise CommandError(f"--wait {values['wait']}: a number of seconds", USAGE) from None
    if "json" in values and words[0] != "status":
        raise CommandError(f"--json goes with status only\n{USAGE_TEXT}", USAGE)
    return Command(words[0], values.get("name"), values.get("account"), startup, wait, server_args,
                   as_json="json" in values)


def service_name(project: Project, given: str | None) -> str:
    """--name, else SERVICE_NAME (environment or .env), else the project's slug; checked."""
    read_dotenv(project.dotenv)
    name = given or os.environ.get(NAME_VARIABLE, "").strip() or project.slug
    source = "--name" if given else NAME_VARIABLE if os.environ.get(NAME_VARIABLE, "").strip() else "the project"
    if not NAME_PATTERN.fullmatch(name):
        raise CommandError(f"{source}: {name!r} is not a usable service name: up to 80 letters, digits, "
                           "'_', '-' or '.', starting with a letter or digit", USAGE)
    return name
