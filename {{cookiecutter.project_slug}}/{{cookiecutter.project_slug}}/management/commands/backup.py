"""manage.py backup: a consistent copy of the database, and the uploaded files, while the site runs."""

from pathlib import Path

from django.core.management.base import BaseCommand

from ... import backups


class Command(BaseCommand):
    help = ("Back up the database while the site runs: SQLite with its online backup API, "
            "PostgreSQL with pg_dump. Default file: backups/<project>-<date>-<time>.sqlite3 (.dump); "
            "the uploaded files (MEDIA_ROOT) go to the .media.zip of the same name beside it.")

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="Write the backup to this file instead.")
        parser.add_argument("--keep", type=int, default=14,
                            help="Keep this many backups in backups/ and delete older ones "
                                 "(default 14; 0 keeps all). Not used with --output.")
        parser.add_argument("--no-media", action="store_false", dest="media",
                            help="The database only, without the uploaded files.")

    def handle(self, *args, output=None, keep=14, media=True, **options):
        target = output or backups.default_backup_path()
        archive = backups.backup(target, media=media)
        self.stdout.write(f"Backup written to {target.resolve()}")
        if archive is not None:
            self.stdout.write(f"Uploaded files written to {archive.resolve()}")
        if output is None:
            for old in backups.prune(keep):
                self.stdout.write(f"Deleted old backup {old.name}")
