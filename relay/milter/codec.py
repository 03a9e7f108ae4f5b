"""The milter protocol, version 6 (Sendmail's libmilter, as Postfix speaks it), without I/O.

A packet is a 4-byte big-endian length, then that many bytes: a one-byte command and its data.
Strings in the data are NUL-terminated. Decoding is strict: a length of zero, a packet larger
than `max_packet`, an unknown command or a payload that does not have the command's exact shape
raises `ProtocolError`; the server then closes that one connection (never the server).

Reference: Sendmail's libmilter/mfdef.h and docs, and Postfix's src/milter/milter8.c (facts, not code).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PROTOCOL_VERSION = 6

# libmilter's ceiling for one packet (MILTER_MAX_DATA_SIZE with SMFIP_MDS_1M). Postfix sends body
# chunks of at most 65535 bytes, one header per packet (header_size_limit, 102400 by default) and
# macro lists of a few hundred bytes: anything larger is not a packet an MTA sends.
MAX_PACKET = 1024 * 1024

# The commands a macros packet may precede (its stage byte): connect, helo, mail, rcpt, data, header,
# end of headers, body, end of message, unknown. A connection keeps the last list of each stage, so the
# stages and the size of a list are bounded: a stage byte of any value, each with a 1 MiB list, held
# 260 MiB per connection. Postfix's lists are a few hundred bytes (milter_*_macros).
MACRO_STAGES = frozenset("CHMRTLNBEU")
MAX_MACROS = 64 * 1024

# Actions the milter may take (SMFIF_*).
SMFIF_ADDHDRS = 0x01
SMFIF_CHGBODY = 0x02
SMFIF_ADDRCPT = 0x04
SMFIF_DELRCPT = 0x08
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20
SMFIF_CHGFROM = 0x40
SMFIF_ADDRCPT_PAR = 0x80
SMFIF_SETSYMLIST = 0x100

# Protocol steps (SMFIP_*): NO* = the MTA does not send that stage; NR_* = the milter sends no reply.
SMFIP_NOCONNECT = 0x01
SMFIP_NOHELO = 0x02
SMFIP_NOMAIL = 0x04
SMFIP_NORCPT = 0x08
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_RCPT_REJ = 0x800
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_UNKN = 0x20000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000
SMFIP_HDR_LEADSPC = 0x100000

# Macro stages for SMFIF_SETSYMLIST (SMFIM_*).
SMFIM_CONNECT, SMFIM_HELO, SMFIM_ENVFROM, SMFIM_ENVRCPT, SMFIM_DATA, SMFIM_EOM, SMFIM_EOH = range(7)

# Replies (milter -> MTA).
SMFIR_ADDRCPT = b"+"
SMFIR_DELRCPT = b"-"
SMFIR_ACCEPT = b"a"
SMFIR_REPLBODY = b"b"
SMFIR_CONTINUE = b"c"
SMFIR_DISCARD = b"d"
SMFIR_ADDHEADER = b"h"
SMFIR_INSHEADER = b"i"
SMFIR_CHGHEADER = b"m"
SMFIR_PROGRESS = b"p"
SMFIR_REJECT = b"r"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"
SMFIR_OPTNEG = b"O"


class ProtocolError(Exception):
    """The peer sent something that is not a milter packet we accept; the connection must close."""


# -- commands (MTA -> milter) -------------------------------------------------------------------


@dataclass(frozen=True)
class OptNeg:
    version: int
    actions: int
    protocol: int


@dataclass(frozen=True)
class Macros:
    stage: str  # the command letter the macros belong to: "C", "H", "M", "R", "T", "L", "N", "E"
    values: dict[str, str]


@dataclass(frozen=True)
class Connect:
    hostname: str
    family: str  # "4", "6", "L" (a UNIX socket) or "U" (unknown)
    port: int
    address: str


@dataclass(frozen=True)
class Helo:
    name: str


@dataclass(frozen=True)
class Mail:
    args: tuple[str, ...]  # the path as the MTA has it ("<a@b>"), then ESMTP parameters


@dataclass(frozen=True)
class Rcpt:
    args: tuple[str, ...]


@dataclass(frozen=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True)
class EndOfHeaders:
    pass


@dataclass(frozen=True)
class Body:
    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    data: bytes = b""  # libmilter allows a last body piece here; Postfix sends none


@dataclass(frozen=True)
class Abort:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class QuitNewConnection:
    pass


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class Unknown:
    command: str


Command = (OptNeg | Macros | Connect | Helo | Mail | Rcpt | Header | EndOfHeaders | Body | EndOfMessage
           | Abort | Quit | QuitNewConnection | Data | Unknown)


def _strings(data: bytes, what: str) -> list[str]:
    """NUL-terminated strings filling `data` exactly (the last byte must be a NUL)."""
    if not data or data[-1:] != b"\0":
        raise ProtocolError(f"{what}: strings not NUL-terminated")
    return [part.decode("utf-8", "surrogateescape") for part in data[:-1].split(b"\0")]


def _exactly(data: bytes, n: int, what: str) -> list[str]:
    parts = _strings(data, what)
    if len(parts) != n:
        raise ProtocolError(f"{what}: expected {n} string(s), got {len(parts)}")
    return parts


def _optneg(data: bytes) -> OptNeg:
    if len(data) < 12:
        raise ProtocolError(f"option negotiation: {len(data)} bytes, expected at least 12")
    version, actions, protocol = struct.unpack("!III", data[:12])
    return OptNeg(version, actions, protocol)


def _macros(data: bytes) -> Macros:
    if not data:
        raise ProtocolError("macros: no stage")
    stage = chr(data[0])
    if stage not in MACRO_STAGES:
        raise ProtocolError(f"macros for stage {stage!r}: not a command macros precede")
    if len(data) > MAX_MACROS:
        raise ProtocolError(f"{len(data)} bytes of macros for stage {stage!r} (at most {MAX_MACROS})")
    rest = data[1:]
    values: dict[str, str] = {}
    if rest:
        parts = _strings(rest, "macros")
        if len(parts) % 2:
            raise ProtocolError("macros: a name without a value")
        for name, value in zip(parts[::2], parts[1::2]):
            values[name] = value
    return Macros(stage, values)


def _connect(data: bytes) -> Connect:
    nul = data.find(b"\0")
    if nul < 0:
        raise ProtocolError("connect: host name not NUL-terminated")
    hostname = data[:nul].decode("utf-8", "surrogateescape")
    rest = data[nul + 1:]
    if not rest:
        raise ProtocolError("connect: no address family")
    family = chr(rest[0])
    if family == "U":  # unknown: nothing follows (libmilter's SMFIA_UNKNOWN)
        if len(rest) != 1:
            raise ProtocolError("connect: data after an unknown address family")
        return Connect(hostname, family, 0, "")
    if family not in "46L":
        raise ProtocolError(f"connect: unknown address family {family!r}")
    if len(rest) < 3:
        raise ProtocolError("connect: no port")
    (port,) = struct.unpack("!H", rest[1:3])
    (address,) = _exactly(rest[3:], 1, "connect address")
    return Connect(hostname, family, port, address)


def _header(data: bytes) -> Header:
    name, value = _exactly(data, 2, "header")
    if not name:
        raise ProtocolError("header: empty name")
    return Header(name, value)


def parse(command: bytes, data: bytes) -> Command:
    """One packet's command and data -> a Command; ProtocolError when it is malformed."""
    c = command
    if c == b"O":
        return _optneg(data)
    if c == b"D":
        return _macros(data)
    if c == b"C":
        return _connect(data)
    if c == b"H":
        return Helo(_exactly(data, 1, "helo")[0])
    if c == b"M":
        return Mail(tuple(_strings(data, "mail")))
    if c == b"R":
        return Rcpt(tuple(_strings(data, "rcpt")))
    if c == b"L":
        return _header(data)
    if c == b"B":
        return Body(data)
    if c == b"E":
        return EndOfMessage(data)
    if c == b"U":
        return Unknown(_exactly(data, 1, "unknown command")[0])
    simple = {b"N": EndOfHeaders, b"A": Abort, b"Q": Quit, b"K": QuitNewConnection, b"T": Data}
    if c in simple:
        if data:
            raise ProtocolError(f"command {c!r} carries {len(data)} unexpected bytes")
        return simple[c]()
    raise ProtocolError(f"unknown command {c!r}")


