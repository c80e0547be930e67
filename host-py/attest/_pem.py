"""PEM certificates and base64, read the way the Rust hosts read them
(rustls-pki-types' PEM reader): every CERTIFICATE section in order, other
sections skipped, strict base64 inside a section. The bytes are not parsed
here: a certificate that is not X.509 is the component's to refuse."""

from __future__ import annotations

import base64
import binascii
import re

_BEGIN = re.compile(r"^-----BEGIN ([^-]*)-----\s*$")
_END = re.compile(r"^-----END ([^-]*)-----\s*$")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def strict_base64(text: str) -> bytes | None:
    """Standard-alphabet base64 with canonical padding, or None."""
    if not _B64.match(text) or len(text) % 4:
        return None
    try:
        out = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return out if base64.b64encode(out).decode() == text else None


def pem_certificates(text: str) -> list[bytes]:
    """The DER of every CERTIFICATE section of ``text``; raises ValueError on a broken section."""
    out: list[bytes] = []
    lines = re.split(r"\r?\n", text)
    i = 0
    while i < len(lines):
        begin = _BEGIN.match(lines[i].strip())
        i += 1
        if not begin:
            continue
        label = begin.group(1)
        body = []
        closed = False
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            end = _END.match(line)
            if end:
                if end.group(1) != label:
                    raise ValueError(f"section {label} ends with END {end.group(1)}")
                closed = True
                break
            body.append(re.sub(r"\s+", "", line))
        if not closed:
            raise ValueError(f"no end marker for {label}")
        if label != "CERTIFICATE":
            continue
        der = strict_base64("".join(body))
        if der is None:
            raise ValueError("invalid base64 in a CERTIFICATE section")
        out.append(der)
    return out


def base64_decode(text: str) -> bytes | None:
    """URL-safe unpadded base64, else standard base64 (as host-cli decodes --challenge)."""
    t = text.strip()
    if re.fullmatch(r"[A-Za-z0-9_-]*", t) and len(t) % 4 != 1:
        try:
            out = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
        except (binascii.Error, ValueError):
            out = None
        if out is not None and base64.urlsafe_b64encode(out).decode().rstrip("=") == t:
            return out
    return strict_base64(t)


def base64_encode(data: bytes) -> str:
    """URL-safe unpadded base64."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
