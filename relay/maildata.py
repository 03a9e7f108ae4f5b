"""The message bytes: the checks and rewrites RFC 5321 asks of a relay, at C speed.

Every byte of a message passes through here on its way in and out, so each function touches it as
few times as it can and only with `bytes` methods that run in C: `find`/`rfind` of one byte (memchr,
a few GB/s), `count`, `replace`. No regular expression runs over a message: Python's `re` looks at
each byte in its own interpreter loop, 5-10 times slower (issue #15). tests/test_maildata.py holds
each function to the plain regex form of its rule, with hypothesis.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

# A whole-message rewrite (line endings, dot-stuffing and its undoing) holds the event loop for as long
# as one `bytes` call runs: ~1.2 s for 30 MB of bare LF, while every other session waits (issue #15).
# Done a piece at a time instead, the loop turns between pieces. The worst piece (every octet a bare
# line ending, each made a CRLF) costs ~2 ms at this size; an ordinary one well under 1 ms.
PIECE = 128 * 1024

# RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF; one octet of slack, as aiosmtpd.
MAX_LINE = 1000  # octets before the LF (text and CR)


def long_line(chunk, open_line: int) -> tuple[bool, int]:
    """Whether `chunk` ends or holds a line over MAX_LINE octets, given `open_line` octets of a
    line begun in earlier chunks; and how long the line left open at its end is.

    Rather than finding every LF, it jumps: from the start of a line, the last LF within the next
    MAX_LINE + 1 octets closes every line that begins in between; no LF there is a long line. An
    ordinary message (lines of 80) then costs one memrchr per kilobyte."""
    first = chunk.find(b"\n")
    if first < 0:
        open_line += len(chunk)
        return open_line > MAX_LINE, open_line
    if open_line + first > MAX_LINE:
        return True, 0
    pos = first + 1
    size = len(chunk)
    while size - pos > MAX_LINE:
        lf = chunk.rfind(b"\n", pos, pos + MAX_LINE + 1)
        if lf < 0:
            return True, 0
        pos = lf + 1
    return False, size - chunk.rfind(b"\n") - 1


def dot_stuffed(chunk):
    """A line that starts with "." gets one more (RFC 5321 4.5.2), the first line of `chunk` included;
    `chunk` itself (no copy) when no line does."""
    if isinstance(chunk, memoryview):  # a view has no find(): a copy, only when a step removed fields
        chunk = chunk.tobytes()
    starts = chunk[:1] == b"."
    if chunk.find(b"\n.") < 0:
        return b"." + chunk if starts else chunk
    stuffed = chunk.replace(b"\n.", b"\n..")
    return b"." + stuffed if starts else stuffed


def crlf_normalise(data):
    """Every line ending becomes CRLF: a bare CR or a bare LF is one line ending (RFC 5321 2.3.8 allows
    no other). What goes upstream is then exactly what DKIM signed, and no next hop can read a bare LF
    before or after a dot as the end of the data (SMTP smuggling, CVE-2023-51764). `data` itself when
    it is clean already, told without a copy (clean_line_ends)."""
    clean, cr_open = clean_line_ends(data)
    if clean and not cr_open:
        return data
    return _normalised_piece(data)


def crlf_pieces(data, size: int = PIECE) -> Iterator[bytes]:
    """crlf_normalise(data) (not told whether it is clean already) in pieces made from about `size`
    octets of `data` each: their concatenation is its result. No piece ends between the CR and the
    LF of a CRLF, the only line ending two octets long, so each piece is normalised by itself."""
    n = len(data)
    pos = 0
    while pos < n:
        end = min(pos + size, n)
        if end < n and data[end - 1] == 13 and data[end] == 10:
            end += 1
        piece = data[pos:end]
        clean, cr_open = clean_line_ends(piece)
        # A clean piece is its own normal form: one look (C loop) instead of three replaces.
        yield piece if clean and not cr_open else _normalised_piece(piece)
        pos = end


def _normalised_piece(piece):
    # One replace where the piece has one kind of line ending only (a bare-LF message: a third of the
    # work of three). Where it has both, CRLF -> LF first, so that the CR of a CRLF is not taken for a
    # bare one; then each CR left is bare, as is every LF: each becomes one CRLF.
    if piece.find(b"\r") < 0:
        return piece.replace(b"\n", b"\r\n")
    if piece.find(b"\n") < 0:
        return piece.replace(b"\r", b"\r\n")
    return piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


async def joined_yielding(pieces: Iterator[bytes]) -> bytearray:
    """The pieces joined, the event loop let go after each one."""
    out = bytearray()
    try:
        for piece in pieces:
            out += piece
            await asyncio.sleep(0)
    except BaseException:
        out.clear()  # cancelled (a shutdown): a traceback keeping this frame keeps no copy of the message
        raise
    return out


async def crlf_normalised(data, size: int = PIECE, *, dirty: bool = False):
    """crlf_normalise(data) with the event loop let go between pieces of `size` octets: `data` itself
    when every line ending in it is a CRLF, else a new bytearray. Unless the caller knows it is not
    clean (`dirty`: the DATA reader saw a bare CR or LF), it is looked at first, a piece at a time:
    a clean message is then given back without being copied (milter mode)."""
    if len(data) <= size:
        return crlf_normalise(data)
    if not dirty:
        ends = LineEnds()
        with memoryview(data) as view:
            for start in range(0, len(view), size):
                if not ends.feed(view[start:start + size]):
                    break
                await asyncio.sleep(0)
        if ends.crlf_only:
            return data
    out = await joined_yielding(crlf_pieces(data, size))
    # Each bare CR or LF grows by one octet, a CRLF stays as it is: the same length means no change.
    return data if len(out) == len(data) else out


def unstuffed_pieces(buf, size: int = PIECE) -> Iterator[bytes]:
    """`buf` with each "." that follows a CRLF removed (RFC 5321 4.5.2, undone), in pieces made from
    about `size` octets each. A piece ends just before a CRLF (or at the end), so no CRLF "." is cut."""
    n = len(buf)
    pos = 0
    while pos < n:
        end = buf.find(b"\r\n", pos + size) if pos + size < n else -1
        if end < 0:
            end = n
        yield buf[pos:end].replace(_LINE_DOT, b"\r\n")
        pos = end


def line_pieces(chunk, size: int = PIECE) -> Iterator:
    """`chunk` (bytes, bytearray or memoryview) in pieces of about `size` octets, more where a line is
    longer, each but the last ending after an LF: each starts a line, so dot_stuffed() can take them
    one at a time and stuff exactly what it would stuff in the whole."""
    n = len(chunk)
    pos = 0
    while n - pos > size:
        window = size
        while True:
            if isinstance(chunk, memoryview):  # no rfind: its window is copied to look in
                lf = bytes(chunk[pos:pos + window]).rfind(b"\n")
            else:
                lf = chunk.rfind(b"\n", pos, pos + window)
                lf = lf - pos if lf >= 0 else -1
            if lf >= 0 or pos + window >= n:
                break
            window *= 2  # a line longer than the window: look further
        if lf < 0:
            break  # no LF in the rest: one last piece
        yield chunk[pos:pos + lf + 1]
        pos += lf + 1
    if pos < n:
        yield chunk[pos:]


def clean_line_ends(chunk, cr_open: bool = False) -> tuple[bool, bool]:
    """Whether every line ending in `chunk` is a CRLF (no bare CR, no bare LF), given whether the
    bytes before it ended with a CR (`cr_open`, whose LF may start `chunk`); and whether `chunk`
    itself ends with such a CR. Fed a message piece by piece as it arrives, while each piece is
    still in the CPU's cache, it tells what crlf_normalise would tell of the whole, without holding
    the event loop for the whole message at once. (DataReceiver keeps one LineEnds instead.)"""
    ends = LineEnds(cr_open)
    if len(chunk) <= _LOOK:
        ends.feed(chunk)
    else:  # a whole message: looked at a view of 256 KiB at a time, not copied whole into one str
        view = memoryview(chunk)
        for start in range(0, len(view), _LOOK):
            if not ends.feed(view[start:start + _LOOK]):
                break
    return ends.clean, ends.cr_open


_LOOK = 256 * 1024


class LineEnds:
    """Which line endings a text fed piece by piece has had: `clean` while each was a CRLF (RFC 5321
    2.3.8 allows no other), `cr_open` while the text so far ends with a CR whose LF may come next.

    The look is one C loop per piece over a latin-1 view of it: the io module's newline decoder (the
    one that tells a text file's `newlines`), which records whether it has seen CRLF, a bare CR or a
    bare LF, a CR at the end of a piece held over to the next. It reads each octet once and stops on
    the few octets at or below CR; the translate and two-octet count it replaces cost three times
    as much (issue #15: ~1.2 -> ~0.4 ms per MiB, the largest share of the DATA reader's CPU)."""

    __slots__ = ("_decoder", "clean")

    def __init__(self, cr_open: bool = False):
        self._decoder = io.IncrementalNewlineDecoder(None, translate=False)
        if cr_open:
            self._decoder.setstate((b"", 1))  # the pending CR: the decoder joins it to a LF that follows
        self.clean = True

    def feed(self, chunk) -> bool:
        """Look at the next piece (once not clean, no more is looked at); whether still clean."""
        if self.clean and len(chunk):
            decoder = self._decoder
            # latin-1 maps each octet to the character of the same number: a copy, no check.
            decoder.decode(str(chunk, "latin-1"))
            seen = decoder.newlines
            self.clean = seen is None or seen == "\r\n"
        return self.clean

    @property
    def cr_open(self) -> bool:
        return bool(self._decoder.getstate()[1] & 1)

    @property
    def crlf_only(self) -> bool:
        """The whole text fed has CRLF line endings only (none left open)."""
        return self.clean and not self.cr_open


# The header section a message may have. Every step reads the header (the fields split and unfolded
# once, DKIM, Authentication-Results, Received), in Python, on the event loop: a 30 MB folded field
# held the loop 135 ms, 100,000 small fields 77 ms (Message.headers() alone: 130 and 75 ms). RFC 5322
# sets no limit; Exim refuses a header over 1 MB (header_maxsize), Postfix cuts a field at 100 KiB
# (header_size_limit) and counts hops to 50. Real mail carries a few dozen fields in a few kilobytes.
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 1000


def header_refusal(data, crlf_only: bool = True) -> str | None:
    """The 552 reply refusing a message whose header section (up to the first empty line, or the
    whole message without one) is over MAX_HEADER_BYTES or MAX_HEADER_FIELDS; None when it is not.
    Looks at no more than MAX_HEADER_BYTES of `data`, with C byte searches only: microseconds.
    `crlf_only`: every line ending is CRLF already (else the start is normalised to tell)."""
    head = data[:MAX_HEADER_BYTES + 4]
    if not crlf_only:
        head = crlf_normalise(bytes(head))[:MAX_HEADER_BYTES + 4]
    if head.startswith(b"\r\n"):
        return None  # no header at all
    end = head.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEADER_BYTES:
            return _too_big_header()
        end = len(head)
    block = head[:end + 2]
    # A field is a line that does not start with white space (RFC 5322 2.2.3: those continue one).
    fields = block.count(b"\r\n") - block.count(b"\r\n ") - block.count(b"\r\n\t")
    if fields > MAX_HEADER_FIELDS:
        return _too_big_header()
    return None


def _too_big_header() -> str:
    return (f"552 5.3.4 Message header too big for this relay (at most {MAX_HEADER_BYTES} bytes "
            f"and {MAX_HEADER_FIELDS} fields)")


# RFC 5321 4.1.1.4: the mail data ends with CRLF "." CRLF, and with nothing else: a bare LF or CR
# next to the dot is data (the SMTP smuggling family, CVE-2023-51764).
END_OF_DATA = b"\r\n.\r\n"
_LINE_DOT = b"\r\n."


class DataReceiver:
    """The mail data of one DATA command, fed as it arrives, checked on the way in.

    Each chunk is looked at once, while it is fresh in the cache: for the end of the data and for
    lines that start with "." (one memchr for "." first: most chunks have no dot at a line start,
    many none at all), for long lines (RFC 5321 4.5.3.1.6) and NUL. Bytes past the size limit are
    dropped as they come (the message is refused whole), so a client cannot make the relay hold more.
    The first CRLF of the terminator is the one that ended the DATA command line, hence the CRLF
    the buffer starts with."""

    def __init__(self, limit: int = 0):
        self.limit = limit
        self._buf = bytearray(b"\r\n")
        self._dropped = 0  # bytes discarded after the size limit was passed
        self._line = 0  # octets of the line still open at the end of what was read
        self._too_long = False
        self._nul = False
        self._dot_lines = False  # a line of the data started with "." (RFC 5321 4.5.2 transparency)
        self._end = -1  # where END_OF_DATA starts in the buffer, once it came
        self._line_ends = LineEnds()  # no bare CR or LF in the data so far?

    @property
    def complete(self) -> bool:
        return self._end >= 0

    def feed(self, chunk: bytes) -> bool:
        """Take the next bytes of the data; True once the final dot has come."""
        buf = self._buf
        start = len(buf)
        buf += chunk
        # The terminator or a "\r\n." may straddle two reads: look again at the last 4 bytes before.
        since = max(start - 4, 0)
        if buf.find(b".", since) >= 0:
            self._find_end(since)
        mine = chunk if self._end < 0 else chunk[:max(self._end + 2 - start, 0)]  # not past the data
        if not self._too_long:
            self._too_long, self._line = long_line(mine, self._line)
        if not self._nul and mine.find(b"\0") >= 0:
            self._nul = True
        self._line_ends.feed(mine)
        if self._end < 0 and self.limit and len(buf) - 4 + self._dropped > self.limit:
            # Over the limit whatever follows (at most ".\r" of the terminator is in what was read):
            # keep only the tail, where the terminator may begin.
            self._dropped += len(buf) - 6
            del buf[2:-4]
        return self._end >= 0

    def _find_end(self, since: int) -> None:
        buf = self._buf
        if not self._dot_lines:
            at = buf.find(_LINE_DOT, since)
            if at < 0:
                return
            if buf.startswith(END_OF_DATA, at):
                self._end = at
                return
            if len(buf) - at < len(END_OF_DATA) and END_OF_DATA.startswith(buf[at:]):
                return  # the terminator, perhaps: the next read says
            self._dot_lines = True
            since = at
        self._end = buf.find(END_OF_DATA, since)

    @property
    def crlf_only(self) -> bool:
        """Every line ending of the data (complete) is a CRLF: crlf_normalise would return it as it is.
        Removing the stuffed dots cannot change that: each follows a CRLF."""
        return self._line_ends.crlf_only

    def leftover(self) -> bytes:
        """What came after the final dot (pipelined commands, RFC 2920)."""
        return bytes(self._buf[self._end + 5:]) if self._end >= 0 else b""

    def refusal(self) -> str | None:
        """The reply refusing the whole message, or None. Only the data counts, not what follows it."""
        if self._dropped or (self.limit and self._end > self.limit):  # the data is buf[2:end + 2]
            return f"552 5.3.4 Message too big for this relay (at most {self.limit} bytes)"
        if self._too_long:
            return "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: at most 1000 octets)"
        if self._nul:
            # NUL is not message text (RFC 5322 4.1 obsoletes it, RFC 2045 2.7-2.8 forbid it in 7bit and
            # 8bit data; only BDAT with BINARYMIME, RFC 3030, carries it). Next hops that drop NULs can
            # then see "\n\x00.\n" as the end of the data and what follows as new commands (SMTP
            # smuggling: SEC Consult 2023, CVE-2023-51764/51765/51766). Refused whole, never cleaned.
            return "550 5.6.0 Message contains NUL characters, which mail may not carry; not relayed"
        return None

    def message(self) -> tuple[bytearray, bool]:
        """The data, dot-unstuffed (RFC 5321 4.5.2), line endings as sent; and whether a line of it
        may start with "." (False: certainly none, so the way out needs no look for one). The
        receiver gives its buffer away: call once, after `leftover()`."""
        buf, self._buf = self._buf, bytearray()
        del buf[self._end + 2:]
        if self._dot_lines:
            buf = buf.replace(_LINE_DOT, b"\r\n")
        del buf[:2]
        return buf, self._dot_lines

    async def message_in_pieces(self, size: int = PIECE) -> tuple[bytearray, bool]:
        """message(), with the event loop let go between pieces of `size` octets while the stuffed dots
        are taken out (a 30 MB message of dot lines held it 180 ms in one replace)."""
        if not self._dot_lines or self._end + 2 <= size:
            return self.message()
        buf, self._buf = self._buf, bytearray()
        del buf[self._end + 2:]
        try:
            out = await joined_yielding(unstuffed_pieces(buf, size))
        finally:
            buf.clear()
        del out[:2]
        return out, True

    def clear(self) -> None:
        """Give the memory back now (a refused message, a client gone mid-message)."""
        self._buf.clear()
