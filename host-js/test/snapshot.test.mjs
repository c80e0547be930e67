// The Node.js replica on snapshots this test signs itself (the format of
// service/src/snapshot.rs): what applies, what is refused and leaves the
// replica as it was, and what a device is told. host-cli/tests/hosts.rs
// compares it with the Rust replica on snapshots the service layer writes.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { DEFAULT_MAX_AGE_SECONDS, Policy, Replica, SnapshotError, TrustKey } from '../src/index.js';
import { pemCertificates } from '../src/pem.js';
import { rfc3339 } from '../src/report.js';
import { demoPki } from './support.mjs';

const policy = new Policy();
const pki = demoPki();
// The gateway's clock and the decisions' time: the demo PKI is valid from now on.
const NOW = Math.floor(Date.now() / 1000) + 120;
const b64url = (b) => Buffer.from(b).toString('base64url');

/** Signs snapshots as host-http does, with a key of its own. */
function service(name = '0ne00000001') {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  const trust = TrustKey.fromPem(pem);
  const snapshot = (version, records, { since = null, madeAt = NOW, kid = trust.kid } = {}) => {
    const lines = [JSON.stringify({ attestSnapshot: 1, service: name, kid, version, since, madeAt: rfc3339(madeAt) }), ...records.map((r) => JSON.stringify(r))];
    const body = Buffer.from(lines.map((l) => `${l}\n`).join(''));
    const claims = { iss: name, iat: madeAt, ver: version, since, lines: lines.length, sha256: createHash('sha256').update(body).digest('hex') };
    const input = `${b64url(JSON.stringify({ alg: 'EdDSA', kid }))}.${b64url(JSON.stringify(claims))}`;
    const jwt = `${input}.${b64url(sign(null, Buffer.from(input), privateKey))}`;
    return Buffer.concat([body, Buffer.from(`${JSON.stringify({ signature: jwt })}\n`)]);
  };
  return { name, trust, snapshot };
}

const group = (id, caPem, status = 'enabled') => ({
  put: 'group', id, etag: 'e1',
  doc: { enrollmentGroupId: id, provisioningStatus: status, attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: caPem } } } } },
});

function decide(replica, n, time, maxAge, rid = `device-${n}`) {
  const [leaf, ...intermediates] = pemCertificates(pki.text(`device-${n}.pem`));
  return replica.resolve({ registrationId: rid, leaf, intermediates, time }, maxAge);
}

const fresh = () => join(mkdtempSync(join(tmpdir(), 'attest-replica-')), 'gateway');

test('a group disabled on the service refuses after the delta; the replica reopens from disk', () => {
  const svc = service();
  const dir = fresh();
  const replica = new Replica(dir, policy);
  const root = pki.text('root-ca.pem');
  assert.deepEqual(replica.apply(svc.snapshot(3, [group('all-devices', root)]), svc.trust, NOW), { from: null, version: 3, full: true, records: 1 });
  assert.deepEqual(decide(replica, 1, NOW).enrollment, { kind: 'enrollmentGroup', id: 'all-devices' });
  replica.apply(svc.snapshot(4, [group('all-devices', root, 'disabled')], { since: 3, madeAt: NOW + 1 }), svc.trust, NOW + 1);
  const refused = decide(replica, 1, NOW + 1);
  assert.equal(refused.refusal.code, 'enrollment-group-disabled');
  const again = new Replica(dir, policy);
  assert.deepEqual(again.state, { service: svc.name, kid: svc.trust.kid, version: 4, madeAt: NOW + 1, syncedAt: NOW + 1 });
  assert.deepEqual(decide(again, 1, NOW + 1), refused);
});

