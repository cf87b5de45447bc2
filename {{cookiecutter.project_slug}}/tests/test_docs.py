"""The README and .env.example describe the server options the code really has."""

import re
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import tornado_server  # noqa: E402


def test_readme_documents_every_server_option():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    for option in tornado_server.OPTIONS:
        assert f"`{option.cli_name}`" in readme or f"`{option.cli_name} /" in readme, option.cli_name
        assert f"`{option.env_name}`" in readme, option.env_name


def test_readme_lists_no_option_the_server_lacks():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    known = {option.env_name for option in tornado_server.OPTIONS}
    documented = set(re.findall(r"`(SERVER_[A-Z_]+)`", readme))
    assert documented <= known, documented - known


def test_env_example_mentions_every_server_variable():
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for option in tornado_server.OPTIONS:
        if option.env_name.startswith("SERVER_"):
            assert re.search(rf"^#? ?{option.env_name}=", example, re.M), option.env_name


def test_settings_variables_are_documented():
    settings = (PROJECT_DIR / "{{ cookiecutter.project_slug }}" / "settings.py").read_text(encoding="utf-8")
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for name in set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings)):
        assert f"`{name}`" in readme, f"{name} missing from README.md"
        assert name in example, f"{name} missing from .env.example"
