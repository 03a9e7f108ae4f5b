"""A raw SMTP client over a socket, for tests that need exact bytes on the wire."""

from __future__ import annotations

import re
import socket


class RawSMTP:
    def __init__(self, host: str, port: int, timeout: float = 15.0, source: str | None = None):
        # source: connect from this local address (e.g. 127.0.0.2, to be another client on loopback)
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self) -> tuple[int, str]:
        """One whole reply (all lines of a multi-line one): (code, text with CRLF between lines)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed by server after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if re.match(r"^\d{3}( |$)", text):
                return int(text[:3]), "\r\n".join(lines)

    def cmd(self, line: str | bytes) -> tuple[int, str]:
        self.send((line if isinstance(line, bytes) else line.encode()) + b"\r\n")
        return self.reply()

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closed the connection (within `timeout`). A reset counts: a server that
        closes while bytes the client sent are still unread sends RST instead of FIN (RFC 1122 4.2.2.13)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_message(client: RawSMTP, sender: str, rcpts: list[str], body: bytes) -> list[tuple[int, str]]:
    """EHLO (if needed by caller) is not sent here: MAIL, RCPT..., DATA, body + final dot."""
    replies = [client.cmd(f"MAIL FROM:<{sender}>")]
    for r in rcpts:
        replies.append(client.cmd(f"RCPT TO:<{r}>"))
    code, text = client.cmd("DATA")
    replies.append((code, text))
    if code == 354:
        client.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        replies.append(client.reply())
    return replies
