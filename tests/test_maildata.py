"""relay/maildata: each check and rewrite of the message bytes, held by hypothesis to the plain regex
form of its rule (the form the relay used before issue #15, kept here as the specification)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings, strategies as st

import asyncio

from relay.maildata import (MAX_LINE, DataReceiver, LineEnds, clean_line_ends, crlf_normalise, crlf_normalised,
                            crlf_pieces, dot_stuffed, line_pieces, long_line, unstuffed_pieces)

# --- the rules, written the obvious way -----------------------------------------------------------

# RFC 5321 4.5.3.1.6: more than MAX_LINE octets before a LF is a long line.
_LONG_LINE = re.compile(rb"(?m)^[^\n]{%d}" % (MAX_LINE + 1))
# RFC 5321 4.5.2: a line starting with "." gets one more.
_LEADING_DOT = re.compile(rb"(?m)^\.")
# RFC 5321 2.3.8: CRLF, or a bare CR, or a bare LF, is one line ending.
_LINE_END = re.compile(rb"\r\n|\r|\n")


def spec_long_line(chunk: bytes, open_line: int) -> tuple[bool, int]:
    first = chunk.find(b"\n")
    if first < 0:
        open_line += len(chunk)
        return open_line > MAX_LINE, open_line
    if open_line + first > MAX_LINE or _LONG_LINE.search(chunk, first + 1):
        return True, 0
    return False, len(chunk) - chunk.rfind(b"\n") - 1


def spec_dot_stuffed(chunk) -> bytes:
    return _LEADING_DOT.sub(b"..", bytes(chunk))


def spec_crlf_normalise(data) -> bytes:
    return _LINE_END.sub(b"\r\n", bytes(data))


# --- inputs: line lengths around the limit, and the bytes the rules are about ---------------------

_run = st.one_of(st.integers(0, 12), st.integers(MAX_LINE - 3, MAX_LINE + 3), st.integers(0, 2 * MAX_LINE + 5))
_text = st.builds(lambda n, c: c * n, _run, st.sampled_from([b"x", b" ", b".", b"\t", "é".encode()[:1]]))
_piece = st.one_of(_text, st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"\r\n.", b"\n.\n", b"\0", b"\r\n\r\n"]))
_bytes = st.lists(_piece, max_size=12).map(b"".join)
_small = st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b" ", b"\0"]), max_size=40).map(b"".join)
# Every octet the newline decoder's loop stops on (those at or below CR), and some above it.
_octets = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\0", b"\t", b"\x0b", b"\x0c", b"\x0e", b"\x7f",
                                     b"\x80", b"\xff", b"\xc3", b"a", b" ", b"\x85", b"\r\r\n", b"\n\r"]),
                   max_size=60).map(b"".join)


# --- long lines -----------------------------------------------------------------------------------

@settings(max_examples=600, deadline=None)
@given(chunk=_bytes, open_line=st.one_of(st.integers(0, 5), st.integers(MAX_LINE - 5, MAX_LINE + 2),
                                         st.integers(0, 3 * MAX_LINE)))
def test_long_line_is_the_rule(chunk, open_line):
    found, left = long_line(chunk, open_line)
    expected_found, expected_left = spec_long_line(chunk, open_line)
    assert found == expected_found
    if not found:
        assert left == expected_left


@settings(max_examples=300, deadline=None)
@given(data=_bytes, cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_long_line_over_chunks_finds_what_the_whole_has(data, cuts):
    # However the reads cut the message, a long line is found (in the read that completes it).
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    found, line = False, 0
    for a, b in zip(bounds, bounds[1:]):
        hit, line = long_line(data[a:b], line)
        found = found or hit
        if found:
            break
    assert found == any(len(l) > MAX_LINE for l in data.split(b"\n"))


def test_long_line_at_the_limit():
    ok = b"x" * (MAX_LINE - 1) + b"\r\n"  # 1000 octets before the LF: allowed (RFC 5321: 998 + CRLF, slack)
    assert long_line(ok * 3, 0) == (False, 0)
    assert long_line(b"x" * (MAX_LINE + 1) + b"\n", 0)[0]
    assert long_line(ok + b"y" * (MAX_LINE + 1), 0)[0]  # a line without its LF yet counts too
    assert long_line(b"y" * 10 + b"\n", MAX_LINE - 10) == (False, 0)
    assert long_line(b"y" * 11 + b"\n", MAX_LINE - 10)[0]
    assert long_line(bytearray(ok * 2 + b"abc"), 0) == (False, 3)


# --- dot-stuffing -----------------------------------------------------------------------------------

@settings(max_examples=600, deadline=None)
@given(chunk=st.one_of(_small, _bytes), kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_dot_stuffing_is_the_rule(chunk, kind):
    out = dot_stuffed(kind(chunk))
    assert bytes(out) == spec_dot_stuffed(chunk)


def test_dot_stuffing_copies_nothing_without_a_dot_line():
    chunk = b"From: a@b.example\r\n\r\nno dot. at a line start\r\n"
    assert dot_stuffed(chunk) is chunk
    assert dot_stuffed(b".\r\n..\r\nx.\r\n") == b"..\r\n...\r\nx.\r\n"
    # A bare LF starts a line for the next hop too: its dot is doubled (never "\n.\n").
    assert dot_stuffed(b"a\n.\nb") == b"a\n..\nb"


# --- line endings -------------------------------------------------------------------------------------

@settings(max_examples=600, deadline=None)
@given(data=st.one_of(_small, _bytes), kind=st.sampled_from([bytes, bytearray]))
def test_line_ending_normalisation_is_the_rule(data, kind):
    out = crlf_normalise(kind(data))
    assert bytes(out) == spec_crlf_normalise(data)
    # What comes out is CRLF-clean: every CR starts a CRLF and every LF ends one.
    assert out.count(b"\r") == out.count(b"\n") == out.count(b"\r\n")


@pytest.mark.parametrize("dirty, clean", [
    (b"a\nb", b"a\r\nb"), (b"a\rb", b"a\r\nb"), (b"a\r\r\nb", b"a\r\n\r\nb"), (b"a\n\rb", b"a\r\n\r\nb"),
    (b"\n.\n", b"\r\n.\r\n"), (b"\r.\r", b"\r\n.\r\n"), (b"x\r", b"x\r\n"), (b"\n", b"\r\n"),
])
def test_each_bare_cr_or_lf_is_one_line_end(dirty, clean):
    assert crlf_normalise(dirty) == clean


def test_a_clean_message_is_not_copied():
    data = bytearray(b"Subject: x\r\n\r\nbody\r\n.dot\r\n")
    assert crlf_normalise(data) is data
    assert crlf_normalise(b"") == b""


# --- the same rewrites a piece at a time (issue #15: the event loop turns between pieces) -----------------

_sizes = st.integers(1, 9)


@settings(max_examples=600, deadline=None)
@given(data=st.one_of(_small, _bytes, _octets), size=_sizes, kind=st.sampled_from([bytes, bytearray]),
       dirty=st.booleans())
def test_line_endings_in_pieces_are_the_rule(data, size, kind, dirty):
    assert b"".join(crlf_pieces(kind(data), size)) == spec_crlf_normalise(data)
    given_data = kind(data)
    out = asyncio.run(crlf_normalised(given_data, size, dirty=dirty))
    assert bytes(out) == spec_crlf_normalise(data)
    assert (out is given_data) == (spec_crlf_normalise(data) == data)  # clean: itself, never a copy
    if spec_crlf_normalise(data) == data:
        assert crlf_normalise(kind(data)) == out  # clean: as it came (crlf_normalised(x) is x, below)


def test_pieces_of_a_clean_message_give_back_the_message_itself():
    data = bytearray(b"Subject: x\r\n\r\n" + b"line\r\n" * 100)
    assert asyncio.run(crlf_normalised(data, 7)) is data
    # A piece may not end between the CR and the LF of a CRLF: each would be taken for a bare one.
    assert b"".join(crlf_pieces(b"ab\r\ncd\r\n", 3)) == b"ab\r\ncd\r\n"


@settings(max_examples=600, deadline=None)
@given(data=st.one_of(_small, _bytes), size=_sizes)
def test_unstuffing_in_pieces_is_the_rule(data, size):
    buf = b"\r\n" + data
    assert b"".join(unstuffed_pieces(bytearray(buf), size)) == re.sub(rb"(?<=\r\n)\.", b"", buf)


@settings(max_examples=600, deadline=None)
@given(chunk=st.one_of(_small, _bytes), size=_sizes, kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_dot_stuffing_in_line_pieces_is_the_rule(chunk, size, kind):
    pieces = list(line_pieces(kind(chunk), size))
    assert b"".join(bytes(p) for p in pieces) == chunk
    for piece in pieces[:-1]:
        assert bytes(piece).endswith(b"\n")  # the next one starts a line
    assert b"".join(bytes(dot_stuffed(p)) for p in pieces) == spec_dot_stuffed(chunk)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(_small, _bytes), size=_sizes)
def test_a_message_unstuffed_in_pieces_is_the_message(data, size):
    stream = data.replace(b"\r\n.\r\n", b"\r\n..\r\n") + b"\r\n.\r\n"
    whole, pieces = DataReceiver(0), DataReceiver(0)
    assert whole.feed(stream) and pieces.feed(stream)
    if whole.refusal() is None:
        assert asyncio.run(pieces.message_in_pieces(size)) == whole.message()


# --- receiving DATA -----------------------------------------------------------------------------------

def spec_receive(stream: bytes, limit: int) -> tuple[str | None, bytes, bytes]:
    """(refusal code, message, leftover): the data ends at the first CRLF "." CRLF, the CRLF that
    ended the DATA line counting as the first (RFC 5321 4.1.1.4); then the checks, in this order."""
    wire = b"\r\n" + stream
    end = wire.find(b"\r\n.\r\n")
    data, leftover = wire[2:end + 2], wire[end + 5:]
    if limit and len(data) > limit:
        return "552", b"", leftover
    if any(len(line) > MAX_LINE for line in data.split(b"\n")):
        return "500", b"", leftover
    if b"\0" in data:
        return "550", b"", leftover
    return None, re.sub(rb"(?<=\r\n)\.", b"", b"\r\n" + data)[2:], leftover


def receive(stream: bytes, cuts, limit: int):
    receiver = DataReceiver(limit)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    for a, b in zip(bounds, bounds[1:]):
        if receiver.feed(stream[a:b]):
            rest = stream[b:]
            break
    else:
        raise AssertionError("the final dot was not found")
    leftover = receiver.leftover() + rest
    refusal = receiver.refusal()
    if refusal is not None:
        return refusal[:3], b"", leftover, None
    receive.crlf_only = receiver.crlf_only
    content, dot_lines = receiver.message()
    return None, bytes(content), leftover, dot_lines


_after = st.sampled_from([b"", b"NOOP\r\n", b"QUIT\r\n", b"\0", b"x" * 1200 + b"\r\n", b".\r\n"])


@settings(max_examples=800, deadline=None)
@given(body=st.one_of(_small, _bytes), after=_after, cuts=st.lists(st.integers(0, 2500), max_size=8),
       limit=st.one_of(st.just(0), st.integers(0, 2500)))
@example(body=b"\r\n.", after=b"", cuts=[4], limit=0)  # the message ends inside `body`, a read splits its "."
def test_receiving_data_is_the_rule(body, after, cuts, limit):
    stream = body + b"\r\n.\r\n" + after
    refusal, content, leftover, dot_lines = receive(stream, cuts, limit)
    expected_refusal, expected_content, expected_leftover = spec_receive(stream, limit)
    assert (refusal, content, leftover) == (expected_refusal, expected_content, expected_leftover)
    if refusal is None and not dot_lines and crlf_normalise(content) is content:
        # No line starts with "." for the next hop to see: nothing needs stuffing on the way out.
        assert dot_stuffed(content) == content
    if refusal is None:
        # Told as it came: every line ending a CRLF, or not. A read that ends inside the final
        # ".\r\n" may make it say "not" of a clean message (the way out then normalises: no harm);
        # never "clean" of one that is not.
        clean = spec_crlf_normalise(content) == content
        # Where the final "." is: the body may hold a terminator of its own (b"\r\n." ends the
        # message at its first line), so it is found, not assumed at the end of `body`.
        end = (b"\r\n" + stream).find(b"\r\n.\r\n")
        split_terminator = any(end < c < end + 3 for c in cuts)
        assert receive.crlf_only == clean or (split_terminator and clean and not receive.crlf_only)


@settings(max_examples=600, deadline=None)
@given(data=st.one_of(_small, _bytes), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_line_ends_told_piece_by_piece_are_the_rule(data, cuts):
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    clean, cr_open = True, False
    for a, b in zip(bounds, bounds[1:]):
        if clean:
            clean, cr_open = clean_line_ends(data[a:b], cr_open)
    assert (clean and not cr_open) == (spec_crlf_normalise(data) == data)


_NOT_LINE_END = bytes(b for b in range(256) if b not in b"\r\n")


def _translate_and_count(chunk, cr_open: bool) -> tuple[bool, bool]:
    """clean_line_ends as it was before LineEnds (a translate keeping CR and LF, and a count of
    CRLF): the new look must answer as it did."""
    if not chunk:
        return True, cr_open
    ends = chunk.translate(None, _NOT_LINE_END)
    joined = 0
    if cr_open:
        if chunk[:1] != b"\n":
            return False, False
        ends, joined = b"\r" + ends, 1
    cr_open = chunk[-1:] == b"\r"
    if cr_open:
        ends = ends[:-1]
    pairs = len(ends) >> 1
    return ends == b"\r\n" * pairs and chunk.count(b"\r\n") + joined == pairs, cr_open




@settings(max_examples=1500, deadline=None)
@given(data=st.one_of(_octets, _small, _bytes, st.binary(max_size=200)), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_line_ends_fed_in_pieces_answer_as_before_and_as_the_rule(data, cuts):
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    ends = LineEnds()
    old_clean, old_cr_open = True, False
    for a, b in zip(bounds, bounds[1:]):
        piece = data[a:b]
        clean = ends.feed(piece)
        if old_clean:
            old_clean, old_cr_open = _translate_and_count(piece, old_cr_open)
        assert clean == old_clean
        if clean:
            assert ends.cr_open == old_cr_open
    assert ends.crlf_only == (old_clean and not old_cr_open) == (spec_crlf_normalise(data) == data)
    # clean_line_ends on the whole, and on each kind of buffer the relay hands it
    for kind in (bytes, bytearray, memoryview):
        clean, cr_open = clean_line_ends(kind(data))
        assert (clean and not cr_open) == (spec_crlf_normalise(data) == data)


@pytest.mark.parametrize("at", [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 600_000])
@pytest.mark.parametrize("bad", [b"\n", b"\r", b"x\r\n"])
def test_a_large_message_is_looked_at_whole(at, bad):
    """clean_line_ends looks at a large message a view at a time: a bare CR or LF anywhere is found,
    and a CRLF across two views is one line ending."""
    lines = (b"y" * 78 + b"\r\n") * 8000  # 640,000 octets
    assert clean_line_ends(lines) == (True, False) and crlf_normalise(lines) is lines
    if bad == b"x\r\n":  # clean, with a CRLF whose CR ends the first view and whose LF starts the next
        data = lines[:at] + bad + lines[at:]
        data = data[:256 * 1024 - 1] + b"\r\n" + data[256 * 1024 - 1:]
        assert data[256 * 1024 - 1:256 * 1024 + 1] == b"\r\n" and spec_crlf_normalise(data) == data
        assert clean_line_ends(data) == (True, False)
        return
    data = lines[:at] + bad + lines[at:]
    assert clean_line_ends(data)[0] is False
    assert bytes(crlf_normalise(data)) == spec_crlf_normalise(data)


def test_a_crlf_split_between_two_reads_is_one_line_end():
    assert clean_line_ends(b"a\r", False) == (True, True)
    assert clean_line_ends(b"\nb\r\n", True) == (True, False)
    assert clean_line_ends(b"b\r\n", True) == (False, False)  # the CR before was bare
    assert clean_line_ends(b"a\rb", False)[0] is False and clean_line_ends(b"a\nb", False)[0] is False


def test_receiving_the_terminator_a_byte_at_a_time():
    stream = b"Subject: x\r\n\r\n..dot\r\nend\r\n.\r\nNOOP\r\n"
    assert receive(stream, range(len(stream)), 0) == (None, b"Subject: x\r\n\r\n.dot\r\nend\r\n", b"NOOP\r\n", True)
    assert receive(b".\r\n", [1, 2], 0) == (None, b"", b"", False)  # no message text at all


@pytest.mark.parametrize("terminator", [b"\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\n.\r"])
def test_only_crlf_dot_crlf_ends_the_data(terminator):
    stream = b"first" + terminator + b"MAIL FROM:<evil@attacker.test>\r\n" + b"\r\n.\r\n"
    refusal, content, leftover, _ = receive(stream, [5, 6, 7], 0)
    assert refusal is None and leftover == b"" and b"MAIL FROM:<evil@attacker.test>" in content


def test_the_size_limit_is_the_size_of_the_data():
    # Exactly at the limit passes however the reads cut the terminator; one byte more is refused.
    data = b"y" * 98 + b"\r\n"
    for cut in range(len(data) - 2, len(data) + 4):
        assert receive(data + b".\r\n", [cut], len(data))[0] is None
        assert receive(b"z" + data + b".\r\n", [cut], len(data))[0] == "552"


def test_what_follows_the_final_dot_is_not_judged_with_the_message():
    # Pipelined commands after the final dot (RFC 2920) are not message text: a NUL or a long line
    # there is for the command reader to answer, not a reason to refuse the message.
    for after in (b"NOOP\0\r\n", b"X" * 1500 + b"\r\n"):
        assert receive(b"ok\r\n.\r\n" + after, [], 0) == (None, b"ok\r\n", after, False)


def test_bytes_past_the_limit_are_not_kept():
    receiver = DataReceiver(1000)
    for _ in range(100):
        receiver.feed(b"x" * 998 + b"\r\n")
    assert len(receiver._buf) < 3000
    receiver.feed(b".\r\n")
    assert receiver.complete and receiver.refusal().startswith("552 5.3.4")
