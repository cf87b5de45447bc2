"""manage.py restore FILE: put a backup made by manage.py backup back into the database,
and its uploaded files back into MEDIA_ROOT."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ... import backups


class Command(BaseCommand):
    help = ("Replace the database's content with a backup from manage.py backup, and the "
            "uploaded files (MEDIA_ROOT) with the .media.zip beside it when there is one. Stop "
            "the site first (service.bat stop); the current content is lost.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The backup file (.sqlite3 or .dump).")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="Do not ask for confirmation.")
        parser.add_argument("--no-media", action="store_false", dest="media",
                            help="The database only: leave the uploaded files as they are.")

    def handle(self, *args, file, interactive=True, media=True, **options):
        name = backups.database()["NAME"]
        archive = backups.media_archive(file)
        with_media = media and archive.is_file()
        if interactive:
            also = f" and every uploaded file in {settings.MEDIA_ROOT} with {archive}" if with_media else ""
            answer = input(f"This replaces everything in the database {name} with {file}{also}. "
                           "Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled.")
        restored = backups.restore(file, media=media)
        self.stdout.write(f"Restored {file} into {name}")
        if restored is not None:
            self.stdout.write(f"Restored the uploaded files of {restored} into {settings.MEDIA_ROOT}")
        elif media:
            self.stdout.write(f"No {archive.name} beside the backup: the uploaded files are left as they are.")
