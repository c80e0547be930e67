"""``python -m attest verify``: host-cli verify's contract in Python. Same
flags, same exit codes (0 accepted, 1 refused, 2 usage or input error),
and with --json the same document, byte for byte, as ``host-cli verify --json``."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
import time as _time
from typing import Any, Sequence

from ._enrollments import EnrollmentError, EnrollmentSet, common_name
from ._pem import base64_decode, pem_certificates
from ._policy import HostError, Policy
from ._report import to_json

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
MAX_PEM_FILE = 1 << 20
MAX_JSON_FILE = 16 << 20

USAGE = """Usage: python -m attest verify [OPTIONS] <CHAIN>

Validate a device chain and, with --enrollments, decide whether the device is admitted.
Exit codes: 0 accepted, 1 refused, 2 usage or input error.

Arguments:
  <CHAIN>  PEM file: the leaf first, then intermediates

Options:
      --trust <TRUST>                      PEM file of trusted root / CA certificates
      --enrollments <ENROLLMENTS>          Enrollment set (DPS JSON shapes); runs full enrollment resolution
      --at <AT>                            Validation time, RFC 3339 (default: now)
      --eku <EKU>                          Required extended key usage of the leaf [default: clientAuth] [possible values: clientAuth, serverAuth, any]
      --registration-id <REGISTRATION_ID>  Registration ID the device claims (default: the leaf's subject CN)
      --challenge <CHALLENGE>              Proof of possession: the challenge (base64) the device signed
      --signature <SIGNATURE>              Proof of possession: the device's signature (base64)
      --json                               Print the decision as JSON
  -h, --help                               Print help
"""


class UsageError(Exception):
    pass


class InputError(Exception):
    pass


EKU = {"clientAuth": "clientAuth", "client-auth": "clientAuth", "serverAuth": "serverAuth",
       "server-auth": "serverAuth", "any": "any", "anyExtendedKeyUsage": "any"}
VALUED = {"trust", "enrollments", "at", "eku", "registration-id", "challenge", "signature"}
HYPHEN_VALUES = {"challenge", "signature"}


def parse_verify(args: Sequence[str]) -> dict[str, Any] | None:
    """The verify options, or None for --help; UsageError on a bad command line."""
    opts: dict[str, Any] = {"json": False, "eku": "clientAuth"}
    chain = None
    positional_only = False
    given: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if positional_only or not arg.startswith("--") or arg == "-":
            if arg == "-h" and not positional_only:
                return None
            if chain is not None:
                raise UsageError(f"unexpected argument '{arg}' found")
            chain = arg
            continue
        if arg == "--":
            positional_only = True
            continue
        name, eq, value = arg[2:].partition("=")
        if name == "help":
            return None
        if name == "json":
            if eq:
                raise UsageError("unexpected value for '--json'")
            if opts["json"]:
                raise UsageError("the argument '--json' cannot be used multiple times")
            opts["json"] = True
            continue
        if name not in VALUED:
            raise UsageError(f"unexpected argument '--{name}' found")
        if not eq:
            if i >= len(args) or (args[i].startswith("-") and args[i] != "-" and name not in HYPHEN_VALUES):
                raise UsageError(f"a value is required for '--{name} <{name.upper().replace('-', '_')}>' but none was supplied")
            value = args[i]
            i += 1
        if name in given:
            raise UsageError(f"the argument '--{name}' cannot be used multiple times")
        given.add(name)
        if name == "eku":
            if value not in EKU:
                raise UsageError(f"invalid value '{value}' for '--eku <EKU>' [possible values: clientAuth, serverAuth, any]")
            opts["eku"] = EKU[value]
            continue
        opts[name.replace("-", "_")] = value
    if chain is None:
        raise UsageError("the following required arguments were not provided: <CHAIN>")
    if ("challenge" in opts) != ("signature" in opts):
        missing = "--challenge <CHALLENGE>" if "challenge" not in opts else "--signature <SIGNATURE>"
        raise UsageError(f"the following required arguments were not provided: {missing}")
    opts["chain"] = chain
    return opts


def read_limited(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``: a FIFO or /dev/zero costs limit + 1 bytes, never more."""
    try:
        with open(path, "rb") as f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise InputError(f"cannot read {path}: is a directory, not a file")
            data = f.read(limit + 1)
    except InputError:
        raise
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise InputError(f"cannot read {path}: is a directory, not a file") from None
        raise InputError(f"cannot read {path}: {os.strerror(e.errno or 0)} (os error {e.errno})") from None
    if len(data) > limit:
        raise InputError(f"cannot read {path}: is larger than the {limit}-byte limit")
    return data


def pem_file(path: str) -> list[bytes]:
    data = read_limited(path, MAX_PEM_FILE)
    if all(b in b" \t\n\r\x0c" for b in data):
        raise InputError(f"{path} is empty")
    try:
        certs = pem_certificates(data.decode("latin-1"))
    except ValueError as e:
        raise InputError(f"{path} is not valid PEM: {e}") from None
    if not certs:
        raise InputError(f"{path} contains no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return certs


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))")


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 date-time as Unix seconds (fractions dropped)."""
    def fail(why: str) -> InputError:
        return InputError(f"--at {_quote(text)} is not an RFC 3339 time (e.g. 2026-06-01T00:00:00Z): {why}")

    m = _RFC3339.fullmatch(text)
    if not m or not text.isascii():
        raise fail("it does not match YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)")
    y, mo, d, h, mi, s = (int(m.group(k)) for k in range(1, 7))
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    mdays = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= mo <= 12:
        raise fail("the month is out of range")
    if not 1 <= d <= mdays[mo - 1]:
        raise fail("the day is out of range")
    if h > 23:
        raise fail("the hour is out of range")
    if mi > 59:
        raise fail("the minute is out of range")
    if s > 59:
        raise fail("the second is out of range")
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23:
            raise fail("the offset hour is out of range")
        if om > 59:
            raise fail("the offset minute is out of range")
        offset = (-1 if m.group(9) == "-" else 1) * (oh * 3600 + om * 60)
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _enrollment_text(e: dict[str, Any]) -> str:
    kind = "individual enrollment" if e["kind"] == "individualEnrollment" else "enrollment group"
    return f"{kind} '{e['id']}'"


def human(d: dict[str, Any]) -> str:
    """The decision for people, as host-cli prints it."""
    at, purpose = d["validationTime"], d["extendedKeyUsage"]
    path_line = lambda path: " <- ".join(c["commonName"] if c["commonName"] is not None else c["subject"] for c in path)  # noqa: E731
    s = ""
    if d["verdict"] == "accepted" and d["mode"] == "chain":
        s += f"ACCEPTED  chain is valid for {purpose} at {at}\n  path: {path_line(d['path'])} (trust anchor)\n"
    elif d["verdict"] == "accepted":
        s += f"ACCEPTED  {d['registrationId']} is admitted by {_enrollment_text(d['enrollment'])} as device ID '{d['deviceId']}'\n"
        anchor = " (trust anchor)" if len(d["path"]) > 1 else " (enrolled certificate)"
        s += f"  path: {path_line(d['path'])}{anchor}\n"
        s += "  proof of possession: verified\n" if d["mode"] == "attest" else "  proof of possession: not checked (add --challenge and --signature)\n"
        s += f"  checked at {at} for {purpose}\n"
    r = d.get("refusal")
    if r:
        s += f"REFUSED   {r['code']}: {r['message']}\n"
        c = r["certificate"]
        if c:
            where = "leaf" if c["position"] == 0 else f"chain position {c['position']}"
            s += f"  certificate: {where} '{c['subject']}' (sha256 {c['sha256Thumbprint'][:16]})\n"
        if r["enrollment"]:
            s += f"  enrollment: {_enrollment_text(r['enrollment'])}\n"
        s += f"  checked at {at} for {purpose}\n"
    return s


def _verify(o: dict[str, Any], policy: Policy | None) -> dict[str, Any]:
    t = int(_time.time()) if o.get("at") is None else parse_rfc3339(o["at"])
    chain = pem_file(o["chain"])
    trust = None if o.get("trust") is None else pem_file(o["trust"])
    leaf, intermediates = chain[0], chain[1:]
    policy = policy or Policy()
    if o.get("enrollments") is None:
        if o.get("challenge") is not None:
            raise InputError("--challenge/--signature need --enrollments (proof of possession is part of attestation)")
        if trust is None:
            raise InputError("give --trust ROOTS.pem (chain validation) or --enrollments FILE.json (attestation)")
        return policy.validate_chain(leaf, intermediates, trust, time=t, purpose=o["eku"])
    raw = read_limited(o["enrollments"], MAX_JSON_FILE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{o['enrollments']} is not UTF-8 text") from None
    try:
        enrollments = EnrollmentSet.from_json(text, policy)
    except EnrollmentError as e:
        raise InputError(f"{o['enrollments']}: {e}") from None
    for anchor in trust or []:
        try:
            enrollments.add_anchor(anchor)
        except EnrollmentError as e:
            raise InputError(str(e)) from None
    registration_id = o.get("registration_id")
    if registration_id is None:
        cn = common_name(leaf)
        if cn is None:
            raise InputError("the leaf has no subject CN; pass --registration-id explicitly")
        # An unusable leaf is the policy's to refuse, with the same code and
        # exit status (1) as with --trust.
        registration_id = "unreadable-leaf" if cn is False else cn
    if o.get("challenge") is not None:
        challenge = base64_decode(o["challenge"])
        if challenge is None:
            raise InputError("--challenge is not base64")
        signature = base64_decode(o["signature"])
        if signature is None:
            raise InputError("--signature is not base64")
        return policy.attest(registration_id, leaf, intermediates, enrollments, challenge=challenge, signature=signature, time=t, purpose=o["eku"])
    return policy.resolve(registration_id, leaf, intermediates, enrollments, time=t, purpose=o["eku"])


def run(args: Sequence[str], policy: Policy | None = None) -> tuple[int, str, str]:
    """Runs a command line (without ``python -m attest``): (exit code, stdout, stderr)."""
    if not args or args[0] not in ("verify", "--help", "-h", "help"):
        what = "a subcommand is required ('verify')" if not args else f"unrecognized subcommand '{args[0]}'"
        return EXIT_ERROR, "", f"error: {what}\n\n{USAGE}"
    if args[0] != "verify":
        return 0, USAGE, ""
    try:
        opts = parse_verify(args[1:])
    except UsageError as e:
        return EXIT_ERROR, "", f"error: {e}\n\n{USAGE}"
    if opts is None:
        return 0, USAGE, ""
    try:
        decision = _verify(opts, policy)
    except (InputError, HostError) as e:
        message = str(e).replace("\n", " ")
    except Exception as e:  # noqa: BLE001 - never a traceback: exit 2 with one line
        message = f"internal error: {e}".replace("\n", " ")
    else:
        out = to_json(decision) + "\n" if opts["json"] else human(decision)
        return (EXIT_ACCEPTED if decision["verdict"] == "accepted" else EXIT_REFUSED), out, ""
    stdout = to_json({"verdict": "error", "error": message}) + "\n" if opts["json"] else ""
    return EXIT_ERROR, stdout, f"error: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    code, out, err = run(list(sys.argv[1:] if argv is None else argv))
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    return code
