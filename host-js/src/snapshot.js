// Edge snapshots in Node.js: the signed NDJSON stream that host-http serves
// at GET /attest/snapshot (the format is specified in
// service/src/snapshot.rs and docs/architecture.md), verified against the
// service's Ed25519 key, applied to a replica kept on disk, and decided
// from exactly as the service decides at that version: the same lookup
// rules as the Rust replica (service/src/index.rs), so that a stored
// document that does not load refuses its devices instead of letting them
// fall through to a group, and every device is refused with
// `enrollments-stale` once the snapshot is older than the maximum age.
//
// The replica is one JSON file, `snapshot-replica.json`, in a directory of
// its own, replaced atomically (written beside, flushed, renamed): a
// snapshot that fails to verify or to apply leaves the last good one as
// it was. The Python host reads and writes the same file.

import { createHash, createPublicKey, verify } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { EnrollmentError, loadGroup, loadIndividual, readableGroupCertificates } from './enrollments.js';
import { rfc3339 } from './report.js';

/** The snapshot format this host reads (the header's `attestSnapshot`). */
export const FORMAT = 1;
/** The longest line a reader accepts (the Rust reader's limit). */
export const MAX_LINE = 8 << 20;
/** Default maximum age of a replica's snapshot, seconds (24 h, as host-cli's `--max-age`). */
export const DEFAULT_MAX_AGE_SECONDS = 24 * 3600;
/** The replica's file in its directory. */
export const REPLICA_FILE = 'snapshot-replica.json';
/** The replica file's own format version. */
const REPLICA_FORMAT = 1;
/** How far ahead of the gateway's clock a snapshot's signing time may be. */
const CLOCK_SKEW = 300;
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A snapshot that does not verify or cannot be applied; the replica is unchanged. */
export class SnapshotError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SnapshotError';
  }
}

const fail = (message) => {
  throw new SnapshotError(message);
};
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const b64url = (buf) => Buffer.from(buf).toString('base64url');

function strictBase64Url(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const out = Buffer.from(text, 'base64url');
  return b64url(out) === text ? out : null;
}

function strictBase64(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const out = Buffer.from(text, 'base64');
  return out.toString('base64') === text ? new Uint8Array(out) : null;
}

const isUint = (v) => Number.isSafeInteger(v) && v >= 0;

/** A service's public snapshot key (Ed25519), as a gateway trusts it. */
export class TrustKey {
  #key;

  constructor(publicKey, key) {
    this.publicKey = publicKey;
    this.#key = key;
    const jwk = `{"crv":"Ed25519","kty":"OKP","x":"${b64url(publicKey)}"}`;
    /** The key's ID: its RFC 7638 thumbprint (what a snapshot's `kid` names). */
    this.kid = b64url(createHash('sha256').update(jwk).digest());
  }

  /** The key of a PEM SubjectPublicKeyInfo (what `host-http snapshot-key` prints). */
  static fromPem(text) {
    const notOne = () => fail('not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----, as host-http snapshot-key prints it)');
    const m = /^\s*-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/.exec(String(text));
    if (!m) return notOne();
    const der = Buffer.from(m[1].replace(/[\r\n]/g, ''), 'base64');
    if (der.length !== 44 || !der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) return notOne();
    return new TrustKey(new Uint8Array(der.subarray(12)), createPublicKey({ key: der, format: 'der', type: 'spki' }));
  }

