"""manage.py restore FILE: put a backup made by manage.py backup back into the database."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ... import backups


class Command(BaseCommand):
    help = ("Replace the database's content with a backup from manage.py backup. Stop the "
            "site first (service.bat stop); the current content is lost.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The backup file (.sqlite3 or .dump).")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="Do not ask for confirmation.")

    def handle(self, *args, file, interactive=True, **options):
        name = backups.database()["NAME"]
        if interactive:
            answer = input(f"This replaces everything in the database {name} with {file}. "
                           "Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled.")
        backups.restore(file)
        self.stdout.write(f"Restored {file} into {name}")
