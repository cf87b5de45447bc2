"""Errors reach a person: a 500 is mailed to DJANGO_ADMINS through EMAIL_URL, and a flood
of requests with wrong Host headers leaves a few WARNING lines, no ERROR or traceback."""

from __future__ import annotations

import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


class SMTPSink:
    """Just enough of an SMTP server (RFC 5321) to take messages; ``messages`` holds them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self.received = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"220 sink ESMTP\r\n")
            for line in reader:
                command = line.strip().upper()
                if command.startswith((b"EHLO", b"HELO")):
                    conn.sendall(b"250 sink\r\n")
                elif command == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    body = []
                    for data_line in reader:
                        if data_line in (b".\r\n", b".\n"):
                            break
                        body.append(data_line.decode("utf-8", "replace"))
                    self.messages.append("".join(body))
                    self.received.set()
                    conn.sendall(b"250 queued\r\n")
                elif command == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL FROM, RCPT TO, RSET, NOOP
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def smtp_sink():
    sink = SMTPSink()
    yield sink
    sink.close()


def test_a_server_error_is_mailed_to_the_admins(start_server, smtp_sink):
    server = start_server(env={
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}",
        "DJANGO_ADMINS": "Ops Team <ops@example.com>, Jane <jane@example.com>",
    })
    response = httpx.get(f"{server.url}/__test__/view-error", timeout=30)
    assert response.status_code == 500
    assert smtp_sink.received.wait(30), server.output()
    message = smtp_sink.messages[0]
    assert "ops@example.com" in message and "jane@example.com" in message
    assert "From: server@example.com" in message
    assert "view failed on purpose" in message
    # The log still has it, for whoever reads the log instead.
    assert "view failed on purpose" in server.wait_for_output("Traceback")


def test_without_email_url_nothing_is_mailed(start_server, smtp_sink):
    server = start_server(env={"DJANGO_ADMINS": "Ops <ops@example.com>"})
    assert httpx.get(f"{server.url}/__test__/view-error", timeout=30).status_code == 500
    server.wait_for_output("view failed on purpose")
    assert not smtp_sink.received.wait(2)
    assert "Content-Type: text/plain" not in server.output()  # not printed as a mail either


def test_without_email_url_mail_is_kept_in_the_log_folder(start_server, smtp_sink, tmp_path):
    """A password-reset mail with no mail server set is not lost on a console the service
    throws away: it is a file in logs/mail/, and the log file says so."""
    mail_folder, log_file = tmp_path / "logs" / "mail", tmp_path / "logs" / "server.log"
    server = start_server("--log-file", str(log_file),
                          env={"DJANGO_EMAIL_FILE_PATH": str(mail_folder)})
    response = httpx.post(f"{server.url}/__test__/send-mail", timeout=30,
                          data={"subject": "Password reset on My Site", "to": "user@example.com"})
    assert response.status_code == 200 and response.json() == {"sent": 1}
    [kept] = list(mail_folder.iterdir())
    text = kept.read_text(encoding="utf-8")
    assert "Subject: Password reset on My Site" in text and "To: user@example.com" in text
    assert "From: site@example.com" in text
    logged = log_file.read_text(encoding="utf-8")
    assert "WARNING" in logged and "E-mail to user@example.com ('Password reset on My Site') was not sent" in logged
    assert str(kept) in logged
    assert not smtp_sink.received.wait(0.5)


def test_a_flood_of_wrong_host_headers_logs_a_few_warnings(start_server):
    server = start_server("--no-access-log")

    def wrong_host(_):
        host = f"scanner-{uuid.uuid4().hex[:8]}.example"
        return httpx.get(f"{server.url}/", headers={"Host": host}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(wrong_host, range(200)))
    assert statuses == [400] * 200
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    output = server.output()
    assert "ERROR" not in output and "Traceback" not in output, output
    warnings = [line for line in output.splitlines() if "DisallowedHost" in line]
    assert 1 <= len(warnings) <= 3, output
    assert all(" WARNING " in line for line in warnings)
    assert "scanner-" in warnings[0]
