import pytest

from relay.address import is_valid, normalise, split


@pytest.mark.parametrize("given, expected", [
    ("user@example.com", "user@example.com"),
    ("User@Example.COM", "user@example.com"),                 # local part too (DESIGN: case-insensitive)
    ("  <John.Doe@EXAMPLE.com>  ", "john.doe@example.com"),   # RCPT TO path form
    ("<@relay.example,@b.example:user@example.com>", "user@example.com"),  # source route dropped
    ("user@example.com.", "user@example.com"),                # root dot
    ('"john"@example.com', "john@example.com"),               # needless quoting (RFC 5322 3.4.1)
    ('"John.Doe"@example.com', "john.doe@example.com"),
    ('"a b"@example.com', '"a b"@example.com'),                # quoting needed: kept
    ('"a@b"@example.com', '"a@b"@example.com'),
    ('"a\\"b"@example.com', '"a\\"b"@example.com'),
    ("u@[192.0.2.1]", "u@[192.0.2.1]"),
    ("u@[IPv6:2001:DB8:0:0::1]", "u@[ipv6:2001:db8::1]"),
    ("a..b@docomo.ne.jp", "a..b@docomo.ne.jp"),               # non-RFC but real mailboxes
])
def test_normalise(given, expected):
    assert normalise(given) == expected


@pytest.mark.parametrize("a, b", [
    ("user+tag@example.com", "user@example.com"),   # +tags name different mailboxes at many providers
    ("first.last@example.com", "firstlast@example.com"),  # dots matter everywhere but Gmail
])
def test_tags_and_dots_are_kept(a, b):
    assert normalise(a) != normalise(b)
    assert normalise(a) == a


@pytest.mark.parametrize("spelling", [
    "jörg@bücher.example", "jörg@BÜCHER.example", "JöRG@xn--bcher-kva.example", "jörg@XN--BCHER-KVA.EXAMPLE",
    "jörg@ｂüｃｈｅｒ.example",  # full-width letters map to ASCII (UTS #46)
])
def test_idn_domain_spellings_meet_in_one_a_label_key(spelling):
    assert normalise(spelling) == "jörg@xn--bcher-kva.example"


def test_idna_2008_keeps_sharp_s_distinct():
    # IDNA 2003 mapped ß to ss; IDNA 2008 (what registries use) does not.
    assert normalise("a@faß.de") != normalise("a@fass.de")


def test_split():
    assert split("A@B.example") == ("a", "b.example")


@pytest.mark.parametrize("bad, why", [
    ("", "empty address"),
    ("<>", "empty address"),
    ("   ", "empty address"),
    ("no-at-sign", "no '@'"),
    ("@example.com", "empty local part"),
    ("user@", "empty domain"),
    ("@", "empty local part"),
    ("a b@example.com", "not allowed in an unquoted local part"),
    ("a<b@example.com", "not allowed in an unquoted local part"),
    ('"open@example.com', "unterminated"),
    ("user@exa_mple.com", "letters, digits and inner hyphens"),
    ("user@-example.com", "letters, digits and inner hyphens"),
    ("user@example..com", "empty label"),
    ("user@xn--zz.com", "not a valid IDN"),
    ("user@[300.1.1.1]", "bad address literal"),
    ("user@[IPv6:fe80::1%eth0]", "bad address literal"),  # a zone names an interface of the sender's host
    ("user@[010.0.0.1]", "bad address literal"),  # octal to inet_aton(), decimal to RFC 5321
    ("user@[tag:x]", "bad address literal"),  # a general literal: IANA registers no tag but IPv6
    ("x" * 65 + "@example.com", "longer than 64 octets"),
    ("user@" + "a" * 64 + ".com", "longer than 63"),
    ("user@" + ".".join(["a" * 60] * 5), "longer than 253"),
])
def test_invalid_addresses_raise_a_clear_value_error(bad, why):
    with pytest.raises(ValueError, match="^.*" + why.replace("(", r"\(")):
        normalise(bad)
    assert not is_valid(bad)