@dataclass
class Decoder:
    """Cuts a byte stream into (command, data) packets; strict about lengths."""

    max_packet: int = MAX_PACKET
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += chunk
        out: list[tuple[bytes, bytes]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = struct.unpack_from("!I", buf, pos)
            if length == 0:
                raise ProtocolError("a packet of length 0 (it has no command)")
            if length > self.max_packet:
                raise ProtocolError(f"a packet of {length} bytes (at most {self.max_packet} accepted)")
            if len(buf) - pos - 4 < length:
                break
            start = pos + 4
            out.append((bytes(buf[start:start + 1]), bytes(buf[start + 1:start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet still waiting for the rest."""
        return len(self._buf)


# -- replies (milter -> MTA) --------------------------------------------------------------------


def packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + command + data


def _cstr(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise ValueError("a NUL inside a milter string")
    return raw + b"\0"


def optneg_reply(version: int, actions: int, protocol: int, macros: dict[int, str] | None = None) -> bytes:
    data = struct.pack("!III", version, actions, protocol)
    for stage, names in (macros or {}).items():
        data += struct.pack("!I", stage) + _cstr(names)
    return packet(SMFIR_OPTNEG, data)


def continue_() -> bytes:
    return packet(SMFIR_CONTINUE)


def accept() -> bytes:
    return packet(SMFIR_ACCEPT)


def tempfail() -> bytes:
    return packet(SMFIR_TEMPFAIL)


def reject() -> bytes:
    return packet(SMFIR_REJECT)


def replycode(wire_lines: list[str]) -> bytes:
    """SMFIR_REPLYCODE: the SMTP reply the MTA gives its client, every line with its code prefix
    ("550-5.1.1 a", "550 5.1.1 b"), lines joined by CRLF as libmilter's smfi_setmlreply does."""
    return packet(SMFIR_REPLYCODE, _cstr("\r\n".join(wire_lines)))


def insheader(index: int, name: str, value: str) -> bytes:
    return packet(SMFIR_INSHEADER, struct.pack("!I", index) + _cstr(name) + _cstr(value))


def chgheader(index: int, name: str, value: str) -> bytes:
    """Change occurrence `index` (1-based, among fields of that name) of `name`; "" deletes it."""
    return packet(SMFIR_CHGHEADER, struct.pack("!I", index) + _cstr(name) + _cstr(value))


def addheader(name: str, value: str) -> bytes:
    return packet(SMFIR_ADDHEADER, _cstr(name) + _cstr(value))


def delrcpt(recipient: str) -> bytes:
    """SMFIR_DELRCPT: remove an envelope recipient, named as the MTA gave it at RCPT ("<a@b>")."""
    return packet(SMFIR_DELRCPT, _cstr(recipient))
