"""Decisions in the JSON shape of ``host-cli verify --json``, and the exact
text of that document (keys sorted, no spaces: what serde_json writes)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

PURPOSES = {"clientAuth": "client-auth", "serverAuth": "server-auth", "any": "any"}
KINDS = {"individual": "individualEnrollment", "group": "enrollmentGroup"}

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def rfc3339(seconds: int) -> str:
    """RFC 3339 for a Unix time as the Rust hosts write it (whole seconds,
    ``Z``); ``@<seconds>`` outside the years 0000 to 9999."""
    if not -62167219200 <= seconds <= 253402300799:
        return f"@{seconds}"
    # Year 0 is outside datetime's range: shift by 400 years (146097 days),
    # which keeps the calendar identical.
    shift = 0
    if seconds < -62135596800:
        shift = 400
        seconds += 146097 * 86400
    t = _EPOCH + _dt.timedelta(seconds=seconds)
    return f"{t.year - shift:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def certificate_json(c: Any) -> dict[str, Any]:
    """A WIT ``certificate-info`` as a path element of the decision document."""
    return {
        "subject": c.subject,
        "issuer": c.issuer,
        "commonName": getattr(c, "common-name"),
        "serialNumber": c.serial,
        "sha256Thumbprint": bytes(c.sha256).hex().upper(),
        "notBeforeUtc": rfc3339(getattr(c, "not-before")),
        "notAfterUtc": rfc3339(getattr(c, "not-after")),
    }


def refusal_json(r: Any) -> dict[str, Any]:
    """A WIT ``refusal`` as the JSON ``refusal`` object."""
    cert = r.certificate
    enrollment = r.enrollment
    return {
        "code": r.code,
        "message": r.message,
        "certificate": None
        if cert is None
        else {
            "position": cert.position,
            "subject": cert.subject,
            "sha256Thumbprint": bytes(cert.sha256).hex().upper(),
        },
        "enrollment": None if enrollment is None else {"kind": KINDS[enrollment.kind], "id": enrollment.id},
    }


def decision_json(mode: str, time: int, purpose: str, ok: bool, value: Any) -> dict[str, Any]:
    """The decision document for a component result."""
    out: dict[str, Any] = {
        "verdict": "accepted" if ok else "refused",
        "mode": mode,
        "validationTime": rfc3339(time),
        "extendedKeyUsage": purpose,
    }
    if ok and mode == "chain":
        out["path"] = [certificate_json(c) for c in value]
    elif ok:
        out["registrationId"] = getattr(value, "registration-id")
        out["deviceId"] = getattr(value, "device-id")
        out["enrollment"] = {"kind": KINDS[value.enrollment.kind], "id": value.enrollment.id}
        out["path"] = [certificate_json(c) for c in value.path]
        out["proofOfPossession"] = "verified" if mode == "attest" else "not-checked"
    else:
        out["refusal"] = refusal_json(value)
    return out


def to_json(document: Any) -> str:
    """The document's text exactly as ``host-cli verify --json`` prints it."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
