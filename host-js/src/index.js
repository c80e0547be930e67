// attest's policy component in Node.js.
//
// The component is the very file the Rust hosts embed (`host-cli component
// --out`), transpiled by jco into dist/policy/. This module instantiates it
// with three imports implemented here: `crypto.verify-signature`
// (node:crypto), `enrollments` (an object the gateway supplies, or
// EnrollmentSet) and `revocation` (a CrlSet, for validateChainRevocation).
// Every decision comes from the component; a refusal is a value (a
// decision document with `verdict: "refused"`), and an exception means the
// host failed (the component trapped, an enrollment lookup threw, the
// sandbox memory cap was crossed), never that a device was admitted.

import { readFileSync } from 'node:fs';

import { instantiate } from '../dist/policy/policy.js';
import { verifySignature } from './crypto.js';
import { canonicalJson, certificateJson, decisionJson, refusalJson, witPurpose } from './report.js';
import { DEFAULT_REVOCATION, EnrollmentSet } from './enrollments.js';

export { ALGORITHMS, verifySignature } from './crypto.js';
export { EnrollmentSet, EnrollmentError } from './enrollments.js';
export { DEFAULT_MAX_AGE_SECONDS, Replica, SnapshotError, TrustKey, readSnapshot } from './snapshot.js';
export { canonicalJson, rfc3339 } from './report.js';
export { pemCertificates } from './pem.js';

const DIST = new URL('../dist/', import.meta.url);

/** The component's SHA-256 and size, as the build recorded them. */
export const component = Object.freeze(JSON.parse(readFileSync(new URL('component.json', DIST), 'utf8')));

/** Default cap on the sandbox's linear memory, bytes (the Rust hosts' default). */
export const DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024;

/** A failure of the host or the sandbox, as opposed to a policy refusal. */
export class HostError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'HostError';
  }
}

const modules = new Map();
function coreModule(path) {
  let m = modules.get(path);
  if (!m) {
    m = new WebAssembly.Module(readFileSync(new URL(`policy/${path}`, DIST)));
    modules.set(path, m);
  }
  return m;
}

const NO_CRLS = Object.freeze({ lookup: () => [] });

const REVOCATION_MODES = ['off', 'leaf', 'chain', 'configured'];

const hexKey = (key) => Buffer.from(key).toString('hex');

/** A CRL that cannot be loaded (not DER, too large, one too many for its issuer). */
export class CrlError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CrlError';
  }
}

/**
 * CRLs for revocation checking, indexed by their issuer's name key (the
 * component's `index-crl`, so the key and the checks are the Rust hosts').
 * The component selects, verifies and scopes them at every decision.
 */
export class CrlSet {
  #byIssuer = new Map();
  #size = 0;

  /**
   * @param {Policy} policy the component that checks and indexes each CRL.
   * @param {Uint8Array[]} ders DER CRLs; duplicates count once.
   * @throws {CrlError} naming the CRL (1-based) that cannot be loaded.
   */
  constructor(policy, ders) {
    byteList(ders, 'crls').forEach((der, i) => {
      const out = policy.indexCrl(der);
      if ('error' in out) throw new CrlError(`CRL #${i + 1}: ${out.error}`);
      const key = hexKey(out.ok);
      const same = this.#byIssuer.get(key) ?? [];
      if (!same.some((d) => Buffer.from(d).equals(Buffer.from(der)))) {
        same.push(der);
        this.#size += 1;
      }
      this.#byIssuer.set(key, same);
    });
  }

  /** How many distinct CRLs are held. */
  get size() {
    return this.#size;
  }

  /** The CRLs whose issuer has this name key. */
  lookup(key) {
    return this.#byIssuer.get(hexKey(key)) ?? [];
  }
}

const NO_ENROLLMENTS = Object.freeze({
  individual: () => undefined,
  group: () => undefined,
  trustAnchors: () => [],
});