def test_not_text():
    with pytest.raises(ValueError, match="expected text"):
        normalise(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("literal, why", [
    ("192.0.2.1", None), ("IPv6:2001:db8::1", None), ("ipv6:2001:DB8:0:0:0:0:0:1", None),
    ("IPv6:::ffff:192.0.2.1", None),
    ("300.1.1.1", "300 is over 255"), ("1.2.3", "four numbers"), ("010.0.0.1", "leading zero"),
    ("", "empty"), ("IPv6:1.2.3.4", "not an IPv6 address"), ("IPv6:", "nothing after the tag"),
    ("IPv6:fe80::1%eth0", "a zone"), ("2001:db8::1", "without its tag"), ("x400:c=us", "not registered"),
])
def test_literal_problem_names_what_is_wrong(literal, why):
    from relay.address import literal_problem

    found = literal_problem(literal)
    assert (found is None) if why is None else (why in found and "address literal" in found), found


# review24 F2: str.lower() maps U+212A KELVIN SIGN to ASCII "k" (and merges other distinct code
# points), so two mailboxes shared one key and a refusal of one listed the other.
@pytest.mark.parametrize("unicode_local, ascii_or_other", [
    ("\u212aate", "kate"),              # KELVIN SIGN: its lower() is ASCII "k"
    ("\u2126mega", "\u03c9mega"),       # OHM SIGN: its lower() is GREEK SMALL LETTER OMEGA
    ("\u212bngstr", "\u00e5ngstr"),     # ANGSTROM SIGN: its lower() is a-ring
    ("\u0130stanbul", "i\u0307stanbul"),  # I WITH DOT ABOVE: its lower() is "i" + COMBINING DOT ABOVE
    ("J\u00d6RG", "j\u00f6rg"),         # an upper-case non-ASCII letter is not merged with its lower case
])
def test_non_ascii_letters_are_never_case_folded_into_another_mailbox(unicode_local, ascii_or_other):
    assert normalise(f"{unicode_local}@x.test") != normalise(f"{ascii_or_other}@x.test")


def test_ascii_letters_of_every_local_part_still_match_case_insensitively():
    assert normalise("Kate@X.test") == normalise("KATE@x.test") == "kate@x.test"
    assert normalise("J\u00f6RG@x.test") == "j\u00f6rg@x.test"  # the ASCII letters of a non-ASCII local part
    assert normalise('"John Doe"@x.test') == normalise('"JOHN DOE"@x.test')


def test_fold_lowers_ascii_letters_only_and_keeps_the_length():
    from relay.address import fold

    text = "550 <\u0130\u212aATE@X.TEST> Unknown"
    assert fold(text) == "550 <\u0130\u212aate@x.test> unknown"
    assert len(fold(text)) == len(text)


def test_delivered_as_reads_quoted_pairs_and_quoted_strings_as_an_rfc822_reader_does():
    # review26 F3: Postfix delivers these to the same mailbox; normalise() refuses them as RFC 5321 syntax.
    from relay.address import delivered_as
    for spelling in ("go\\ne@example.com", "\\g\\o\\n\\e@Example.COM", "g\"on\"e@example.com",
                     "\"gone\"@example.com", "gone@ex\\ample.com", "<@route.example:go\\ne@example.com>"):
        assert delivered_as(spelling) == "gone@example.com", spelling
    assert delivered_as("a\\ b@example.com") == '"a b"@example.com' == normalise('"a b"@example.com')
    assert delivered_as('"a"."b"@example.com') == "a.b@example.com"
    assert delivered_as("Bob@Example.com") == normalise("Bob@Example.com")
    for bad in ("gone\\@example.com", "a\\", 'a"b@example.com', "gone(c)@example.com", "postmaster"):
        with pytest.raises(ValueError):
            delivered_as(bad)
    with pytest.raises(ValueError):
        normalise("go\\ne@example.com")  # listing keeps RFC 5321's syntax: nothing is listed under this reading
