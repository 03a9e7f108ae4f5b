"""The MTA side of the milter protocol, for tests that need to look at bytes miltertest hides
(exact packets, malformed input). Blocking sockets; encodes with its own few lines rather than
with relay.milter.codec, so that a bug in the codec cannot hide itself."""

from __future__ import annotations

import socket
import struct

ALL_ACTIONS = 0x1FF
ALL_STEPS = 0x1FFFFF  # every SMFIP_* flag up to SMFIP_HDR_LEADSPC


def pack(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + cmd + data


def z(*strings: str) -> bytes:
    return b"".join(s.encode() + b"\0" for s in strings)


class MilterClient:
    def __init__(self, host: str, port: int, timeout: float = 20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.protocol = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, cmd: bytes, data: bytes = b"") -> None:
        self.sock.sendall(pack(cmd, data))

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("milter closed the connection")
            out += chunk
        return out

    def read(self) -> tuple[bytes, bytes]:
        (length,) = struct.unpack("!I", self._exact(4))
        body = self._exact(length)
        return body[:1], body[1:]

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def negotiate(self, actions: int = ALL_ACTIONS, steps: int = ALL_STEPS) -> tuple[int, int, int]:
        self.send(b"O", struct.pack("!III", 6, actions, steps))
        cmd, data = self.read()
        assert cmd == b"O", (cmd, data)
        version, actions, protocol = struct.unpack("!III", data[:12])
        self.protocol = protocol
        return version, actions, protocol

    def replies_to(self, flag: int) -> bool:
        return not self.protocol & flag

    def until_final(self) -> list[tuple[bytes, bytes]]:
        """Replies up to and including a final one (anything but a header change or progress)."""
        out = []
        while True:
            cmd, data = self.read()
            out.append((cmd, data))
            if cmd not in (b"h", b"i", b"m", b"p", b"+", b"-", b"b"):
                return out
