"""Bad input gets a clear error: mutated enrollment files and chains never
raise anything but EnrollmentError (loader) or exit 1/2 with one line (CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from attest import EnrollmentError, EnrollmentSet, Policy
from attest.cli import run


class Rng:
    """SplitMix64, as the Rust tests use: a fixed seed, a reproducible failure."""

    def __init__(self, seed: int) -> None:
        self.s = seed

    def __call__(self) -> int:
        self.s = (self.s + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return (z ^ (z >> 31)) % 1000000007


def mutate(rng: Rng, text: str) -> str:
    chars = list(text)
    at = rng() % max(len(chars), 1)
    kind = rng() % 5
    if kind == 0:
        del chars[at:at + 1]
    elif kind == 1:
        chars.insert(at, '{}[]",:0aA-\\\n'[rng() % 13])
    elif kind == 2 and chars:
        chars[at] = chr(rng() % 128)
    elif kind == 3:
        return "".join(chars[:at])
    else:
        a = rng() % max(len(chars), 1)
        chars[at:at] = chars[a:a + 1 + rng() % 20]
    return "".join(chars)


def test_mutated_enrollment_files_load_or_raise_enrollment_error(policy: Policy, pki: Path) -> None:
    rng = Rng(0x5EED)
    loaded = refused = 0
    for name in ("enrollments-3-device-3-disabled.json", "group-line-b.json", "individual-device-3.json"):
        text = (pki / name).read_text()
        for _ in range(300):
            data = mutate(rng, text)
            try:
                EnrollmentSet.from_json(data, policy)
                loaded += 1
            except EnrollmentError:
                refused += 1
    assert loaded and refused, (loaded, refused)
    # Nesting deeper than the parser's recursion: refused, not a RecursionError.
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000):
        try:
            EnrollmentSet.from_json(deep, policy)
            raise AssertionError("a deeply nested document loaded")
        except EnrollmentError:
            pass


def test_mutated_chains_through_the_cli_exit_1_or_2_with_one_line(policy: Policy, pki: Path, tmp_path: Path) -> None:
    rng = Rng(0xBAD)
    text = (pki / "device-4.pem").read_text()
    for i in range(120):
        f = tmp_path / f"c{i}.pem"
        f.write_text(mutate(rng, text))
        code, out, err = run(["verify", str(f), "--enrollments", str(pki / "enrollments-1-root-enabled.json"), "--json"], policy)
        doc = json.loads(out)
        assert "internal error" not in err, err
        if code == 2:
            assert doc["verdict"] == "error" and len(err.strip().splitlines()) == 1, err
        else:
            assert doc["verdict"] == ("accepted" if code == 0 else "refused")
