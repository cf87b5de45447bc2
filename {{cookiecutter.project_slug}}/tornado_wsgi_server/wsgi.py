"""The pieces of PEP 3333 the container and its requests share.

``FileWrapper`` is ``wsgi.file_wrapper``; ``BadResponse`` is raised when the application
breaks the WSGI contract; the constants say what HTTP/1.1 lets a response carry.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters, and anything HTTP/1.1 cannot carry (headers are Latin-1).
BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})
NO_BODY_STATUS = frozenset({204, 304})
FILE_BLOCK = 256 * 1024


class FileWrapper:
    """``wsgi.file_wrapper``: reads a file in large blocks on the worker thread."""

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

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class BadResponse(Exception):
    """The application broke the WSGI contract (status, headers or body)."""



class BadRequest(Exception):
    """The request cannot be given to the application as it is: the client gets 400."""
