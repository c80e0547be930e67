import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { createGateway } from '../examples/gateway.mjs';
import { register } from '../examples/device.mjs';
import { demoPki } from './support.mjs';

// The gateway's own certificate, made with the openssl CLI as the README does.
function gatewayCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'attest-gw-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
    '-days', '1', '-keyout', join(dir, 'gw.key'), '-out', join(dir, 'gw.pem')], { stdio: 'ignore' });
  return { cert: readFileSync(join(dir, 'gw.pem')), key: readFileSync(join(dir, 'gw.key')) };
}

test('the node:tls gateway example admits and refuses with the component\'s explanation', async () => {
  const pki = demoPki();
  const decisions = [];
  const server = createGateway({ ...gatewayCertificate(), enrollments: pki.text('enrollments-2-line-b-disabled.json'), onDecision: (d) => decisions.push(d) });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  try {
    const device = (n) => register({ chainPem: pki.text(`device-${n}.pem`), keyPem: pki.text(`device-${n}.key`), port });
    assert.equal(await device(1), "admitted device-1 by enrollmentGroup 'all-devices'");
    const refused = await device(4);
    assert.match(refused, /^refused enrollment-group-disabled: .* \(chain position 1 'CN=attest demo line B CA'\)$/);
    assert.deepEqual(decisions.map((d) => d.verdict), ['accepted', 'refused']);
    assert.equal(decisions[0].proofOfPossession, 'verified');
  } finally {
    server.close();
  }
});

test('the examples run as programs: gateway.mjs and device.mjs, exit codes 0 and 1', async () => {
  const { spawn, spawnSync } = await import('node:child_process');
  const pki = demoPki();
  const dir = mkdtempSync(join(tmpdir(), 'attest-gw-'));
  const { cert, key } = gatewayCertificate();
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'gw.pem'), cert);
  writeFileSync(join(dir, 'gw.key'), key);
  const examples = new URL('../examples/', import.meta.url).pathname;
  const gateway = spawn(process.execPath, [join(examples, 'gateway.mjs'), '--cert', join(dir, 'gw.pem'), '--key', join(dir, 'gw.key'),
    '--enrollments', pki.file('enrollments-2-line-b-disabled.json'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve, reject) => {
      gateway.stdout.setEncoding('utf8');
      gateway.stdout.once('data', (line) => resolve(/listening on [\d.]+:(\d+)/.exec(line)?.[1]));
      gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    const device = (n) => spawnSync(process.execPath, [join(examples, 'device.mjs'), '--chain', pki.file(`device-${n}.pem`), '--key', pki.file(`device-${n}.key`), '--port', port], { encoding: 'utf8' });
    const one = device(1);
    assert.equal(one.status, 0, one.stderr);
    assert.equal(one.stdout, "admitted device-1 by enrollmentGroup 'all-devices'\n");
    const five = device(5);
    assert.equal(five.status, 1, five.stderr);
    assert.match(five.stdout, /^refused enrollment-group-disabled/);
  } finally {
    gateway.kill();
  }
});