// The `enrollments.revocation` answer: the source's, or the default.
function entryRevocation(source, entry) {
  const r = typeof source.revocation === 'function' ? source.revocation(entry) : undefined;
  const p = r ?? DEFAULT_REVOCATION;
  return { check: p.check, admitUndetermined: p.admitUndetermined === true, admitExpired: p.admitExpired === true };
}

// Bytes in, as the component takes them.
function bytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be a Uint8Array (DER bytes)`);
}

function byteList(value, what) {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new TypeError(`${what} must be an array of Uint8Array`);
  return value.map((v, i) => bytes(v, `${what}[${i}]`));
}

function unixSeconds(time) {
  if (time instanceof Date) {
    const ms = time.getTime();
    if (Number.isNaN(ms)) throw new TypeError('time is an invalid Date');
    return BigInt(Math.floor(ms / 1000));
  }
  if (typeof time === 'bigint') return time;
  if (Number.isSafeInteger(time)) return BigInt(time);
  if (time === undefined) return BigInt(Math.floor(Date.now() / 1000));
  throw new TypeError('time must be a Date, a bigint or an integer number of Unix seconds');
}

// A chain request as the component takes it, with its time and purpose name.
function chainRequest(request) {
  const time = unixSeconds(request.time);
  const purpose = purposeName(request.purpose);
  const wit = {
    leaf: bytes(request.leaf, 'leaf'),
    intermediates: byteList(request.intermediates, 'intermediates'),
    trustAnchors: byteList(request.trustAnchors, 'trustAnchors'),
    time,
    purpose: witPurpose(purpose),
  };
  return { time, purpose, wit };
}

function purposeName(p) {
  const name = p ?? 'clientAuth';
  witPurpose(name);
  return name;
}

/**
 * The policy component, instantiated once; every call runs in it. Not
 * re-entrant (nothing in Node.js calls it re-entrantly: calls are
 * synchronous).
 */
export class Policy {
  #instance = null;
  #memory = null;
  #source = NO_ENROLLMENTS;
  #crls = NO_CRLS;
  #failure = null;
  #memoryBytes;

  /**
   * @param {{ memoryBytes?: number }} [options] memoryBytes: the sandbox's
   *   linear memory cap (checked after every call; see README: V8 cannot
   *   stop a growing memory mid-call the way wasmtime's limiter does).
   */
  constructor(options = {}) {
    this.#memoryBytes = options.memoryBytes ?? DEFAULT_MEMORY_BYTES;
    this.#instantiate();
  }

  #instantiate() {
    const self = this;
    // The lookups go to the source of the call in progress; if the source
    // throws, the call fails (an exception, never a guess: an individual
    // enrollment that could not be read must not fall through to a group).
    const guarded = (name, fn) => (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        self.#failure ??= new HostError(`enrollment lookup ${name} failed: ${e?.message ?? e}`, { cause: e });
        throw self.#failure;
      }
    };
    const instantiateCore = (module, imports) => {
      const instance = new WebAssembly.Instance(module, imports);
      for (const v of Object.values(instance.exports)) {
        if (v instanceof WebAssembly.Memory) this.#memory = v;
      }
      return instance;
    };
    this.#instance = instantiate(
      coreModule,
      {
        'attest:policy/crypto': { verifySignature },
        'attest:policy/enrollments': {
          individual: guarded('individual', (id) => self.#source.individual(id) ?? undefined),
          group: guarded('group', (ca) => self.#source.group(ca) ?? undefined),
          trustAnchors: guarded('trust-anchors', (key) => self.#source.trustAnchors(key) ?? []),
          revocation: guarded('revocation', (entry) => entryRevocation(self.#source, entry)),
        },
        'attest:policy/revocation': {
          crls: guarded('crls', (key) => self.#crls.lookup(key)),
        },
      },
      instantiateCore,
    );
  }

  // Runs one export: `{ ok }` or `{ err: refusal }`; anything else is a
  // HostError, after which the instance is replaced (a trapped instance is
  // never called again).
  #call(source, fn) {
    if (!this.#instance) this.#instantiate();
    this.#source = source ?? NO_ENROLLMENTS;
    this.#failure = null;
    try {
      return { ok: fn(this.#instance) };
    } catch (e) {
      if (e?.constructor?.name === 'ComponentError' && 'payload' in e && !this.#failure) {
        return { err: e.payload };
      }
      this.#instance = null;
      throw this.#failure ?? new HostError(`policy component failed: ${e?.message ?? e}`, { cause: e });
    } finally {
      this.#source = NO_ENROLLMENTS;
      if (this.#memory && this.#memory.buffer.byteLength > this.#memoryBytes) {
        const size = this.#memory.buffer.byteLength;
        this.#instance = null;
        this.#memory = null;
        // eslint-disable-next-line no-unsafe-finally
        throw new HostError(`policy component grew its memory to ${size} bytes, over the ${this.#memoryBytes}-byte cap`);
      }
    }
  }

  /**
   * Chain validation (RFC 5280 §6 under attest's profile).
   * @returns the decision document (`mode: "chain"`).
   */
  validateChain(request) {
    const { time, purpose, wit } = chainRequest(request);
    return decisionJson('chain', time, purpose, this.#call(null, (i) => i.chain.validate(wit)));
  }

  /**
   * Chain validation with revocation checking (RFC 5280 §6.3) against
   * `crls` (a CrlSet).
   * @param {{ revocation?: 'off'|'leaf'|'chain', allowUndetermined?: boolean, allowExpiredCrl?: boolean }} [options]
   *   revocation: which certificates are checked (default chain);
   *   allowUndetermined / allowExpiredCrl: admit with a warning instead of refusing.
   * @returns the decision document (`mode: "chain"`, with `revocation` and `warnings`).
   */
  validateChainRevocation(request, crls, options = {}) {
    if (!(crls instanceof CrlSet)) throw new TypeError('crls must be a CrlSet');
    const mode = options.revocation ?? 'chain';
    if (!REVOCATION_MODES.includes(mode)) throw new TypeError(`revocation must be one of ${REVOCATION_MODES.join(', ')}`);
    const { time, purpose, wit } = chainRequest(request);
    const policy = {
      mode,
      undetermined: options.allowUndetermined ? 'warn' : 'refuse',
      expired: options.allowExpiredCrl ? 'warn' : 'refuse',
    };
    this.#crls = crls;
    let outcome;
    try {
      outcome = this.#call(null, (i) => i.chain.validateWithRevocation(wit, policy));
    } finally {
      this.#crls = NO_CRLS;
    }
    const doc = decisionJson('chain', time, purpose, 'ok' in outcome ? { ok: outcome.ok.path } : outcome);
    doc.revocation = mode;
    doc.warnings = 'ok' in outcome ? outcome.ok.warnings.map(refusalJson) : [];
    return doc;
  }

  /**
   * A CRL's issuer name key, after the component checked that it parses
   * and fits the limits.
   * @returns {{ ok: Uint8Array } | { error: string }}
   */
  indexCrl(der) {
    const out = this.#call(null, (i) => i.chain.indexCrl(bytes(der, 'crl')));
    return 'ok' in out ? { ok: out.ok } : { error: String(out.err) };
  }

  #attestRequest(request) {
    if (typeof request.registrationId !== 'string') throw new TypeError('registrationId must be a string');
    const time = unixSeconds(request.time);
    const purpose = purposeName(request.purpose);
    return {
      time,
      purpose,
      wit: {
        registrationId: request.registrationId,
        leaf: bytes(request.leaf, 'leaf'),
        intermediates: byteList(request.intermediates, 'intermediates'),
        time,
        purpose: witPurpose(purpose),
      },
    };
  }

  /**
   * Enrollment resolution without proof of possession (a dry run).
   * @param enrollments an EnrollmentSet or any object with individual,
   *   group and trustAnchors lookups.
   */
  resolve(request, enrollments, crls) {
    const { time, purpose, wit } = this.#attestRequest(request);
    if (crls === undefined) {
      return decisionJson('resolve', time, purpose, this.#call(enrollments, (i) => i.attestation.resolve(wit)));
    }
    return this.#withCrls(crls, 'resolve', time, purpose, enrollments, (i) => i.attestation.resolveWithWarnings(wit));
  }

  // A decision with the `revocation` import answering from `crls`; the
  // document gains the warnings of a lenient entry policy.
  #withCrls(crls, mode, time, purpose, enrollments, fn) {
    if (!(crls instanceof CrlSet)) throw new TypeError('crls must be a CrlSet');
    this.#crls = crls;
    let outcome;
    try {
      outcome = this.#call(enrollments, fn);
    } finally {
      this.#crls = NO_CRLS;
    }
    const doc = decisionJson(mode, time, purpose, 'ok' in outcome ? { ok: outcome.ok.decision } : outcome);
    doc.revocation = 'entry';
    doc.warnings = 'ok' in outcome ? outcome.ok.warnings.map(refusalJson) : [];
    return doc;
  }

  /**
   * Full attestation: proof of possession, chain validation, enrollment
   * resolution. `proof` is `{ challenge, signature }` (a signature over
   * challengeMessage) or `{ scheme, message, signature }` (a TLS
   * CertificateVerify).
   */
  attest(request, proof, enrollments, crls) {
    const { time, purpose, wit } = this.#attestRequest(request);
    let p;
    if (proof && proof.challenge !== undefined) {
      p = { tag: 'challenge-signature', val: { challenge: bytes(proof.challenge, 'challenge'), signature: bytes(proof.signature, 'signature') } };
    } else if (proof && proof.scheme !== undefined) {
      if (!Number.isInteger(proof.scheme) || proof.scheme < 0 || proof.scheme > 0xffff) throw new TypeError('scheme must be a TLS SignatureScheme code point (0 to 65535)');
      p = { tag: 'tls-signature', val: { scheme: proof.scheme, message: bytes(proof.message, 'message'), signature: bytes(proof.signature, 'signature') } };
    } else {
      throw new TypeError('proof must be { challenge, signature } or { scheme, message, signature }');
    }
    if (crls !== undefined) {
      return this.#withCrls(crls, 'attest', time, purpose, enrollments, (i) => i.attestation.attestWithWarnings(wit, p));
    }
    return decisionJson('attest', time, purpose, this.#call(enrollments, (i) => i.attestation.attest(wit, p)));
  }

  /**
   * The exact bytes a device signs for a challenge proof.
   * @returns {{ ok: Uint8Array } | { refusal: object }}
   */
  challengeMessage(registrationId, challenge) {
    const out = this.#call(null, (i) => i.attestation.challengeMessage(String(registrationId), bytes(challenge, 'challenge')));
    return 'ok' in out ? { ok: out.ok } : { refusal: refusalJson(out.err) };
  }

  /**
   * The keys a host indexes a CA certificate by.
   * @returns {{ ok: { sha256, subjectKey, caIdentity } } | { refusal: object }}
   */
  indexCertificate(der) {
    const out = this.#call(null, (i) => i.attestation.indexCertificate(bytes(der, 'certificate')));
    return 'ok' in out ? { ok: out.ok } : { refusal: refusalJson(out.err) };
  }

  /**
   * CA proof of possession: the verification certificate's subject CN is
   * the code, it is signed by the CA's key and valid at `time`.
   * @returns {{ ok: object } | { refusal: object }} ok: the verification certificate's details.
   */
  verifyCaPossession(caCertificate, verificationCertificate, verificationCode, time) {
    const t = unixSeconds(time);
    const out = this.#call(null, (i) =>
      i.attestation.verifyCaPossession(bytes(caCertificate, 'caCertificate'), bytes(verificationCertificate, 'verificationCertificate'), String(verificationCode), t),
    );
    return 'ok' in out ? { ok: certificateJson(out.ok) } : { refusal: refusalJson(out.err) };
  }
}

/** The document `host-cli verify --json` prints for a decision. */
export function toJson(decision) {
  return canonicalJson(decision);
}

