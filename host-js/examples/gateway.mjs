#!/usr/bin/env node
// A device gateway on node:tls that admits devices with attest's policy
// component.
//
//   node examples/gateway.mjs --cert gateway.pem --key gateway.key \
//        --enrollments enrollments.json [--port 8443] [--host 127.0.0.1]
//
// The server requests a client certificate and takes whatever chain the
// device presents (rejectUnauthorized: false: the component, not OpenSSL,
// decides, and explains). Node's TLS checks the device's CertificateVerify
// against the leaf key during the handshake, so the device has proven its
// key to OpenSSL; but Node does not hand the signed transcript over, so
// the component cannot check that proof itself (the tls-signature proof
// needs it). The gateway therefore asks for attest's challenge proof over
// the TLS connection:
//
//   gateway → device   challenge <base64url 32 random bytes>
//   device  → gateway  signature <base64url signature over challengeMessage(CN, challenge)>
//   gateway → device   admitted <registrationId> by <entry>   |   refused <code>: <message>
//
// and admits the device only if `attest` accepts: chain, enrollment entry
// and the challenge signature, all decided by the component.

import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:tls';
import { parseArgs } from 'node:util';

import { EnrollmentSet, Policy } from '../src/index.js';
import { commonName } from '../src/enrollments.js';
import { base64Decode, base64Encode } from '../src/pem.js';

/** The presented chain, leaf first, as DER (what getPeerCertificate(true) links). */
export function presentedChain(socket) {
  const chain = [];
  const seen = new Set();
  for (let c = socket.getPeerCertificate(true); c && c.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    chain.push(new Uint8Array(c.raw));
  }
  return chain;
}

function describe(d) {
  if (d.verdict === 'accepted') return `admitted ${d.registrationId} by ${d.enrollment.kind} '${d.enrollment.id}'`;
  const r = d.refusal;
  const where = r.certificate ? ` (chain position ${r.certificate.position} '${r.certificate.subject}')` : '';
  return `refused ${r.code}: ${r.message}${where}`;
}

/**
 * A gateway server; `onDecision(decision)` sees every decision.
 * Listening is the caller's (server.listen(port, host)).
 */
export function createGateway({ cert, key, enrollments, onDecision = () => {}, timeoutMs = 10_000 }) {
  const policy = new Policy();
  const set = EnrollmentSet.fromJson(enrollments, policy);
  const server = createServer({ cert, key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (socket) => {
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('error', () => {});
    const chain = presentedChain(socket);
    if (chain.length === 0) {
      socket.end('refused no-certificate: present a device certificate\n');
      return;
    }
    const [leaf, ...intermediates] = chain;
    const registrationId = commonName(leaf) || 'unreadable-leaf';
    const challenge = randomBytes(32);
    socket.write(`challenge ${base64Encode(challenge)}\n`);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (text) => {
      buffered += text;
      if (buffered.length > 4096) return socket.destroy();
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      const [word, value] = buffered.slice(0, nl).trim().split(' ');
      const signature = word === 'signature' && value ? base64Decode(value) : null;
      if (signature === null) {
        socket.end('refused invalid-proof: expected "signature <base64url>"\n');
        return;
      }
      const decision = policy.attest({ registrationId, leaf, intermediates }, { challenge, signature }, set);
      onDecision(decision);
      socket.end(`${describe(decision)}\n`);
    });
  });
  return server;
}

// Run as a program (also through a symlink), not when imported by a test.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      cert: { type: 'string' }, key: { type: 'string' }, enrollments: { type: 'string' },
      port: { type: 'string', default: '8443' }, host: { type: 'string', default: '127.0.0.1' },
    },
  });
  if (!values.cert || !values.key || !values.enrollments) {
    console.error('usage: node examples/gateway.mjs --cert gateway.pem --key gateway.key --enrollments enrollments.json [--port 8443] [--host 127.0.0.1]');
    process.exit(2);
  }
  const server = createGateway({
    cert: readFileSync(values.cert),
    key: readFileSync(values.key),
    enrollments: readFileSync(values.enrollments, 'utf8'),
    onDecision: (d) => console.log(describe(d)),
  });
  server.listen(Number(values.port), values.host, () => console.log(`gateway listening on ${values.host}:${server.address().port}`));
}
