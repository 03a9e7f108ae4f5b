"""Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Signed here with hashlib/hmac rather than the `standardwebhooks` package, which does the same HMAC: the
package decodes a secret leniently (`base64.b64decode` without validation drops characters that are not
base64, so a mistyped secret silently becomes another key, and every signature fails at the receiver),
and its `sign()` takes the body as text and a datetime. The tests verify our signatures with the package,
an implementation that is not ours.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"
# The Standard Webhooks spec: a secret of 24 to 64 random bytes, base64-encoded (after "whsec_").
MIN_SECRET_BYTES = 24


class SecretError(ValueError):
    pass


def parse_secret(text: str) -> bytes:
    """The HMAC key of a secret as Standard Webhooks writes it: `whsec_` + base64 (the prefix optional)."""
    raw = text.strip()
    if raw.startswith(PREFIX):
        raw = raw[len(PREFIX):]
    if not raw:
        raise SecretError("the file is empty; write a secret such as whsec_ followed by base64 "
                          "(echo whsec_$(head -c 32 /dev/urandom | base64) > FILE)")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("the secret is not base64 (Standard Webhooks secrets are whsec_ followed by "
                          "base64: echo whsec_$(head -c 32 /dev/urandom | base64) > FILE)") from None
    if len(key) < MIN_SECRET_BYTES:
        raise SecretError(f"the secret has {len(key)} bytes; Standard Webhooks asks for {MIN_SECRET_BYTES} "
                          f"to 64 random bytes (echo whsec_$(head -c 32 /dev/urandom | base64) > FILE)")
    return key


def secret_from_file(data: bytes) -> bytes:
    """The HMAC key of a secret file's bytes (read by relay.secretfile at load, as every secret file)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SecretError("the file is not ASCII text (expected whsec_ followed by base64)") from None
    return parse_secret(text)


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt (the timestamp is the attempt's, in seconds)."""
    mac = hmac.new(key, msg_id.encode("ascii") + b"." + str(timestamp).encode("ascii") + b"." + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def headers(key: bytes | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; without a key (no `secret_file`) the batch goes unsigned."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        out["webhook-signature"] = signature(key, msg_id, timestamp, body)
    return out
