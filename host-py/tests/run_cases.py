"""The differential harness's Python side: reads the jobs that
host-cli/tests/hosts.rs writes (one JSON object per line), runs each
through this host, and prints one line per job: {"id", "out"}, where "out"
is the decision document's exact text (or, for a CLI job, the exit code
and standard output)."""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from attest import CrlError, CrlSet, EnrollmentError, EnrollmentSet, Policy, Replica, SnapshotError, TrustKey, to_json
from attest.cli import run

policy = Policy()
# Snapshot jobs name a replica; each lives in a directory of this run's.
_replicas: dict[str, Replica] = {}
_replica_root = tempfile.mkdtemp(prefix="attest-replicas-")


def replica(name: str) -> Replica:
    if name not in _replicas:
        # An absolute path names a directory another run (or host) wrote.
        _replicas[name] = Replica(name if Path(name).is_absolute() else Path(_replica_root) / name, policy)
    return _replicas[name]


# Revocation jobs name a CRL set an earlier job loaded.
_crl_sets: dict[str, CrlSet] = {}


def b(s: str) -> bytes:
    return base64.b64decode(s)


def load(job: dict[str, Any]) -> EnrollmentSet | None:
    try:
        s = EnrollmentSet.from_json(job["enrollments"], policy)
        for t in job.get("trust") or []:
            s.add_anchor(b(t))
        return s
    except EnrollmentError:
        return None


def one(job: dict[str, Any]) -> str:
    op = job["op"]
    if op == "validate":
        return to_json(policy.validate_chain(b(job["leaf"]), [b(i) for i in job["intermediates"]], [b(a) for a in job["anchors"]], time=job["time"], purpose=job["purpose"]))
    if op == "load":
        return "load-error" if load(job) is None else "loaded"
    if op == "crls":
        try:
            _crl_sets[job["name"]] = CrlSet(policy, [b(c) for c in job["crls"]])
            return "loaded"
        except CrlError:
            return "load-error"
    if op == "validate-revocation":
        return to_json(policy.validate_chain_revocation(
            b(job["leaf"]), [b(i) for i in job["intermediates"]], [b(a) for a in job["anchors"]],
            _crl_sets[job["crls"]], time=job["time"], purpose=job["purpose"], revocation=job["revocation"],
            allow_undetermined=job["allowUndetermined"], allow_expired_crl=job["allowExpiredCrl"]))
    if op in ("resolve", "attest"):
        s = load(job)
        if s is None:
            return "load-error"
        args = (job["registrationId"], b(job["leaf"]), [b(i) for i in job["intermediates"]], s)
        crls = _crl_sets[job["crls"]] if "crls" in job else None
        if op == "resolve":
            return to_json(policy.resolve(*args, time=job["time"], purpose=job["purpose"], crls=crls))
        p = job["proof"]
        if "challenge" in p:
            d = policy.attest(*args, challenge=b(p["challenge"]), signature=b(p["signature"]), time=job["time"], purpose=job["purpose"], crls=crls)
        else:
            d = policy.attest(*args, tls_scheme=p["scheme"], tls_message=b(p["message"]), signature=b(p["signature"]), time=job["time"], purpose=job["purpose"], crls=crls)
        return to_json(d)
    if op == "challengeMessage":
        out = policy.challenge_message(job["registrationId"], b(job["challenge"]))
        return out.hex() if isinstance(out, bytes) else to_json(out)
    if op == "verifyCaPossession":
        return to_json(policy.verify_ca_possession(b(job["ca"]), b(job["verification"]), job["code"], job["time"]))
    if op == "snapshot-apply":
        try:
            replica(job["replica"]).apply(Path(job["snapshot"]).read_bytes(), TrustKey.from_pem(job["trustKey"]), job["now"])
            return "applied"
        except SnapshotError:
            return "refused"
    if op == "snapshot-resolve":
        r = replica(job["replica"])
        args = (job["registrationId"], b(job["leaf"]), [b(i) for i in job["intermediates"]])
        return to_json(r.resolve(*args, time=job["time"], purpose=job["purpose"], max_age_seconds=job["maxAge"]))
    if op == "cli":
        code, stdout, _ = run(job["argv"], policy)
        return f"{code}\n{stdout}"
    raise ValueError(f"unknown job {op}")


def main() -> None:
    out = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            job = json.loads(line)
            try:
                result = one(job)
            except Exception as e:  # noqa: BLE001 - reported per job, compared by the Rust test
                result = f"host-error: {e}"
            out.append(json.dumps({"id": job["id"], "out": result}, ensure_ascii=False))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
