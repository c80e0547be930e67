"""host-py's side of ``cargo run --release -p attest-tests --example
hosts-bench``: full attestations per second on the inputs that example
writes. Prints a JSON list of decisions/s, one per input."""

import base64
import json
import sys
import time

from attest import EnrollmentSet, Policy


def main() -> None:
    path, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    with open(path, encoding="utf-8") as f:
        inputs = json.load(f)
    policy = Policy()
    rates = []
    for i in inputs:
        b = base64.b64decode
        enrollments = EnrollmentSet.from_json(i["enrollments"], policy)
        args = ("bench-device", b(i["leaf"]), [b(x) for x in i["intermediates"]], enrollments)
        kw = {"challenge": b(i["challenge"]), "signature": b(i["signature"]), "time": i["time"]}
        if policy.attest(*args, **kw)["verdict"] != "accepted":
            raise SystemExit(f"{i['name']} is not accepted")
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        n = 0
        while time.perf_counter() < deadline:
            policy.attest(*args, **kw)
            n += 1
        rates.append(n / (time.perf_counter() - started))
    sys.stdout.write(json.dumps(rates))


if __name__ == "__main__":
    main()
