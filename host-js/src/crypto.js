// The component's `attest:policy/crypto` import, with node:crypto.
//
// The component chooses the key, the algorithm and the bytes; this file
// maps the allow-listed algorithm onto OpenSSL (through node:crypto) and
// answers yes or no. Every failure is `false`, never an exception: a key
// that does not parse, a point off the curve, a signature of the wrong
// shape. The acceptance rules are those of the Rust hosts' aws-lc-rs
// verifier: RSA moduli of 2048 to 8192 bits with an odd public exponent
// from 3 to 2^33 - 1, uncompressed EC points of the algorithm's curve,
// ASN.1 DER ECDSA signatures, 32-byte Ed25519 keys.

import { createPublicKey, verify, constants } from 'node:crypto';

const EC = {
  'ecdsa-p256-sha256': ['P-256', 32, 'sha256'],
  'ecdsa-p256-sha384': ['P-256', 32, 'sha384'],
  'ecdsa-p256-sha512': ['P-256', 32, 'sha512'],
  'ecdsa-p384-sha256': ['P-384', 48, 'sha256'],
  'ecdsa-p384-sha384': ['P-384', 48, 'sha384'],
  'ecdsa-p384-sha512': ['P-384', 48, 'sha512'],
  'ecdsa-p521-sha256': ['P-521', 66, 'sha256'],
  'ecdsa-p521-sha384': ['P-521', 66, 'sha384'],
  'ecdsa-p521-sha512': ['P-521', 66, 'sha512'],
};

const RSA = {
  'rsa-pkcs1-sha256': ['sha256', constants.RSA_PKCS1_PADDING, 0],
  'rsa-pkcs1-sha384': ['sha384', constants.RSA_PKCS1_PADDING, 0],
  'rsa-pkcs1-sha512': ['sha512', constants.RSA_PKCS1_PADDING, 0],
  'rsa-pss-sha256': ['sha256', constants.RSA_PKCS1_PSS_PADDING, 32],
  'rsa-pss-sha384': ['sha384', constants.RSA_PKCS1_PSS_PADDING, 48],
  'rsa-pss-sha512': ['sha512', constants.RSA_PKCS1_PSS_PADDING, 64],
};

/** Every algorithm of the WIT `signature-algorithm` enum (0.3.0). */
export const ALGORITHMS = Object.freeze([...Object.keys(EC), ...Object.keys(RSA), 'ed25519']);

const b64url = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

function ecKey(curve, size, point) {
  if (point.length !== 1 + 2 * size || point[0] !== 0x04) return null;
  return createPublicKey({
    format: 'jwk',
    key: { kty: 'EC', crv: curve, x: b64url(point.subarray(1, 1 + size)), y: b64url(point.subarray(1 + size)) },
  });
}

// RSAPublicKey DER (OpenSSL's parser), with aws-lc-rs's bounds: a
// 2048- to 8192-bit modulus, an odd public exponent from 3 to 2^33 - 1.
function rsaKey(der) {
  const key = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'pkcs1' });
  const { modulusLength, publicExponent } = key.asymmetricKeyDetails;
  if (modulusLength < 2048 || modulusLength > 8192) return null;
  if (publicExponent < 3n || publicExponent > 2n ** 33n - 1n || publicExponent % 2n === 0n) return null;
  return key;
}

/**
 * Whether `signature` is valid over `message` under `publicKey` (the
 * subjectPublicKey BIT STRING content) with `algorithm`.
 * @param {string} algorithm
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} message
 * @param {Uint8Array} signature
 * @returns {boolean}
 */
export function verifySignature(algorithm, publicKey, message, signature) {
  try {
    if (algorithm in EC) {
      const [curve, size, hash] = EC[algorithm];
      const key = ecKey(curve, size, publicKey);
      return key !== null && verify(hash, message, { key, dsaEncoding: 'der' }, signature);
    }
    if (algorithm in RSA) {
      const [hash, padding, saltLength] = RSA[algorithm];
      const key = rsaKey(publicKey);
      if (key === null) return false;
      const options = saltLength ? { key, padding, saltLength } : { key, padding };
      return verify(hash, message, options, signature);
    }
    if (algorithm === 'ed25519') {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      const key = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey) } });
      return verify(null, message, key, signature);
    }
    return false;
  } catch {
    return false;
  }
}
