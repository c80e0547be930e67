"""attest's policy component in Python, on wasmtime-py.

The component is the very file the Rust hosts embed (``host-cli component
--out``), shipped inside this package. Each call runs in a fresh store and
instance, with the Rust hosts' bounds: a linear-memory cap, an epoch
deadline, and optionally fuel. A refusal is a value (a decision document
with ``verdict: "refused"``); :class:`HostError` means the host failed
(trap, deadline, memory cap, an enrollment lookup that raised), never that
a device was admitted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.resources
import threading
import time as _time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import wasmtime
import wasmtime.component as wc

from ._crypto import verify_signature
from ._report import PURPOSES, decision_json, refusal_json, certificate_json

WIT = "0.6.0"


class HostError(Exception):
    """A failure of the host or the sandbox, as opposed to a policy refusal."""


class EnrollmentSource(Protocol):
    """What a gateway implements to answer the component's lookups."""

    def individual(self, registration_id: str) -> dict[str, Any] | None:
        """``{"registration_id", "device_id", "enabled", "certificates": [sha256, ...]}`` or None."""

    def group(self, ca_identity: bytes) -> dict[str, Any] | None:
        """``{"group_id", "enabled"}`` or None."""

    def trust_anchors(self, subject_key: bytes) -> list[bytes]:
        """DER certificates whose subject has this name key."""

    # Optional: ``revocation(kind, entry_id)`` -> ``{"check", "admit_undetermined",
    # "admit_expired"}``; without it every entry gets the default (configured).


def _chain_request(leaf: bytes, intermediates: Sequence[bytes], trust_anchors: Sequence[bytes], time: Any, purpose: str | None) -> tuple[int, str, wc.Record]:
    t, p = _unix(time), _purpose(purpose)
    return t, p, _record(
        leaf=_der(leaf, "leaf"),
        intermediates=_ders(intermediates, "intermediates"),
        trust_anchors=_ders(trust_anchors, "trust_anchors"),
        time=t,
        purpose=PURPOSES[p],
    )


class CrlError(ValueError):
    """A CRL that cannot be loaded (not DER, too large, one too many for its issuer)."""


class CrlSet:
    """CRLs for revocation checking, indexed by their issuer's name key (the
    component's ``index-crl``, so the key and the checks are the Rust
    hosts'). The component selects, verifies and scopes them at every
    decision."""

    def __init__(self, policy: "Policy", ders: Sequence[bytes]) -> None:
        self._by_issuer: dict[bytes, list[bytes]] = {}
        self._size = 0
        for i, der in enumerate(_ders(ders, "crls")):
            out = policy.index_crl(der)
            if "error" in out:
                raise CrlError(f"CRL #{i + 1}: {out['error']}")
            same = self._by_issuer.setdefault(out["ok"], [])
            if der not in same:
                same.append(der)
                self._size += 1

    def __len__(self) -> int:
        return self._size

    def lookup(self, key: bytes) -> list[bytes]:
        """The CRLs whose issuer has this name key."""
        return list(self._by_issuer.get(bytes(key), []))


class _NoCrls:
    def lookup(self, key: bytes) -> list[bytes]:
        return []


REVOCATION_MODES = ("off", "leaf", "chain", "configured")
#: An entry's revocation policy when its source names none.
_DEFAULT_REVOCATION = {"check": "configured", "admit_undetermined": False, "admit_expired": False}


class _NoEnrollments:
    def individual(self, registration_id: str) -> None:
        return None

    def group(self, ca_identity: bytes) -> None:
        return None

    def trust_anchors(self, subject_key: bytes) -> list[bytes]:
        return []


@dataclass(frozen=True)
class Limits:
    """Per-call bounds (the Rust hosts' defaults)."""

    #: Largest linear memory the guest may grow to, bytes.
    memory_bytes: int = 64 << 20
    #: Wall-clock deadline per call, seconds (epoch interruption, 10 ms ticks); None: none.
    deadline: float | None = 1.0
    #: Fuel per call (about one unit per wasm instruction); None: unmetered.
    fuel: int | None = None


_TICK = 0.010


def component_bytes() -> bytes:
    """The component file shipped in this package."""
    return importlib.resources.files("attest").joinpath("attest-policy.wasm").read_bytes()


def component_sha256() -> str:
    """SHA-256 (hex) of the shipped component."""
    return hashlib.sha256(component_bytes()).hexdigest()


