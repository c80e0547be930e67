import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, createPublicKey } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ALGORITHMS, EnrollmentSet, HostError, Policy, component, toJson, verifySignature } from '../src/index.js';
import { run } from '../src/cli.js';
import { pemCertificates } from '../src/pem.js';
import { demoPki, hostCli } from './support.mjs';

const dist = new URL('../dist/', import.meta.url);

test('dist holds the exact component host-cli embeds (SHA-256)', () => {
  const built = readFileSync(new URL('attest-policy.wasm', dist));
  assert.equal(createHash('sha256').update(built).digest('hex'), component.sha256);
  const out = join(mkdtempSync(join(tmpdir(), 'attest-js-')), 'c.wasm');
  execFileSync(hostCli(), ['component', '--out', out], { stdio: 'ignore' });
  assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), component.sha256);
});

// A key pair and its subjectPublicKey content, as the component hands it over.
function keyFor(algorithm) {
  const spkiRaw = (publicKey) => {
    const der = publicKey.export({ format: 'der', type: 'spki' });
    if (algorithm.startsWith('rsa')) return new Uint8Array(publicKey.export({ format: 'der', type: 'pkcs1' }));
    if (algorithm === 'ed25519') return new Uint8Array(der.subarray(der.length - 32));
    const jwk = publicKey.export({ format: 'jwk' });
    return new Uint8Array(Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]));
  };
  let pair;
  if (algorithm.startsWith('ecdsa')) {
    const curve = { p256: 'prime256v1', p384: 'secp384r1', p521: 'secp521r1' }[algorithm.split('-')[1]];
    pair = generateKeyPairSync('ec', { namedCurve: curve });
  } else if (algorithm.startsWith('rsa')) {
    pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else {
    pair = generateKeyPairSync('ed25519');
  }
  return { ...pair, raw: spkiRaw(pair.publicKey) };
}

function signWith(algorithm, privateKey, message) {
  if (algorithm === 'ed25519') return sign(null, message, privateKey);
  const hash = algorithm.split('-').at(-1);
  if (algorithm.startsWith('rsa-pss')) {
    return sign(hash, message, { key: privateKey, padding: 6, saltLength: { sha256: 32, sha384: 48, sha512: 64 }[hash] });
  }
  return sign(hash, message, privateKey);
}

test('verify-signature: every WIT algorithm verifies a real signature and rejects a wrong one', () => {
  assert.equal(ALGORITHMS.length, 16);
  const message = Buffer.from('attest');
  for (const algorithm of ALGORITHMS) {
    const { privateKey, raw } = keyFor(algorithm);
    const signature = new Uint8Array(signWith(algorithm, privateKey, message));
    assert.equal(verifySignature(algorithm, raw, message, signature), true, algorithm);
    assert.equal(verifySignature(algorithm, raw, Buffer.from('attesT'), signature), false, `${algorithm} other message`);
    const bad = signature.slice();
    bad[bad.length - 1] ^= 1;
    assert.equal(verifySignature(algorithm, raw, message, bad), false, `${algorithm} flipped bit`);
    assert.equal(verifySignature(algorithm, raw.subarray(1), message, signature), false, `${algorithm} truncated key`);
    assert.equal(verifySignature(algorithm, new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)), false);
  }
  // An ECDSA key of another curve than the algorithm's: refused.
  const p256 = keyFor('ecdsa-p256-sha256');
  const sig = new Uint8Array(signWith('ecdsa-p256-sha384', p256.privateKey, message));
  assert.equal(verifySignature('ecdsa-p256-sha384', p256.raw, message, sig), true);
  assert.equal(verifySignature('ecdsa-p384-sha384', p256.raw, message, sig), false);
  // A point off the curve, an unknown algorithm: false, never a throw.
  const off = p256.raw.slice();
  off[40] ^= 1;
  assert.equal(verifySignature('ecdsa-p256-sha256', off, message, sig), false);
  assert.equal(verifySignature('dsa-sha1', p256.raw, message, sig), false);
});

