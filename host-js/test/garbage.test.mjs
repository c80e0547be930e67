import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EnrollmentSet, Policy } from '../src/index.js';
import { pemCertificates } from '../src/pem.js';
import { run } from '../src/cli.js';
import { demoPki } from './support.mjs';

// SplitMix64, as the Rust tests use: a fixed seed, a reproducible failure.
function rng(seed) {
  let s = BigInt(seed);
  return () => {
    s = (s + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return Number((z ^ (z >> 31n)) % 1000000007n);
  };
}

function mutate(next, text) {
  const chars = [...text];
  const at = next() % Math.max(chars.length, 1);
  switch (next() % 5) {
    case 0: chars.splice(at, 1); break;
    case 1: chars.splice(at, 0, '{}[]",:0aA-\\\n'[next() % 13]); break;
    case 2: chars[at] = String.fromCharCode(next() % 128); break;
    case 3: return chars.slice(0, at).join('');
    default: chars.splice(at, 0, ...chars.slice(next() % chars.length, (next() % chars.length) + 1));
  }
  return chars.join('');
}

test('mutated enrollment files load or are refused with an EnrollmentError, never another exception', () => {
  const pki = demoPki();
  const policy = new Policy();
  const next = rng(0x5eed);
  let loaded = 0;
  let refused = 0;
  for (const name of ['enrollments-3-device-3-disabled.json', 'group-line-b.json', 'individual-device-3.json']) {
    const text = pki.text(name);
    for (let i = 0; i < 300; i++) {
      const input = mutate(next, text);
      try {
        EnrollmentSet.fromJson(input, policy);
        loaded++;
      } catch (e) {
        assert.equal(e.name, 'EnrollmentError', `${e.stack}\ninput: ${input.slice(0, 200)}`);
        refused++;
      }
    }
  }
  assert.ok(loaded > 0 && refused > 0, `${loaded} loaded, ${refused} refused`);
  // Nesting deeper than any parser's stack: refused, not a RangeError.
  for (const deep of ['['.repeat(100_000) + ']'.repeat(100_000), '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000)]) {
    assert.throws(() => EnrollmentSet.fromJson(deep, policy), (e) => e.name === 'EnrollmentError');
  }
});

test('mutated PEM and garbage chains through the CLI: exit 1 or 2 with one line, never a throw', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const pki = demoPki();
  const dir = mkdtempSync(join(tmpdir(), 'attest-garbage-'));
  const next = rng(0xbad);
  const text = pki.text('device-4.pem');
  for (let i = 0; i < 120; i++) {
    const file = join(dir, `c${i}.pem`);
    writeFileSync(file, mutate(next, text));
    const out = run(['verify', file, '--enrollments', pki.file('enrollments-1-root-enabled.json'), '--json']);
    assert.ok([0, 1, 2].includes(out.code), `${out.code}`);
    assert.ok(!out.stderr.includes('internal error'), out.stderr);
    const doc = JSON.parse(out.stdout);
    if (out.code === 2) {
      assert.equal(doc.verdict, 'error');
      assert.equal(out.stderr.split('\n').filter(Boolean).length, 1, out.stderr);
    } else {
      assert.equal(doc.verdict, out.code === 0 ? 'accepted' : 'refused');
    }
  }
  assert.ok(pemCertificates(text).length === 2);
});
