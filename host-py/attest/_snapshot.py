"""Edge snapshots in Python: the signed NDJSON stream that host-http serves
at ``GET /attest/snapshot`` (the format is specified in
service/src/snapshot.rs and docs/architecture.md), verified against the
service's Ed25519 key, applied to a replica kept on disk, and decided from
exactly as the service decides at that version: the same lookup rules as
the Rust replica (service/src/index.rs), so that a stored document that
does not load refuses its devices instead of letting them fall through to
a group, and every device is refused with ``enrollments-stale`` once the
snapshot is older than the maximum age.

The replica is one JSON file, ``snapshot-replica.json``, in a directory of
its own, replaced atomically (written beside, flushed, renamed): a snapshot
that fails to verify or to apply leaves the last good one as it was. The
Node.js host reads and writes the same file."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time as _time
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from ._enrollments import STRICTEST_REVOCATION, EnrollmentError, load_group, load_individual, readable_group_certificates
from ._pem import strict_base64
from ._policy import _purpose, _unix
from ._report import rfc3339

#: The snapshot format this host reads (the header's ``attestSnapshot``).
FORMAT = 1
#: The longest line a reader accepts (the Rust reader's limit).
MAX_LINE = 8 << 20
#: Default maximum age of a replica's snapshot, seconds (24 h, as host-cli's ``--max-age``).
DEFAULT_MAX_AGE_SECONDS = 24 * 3600
#: The replica's file in its directory.
REPLICA_FILE = "snapshot-replica.json"
_REPLICA_FORMAT = 1
#: How far ahead of the gateway's clock a snapshot's signing time may be.
_CLOCK_SKEW = 300
_U64 = 1 << 64
_I64 = 1 << 63


class SnapshotError(ValueError):
    """A snapshot that does not verify or cannot be applied; the replica is unchanged."""


def _fail(message: str) -> Any:
    raise SnapshotError(message)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _strict_b64url(text: Any) -> bytes | None:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        return None
    try:
        out = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return out if _b64url(out) == text else None


def _uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _U64


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -_I64 <= v < _I64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(text: str | bytes) -> Any:
    """Strict JSON (no NaN or Infinity, as serde_json reads it)."""
    return json.loads(text, parse_constant=_no_constant)


class TrustKey:
    """A service's public snapshot key (Ed25519), as a gateway trusts it."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key
        #: The raw 32-byte public key.
        self.public_key = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + _b64url(self.public_key) + '"}'
        #: The key's ID: its RFC 7638 thumbprint (what a snapshot's ``kid`` names).
        self.kid = _b64url(hashlib.sha256(jwk.encode()).digest())

    @classmethod
    def from_pem(cls, text: str | bytes) -> "TrustKey":
        """The key of a PEM SubjectPublicKeyInfo (what ``host-http snapshot-key`` prints)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PublicKey) or b"-----BEGIN PUBLIC KEY-----" not in data:
            raise SnapshotError("not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----, as host-http snapshot-key prints it)")
        return cls(key)

    def verify(self, jwt: Any) -> dict[str, Any]:
        """The claims of a snapshot's signature (a JWT, EdDSA), if it verifies with this key."""
        parts = jwt.split(".") if isinstance(jwt, str) else []
        not_jws = "the snapshot's signature is not a JWS (three base64url parts)"
        if len(parts) != 3:
            _fail(not_jws)
        h, p, s = (_strict_b64url(x) for x in parts)
        if h is None or p is None or s is None:
            _fail(not_jws)
        try:
            header = _json(h.decode("utf-8"))
        except (ValueError, RecursionError):
            _fail("the snapshot's signature is not a JWS: its header is not JSON")
        if not isinstance(header, dict):
            _fail("the snapshot's signature is not a JWS: its header is not an object")
        if header.get("alg") != "EdDSA":
            _fail(f"the snapshot is signed with {json.dumps(header.get('alg'))}, not EdDSA")
        if header.get("kid") != self.kid:
            kid = header.get("kid") if isinstance(header.get("kid"), str) else "none"
            _fail(f"the snapshot is signed by another key (kid {kid}), not the trusted one ({self.kid})")
        try:
            self._key.verify(s, f"{parts[0]}.{parts[1]}".encode())
        except InvalidSignature:
            _fail("the snapshot's signature does not verify")
        try:
            claims = _json(p.decode("utf-8"))
        except (ValueError, RecursionError):
            _fail("the snapshot's signature does not verify: its claims are not JSON")
        ok = (
            isinstance(claims, dict)
            and isinstance(claims.get("iss"), str)
            and _int(claims.get("iat"))
            and _uint(claims.get("ver"))
            and (claims.get("since") is None or _uint(claims.get("since")))
            and _uint(claims.get("lines"))
            and isinstance(claims.get("sha256"), str)
        )
        if not ok:
            _fail("the snapshot's signature does not verify: its claims are not a snapshot's")
        return {**claims, "since": claims.get("since")}