def _record(**fields: Any) -> wc.Record:
    r = wc.Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def _unix(time: Any) -> int:
    if time is None:
        return int(_time.time())
    if isinstance(time, _dt.datetime):
        if time.tzinfo is None:
            raise TypeError("time must be an aware datetime (with tzinfo)")
        return int(time.timestamp() // 1)
    if isinstance(time, int) and not isinstance(time, bool):
        if not -(2**63) <= time < 2**63:
            raise ValueError("time is out of the s64 range")
        return time
    raise TypeError("time must be a datetime, an int of Unix seconds or None (now)")


def _purpose(p: str | None) -> str:
    name = p or "clientAuth"
    if name not in PURPOSES:
        raise ValueError(f"purpose must be clientAuth, serverAuth or any, not {name!r}")
    return name


def _der(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes (DER)")


def _ders(values: Sequence[Any] | None, what: str) -> list[bytes]:
    return [_der(v, f"{what}[{i}]") for i, v in enumerate(values or [])]


class Policy:
    """The policy component; every call runs in a fresh sandbox. Thread-safe
    (calls of one Policy run one at a time)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        config = wasmtime.Config()
        config.epoch_interruption = self.limits.deadline is not None
        config.consume_fuel = self.limits.fuel is not None
        self._engine = wasmtime.Engine(config)
        self._component = wc.Component(self._engine, component_bytes())
        # Re-entrant: an enrollment lookup may itself call the component
        # (a replica loads a stored document with index-certificate while
        # the decision that asked for it runs, in a store of its own).
        self._lock = threading.RLock()
        self._source: Any = _NoEnrollments()
        self._crls: Any = _NoCrls()
        self._failure: BaseException | None = None
        self._linker = wc.Linker(self._engine)
        with self._linker.root() as root:
            with root.add_instance(f"attest:policy/crypto@{WIT}") as crypto:
                crypto.add_func("verify-signature", self._verify)
            with root.add_instance(f"attest:policy/enrollments@{WIT}") as enrollments:
                enrollments.add_func("individual", self._individual)
                enrollments.add_func("group", self._group)
                enrollments.add_func("trust-anchors", self._trust_anchors)
                enrollments.add_func("revocation", self._revocation)
            with root.add_instance(f"attest:policy/revocation@{WIT}") as revocation:
                revocation.add_func("crls", self._crls_for)
            with root.add_instance(f"attest:policy/types@{WIT}"):
                pass
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.limits.deadline is not None:
            engine, stop = self._engine, self._stop

            def tick() -> None:
                while not stop.wait(_TICK):
                    engine.increment_epoch()

            self._ticker = threading.Thread(target=tick, name="attest-epoch", daemon=True)
            self._ticker.start()

    def close(self) -> None:
        """Stops the deadline ticker (also done when the Policy is collected)."""
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()

    # --- imports -------------------------------------------------------
    def _guard(self, name: str, fn: Any) -> Any:
        try:
            return fn()
        except BaseException as e:  # a lookup that fails aborts the call
            if self._failure is None:
                self._failure = HostError(f"enrollment lookup {name} failed: {e}")
            raise

    def _verify(self, _store: Any, algorithm: str, key: bytes, message: bytes, signature: bytes) -> bool:
        return verify_signature(algorithm, bytes(key), bytes(message), bytes(signature))

    def _individual(self, _store: Any, registration_id: str) -> wc.Record | None:
        def get() -> wc.Record | None:
            e = self._source.individual(registration_id)
            if e is None:
                return None
            return _record(
                registration_id=str(e["registration_id"]),
                device_id=None if e.get("device_id") is None else str(e["device_id"]),
                enabled=bool(e["enabled"]),
                certificates=[bytes(c) for c in e["certificates"]],
            )

        return self._guard("individual", get)

    def _group(self, _store: Any, ca_identity: bytes) -> wc.Record | None:
        def get() -> wc.Record | None:
            g = self._source.group(bytes(ca_identity))
            if g is None:
                return None
            return _record(group_id=str(g["group_id"]), enabled=bool(g["enabled"]))

        return self._guard("group", get)

    def _trust_anchors(self, _store: Any, subject_key: bytes) -> list[bytes]:
        return self._guard("trust-anchors", lambda: [bytes(d) for d in self._source.trust_anchors(bytes(subject_key))])

    def _revocation(self, _store: Any, entry: Any) -> wc.Record:
        def get() -> wc.Record:
            ask = getattr(self._source, "revocation", None)
            p = ask(str(entry.kind), str(entry.id)) if ask is not None else None
            p = _DEFAULT_REVOCATION if p is None else p
            return _record(
                check=str(p["check"]),
                admit_undetermined=bool(p.get("admit_undetermined")),
                admit_expired=bool(p.get("admit_expired")),
            )

        return self._guard("revocation", get)

    def _crls_for(self, _store: Any, issuer: bytes) -> list[bytes]:
        return self._guard("crls", lambda: [bytes(d) for d in self._crls.lookup(bytes(issuer))])

    # --- calls ---------------------------------------------------------
    def _call(self, source: Any, interface: str, func: str, *args: Any) -> tuple[bool, Any]:
        """(ok, value) of one export in a fresh store; HostError otherwise."""
        with self._lock:
            outer = (self._source, self._failure)
            self._source = source if source is not None else _NoEnrollments()
            self._failure = None
            try:
                store = wasmtime.Store(self._engine)
                store.set_limits(memory_size=self.limits.memory_bytes)
                if self.limits.fuel is not None:
                    store.set_fuel(self.limits.fuel)
                if self.limits.deadline is not None:
                    store.set_epoch_deadline(max(1, int(self.limits.deadline / _TICK + 0.999)))
                instance = self._linker.instantiate(store, self._component)
                index = instance.get_export_index(store, f"attest:policy/{interface}@{WIT}")
                f = instance.get_func(store, instance.get_export_index(store, func, index)) if index else None
                if f is None:
                    raise HostError(f"the component exports no {interface}#{func}")
                result = f(store, *args)
            except HostError:
                raise
            except Exception as e:
                failure = self._failure
                if failure is not None:
                    raise failure from e
                raise HostError(self._explain(e)) from e
            finally:
                self._source, self._failure = outer
        if isinstance(result, wc.Variant):
            return result.tag == "ok", result.payload
        # result<list<_>, refusal> lifts untagged: a list or bytes is ok.
        if isinstance(result, wc.Record):
            return False, result
        return True, result

    def _explain(self, e: Exception) -> str:
        text = str(e)
        if "all fuel consumed" in text:
            return f"policy component exceeded its fuel allowance of {self.limits.fuel} units"
        if "interrupt" in text:
            return f"policy component exceeded its deadline of {self.limits.deadline} s"
        return f"policy component failed: {text.splitlines()[0] if text else type(e).__name__}"

    def validate_chain(
        self,
        leaf: bytes,
        intermediates: Sequence[bytes] = (),
        trust_anchors: Sequence[bytes] = (),
        time: Any = None,
        purpose: str | None = None,
    ) -> dict[str, Any]:
        """Chain validation (RFC 5280 §6 under attest's profile): the decision document (mode chain)."""
        t, p, request = _chain_request(leaf, intermediates, trust_anchors, time, purpose)
        ok, value = self._call(None, "chain", "validate", request)
        return decision_json("chain", t, p, ok, value)

    def validate_chain_revocation(
        self,
        leaf: bytes,
        intermediates: Sequence[bytes] = (),
        trust_anchors: Sequence[bytes] = (),
        crls: "CrlSet | None" = None,
        time: Any = None,
        purpose: str | None = None,
        revocation: str = "chain",
        allow_undetermined: bool = False,
        allow_expired_crl: bool = False,
    ) -> dict[str, Any]:
        """Chain validation with revocation checking (RFC 5280 §6.3) against
        ``crls``: the decision document (mode chain, with ``revocation`` and
        ``warnings``)."""
        if not isinstance(crls, CrlSet):
            raise TypeError("crls must be a CrlSet")
        if revocation not in REVOCATION_MODES:
            raise ValueError(f"revocation must be one of {', '.join(REVOCATION_MODES)}")
        t, p, request = _chain_request(leaf, intermediates, trust_anchors, time, purpose)
        policy = _record(
            mode=revocation,
            undetermined="warn" if allow_undetermined else "refuse",
            expired="warn" if allow_expired_crl else "refuse",
        )
        with self._lock:
            outer = self._crls
            self._crls = crls
            try:
                ok, value = self._call(None, "chain", "validate-with-revocation", request, policy)
            finally:
                self._crls = outer
        doc = decision_json("chain", t, p, ok, value.path if ok else value)
        doc["revocation"] = revocation
        doc["warnings"] = [refusal_json(w) for w in value.warnings] if ok else []
        return doc

    def index_crl(self, der: bytes) -> dict[str, Any]:
        """``{"ok": issuer name key}`` of a CRL the component checked, or ``{"error": message}``."""
        ok, value = self._call(None, "chain", "index-crl", _der(der, "crl"))
        if not ok or isinstance(value, str):
            return {"error": str(value)}
        return {"ok": bytes(value)}

    def _attest_request(self, registration_id: str, leaf: bytes, intermediates: Sequence[bytes], time: Any, purpose: str | None) -> tuple[int, str, wc.Record]:
        if not isinstance(registration_id, str):
            raise TypeError("registration_id must be a str")
        t, p = _unix(time), _purpose(purpose)
        return t, p, _record(
            registration_id=registration_id,
            leaf=_der(leaf, "leaf"),
            intermediates=_ders(intermediates, "intermediates"),
            time=t,
            purpose=PURPOSES[p],
        )

    def resolve(
        self,
        registration_id: str,
        leaf: bytes,
        intermediates: Sequence[bytes] = (),
        enrollments: EnrollmentSource | None = None,
        time: Any = None,
        purpose: str | None = None,
        crls: "CrlSet | None" = None,
    ) -> dict[str, Any]:
        """Enrollment resolution without proof of possession (a dry run).
        With ``crls``, the deciding entry's revocation policy is checked
        against them and the document carries ``warnings``."""
        t, p, request = self._attest_request(registration_id, leaf, intermediates, time, purpose)
        if crls is not None:
            return self._with_crls(crls, "resolve", t, p, enrollments, "resolve-with-warnings", request)
        ok, value = self._call(enrollments, "attestation", "resolve", request)
        return decision_json("resolve", t, p, ok, value)

    def _with_crls(self, crls: "CrlSet", mode: str, t: int, p: str, enrollments: Any, func: str, *args: Any) -> dict[str, Any]:
        if not isinstance(crls, CrlSet):
            raise TypeError("crls must be a CrlSet")
        with self._lock:
            outer = self._crls
            self._crls = crls
            try:
                ok, value = self._call(enrollments, "attestation", func, *args)
            finally:
                self._crls = outer
        doc = decision_json(mode, t, p, ok, value.decision if ok else value)
        doc["revocation"] = "entry"
        doc["warnings"] = [refusal_json(w) for w in value.warnings] if ok else []
        return doc

    def attest(
        self,
        registration_id: str,
        leaf: bytes,
        intermediates: Sequence[bytes] = (),
        enrollments: EnrollmentSource | None = None,
        *,
        challenge: bytes | None = None,
        signature: bytes,
        tls_scheme: int | None = None,
        tls_message: bytes | None = None,
        time: Any = None,
        purpose: str | None = None,
        crls: "CrlSet | None" = None,
    ) -> dict[str, Any]:
        """Full attestation. The proof is ``challenge`` + ``signature`` (a
        signature over :meth:`challenge_message`), or ``tls_scheme`` +
        ``tls_message`` + ``signature`` (a TLS CertificateVerify)."""
        t, p, request = self._attest_request(registration_id, leaf, intermediates, time, purpose)
        if challenge is not None:
            proof = wc.Variant("challenge-signature", _record(challenge=_der(challenge, "challenge"), signature=_der(signature, "signature")))
        elif tls_scheme is not None:
            if not isinstance(tls_scheme, int) or not 0 <= tls_scheme <= 0xFFFF:
                raise ValueError("tls_scheme must be a TLS SignatureScheme code point (0 to 65535)")
            proof = wc.Variant(
                "tls-signature",
                _record(scheme=tls_scheme, message=_der(tls_message, "tls_message"), signature=_der(signature, "signature")),
            )
        else:
            raise TypeError("give challenge= or tls_scheme= and tls_message= with signature=")
        if crls is not None:
            return self._with_crls(crls, "attest", t, p, enrollments, "attest-with-warnings", request, proof)
        ok, value = self._call(enrollments, "attestation", "attest", request, proof)
        return decision_json("attest", t, p, ok, value)

    def challenge_message(self, registration_id: str, challenge: bytes) -> bytes | dict[str, Any]:
        """The exact bytes a device signs for a challenge proof, or the refusal (a dict)."""
        ok, value = self._call(None, "attestation", "challenge-message", str(registration_id), _der(challenge, "challenge"))
        return bytes(value) if ok else refusal_json(value)

    def index_certificate(self, der: bytes) -> dict[str, bytes] | dict[str, Any]:
        """``{"sha256", "subject_key", "ca_identity"}`` of a CA certificate, or ``{"refusal": ...}``."""
        ok, value = self._call(None, "attestation", "index-certificate", _der(der, "certificate"))
        if not ok:
            return {"refusal": refusal_json(value)}
        return {
            "sha256": bytes(value.sha256),
            "subject_key": bytes(getattr(value, "subject-key")),
            "ca_identity": bytes(getattr(value, "ca-identity")),
        }

    def verify_ca_possession(self, ca_certificate: bytes, verification_certificate: bytes, verification_code: str, time: Any = None) -> dict[str, Any]:
        """CA proof of possession: ``{"ok": certificate}`` or ``{"refusal": ...}``."""
        ok, value = self._call(
            None,
            "attestation",
            "verify-ca-possession",
            _der(ca_certificate, "ca_certificate"),
            _der(verification_certificate, "verification_certificate"),
            str(verification_code),
            _unix(time),
        )
        return {"ok": certificate_json(value)} if ok else {"refusal": refusal_json(value)}
