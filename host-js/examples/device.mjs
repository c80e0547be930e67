#!/usr/bin/env node
// A device for examples/gateway.mjs: presents its chain over TLS, signs
// the gateway's challenge with its key, prints the gateway's answer.
//
//   node examples/device.mjs --chain device-1.pem --key device-1.key [--port 8443] [--host 127.0.0.1]
//
// Exit codes: 0 admitted, 1 refused, 2 error.

import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';

import { Policy } from '../src/index.js';
import { commonName } from '../src/enrollments.js';
import { base64Decode, base64Encode, pemCertificates } from '../src/pem.js';

/** Connects, answers the challenge; resolves to the gateway's last line. */
export function register({ chainPem, keyPem, host = '127.0.0.1', port }) {
  const leaf = pemCertificates(chainPem)[0];
  const registrationId = commonName(leaf);
  const policy = new Policy();
  return new Promise((resolve, reject) => {
    // The gateway's certificate is not checked here: this example is
    // about the device's admission, not the gateway's identity.
    const socket = connect({ host, port, cert: chainPem, key: keyPem, rejectUnauthorized: false });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      text += chunk;
      const m = /^challenge (\S+)\n/.exec(text);
      if (m && !socket.answered) {
        socket.answered = true;
        const message = policy.challengeMessage(registrationId, base64Decode(m[1])).ok;
        // Ed25519 signs the message itself; ECDSA and RSA keys with SHA-256
        // (the demo PKI's P-256 devices).
        const key = createPrivateKey(keyPem);
        const signature = sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', message, key);
        socket.write(`signature ${base64Encode(signature)}\n`);
      }
    });
    socket.on('end', () => resolve(text.trim().split('\n').at(-1)));
    socket.on('error', reject);
  });
}

// Run as a program (also through a symlink), not when imported by a test.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { chain: { type: 'string' }, key: { type: 'string' }, port: { type: 'string', default: '8443' }, host: { type: 'string', default: '127.0.0.1' } } });
  if (!values.chain || !values.key) {
    console.error('usage: node examples/device.mjs --chain device.pem --key device.key [--port 8443] [--host 127.0.0.1]');
    process.exit(2);
  }
  register({ chainPem: readFileSync(values.chain, 'utf8'), keyPem: readFileSync(values.key, 'utf8'), host: values.host, port: Number(values.port) })
    .then((line) => {
      console.log(line);
      process.exitCode = line.startsWith('admitted') ? 0 : 1;
    })
    .catch((e) => {
      console.error(`error: ${e.message}`);
      process.exitCode = 2;
    });
}
