"""Pull the remote servers' reply texts out of the shared bounce corpus.

    python3 scripts/corpus/extract_bounces.py /work/shared/corpora/bounces > /tmp/bounce-replies.yaml

For each labelled recipient of each bounce email: the Diagnostic-Code of its
delivery-status part (RFC 3464), else the reply quoted in the human-readable
part (Postfix "host ... said:", Exim "SMTP error from remote mail server"),
with the SMTP command it answered when the bounce says so (the stage).
The output is raw material: every entry is read and labelled by hand after.
"""

from __future__ import annotations

import email
import email.policy
import re
import sys
from pathlib import Path

import yaml

_STAGE_WORDS = [
    (re.compile(r"(end of data|after end of data|DATA command|after DATA|end of message)", re.I), "data"),
    (re.compile(r"(RCPT TO|RCPT command)", re.I), "rcpt"),
    (re.compile(r"(MAIL FROM|MAIL command)", re.I), "mail"),
    (re.compile(r"(HELO|EHLO)", re.I), "helo"),
    (re.compile(r"(initial connection|greeting|refused to talk to me|banner)", re.I), "connect"),
]
_IN_REPLY = re.compile(r"\(in reply to ([^)]*)\)", re.I | re.S)
_SAID = re.compile(r"said:\s*(.+?)(?:\(in reply to [^)]*\)|\n\s*\n|$)", re.S)
_CODE_LINE = re.compile(r"^\s*([245]\d\d[ -].*)$", re.M)


def _stage(context: str) -> str | None:
    for pattern, stage in _STAGE_WORDS:
        if pattern.search(context):
            return stage
    return None


def _unfold(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _text_of(msg) -> str:
    parts = []
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            try:
                parts.append(part.get_content())
            except Exception:
                payload = part.get_payload(decode=True) or b""
                parts.append(payload.decode("utf-8", "replace"))
        if part.get_content_type() == "message/rfc822":
            break
    return "\n".join(parts)


def _dsn_blocks(msg) -> list[dict]:
    blocks = []
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload[1:] if len(payload) > 1 else payload:
                    blocks.append({k.lower(): _unfold(str(v)) for k, v in sub.items()})
            else:
                raw = payload if isinstance(payload, str) else ""
                for chunk in re.split(r"\n\s*\n", raw)[1:]:
                    fields = {}
                    for m in re.finditer(r"^([A-Za-z-]+):\s*(.*(?:\n[ \t].*)*)", chunk, re.M):
                        fields[m.group(1).lower()] = _unfold(m.group(2))
                    if fields:
                        blocks.append(fields)
    return blocks


def _strip_type(value: str) -> str:
    return re.sub(r"^\s*(smtp|x-unix|x-postfix|x-local|X-Exim|mta)\s*;\s*", "", value, flags=re.I).strip()


_WRAPPERS = [
    re.compile(r"^.*?SMTP error from remote (mail server|mailer) after [^:]+(:<[^>]*>)?:\s*", re.S),
    re.compile(r"^host \S+ \[[^\]]*\]:\s*"),
    re.compile(r"^.*?The error that the other server returned was:\s*", re.S),
    re.compile(r"^.*?(refused to talk to me|said):\s*", re.S),
]


def _after_address(text: str, address: str) -> str | None:
    """The paragraph that follows the recipient's address, without the sending
    MTA's wrappers: Exim, qmail, Gmail and most others print the reason there."""
    if not address:
        return None
    lowered = text.lower()
    start = lowered.find(address)
    if start < 0:
        return None
    rest = text[start + len(address):]
    rest = re.sub(r"^[>:\s]*", "", rest)
    para = re.split(r"\n\s*\n|\n-{3,}|\n\*{3,}", rest, maxsplit=1)[0]
    para = _unfold(para)
    for wrapper in _WRAPPERS:
        para = wrapper.sub("", para)
    para = re.sub(r"\s*\(in reply to [^)]*\)", "", para).strip()
    return para or None


def extract(path: Path, recipients: list[dict]) -> list[dict]:
    raw = path.read_bytes()
    if path.suffix == ".eml":
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        text = _text_of(msg)
        blocks = _dsn_blocks(msg)
    else:
        text, blocks = raw.decode("utf-8", "replace"), []
    out = []
    for index, rcpt in enumerate(recipients):
        address = (rcpt.get("recipient") or "").lower()
        diag, stage = None, None
        for block in blocks:
            final = block.get("final-recipient", "").lower()
            if "diagnostic-code" in block and (not address or address in final or len(blocks) == 1):
                diag = _strip_type(block["diagnostic-code"])
                break
        # Human-readable part: the paragraph about this recipient.
        para = None
        if address and address in text.lower():
            start = text.lower().index(address)
            para = text[start:start + 1200]
        said = _SAID.search(para or text)
        in_reply = _IN_REPLY.search(para or text)
        if in_reply:
            stage = _stage(in_reply.group(1))
        else:
            exim = re.search(r"SMTP error from remote (mail server|mailer) after ([^:]+):", para or text)
            if exim:
                stage = _stage(exim.group(2))
        if not diag and said:
            diag = _unfold(said.group(1))
        if not diag:
            diag = _after_address(text, address)
        if not diag:
            m = _CODE_LINE.search(para or text) or _CODE_LINE.search(text)
            if m:
                diag = _unfold(m.group(1))
        out.append({"file": path.name, "index": index, "recipient": rcpt.get("recipient"),
                    "reason": rcpt.get("reason"), "status": rcpt.get("status"), "code": rcpt.get("code"),
                    "stage": stage, "reply": diag})
    return out


def main() -> int:
    root = Path(sys.argv[1])
    labels = yaml.safe_load((root / "labels.yaml").read_text())
    rows = []
    for entry in labels:
        if entry.get("kind") != "bounce":
            continue
        rows.extend(extract(root / entry["file"], entry["recipients"]))
    yaml.safe_dump(rows, sys.stdout, allow_unicode=True, sort_keys=False, width=1000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
