"""The pieces of PEP 3333 the container and its requests share.

``FileWrapper`` is ``wsgi.file_wrapper``; ``BadResponse`` is raised when the application
breaks the WSGI contract; the constants say what HTTP/1.1 lets a response carry.
"""

from __future__ import annotations

import io
import os
import re
import stat

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters, and anything HTTP/1.1 cannot carry (headers are Latin-1).
BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})
NO_BODY_STATUS = frozenset({204, 304})
FILE_BLOCK = 256 * 1024


class FileWrapper:
    """``wsgi.file_wrapper``: reads a file in large blocks on the worker thread.

    A regular file on disk can instead be handed to the event loop: ``bytes_left()`` says
    whether it is one, and ``duplicate()`` gives the loop a descriptor of its own.
    """

    def __init__(self, filelike, block_size: int = FILE_BLOCK) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, FILE_BLOCK)

    def __iter__(self):
        read, size = self.filelike.read, self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def _disk_file(self):
        """The binary file object under ``filelike`` (a Django ``File`` wraps one), or None."""
        filelike = self.filelike
        for _ in range(3):
            if type(filelike) in (io.BufferedReader, io.FileIO):
                return filelike
            inner = getattr(filelike, "file", None)
            # Only unwrap Django's File (and FieldFile), whose reads go to .file unchanged.
            if inner is None or not any(
                cls.__module__.startswith("django.core.files") for cls in type(filelike).__mro__
            ):
                return None
            filelike = inner
        return None

    def bytes_left(self) -> int | None:
        """Bytes from the current position to the end, if this is a regular file; else None."""
        disk_file = self._disk_file()
        if disk_file is None:
            return None
        try:
            info = os.fstat(disk_file.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            return max(info.st_size - disk_file.tell(), 0)
        except (OSError, ValueError):
            return None

    def duplicate(self) -> tuple[int, int]:
        """A new descriptor of the file (the caller closes it) and the position to read from."""
        disk_file = self._disk_file()
        return os.dup(disk_file.fileno()), disk_file.tell()

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class BadResponse(Exception):
    """The application broke the WSGI contract (status, headers or body)."""



class BadRequest(Exception):
    """The request cannot be given to the application as it is: the client gets 400."""