  /** The claims of a snapshot's signature (a JWT, EdDSA), if it verifies with this key. */
  verify(jwt) {
    const parts = typeof jwt === 'string' ? jwt.split('.') : [];
    if (parts.length !== 3) fail("the snapshot's signature is not a JWS (three base64url parts)");
    const [h, p, s] = parts.map(strictBase64Url);
    if (h === null || p === null || s === null) fail("the snapshot's signature is not a JWS (three base64url parts)");
    let header;
    try {
      header = JSON.parse(h.toString('utf8'));
    } catch {
      fail("the snapshot's signature is not a JWS: its header is not JSON");
    }
    if (!isObject(header)) fail("the snapshot's signature is not a JWS: its header is not an object");
    if (header.alg !== 'EdDSA') fail(`the snapshot is signed with ${JSON.stringify(header.alg)}, not EdDSA`);
    if (header.kid !== this.kid) {
      fail(`the snapshot is signed by another key (kid ${typeof header.kid === 'string' ? header.kid : 'none'}), not the trusted one (${this.kid})`);
    }
    if (!verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), this.#key, s)) {
      fail("the snapshot's signature does not verify");
    }
    let claims;
    try {
      claims = JSON.parse(p.toString('utf8'));
    } catch {
      fail("the snapshot's signature does not verify: its claims are not JSON");
    }
    const ok = isObject(claims) && typeof claims.iss === 'string' && Number.isSafeInteger(claims.iat)
      && isUint(claims.ver) && (claims.since === null || claims.since === undefined || isUint(claims.since))
      && isUint(claims.lines) && typeof claims.sha256 === 'string';
    if (!ok) fail("the snapshot's signature does not verify: its claims are not a snapshot's");
    return { ...claims, since: claims.since ?? null };
  }
}

const HEADER_FIELDS = ['attestSnapshot', 'service', 'kid', 'version', 'since', 'madeAt'];

function parseHeader(value) {
  const bad = (why) => fail(`the snapshot's first line is not its header: ${why}`);
  if (!isObject(value)) bad('not an object');
  for (const k of Object.keys(value)) if (!HEADER_FIELDS.includes(k)) bad(`unknown field ${JSON.stringify(k)}`);
  if (!isUint(value.attestSnapshot)) bad('attestSnapshot is missing or not a number');
  if (typeof value.service !== 'string') bad('service is missing or not a string');
  if (typeof value.kid !== 'string') bad('kid is missing or not a string');
  if (!isUint(value.version)) bad('version is missing or not a number');
  if (!(value.since === undefined || value.since === null || isUint(value.since))) bad('since is not a number');
  if (typeof value.madeAt !== 'string') bad('madeAt is missing or not a string');
  if (value.attestSnapshot !== FORMAT) fail(`snapshot format ${value.attestSnapshot} is not the one this gateway reads (${FORMAT})`);
  return { ...value, since: value.since ?? null };
}

function parseRecord(value) {
  if (!isObject(value)) fail('a record is not a JSON object');
  const text = (k) => (typeof value[k] === 'string' ? value[k] : fail(`a record has no ${JSON.stringify(k)} string`));
  if ('delete' in value) {
    if (!['certificate', 'individual', 'group'].includes(value.delete)) fail('a delete record names an unknown kind');
    return { delete: value.delete, id: text('id') };
  }
  const put = text('put');
  if (put === 'certificate') {
    const der = strictBase64(text('der'));
    if (der === null) fail("a certificate record's der is not base64");
    const name = text('name');
    if (typeof value.verified !== 'boolean') fail('a certificate record has no verified flag');
    text('etag');
    text('created');
    text('updated');
    return { put, name, der, verified: value.verified };
  }
  if (put !== 'individual' && put !== 'group') fail(`a record puts an unknown kind ${JSON.stringify(put)}`);
  let doc;
  if ('doc' in value && !('unreadable' in value)) doc = value.doc;
  else if (!('doc' in value) && value.unreadable === true) doc = null;
  else fail('an enrollment record has neither a doc nor unreadable: true');
  const id = text('id');
  text('etag');
  return { put, id, doc };
}

/**
 * Reads and verifies a snapshot (its bytes): every line hashed, the
 * signature checked with `trustKey`, its claims compared with the header.
 * Returns `{ header, records, madeAt }` (madeAt: the signed time, Unix
 * seconds). Throws SnapshotError; nothing is applied.
 */
