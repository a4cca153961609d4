"""A local SMTP server that keeps every message it is sent: the support mailbox of the tests.
It speaks enough SMTP (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP,
QUIT) for Python's smtplib, which the service uses, on a free port of 127.0.0.1."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage


class _Session(socketserver.StreamRequestHandler):
    server: _Server

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        recipients: list[str] = []
        while raw := self.rfile.readline():
            verb = raw.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 sink")
            elif verb == "MAIL":
                recipients = []
                self._say("250 ok")
            elif verb == "RCPT":
                recipients.append(raw.decode().split(":", 1)[1].strip().strip("<>"))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with .")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                message = message_from_bytes(b"".join(lines), policy=policy.default)
                assert isinstance(message, EmailMessage)
                with self.server.cond:
                    self.server.messages.append((recipients, message))
                    self.server.cond.notify_all()
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Session)
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.cond = threading.Condition()


class SmtpSink:
    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        with self._server.cond:
            return list(self._server.messages)

    def wait(self, count: int, timeout: float) -> list[tuple[list[str], EmailMessage]]:
        with self._server.cond:
            self._server.cond.wait_for(lambda: len(self._server.messages) >= count, timeout)
            return list(self._server.messages)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