test('RSA keys outside 2048..8192 bits are refused as aws-lc-rs refuses them', () => {
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const raw = new Uint8Array(small.publicKey.export({ format: 'der', type: 'pkcs1' }));
  const signature = sign('sha256', Buffer.from('m'), small.privateKey);
  assert.equal(verifySignature('rsa-pkcs1-sha256', raw, Buffer.from('m'), signature), false);
});

function canonicalDecision(policy, n, setName) {
  const pki = demoPki();
  const chain = pemCertificates(pki.text(`device-${n}.pem`));
  const set = EnrollmentSet.fromJson(pki.text(setName), policy);
  return policy.resolve({ registrationId: `device-${n}`, leaf: chain[0], intermediates: chain.slice(1) }, set);
}

test('the canonical scenario: a refusal is a value naming code, position and entry', () => {
  const policy = new Policy();
  const ok = canonicalDecision(policy, 1, 'enrollments-2-line-b-disabled.json');
  assert.equal(ok.verdict, 'accepted');
  assert.deepEqual(ok.enrollment, { kind: 'enrollmentGroup', id: 'all-devices' });
  assert.equal(ok.path.length, 3);
  const no = canonicalDecision(policy, 4, 'enrollments-2-line-b-disabled.json');
  assert.equal(no.verdict, 'refused');
  assert.equal(no.refusal.code, 'enrollment-group-disabled');
  assert.equal(no.refusal.certificate.position, 1);
  assert.deepEqual(no.refusal.enrollment, { kind: 'enrollmentGroup', id: 'line-b' });
  const three = canonicalDecision(policy, 3, 'enrollments-3-device-3-disabled.json');
  assert.equal(three.refusal.code, 'individual-enrollment-disabled');
  assert.equal(three.refusal.certificate.position, 0);
});

test('challenge proof: own key admitted, another key refused', () => {
  const policy = new Policy();
  const pki = demoPki();
  const chain = pemCertificates(pki.text('device-1.pem'));
  const set = EnrollmentSet.fromJson(pki.text('enrollments-1-root-enabled.json'), policy);
  const challenge = new Uint8Array(32).fill(9);
  const message = policy.challengeMessage('device-1', challenge).ok;
  const request = { registrationId: 'device-1', leaf: chain[0], intermediates: chain.slice(1) };
  for (const [keyFile, verdict] of [['device-1.key', 'accepted'], ['device-2.key', 'refused']]) {
    const signature = sign('sha256', message, pki.text(keyFile));
    const d = policy.attest(request, { challenge, signature: new Uint8Array(signature) }, set);
    assert.equal(d.verdict, verdict, keyFile);
    if (verdict === 'refused') assert.equal(d.refusal.code, 'proof-of-possession-failed');
    else assert.equal(d.proofOfPossession, 'verified');
  }
  assert.ok(policy.challengeMessage('device-1', new Uint8Array(3)).refusal);
});

test('an enrollment lookup that throws fails the call; it never falls through to a group', () => {
  const policy = new Policy();
  const pki = demoPki();
  const chain = pemCertificates(pki.text('device-3.pem'));
  const real = EnrollmentSet.fromJson(pki.text('enrollments-3-device-3-disabled.json'), policy);
  const broken = {
    individual() { throw new Error('database down'); },
    group: (ca) => real.group(ca),
    trustAnchors: (k) => real.trustAnchors(k),
  };
  const request = { registrationId: 'device-3', leaf: chain[0], intermediates: chain.slice(1) };
  assert.throws(() => policy.resolve(request, broken), (e) => e instanceof HostError && /database down/.test(e.message));
  // The Policy is usable again afterwards, and the real answer is a refusal.
  assert.equal(policy.resolve(request, real).refusal.code, 'individual-enrollment-disabled');
  // A lookup returning garbage (not a record) fails the call too.
  const garbage = { individual: () => ({ registrationId: 7 }), group: () => undefined, trustAnchors: () => [] };
  assert.throws(() => policy.resolve(request, garbage), HostError);
});