export function readSnapshot(bytes, trustKey) {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const sha = createHash('sha256');
  let header = null;
  const records = [];
  let lines = 0;
  let at = 0;
  for (;;) {
    if (at >= buf.length) fail('the snapshot ends before its signature (truncated)');
    const nl = buf.indexOf(0x0a, at);
    if (nl === -1) {
      if (buf.length - at > MAX_LINE) fail(`line ${lines + 1} of the snapshot is longer than ${MAX_LINE} bytes`);
      fail('the snapshot ends inside a line (truncated)');
    }
    if (nl + 1 - at > MAX_LINE) fail(`line ${lines + 1} of the snapshot is longer than ${MAX_LINE} bytes`);
    const line = buf.subarray(at, nl + 1);
    at = nl + 1;
    let value;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(line));
    } catch (e) {
      fail(`line ${lines + 1} of the snapshot is not JSON: ${e.message}`);
    }
    if (isObject(value) && 'signature' in value) {
      if (typeof value.signature !== 'string') fail("the snapshot's signature is not a string");
      if (header === null) fail('the snapshot has no header');
      const claims = trustKey.verify(value.signature);
      if (claims.sha256 !== sha.digest('hex') || claims.lines !== lines) {
        fail("the snapshot's lines are not the ones signed (altered, reordered or cut)");
      }
      if (claims.iss !== header.service || claims.ver !== header.version || claims.since !== header.since || header.kid !== trustKey.kid) {
        fail("the snapshot's header differs from its signed claims");
      }
      if (at !== buf.length) fail('the snapshot goes on after its signature');
      return { header, records, madeAt: claims.iat };
    }
    sha.update(line);
    lines += 1;
    if (header === null) {
      header = parseHeader(value);
    } else {
      try {
        records.push(parseRecord(value));
      } catch (e) {
        if (e instanceof SnapshotError) e.message = `line ${lines}: ${e.message}`;
        throw e;
      }
    }
  }
}