test('whatever does not verify or apply leaves the replica as it was', () => {
  const svc = service();
  const other = service('0ne00000002');
  const dir = fresh();
  const replica = new Replica(dir, policy);
  const root = pki.text('root-ca.pem');
  replica.apply(svc.snapshot(5, [group('all-devices', root)]), svc.trust, NOW);
  const onDisk = readFileSync(join(dir, 'snapshot-replica.json'));
  const disabled = [group('all-devices', root, 'disabled')];
  const newer = svc.snapshot(6, disabled, { madeAt: NOW + 1 });
  const bad = {
    'wrong key': [svc.snapshot(6, disabled), other.trust],
    'another service': [other.snapshot(6, disabled), other.trust],
    rollback: [svc.snapshot(4, disabled, { madeAt: NOW + 5 }), svc.trust],
    'replay of an older signing': [svc.snapshot(6, disabled, { madeAt: NOW - 5 }), svc.trust],
    'delta from another base': [svc.snapshot(7, disabled, { since: 6 }), svc.trust],
    'signed in the future': [svc.snapshot(6, disabled, { madeAt: NOW + 302 }), svc.trust],
    'kid of another key': [svc.snapshot(6, disabled, { kid: other.trust.kid }), svc.trust],
    empty: [Buffer.alloc(0), svc.trust],
    'line added after the signature': [Buffer.concat([newer, Buffer.from('{}\n')]), svc.trust],
  };
  for (const cut of [0, 1, newer.length >> 1, newer.length - 1]) bad[`truncated to ${cut}`] = [newer.subarray(0, cut), svc.trust];
  for (let at = 0; at < newer.length; at += 7) {
    const flipped = Buffer.from(newer);
    flipped[at] ^= flipped[at] === 0x0a ? 0x01 : 0x20;
    bad[`byte ${at} changed`] = [flipped, svc.trust];
  }
  for (const [what, [bytes, key]] of Object.entries(bad)) {
    assert.throws(() => replica.apply(bytes, key, NOW + 1), SnapshotError, what);
    assert.deepEqual(readFileSync(join(dir, 'snapshot-replica.json')), onDisk, what);
    assert.equal(replica.state.version, 5, what);
    assert.equal(decide(replica, 1, NOW).verdict, 'accepted', what);
  }
  assert.equal(replica.apply(newer, svc.trust, NOW + 1).version, 6);
});

test('every device is refused once the snapshot is too old; a maximum age that is not a number is an error', () => {
  const svc = service();
  const replica = new Replica(fresh(), policy);
  replica.apply(svc.snapshot(1, [group('all-devices', pki.text('root-ca.pem'))]), svc.trust, NOW);
  assert.equal(decide(replica, 2, NOW + DEFAULT_MAX_AGE_SECONDS).verdict, 'accepted');
  const stale = decide(replica, 2, NOW + DEFAULT_MAX_AGE_SECONDS + 1);
  assert.equal(stale.refusal.code, 'enrollments-stale');
  assert.match(stale.refusal.message, /1d 1s old/);
  assert.equal(decide(replica, 2, NOW + 61, 60).refusal.code, 'enrollments-stale');
  assert.equal(decide(replica, 2, NOW + 10 ** 6, undefined, 'nobody').refusal.code, 'enrollments-stale');
  for (const maxAge of [NaN, '3600', -1, 1.5, null, Infinity]) {
    assert.throws(() => decide(replica, 2, NOW + 10 ** 6, maxAge), TypeError, String(maxAge));
  }
});

test('a delta needs a full snapshot first; a damaged replica file is an error, not an empty replica', () => {
  const svc = service();
  const replica = new Replica(fresh(), policy);
  assert.throws(() => replica.apply(svc.snapshot(2, [], { since: 1 }), svc.trust, NOW), /holds no snapshot, and this is a delta/);
  assert.equal(replica.state, null);
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  for (const text of ['', '{', '{"attestReplica": 2}', '{"attestReplica": 1, "service": "s"}']) {
    writeFileSync(join(dir, 'snapshot-replica.json'), text);
    assert.throws(() => new Replica(dir, policy), /unreadable/, text);
  }
  assert.throws(() => TrustKey.fromPem('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), /not an Ed25519 public key/);
});