test('the memory cap: a call that leaves the sandbox over its cap is a HostError', () => {
  const policy = new Policy({ memoryBytes: 64 * 1024 });
  assert.throws(() => policy.validateChain({ leaf: new Uint8Array([0x30]), trustAnchors: [] }), (e) => e instanceof HostError && /cap/.test(e.message));
});

test('bad arguments are TypeErrors, bad certificates are refusals', () => {
  const policy = new Policy();
  assert.throws(() => policy.validateChain({ leaf: 'not bytes' }), TypeError);
  assert.throws(() => policy.validateChain({ leaf: new Uint8Array(1), purpose: 'email' }), TypeError);
  assert.throws(() => policy.validateChain({ leaf: new Uint8Array(1), time: 1.5 }), TypeError);
  const d = policy.validateChain({ leaf: new Uint8Array([1, 2, 3]), trustAnchors: [], time: 0 });
  assert.equal(d.refusal.code, 'malformed-certificate');
  assert.equal(d.validationTime, '1970-01-01T00:00:00Z');
});

test('the CLI: exit codes 0, 1 and 2, one-line errors, never a throw', () => {
  const pki = demoPki();
  const ok = run(['verify', pki.file('device-1.pem'), '--enrollments', pki.file('enrollments-3-device-3-disabled.json')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^ACCEPTED  device-1 is admitted by enrollment group 'all-devices'/);
  const no = run(['verify', pki.file('device-3.pem'), '--enrollments', pki.file('enrollments-3-device-3-disabled.json'), '--json']);
  assert.equal(no.code, 1);
  assert.equal(JSON.parse(no.stdout).refusal.code, 'individual-enrollment-disabled');
  const dir = mkdtempSync(join(tmpdir(), 'attest-js-'));
  writeFileSync(join(dir, 'empty.pem'), '  \n');
  writeFileSync(join(dir, 'bad.json'), '{"enrollmentGroups": 3}');
  for (const [argv, needle] of [
    [['verify'], 'required'],
    [['verify', 'x.pem', '--eku', 'email'], "invalid value 'email'"],
    [['verify', 'x.pem', '--challenge', 'AA'], '--signature'],
    [['verify', join(dir, 'missing.pem'), '--trust', 'x'], 'No such file or directory (os error 2)'],
    [['verify', join(dir, 'empty.pem'), '--trust', 'x'], 'is empty'],
    [['verify', pki.file('device-1.pem')], 'give --trust'],
    [['verify', pki.file('device-1.pem'), '--enrollments', join(dir, 'bad.json')], 'bad.json'],
    [['verify', pki.file('device-1.pem'), '--trust', pki.file('root-ca.pem'), '--at', 'yesterday'], 'RFC 3339'],
    [['verify', pki.file('device-1.pem'), '--trust', '/dev/zero'], 'limit'],
    [['frobnicate'], 'unrecognized subcommand'],
  ]) {
    const out = run(argv);
    assert.equal(out.code, 2, `${argv.join(' ')}: ${out.stdout}${out.stderr}`);
    assert.ok(out.stderr.includes(needle), `${argv.join(' ')}: ${out.stderr}`);
  }
  const json = run(['verify', pki.file('device-1.pem'), '--json']);
  assert.equal(json.code, 2);
  assert.equal(JSON.parse(json.stdout).verdict, 'error');
});

test('bin/attest.js: the process exits with the decision\'s code', () => {
  const pki = demoPki();
  const bin = new URL('../bin/attest.js', import.meta.url).pathname;
  const out = spawnSync(process.execPath, [bin, 'verify', pki.file('device-4.pem'), '--enrollments', pki.file('enrollments-2-line-b-disabled.json')], { encoding: 'utf8' });
  assert.equal(out.status, 1);
  assert.match(out.stdout, /REFUSED   enrollment-group-disabled/);
  assert.equal(spawnSync(process.execPath, [bin, '--help']).status, 0);
});

test('toJson sorts keys and matches serde_json escaping', () => {
  assert.equal(toJson({ b: 1, a: 'x\u0001"\\\n\u007f\u00e9' }), '{"a":"x\\u0001\\"\\\\\\n\u007f\u00e9","b":1}');
  assert.ok(createPublicKey);
});