/** Seconds as `1h 30m`-style text (the Rust replica's wording). */
function humanSeconds(s) {
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']]
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`);
  return parts.length ? parts.join(' ') : '0s';
}

/**
 * The refusal of every device once the replica's snapshot is older than
 * `maxAgeSeconds` at `time` (Unix seconds), as the decision document's
 * `refusal` object; null while it is fresh.
 */
export function staleRefusal(state, time, maxAgeSeconds) {
  // Checked here too: NaN would make the comparison false, never stale.
  if (!isUint(maxAgeSeconds)) throw new TypeError('maxAgeSeconds must be a non-negative integer number of seconds');
  const age = Number(time) - state.madeAt;
  if (!Number.isSafeInteger(age)) throw new TypeError('time must be an integer number of Unix seconds');
  if (age <= maxAgeSeconds) return null;
  return {
    code: 'enrollments-stale',
    message: `the enrollments this gateway holds (version ${state.version}, made ${rfc3339(state.madeAt)}) are ${humanSeconds(age)} old, more than the maximum age of ${humanSeconds(maxAgeSeconds)}: sync with the service`,
    certificate: null,
    enrollment: null,
  };
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const byKey = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The component's enrollment lookups over one replica state, with the
 * service's rules for what does not load (service/src/index.rs): an
 * individual enrollment that is not JSON, does not load or names another
 * registration ID refuses its device; a group that does not load refuses
 * the devices under the CAs that can still be read of it, and one whose
 * CAs cannot be read at all makes every group lookup refuse; two groups
 * on one CA both refuse.
 */
class Lookups {
  #state;
  #policy;
  #anchors = new Map();
  #groupCa = new Map();
  #unloadable = [];
  #unusable = new Map();
  #revocations = new Map();

  constructor(state, policy) {
    this.#state = state;
    this.#policy = policy;
    const certs = Object.keys(state.certificates).sort(byKey);
    for (const name of certs) {
      const c = state.certificates[name];
      if (!c.verified) continue;
      const keys = policy.indexCertificate(c.der);
      if (keys.ok) this.#anchor(keys.ok.subjectKey, c.der);
    }
    for (const id of Object.keys(state.group).sort(byKey)) {
      const doc = state.group[id];
      let entry = null;
      let readable = [];
      if (doc !== null) {
        try {
          entry = this.#loadGroup(doc);
        } catch (e) {
          if (!(e instanceof EnrollmentError)) throw e;
          readable = readableGroupCertificates(doc, (n) => this.#verified(n));
        }
      }
      if (entry !== null) {
        for (const ca of entry.cas) {
          this.#owner(ca.keys.caIdentity, id);
          if (entry.anchors) this.#anchor(ca.keys.subjectKey, ca.der);
        }
        continue;
      }
      const identities = readable.map((der) => policy.indexCertificate(der)).filter((k) => k.ok).map((k) => k.ok.caIdentity);
      if (identities.length === 0) this.#unloadable.push(id);
      for (const identity of identities) this.#owner(identity, id);
    }
  }

  #anchor(subjectKey, der) {
    const k = hex(subjectKey);
    const list = this.#anchors.get(k) ?? [];
    list.push(der);
    this.#anchors.set(k, list);
  }

  #owner(identity, id) {
    const k = hex(identity);
    const list = this.#groupCa.get(k) ?? [];
    if (!list.includes(id)) list.push(id);
    this.#groupCa.set(k, list);
  }

  #verified(name) {
    const c = Object.hasOwn(this.#state.certificates, name) ? this.#state.certificates[name] : undefined;
    return c?.verified ? c.der : undefined;
  }

  #loadGroup(doc) {
    return loadGroup(doc, this.#policy, (n) => this.#verified(n));
  }

  #refusing(groupId, why, entry) {
    this.#unusable.set(groupId, { why, entry });
    return { groupId, enabled: false };
  }

  /** Starts a decision: what the last one found is forgotten. */
  begin() {
    this.#unusable = new Map();
    this.#revocations = new Map();
  }

  // The revocation policy of an entry this decision's lookups handed out;
  // the strictest for any other.
  revocation(entry) {
    const id = entry.kind === 'individual' ? entry.id.replace(/[A-Z]/g, (c) => c.toLowerCase()) : entry.id;
    return this.#revocations.get(`${entry.kind}:${id}`) ?? { check: 'chain', admitUndetermined: false, admitExpired: false };
  }

  individual(registrationId) {
    const key = registrationId.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (!Object.hasOwn(this.#state.individual, key)) return undefined;
    const refusing = { registrationId: key, deviceId: undefined, enabled: false, certificates: [] };
    const doc = this.#state.individual[key];
    if (doc === null) return refusing;
    try {
      const entry = loadIndividual(doc, this.#policy);
      if (entry.registrationId.replace(/[A-Z]/g, (c) => c.toLowerCase()) !== key) return refusing;
      this.#revocations.set(`individual:${key}`, entry.revocation);
      return entry;
    } catch (e) {
      if (e instanceof EnrollmentError) return refusing;
      throw e;
    }
  }

  group(caIdentity) {
    if (this.#unloadable.length > 0) {
      const ids = this.#unloadable;
      return this.#refusing(ids.join(', '), `stored enrollment group(s) ${ids.join(', ')} cannot be loaded, so every group is treated as disabled`, ids.length === 1 ? ids[0] : null);
    }
    const owners = this.#groupCa.get(hex(caIdentity)) ?? [];
    if (owners.length === 0) return undefined;
    if (owners.length > 1) {
      const ids = [...owners].sort(byKey);
      return this.#refusing(ids.join(', '), `enrollment groups ${ids.join(', ')} all name this CA`, null);
    }
    const id = owners[0];
    const unloadable = () => this.#refusing(id, `the stored enrollment group '${id}' cannot be loaded`, id);
    const doc = Object.hasOwn(this.#state.group, id) ? this.#state.group[id] : null;
    if (doc === null) return unloadable();
    let entry;
    try {
      entry = this.#loadGroup(doc);
    } catch (e) {
      if (e instanceof EnrollmentError) return unloadable();
      throw e;
    }
    if (!entry.cas.some((ca) => hex(ca.keys.caIdentity) === hex(caIdentity))) return unloadable();
    this.#revocations.set(`group:${entry.groupId}`, entry.revocation);
    return { groupId: entry.groupId, enabled: entry.enabled };
  }

  trustAnchors(subjectKey) {
    return this.#anchors.get(hex(subjectKey)) ?? [];
  }

  /**
   * A refusal by a group that a lookup handed out as unusable says why
   * and names the group at fault (or none), as the service's decision does.
   */
  explain(document) {
    const r = document.refusal;
    if (!r || r.enrollment?.kind !== 'enrollmentGroup') return document;
    const u = this.#unusable.get(r.enrollment.id);
    if (u) {
      r.message = `${r.message}: ${u.why}`;
      r.enrollment = u.entry === null ? null : { kind: 'enrollmentGroup', id: u.entry };
    }
    return document;
  }
}

function emptyState() {
  return { certificates: {}, individual: {}, group: {} };
}

/** The replica's state as stored (JSON), with certificate DER as base64. */
function storedState(s) {
  const certificates = {};
  for (const [name, c] of Object.entries(s.certificates)) {
    certificates[name] = { der: Buffer.from(c.der).toString('base64'), verified: c.verified };
  }
  return {
    attestReplica: REPLICA_FORMAT,
    service: s.service,
    kid: s.kid,
    version: s.version,
    madeAt: s.madeAt,
    syncedAt: s.syncedAt,
    certificates,
    individual: s.individual,
    group: s.group,
  };
}

function loadedState(text, path) {
  const bad = (why) => fail(`${path}: the replica's state is unreadable (${why}); sync a full snapshot into a new directory`);
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return bad(e.message);
  }
  if (!isObject(v) || v.attestReplica !== REPLICA_FORMAT) return bad(`not a replica file of format ${REPLICA_FORMAT}`);
  if (typeof v.service !== 'string' || typeof v.kid !== 'string' || !isUint(v.version)
    || !Number.isSafeInteger(v.madeAt) || !Number.isSafeInteger(v.syncedAt)
    || !isObject(v.certificates) || !isObject(v.individual) || !isObject(v.group)) return bad('a field is missing or of the wrong type');
  const certificates = Object.create(null);
  for (const [name, c] of Object.entries(v.certificates)) {
    const der = isObject(c) ? strictBase64(c.der) : null;
    if (der === null || typeof c.verified !== 'boolean') return bad(`certificate ${JSON.stringify(name)}`);
    certificates[name] = { der, verified: c.verified };
  }
  const copy = (o) => Object.assign(Object.create(null), o);
  return { ...v, certificates, individual: copy(v.individual), group: copy(v.group) };
}

