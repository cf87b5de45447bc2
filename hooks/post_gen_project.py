"""Finish the bake: drop what the chosen options do not use, write .env, say what next."""

import os
import shlex
import shutil
import sys
from pathlib import Path

PROJECT = Path.cwd()
LICENSE = {{ cookiecutter.open_source_license | jsonify }}
DATABASE = {{ cookiecutter.database | jsonify }}
CACHE = {{ cookiecutter.cache | jsonify }}
SLUG = {{ cookiecutter.project_slug | jsonify }}
PORT = {{ cookiecutter.port | string | jsonify }}

# Files that only one option uses.
ONLY_FOR = {
    "tests/test_postgresql.py": DATABASE == "postgresql",
    "tests/test_redis.py": CACHE == "redis",
    "LICENSE": LICENSE != "Not open source",
}


def remove(relative):
    path = PROJECT / relative
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main():
    for relative, keep in ONLY_FOR.items():
        if not keep:
            remove(relative)
    (PROJECT / "start_server.sh").chmod(0o755)

    sys.path.insert(0, str(PROJECT))
    from tornado_wsgi_server.bootstrap import ensure_env_file

    ensure_env_file()
    sys.path.pop(0)

    if os.name == "nt":  # the commands exactly as typed in cmd.exe, for any folder name
        start = f'  cd /d "{PROJECT}"\n  start_server.bat'
        superuser = ".venv\\Scripts\\python manage.py createsuperuser"
    else:
        start = f"  cd {shlex.quote(str(PROJECT))}\n  ./start_server.sh"
        superuser = ".venv/bin/python manage.py createsuperuser"
    print(
        f"""
Created {PROJECT}

Next steps:
{start}
Then open http://127.0.0.1:{PORT}/ - the first start installs everything into .venv.
Create an admin user (in the project folder, in a second console while the server runs):
  {superuser}
Settings live in .env (see .env.example); the README explains every option.
"""
    )

main()
