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