function writeAtomically(dir, name, text) {
  const path = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  try {
    const d = openSync(dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  } catch {
    // a directory that cannot be opened for fsync (some platforms): the rename stands
  }
}

/**
 * A gateway's replica of a service's enrollments, in a directory of its
 * own: apply signed snapshots (full or delta) to it, decide from it.
 */
export class Replica {
  #dir;
  #policy;
  #state = null;
  #lookups = null;

  /**
   * Opens (creating) the replica in `dir`. `policy`: the Policy whose
   * component decides (and computes lookup keys).
   */
  constructor(dir, policy) {
    this.#dir = dir;
    this.#policy = policy;
    mkdirSync(dir, { recursive: true });
    let text = null;
    try {
      text = readFileSync(join(dir, REPLICA_FILE), 'utf8');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    if (text !== null) this.#state = loadedState(text, join(dir, REPLICA_FILE));
  }

  /** Where its snapshot came from: `{ service, kid, version, madeAt, syncedAt }`, or null. */
  get state() {
    if (this.#state === null) return null;
    const { service, kid, version, madeAt, syncedAt } = this.#state;
    return { service, kid, version, madeAt, syncedAt };
  }

  /**
   * Verifies a snapshot's bytes with `trustKey` and applies it; on any
   * error (SnapshotError) nothing changes, on disk or in memory. `now`:
   * the gateway's clock, Unix seconds. Returns `{ from, version, full, records }`.
   */
  apply(bytes, trustKey, now = Math.floor(Date.now() / 1000)) {
    const held = this.#state;
    const { header, records, madeAt } = readSnapshot(bytes, trustKey);
    if (madeAt > now + CLOCK_SKEW) {
      fail(`the snapshot was signed at ${rfc3339(madeAt)}, ahead of this gateway's clock (${rfc3339(now)}): check the clocks`);
    }
    if (held === null && header.since !== null) fail('the replica holds no snapshot, and this is a delta');
    if (held !== null) {
      if (held.service !== header.service) {
        fail(`the snapshot is of service ${JSON.stringify(header.service)}; ${this.#dir} holds service ${JSON.stringify(held.service)}'s`);
      }
      if (header.version < held.version) {
        fail(`the snapshot's version ${header.version} is lower than the version held (${held.version}): refused (rollback)`);
      }
      if (madeAt < held.madeAt) fail('the snapshot was made before the one held: refused (replay)');
      if (header.since !== null && header.since !== held.version) {
        fail(`the delta starts at version ${header.since}, not at the version held (${held.version})`);
      }
    }
    const base = header.since === null || held === null ? emptyState() : held;
    const next = {
      certificates: Object.assign(Object.create(null), base.certificates),
      individual: Object.assign(Object.create(null), base.individual),
      group: Object.assign(Object.create(null), base.group),
    };
    for (const r of records) {
      if ('delete' in r) {
        const into = r.delete === 'certificate' ? next.certificates : next[r.delete];
        delete into[r.id];
      } else if (r.put === 'certificate') {
        next.certificates[r.name] = { der: r.der, verified: r.verified };
      } else {
        // Stored keys: an individual enrollment's is its lower-cased registration ID.
        next[r.put][r.id] = r.doc;
      }
    }
    const state = { service: header.service, kid: header.kid, version: header.version, madeAt, syncedAt: now, ...next };
    writeAtomically(this.#dir, REPLICA_FILE, JSON.stringify(storedState(state)));
    this.#state = state;
    this.#lookups = null;
    return { from: held?.version ?? null, version: header.version, full: header.since === null, records: records.length };
  }

  #decide(mode, request, maxAgeSeconds, run) {
    // A maximum age that is not a number must not make every comparison
    // false (NaN): that would never refuse a stale snapshot.
    if (!isUint(maxAgeSeconds)) throw new TypeError('maxAgeSeconds must be a non-negative integer number of seconds');
    if (this.#state === null) fail(`${this.#dir} holds no snapshot yet: apply one (or run host-cli sync) first`);
    const t = request.time;
    const time = t === undefined ? Math.floor(Date.now() / 1000) : t instanceof Date ? Math.floor(t.getTime() / 1000) : Number(t);
    if (!Number.isSafeInteger(time)) throw new TypeError('time must be a Date, a bigint or an integer number of Unix seconds');
    const stale = staleRefusal(this.#state, time, maxAgeSeconds);
    if (stale !== null) {
      return {
        verdict: 'refused',
        mode,
        validationTime: rfc3339(time),
        extendedKeyUsage: request.purpose ?? 'clientAuth',
        refusal: stale,
      };
    }
    this.#lookups ??= new Lookups(this.#state, this.#policy);
    this.#lookups.begin();
    return this.#lookups.explain(run(this.#lookups));
  }

  /**
   * Enrollment resolution from the replica (no proof of possession), as
   * the service would have decided at the version held: the decision
   * document. `maxAgeSeconds` defaults to 24 h.
   */
  resolve(request, maxAgeSeconds = DEFAULT_MAX_AGE_SECONDS) {
    return this.#decide('resolve', request, maxAgeSeconds, (source) => this.#policy.resolve(request, source));
  }

  /** Full attestation from the replica (see Policy.attest for `proof`). */
  attest(request, proof, maxAgeSeconds = DEFAULT_MAX_AGE_SECONDS) {
    return this.#decide('attest', request, maxAgeSeconds, (source) => this.#policy.attest(request, proof, source));
  }
}
