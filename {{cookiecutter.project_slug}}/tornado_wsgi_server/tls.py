"""The TLS context for --certfile: PEM files, or a PFX/PKCS#12 file (what Windows exports)
whose password comes from the environment (SERVER_CERT_PASSWORD, never the command line).
A file that cannot be loaded stops the server with one ``ERROR:`` line (exit status 1).
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from pathlib import Path

from .options import ServerOptions

PASSWORD_VARIABLE = "SERVER_CERT_PASSWORD"
PKCS12_SUFFIXES = (".pfx", ".p12")


def ssl_context(options: ServerOptions) -> ssl.SSLContext | None:
    if not options.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    password = os.environ.get(PASSWORD_VARIABLE, "")
    try:
        if is_pkcs12(options.certfile):
            if options.keyfile:
                raise ValueError("a PFX file holds its own key: leave out --keyfile (SERVER_KEYFILE)")
            load_pkcs12(context, options.certfile, password)
        else:
            # A callable, so an encrypted key without a password fails instead of prompting
            # on a console that a service does not have.
            context.load_cert_chain(options.certfile, options.keyfile or None, lambda: password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SystemExit(f"ERROR: cannot load TLS certificate {options.certfile!r}: {exc}") from None
    return context


def is_pkcs12(path: str) -> bool:
    """By the name (.pfx, .p12), or by the content: PEM is text starting with ``-----BEGIN``."""
    if Path(path).suffix.lower() in PKCS12_SUFFIXES:
        return True
    with open(path, "rb") as file:
        start = file.read(4096).lstrip()
    return not start.startswith(b"-----") and b"-----BEGIN" not in start


def load_pkcs12(context: ssl.SSLContext, path: str, password: str) -> None:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:
        raise ValueError("a PFX/PKCS#12 file needs the cryptography package "
                         "(pip install -r requirements.txt)") from None
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(
            Path(path).read_bytes(), password.encode() if password else None)
    except ValueError:
        hint = f"set {PASSWORD_VARIABLE}" if not password else f"check {PASSWORD_VARIABLE}"
        raise ValueError(f"wrong password, or not a PFX/PKCS#12 file ({hint})") from None
    if key is None or certificate is None:
        raise ValueError("the PFX file holds no private key or no certificate; "
                         "export it again with its private key")
    # ssl loads keys from files only. The key is written encrypted with a one-time password
    # that exists only in this process, to a file only this user can read, removed at once.
    one_time = secrets.token_urlsafe(32)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(one_time.encode()))
    for cert in (certificate, *chain):
        pem += cert.public_bytes(serialization.Encoding.PEM)
    descriptor, temporary = tempfile.mkstemp(suffix=".pem")  # mode 0600, O_EXCL
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        context.load_cert_chain(temporary, password=one_time)
    finally:
        os.unlink(temporary)
