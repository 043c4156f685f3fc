"""A minimal SMTP server (RFC 5321 subset) that records what smtplib sends it."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes, policy


class FakeSmtp:
    def __init__(self):
        self.messages = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, [RCPT TO]) per message
        self.reject_with: int | None = None  # e.g. 451 (transient) or 550 (permanent)
        # Set ``hold`` to keep the final 250 back after a message was taken (recorded): the
        # sender cannot know it was accepted. ``accepted`` is set when one is held.
        self.hold: threading.Event | None = None
        self.accepted = threading.Event()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 fake ESMTP")
                sender, recipients = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode().strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 fake")
                    elif verb == "MAIL":
                        sender = command
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command)
                        self.reply("250 OK")
                    elif verb == "DATA":
                        if fake.reject_with:
                            self.reply(f"{fake.reject_with} rejected")
                            continue
                        self.reply("354 go ahead")
                        data = b""
                        while True:
                            chunk = self.rfile.readline()
                            if chunk in (b".\r\n", b".\n", b""):
                                break
                            data += chunk
                        fake.messages.append(message_from_bytes(data, policy=policy.default))
                        fake.envelopes.append((sender, recipients))
                        recipients = []
                        hold = fake.hold
                        if hold is not None:
                            fake.accepted.set()
                            hold.wait(60)
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