_HEADER_FIELDS = ("attestSnapshot", "service", "kid", "version", "since", "madeAt")


def _header(value: Any) -> dict[str, Any]:
    def bad(why: str) -> Any:
        return _fail(f"the snapshot's first line is not its header: {why}")

    if not isinstance(value, dict):
        bad("not an object")
    for k in value:
        if k not in _HEADER_FIELDS:
            bad(f"unknown field {json.dumps(k)}")
    if not _uint(value.get("attestSnapshot")):
        bad("attestSnapshot is missing or not a number")
    if not isinstance(value.get("service"), str):
        bad("service is missing or not a string")
    if not isinstance(value.get("kid"), str):
        bad("kid is missing or not a string")
    if not _uint(value.get("version")):
        bad("version is missing or not a number")
    if not (value.get("since") is None or _uint(value.get("since"))):
        bad("since is not a number")
    if not isinstance(value.get("madeAt"), str):
        bad("madeAt is missing or not a string")
    if value["attestSnapshot"] != FORMAT:
        _fail(f"snapshot format {value['attestSnapshot']} is not the one this gateway reads ({FORMAT})")
    return {**value, "since": value.get("since")}


def _record(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail("a record is not a JSON object")

    def text(k: str) -> str:
        v = value.get(k)
        return v if isinstance(v, str) else _fail(f"a record has no {json.dumps(k)} string")

    if "delete" in value:
        if value["delete"] not in ("certificate", "individual", "group"):
            _fail("a delete record names an unknown kind")
        return {"delete": value["delete"], "id": text("id")}
    put = text("put")
    if put == "certificate":
        der = strict_base64(text("der"))
        if der is None:
            _fail("a certificate record's der is not base64")
        name = text("name")
        if not isinstance(value.get("verified"), bool):
            _fail("a certificate record has no verified flag")
        text("etag")
        text("created")
        text("updated")
        return {"put": put, "name": name, "der": der, "verified": value["verified"]}
    if put not in ("individual", "group"):
        _fail(f"a record puts an unknown kind {json.dumps(put)}")
    if "doc" in value and "unreadable" not in value:
        doc = value["doc"]
    elif "doc" not in value and value.get("unreadable") is True:
        doc = None
    else:
        _fail("an enrollment record has neither a doc nor unreadable: true")
    rid = text("id")
    text("etag")
    return {"put": put, "id": rid, "doc": doc}


def read_snapshot(data: bytes, trust_key: TrustKey) -> dict[str, Any]:
    """Reads and verifies a snapshot (its bytes): every line hashed, the
    signature checked with ``trust_key``, its claims compared with the
    header. Returns ``{"header", "records", "made_at"}`` (made_at: the
    signed time, Unix seconds). Raises SnapshotError; nothing is applied."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("a snapshot is bytes (the response body of GET /attest/snapshot)")
    buf = bytes(data)
    sha = hashlib.sha256()
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    lines = 0
    at = 0
    while True:
        if at >= len(buf):
            _fail("the snapshot ends before its signature (truncated)")
        nl = buf.find(b"\n", at)
        if nl == -1:
            if len(buf) - at > MAX_LINE:
                _fail(f"line {lines + 1} of the snapshot is longer than {MAX_LINE} bytes")
            _fail("the snapshot ends inside a line (truncated)")
        if nl + 1 - at > MAX_LINE:
            _fail(f"line {lines + 1} of the snapshot is longer than {MAX_LINE} bytes")
        line = buf[at : nl + 1]
        at = nl + 1
        try:
            value = _json(line.decode("utf-8"))
        except (ValueError, RecursionError) as e:
            _fail(f"line {lines + 1} of the snapshot is not JSON: {e}")
        if isinstance(value, dict) and "signature" in value:
            if not isinstance(value["signature"], str):
                _fail("the snapshot's signature is not a string")
            if header is None:
                _fail("the snapshot has no header")
            claims = trust_key.verify(value["signature"])
            if claims["sha256"] != sha.hexdigest() or claims["lines"] != lines:
                _fail("the snapshot's lines are not the ones signed (altered, reordered or cut)")
            if (
                claims["iss"] != header["service"]
                or claims["ver"] != header["version"]
                or claims["since"] != header["since"]
                or header["kid"] != trust_key.kid
            ):
                _fail("the snapshot's header differs from its signed claims")
            if at != len(buf):
                _fail("the snapshot goes on after its signature")
            return {"header": header, "records": records, "made_at": claims["iat"]}
        sha.update(line)
        lines += 1
        if header is None:
            header = _header(value)
        else:
            try:
                records.append(_record(value))
            except SnapshotError as e:
                raise SnapshotError(f"line {lines}: {e}") from None


def _human(s: int) -> str:
    """Seconds as ``1h 30m``-style text (the Rust replica's wording)."""
    parts = [f"{n}{u}" for n, u in ((s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "m"), (s % 60, "s")) if n > 0]
    return " ".join(parts) if parts else "0s"


def stale_refusal(state: dict[str, Any], time: int, max_age_seconds: int) -> dict[str, Any] | None:
    """The refusal of every device once the replica's snapshot is older than
    ``max_age_seconds`` at ``time`` (Unix seconds), as the decision
    document's ``refusal`` object; None while it is fresh."""
    if not _uint(max_age_seconds) or not _int(time):
        raise TypeError("time and max_age_seconds must be ints (Unix seconds, seconds)")
    age = time - state["made_at"]
    if age <= max_age_seconds:
        return None
    return {
        "code": "enrollments-stale",
        "message": f"the enrollments this gateway holds (version {state['version']}, made {rfc3339(state['made_at'])}) are "
        f"{_human(age)} old, more than the maximum age of {_human(max_age_seconds)}: sync with the service",
        "certificate": None,
        "enrollment": None,
    }


def _lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _sorted(keys: Any) -> list[str]:
    # Byte order of the UTF-8 text, as the Rust replica's BTreeMap orders its keys.
    return sorted(keys, key=lambda k: k.encode("utf-8", "surrogatepass"))


class _Lookups:
    """The component's enrollment lookups over one replica state, with the
    service's rules for what does not load (service/src/index.rs): an
    individual enrollment that is not JSON, does not load or names another
    registration ID refuses its device; a group that does not load refuses
    the devices under the CAs that can still be read of it, and one whose
    CAs cannot be read at all makes every group lookup refuse; two groups
    on one CA both refuse."""

    def __init__(self, state: dict[str, Any], policy: Any) -> None:
        self._state = state
        self._policy = policy
        self._anchors: dict[bytes, list[bytes]] = {}
        self._group_ca: dict[bytes, list[str]] = {}
        self._unloadable: list[str] = []
        self._unusable: dict[str, tuple[str, str | None]] = {}
        # Loaded documents, by stored key (the state does not change under a Lookups).
        self._groups: dict[str, dict[str, Any] | None] = {}
        self._individuals: dict[str, dict[str, Any] | None] = {}
        for name in _sorted(state["certificates"]):
            c = state["certificates"][name]
            if not c["verified"]:
                continue
            keys = policy.index_certificate(c["der"])
            if "refusal" not in keys:
                self._anchors.setdefault(keys["subject_key"], []).append(c["der"])
        for gid in _sorted(state["group"]):
            doc = state["group"][gid]
            entry = None
            readable: list[bytes] = []
            if doc is not None:
                entry = self._load_group(gid)
                if entry is None:
                    readable = readable_group_certificates(doc, self._verified)
            if entry is not None:
                for der, keys in entry["cas"]:
                    self._owner(keys["ca_identity"], gid)
                    if entry["anchors"]:
                        self._anchors.setdefault(keys["subject_key"], []).append(der)
                continue
            identities = [k["ca_identity"] for k in (policy.index_certificate(d) for d in readable) if "refusal" not in k]
            if not identities:
                self._unloadable.append(gid)
            for identity in identities:
                self._owner(identity, gid)

    def _owner(self, identity: bytes, gid: str) -> None:
        owners = self._group_ca.setdefault(bytes(identity), [])
        if gid not in owners:
            owners.append(gid)

    def _verified(self, name: str) -> bytes | None:
        c = self._state["certificates"].get(name)
        return c["der"] if c is not None and c["verified"] else None

    def _load_group(self, gid: str) -> dict[str, Any] | None:
        """The stored group, loaded (None: absent, unreadable or does not load)."""
        if gid not in self._groups:
            doc = self._state["group"].get(gid)
            try:
                self._groups[gid] = None if doc is None else load_group(doc, self._policy, self._verified)
            except EnrollmentError:
                self._groups[gid] = None
        return self._groups[gid]

    def _load_individual(self, key: str) -> dict[str, Any] | None:
        """The stored individual enrollment, loaded (None: unreadable or does not load)."""
        if key not in self._individuals:
            doc = self._state["individual"][key]
            try:
                self._individuals[key] = None if doc is None else load_individual(doc, self._policy)
            except EnrollmentError:
                self._individuals[key] = None
        return self._individuals[key]

    def _refusing(self, gid: str, why: str, entry: str | None) -> dict[str, Any]:
        self._unusable[gid] = (why, entry)
        return {"group_id": gid, "enabled": False}

    def begin(self) -> None:
        """Starts a decision: what the last one found is forgotten."""
        self._unusable = {}
        self._revocations: dict[tuple[str, str], dict[str, Any]] = {}

    def revocation(self, kind: str, entry_id: str) -> dict[str, Any]:
        """The revocation policy of an entry this decision's lookups handed
        out; the strictest for any other."""
        key = _lower(entry_id) if kind == "individual" else entry_id
        return getattr(self, "_revocations", {}).get((kind, key), STRICTEST_REVOCATION)

    def individual(self, registration_id: str) -> dict[str, Any] | None:
        key = _lower(registration_id)
        if key not in self._state["individual"]:
            return None
        refusing = {"registration_id": key, "device_id": None, "enabled": False, "certificates": []}
        entry = self._load_individual(key)
        if entry is not None and _lower(entry["registration_id"]) == key:
            self._remember(("individual", key), entry["revocation"])
            return entry
        return refusing

    def group(self, ca_identity: bytes) -> dict[str, Any] | None:
        if self._unloadable:
            ids = self._unloadable
            joined = ", ".join(ids)
            return self._refusing(
                joined,
                f"stored enrollment group(s) {joined} cannot be loaded, so every group is treated as disabled",
                ids[0] if len(ids) == 1 else None,
            )
        owners = self._group_ca.get(bytes(ca_identity), [])
        if not owners:
            return None
        if len(owners) > 1:
            joined = ", ".join(_sorted(owners))
            return self._refusing(joined, f"enrollment groups {joined} all name this CA", None)
        gid = owners[0]
        unloadable = (gid, f"the stored enrollment group '{gid}' cannot be loaded", gid)
        entry = self._load_group(gid)
        if entry is None:
            return self._refusing(*unloadable)
        if not any(keys["ca_identity"] == bytes(ca_identity) for _, keys in entry["cas"]):
            return self._refusing(*unloadable)
        self._remember(("group", entry["group_id"]), entry["revocation"])
        return {"group_id": entry["group_id"], "enabled": entry["enabled"]}

    def _remember(self, entry: tuple[str, str], revocation: dict[str, Any]) -> None:
        if not hasattr(self, "_revocations"):
            self._revocations = {}
        self._revocations[entry] = revocation

    def trust_anchors(self, subject_key: bytes) -> list[bytes]:
        return list(self._anchors.get(bytes(subject_key), []))

    def explain(self, document: dict[str, Any]) -> dict[str, Any]:
        """A refusal by a group that a lookup handed out as unusable says why
        and names the group at fault (or none), as the service's decision does."""
        r = document.get("refusal")
        if not r or not r.get("enrollment") or r["enrollment"].get("kind") != "enrollmentGroup":
            return document
        u = self._unusable.get(r["enrollment"]["id"])
        if u is not None:
            why, entry = u
            r["message"] = f"{r['message']}: {why}"
            r["enrollment"] = None if entry is None else {"kind": "enrollmentGroup", "id": entry}
        return document


def _stored(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "attestReplica": _REPLICA_FORMAT,
        "service": s["service"],
        "kid": s["kid"],
        "version": s["version"],
        "madeAt": s["made_at"],
        "syncedAt": s["synced_at"],
        "certificates": {n: {"der": base64.b64encode(c["der"]).decode(), "verified": c["verified"]} for n, c in s["certificates"].items()},
        "individual": s["individual"],
        "group": s["group"],
    }


def _loaded(text: str, path: str) -> dict[str, Any]:
    def bad(why: str) -> Any:
        return _fail(f"{path}: the replica's state is unreadable ({why}); sync a full snapshot into a new directory")

    try:
        v = _json(text)
    except (ValueError, RecursionError) as e:
        return bad(str(e))
    if not isinstance(v, dict) or v.get("attestReplica") != _REPLICA_FORMAT:
        return bad(f"not a replica file of format {_REPLICA_FORMAT}")
    if not (
        isinstance(v.get("service"), str)
        and isinstance(v.get("kid"), str)
        and _uint(v.get("version"))
        and _int(v.get("madeAt"))
        and _int(v.get("syncedAt"))
        and all(isinstance(v.get(k), dict) for k in ("certificates", "individual", "group"))
    ):
        return bad("a field is missing or of the wrong type")
    certificates = {}
    for name, c in v["certificates"].items():
        der = strict_base64(c.get("der")) if isinstance(c, dict) and isinstance(c.get("der"), str) else None
        if der is None or not isinstance(c.get("verified"), bool):
            return bad(f"certificate {json.dumps(name)}")
        certificates[name] = {"der": der, "verified": c["verified"]}
    return {
        "service": v["service"],
        "kid": v["kid"],
        "version": v["version"],
        "made_at": v["madeAt"],
        "synced_at": v["syncedAt"],
        "certificates": certificates,
        "individual": dict(v["individual"]),
        "group": dict(v["group"]),
    }


def _write_atomically(directory: str, name: str, text: str) -> None:
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        d = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # a directory that cannot be opened for fsync (some platforms): the rename stands
    try:
        os.fsync(d)
    finally:
        os.close(d)


class Replica:
    """A gateway's replica of a service's enrollments, in a directory of its
    own: apply signed snapshots (full or delta) to it, decide from it."""

    def __init__(self, directory: str | os.PathLike[str], policy: Any) -> None:
        """Opens (creating) the replica in ``directory``. ``policy``: the
        Policy whose component decides (and computes lookup keys)."""
        self._dir = os.fspath(directory)
        self._policy = policy
        self._state: dict[str, Any] | None = None
        self._lookups: _Lookups | None = None
        os.makedirs(self._dir, exist_ok=True)
        path = os.path.join(self._dir, REPLICA_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return
        except UnicodeDecodeError as e:
            _fail(f"{path}: the replica's state is unreadable ({e}); sync a full snapshot into a new directory")
        self._state = _loaded(text, path)

    @property
    def state(self) -> dict[str, Any] | None:
        """Where its snapshot came from: ``{"service", "kid", "version", "made_at", "synced_at"}``, or None."""
        if self._state is None:
            return None
        return {k: self._state[k] for k in ("service", "kid", "version", "made_at", "synced_at")}

    def apply(self, data: bytes, trust_key: TrustKey, now: int | None = None) -> dict[str, Any]:
        """Verifies a snapshot's bytes with ``trust_key`` and applies it; on
        any error (SnapshotError) nothing changes, on disk or in memory.
        ``now``: the gateway's clock, Unix seconds. Returns ``{"from",
        "version", "full", "records"}``."""
        now = int(_time.time()) if now is None else _unix(now)
        held = self._state
        snap = read_snapshot(data, trust_key)
        header, records, made_at = snap["header"], snap["records"], snap["made_at"]
        if made_at > now + _CLOCK_SKEW:
            _fail(f"the snapshot was signed at {rfc3339(made_at)}, ahead of this gateway's clock ({rfc3339(now)}): check the clocks")
        if held is None and header["since"] is not None:
            _fail("the replica holds no snapshot, and this is a delta")
        if held is not None:
            if held["service"] != header["service"]:
                _fail(f"the snapshot is of service {json.dumps(header['service'])}; {self._dir} holds service {json.dumps(held['service'])}'s")
            if header["version"] < held["version"]:
                _fail(f"the snapshot's version {header['version']} is lower than the version held ({held['version']}): refused (rollback)")
            if made_at < held["made_at"]:
                _fail("the snapshot was made before the one held: refused (replay)")
            if header["since"] is not None and header["since"] != held["version"]:
                _fail(f"the delta starts at version {header['since']}, not at the version held ({held['version']})")
        base = held if header["since"] is not None and held is not None else {"certificates": {}, "individual": {}, "group": {}}
        nxt = {k: dict(base[k]) for k in ("certificates", "individual", "group")}
        for r in records:
            if "delete" in r:
                nxt["certificates" if r["delete"] == "certificate" else r["delete"]].pop(r["id"], None)
            elif r["put"] == "certificate":
                nxt["certificates"][r["name"]] = {"der": r["der"], "verified": r["verified"]}
            else:
                # Stored keys: an individual enrollment's is its lower-cased registration ID.
                nxt[r["put"]][r["id"]] = r["doc"]
        state = {"service": header["service"], "kid": header["kid"], "version": header["version"], "made_at": made_at, "synced_at": now, **nxt}
        _write_atomically(self._dir, REPLICA_FILE, json.dumps(_stored(state), ensure_ascii=False, separators=(",", ":")))
        self._state = state
        self._lookups = None
        return {"from": None if held is None else held["version"], "version": header["version"], "full": header["since"] is None, "records": len(records)}

    def _decide(self, mode: str, time: Any, purpose: str | None, max_age_seconds: int, run: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        if not isinstance(max_age_seconds, int) or isinstance(max_age_seconds, bool) or max_age_seconds < 0:
            raise TypeError("max_age_seconds must be a non-negative int")
        if self._state is None:
            _fail(f"{self._dir} holds no snapshot yet: apply one (or run host-cli sync) first")
        t, p = _unix(time), _purpose(purpose)
        stale = stale_refusal(self._state, t, max_age_seconds)
        if stale is not None:
            return {"verdict": "refused", "mode": mode, "validationTime": rfc3339(t), "extendedKeyUsage": p, "refusal": stale}
        if self._lookups is None:
            self._lookups = _Lookups(self._state, self._policy)
        self._lookups.begin()
        return self._lookups.explain(run(self._lookups))

    def resolve(
        self,
        registration_id: str,
        leaf: bytes,
        intermediates: Any = (),
        *,
        time: Any = None,
        purpose: str | None = None,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> dict[str, Any]:
        """Enrollment resolution from the replica (no proof of possession),
        as the service would have decided at the version held: the decision
        document."""
        t = _unix(time)
        return self._decide(
            "resolve", t, purpose, max_age_seconds,
            lambda source: self._policy.resolve(registration_id, leaf, intermediates, source, time=t, purpose=purpose),
        )

    def attest(
        self,
        registration_id: str,
        leaf: bytes,
        intermediates: Any = (),
        *,
        time: Any = None,
        purpose: str | None = None,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        **proof: Any,
    ) -> dict[str, Any]:
        """Full attestation from the replica; ``proof``: as for
        :meth:`Policy.attest` (``challenge=`` or ``tls_scheme=`` and
        ``tls_message=``, with ``signature=``)."""
        t = _unix(time)
        return self._decide(
            "attest", t, purpose, max_age_seconds,
            lambda source: self._policy.attest(registration_id, leaf, intermediates, source, time=t, purpose=purpose, **proof),
        )
