// Enrollment sets in DPS JSON shapes (what `host-cli verify --enrollments`
// reads), with the same rules as the Rust hosts' loader (attest-dps):
// keys matched case-insensitively and near misses refused, provisioningStatus
// enabled/disabled (absent = enabled), registration and group ID rules,
// no CA certificate as a device's, no non-CA as a group's, one CA one
// group. The lookup keys (CA identity, subject name key) come from the
// policy component's `index-certificate`, so they are the component's own.

import { createHash } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicConstraints, Certificate, KeyUsage, KeyUsageFlags } from '@peculiar/asn1-x509';

import { pemCertificates, strictBase64 } from './pem.js';

/** An enrollment document or set that is not usable; the message names the entry and field. */
export class EnrollmentError extends Error {
  constructor(message) {
    super(message);
    this.name = 'EnrollmentError';
  }
}

const ENTRY_FIELDS = [
  'registrationId', 'enrollmentGroupId', 'deviceId', 'provisioningStatus', 'attestation',
  'allocationPolicy', 'iotHubs', 'iotHubHostName', 'customAllocationDefinition', 'reprovisionPolicy',
  'initialTwin', 'capabilities', 'optionalDeviceInformation', 'registrationState', 'etag',
  'createdDateTimeUtc', 'lastUpdatedDateTimeUtc', 'clientCertificateIssuancePolicy',
  'revocationPolicy',
];
const REVOCATION_CHECKS = ['off', 'leaf', 'chain', 'configured'];
const REVOCATION_FIELDS = ['check', 'admitUndetermined', 'admitExpiredCrl'];

/** An entry's revocation policy when it names none. */
export const DEFAULT_REVOCATION = Object.freeze({ check: 'configured', admitUndetermined: false, admitExpired: false });
/** The answer for an entry a set does not hold: the strictest. */
const STRICTEST_REVOCATION = Object.freeze({ check: 'chain', admitUndetermined: false, admitExpired: false });

// attest's `revocationPolicy` (see attest-dps's enrollment module).
function revocationPolicy(v) {
  if (v === undefined) return DEFAULT_REVOCATION;
  if (!isObject(v)) throw new EnrollmentError(`revocationPolicy: expected an object, found ${JSON.stringify(v)}`);
  for (const k of Object.keys(v)) {
    if (!REVOCATION_FIELDS.includes(k)) throw new EnrollmentError(`revocationPolicy: unknown field \`${k}\`, expected one of ${REVOCATION_FIELDS.map((f) => `\`${f}\``).join(', ')}`);
  }
  const check = v.check ?? 'configured';
  if (!REVOCATION_CHECKS.includes(check)) {
    throw new EnrollmentError(`revocationPolicy: check ${JSON.stringify(check)} is not one of "off", "leaf", "chain", "configured"`);
  }
  for (const k of ['admitUndetermined', 'admitExpiredCrl']) {
    if (v[k] !== undefined && v[k] !== null && typeof v[k] !== 'boolean') throw new EnrollmentError(`revocationPolicy: ${k} must be true or false`);
  }
  return { check, admitUndetermined: v.admitUndetermined === true, admitExpired: v.admitExpiredCrl === true };
}
const ATTESTATION_FIELDS = ['type', 'x509', 'tpm', 'symmetricKey'];
const X509_FIELDS = ['clientCertificates', 'signingCertificates', 'caReferences'];
const PAIR_FIELDS = ['primary', 'secondary'];
const NESTED_FIELDS = [
  ['reprovisionPolicy', ['updateHubAssignment', 'migrateDeviceData']],
  ['customAllocationDefinition', ['webhookUrl', 'apiVersion']],
  ['capabilities', ['iotEdge']],
];
const CERT_FIELDS = ['certificate', 'info'];

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const debug = (s) => JSON.stringify(s);
const shown = (s) => [...s].slice(0, 40).join('');

function canonicalKeys(object, known, at) {
  const squash = (s) => s.replace(/[_\- ]/g, '').toLowerCase();
  const out = {};
  for (const [key, value] of Object.entries(object)) {
    let name = known.find((k) => asciiLower(k) === asciiLower(key));
    if (name === undefined) {
      const near = known.find((k) => squash(k) === squash(key));
      if (near !== undefined) throw new EnrollmentError(`${at}field ${debug(key)} is not a DPS field; did you mean ${debug(near)}?`);
      name = key;
    }
    if (Object.hasOwn(out, name)) throw new EnrollmentError(`${at}field ${debug(name)} appears more than once (keys are case-insensitive)`);
    out[name] = value;
  }
  return out;
}

function normalizeEntry(doc) {
  if (!isObject(doc)) throw new EnrollmentError('an enrollment must be a JSON object');
  const top = canonicalKeys(doc, ENTRY_FIELDS, '');
  if ('provisioningStatus' in top && typeof top.provisioningStatus !== 'string') {
    throw new EnrollmentError(`provisioningStatus is ${JSON.stringify(top.provisioningStatus)}; it must be "enabled" or "disabled"`);
  }
  for (const [name, fields] of NESTED_FIELDS) {
    if (isObject(top[name])) top[name] = canonicalKeys(top[name], fields, `${name}.`);
  }
  if (isObject(top.attestation)) {
    const attestation = canonicalKeys(top.attestation, ATTESTATION_FIELDS, 'attestation.');
    if (isObject(attestation.x509)) {
      const x509 = canonicalKeys(attestation.x509, X509_FIELDS, 'attestation.x509.');
      for (const [name, value] of Object.entries(x509)) {
        if (!isObject(value)) continue;
        const at = `attestation.x509.${name}.`;
        const pair = canonicalKeys(value, PAIR_FIELDS, at);
        if (name !== 'caReferences') {
          for (const [which, cert] of Object.entries(pair)) {
            if (isObject(cert)) pair[which] = canonicalKeys(cert, CERT_FIELDS, `${at}${which}.`);
          }
        }
        x509[name] = pair;
      }
      attestation.x509 = x509;
    }
    top.attestation = attestation;
  }
  return top;
}

// Typed reads, as serde reads the Rust loader's structs: absent or null is
// "none", any other type is an error naming the field.
function typed(value, type, field) {
  if (value === undefined || value === null) return undefined;
  const ok = type === 'object' ? isObject(value) : type === 'array' ? Array.isArray(value) : typeof value === type;
  if (!ok) throw new EnrollmentError(`not a DPS enrollment: ${field} must be ${type === 'object' ? 'an object' : `a ${type}`}`);
  return value;
}

function readEntry(doc) {
  const e = normalizeEntry(doc);
  const attestation = typed(e.attestation, 'object', 'attestation');
  let x509;
  if (attestation !== undefined) {
    if (typeof attestation.type !== 'string') throw new EnrollmentError('not a DPS enrollment: attestation.type must be a string');
    x509 = typed(attestation.x509, 'object', 'attestation.x509');
  }
  const pair = (v, name, certs) => {
    const p = typed(v, 'object', `attestation.x509.${name}`);
    if (p === undefined) return undefined;
    const side = (which) => {
      const c = p[which];
      if (!certs) return typed(c, 'string', `attestation.x509.${name}.${which}`);
      const o = typed(c, 'object', `attestation.x509.${name}.${which}`);
      return o === undefined ? undefined : { certificate: typed(o.certificate, 'string', `attestation.x509.${name}.${which}.certificate`) };
    };
    return { primary: side('primary'), secondary: side('secondary') };
  };
  const hubs = typed(e.iotHubs, 'array', 'iotHubs') ?? [];
  hubs.forEach((h, i) => typed(h, 'string', `iotHubs[${i}]`));
  const reprovision = typed(e.reprovisionPolicy, 'object', 'reprovisionPolicy');
  if (reprovision !== undefined) {
    typed(reprovision.updateHubAssignment, 'boolean', 'reprovisionPolicy.updateHubAssignment');
    typed(reprovision.migrateDeviceData, 'boolean', 'reprovisionPolicy.migrateDeviceData');
  }
  typed(e.allocationPolicy, 'string', 'allocationPolicy');
  typed(e.iotHubHostName, 'string', 'iotHubHostName');
  return {
    registrationId: typed(e.registrationId, 'string', 'registrationId'),
    enrollmentGroupId: typed(e.enrollmentGroupId, 'string', 'enrollmentGroupId'),
    revocation: revocationPolicy(e.revocationPolicy),
    deviceId: typed(e.deviceId, 'string', 'deviceId'),
    provisioningStatus: e.provisioningStatus,
    attestation: attestation === undefined ? undefined : {
      type: attestation.type,
      x509: x509 === undefined ? undefined : {
        clientCertificates: pair(x509.clientCertificates, 'clientCertificates', true),
        signingCertificates: pair(x509.signingCertificates, 'signingCertificates', true),
        caReferences: pair(x509.caReferences, 'caReferences', false),
      },
    },
  };
}

function enabled(status) {
  if (status === undefined) return true;
  if (asciiLower(status) === 'enabled') return true;
  if (asciiLower(status) === 'disabled') return false;
  throw new EnrollmentError(`provisioningStatus ${debug(status)} is neither "enabled" nor "disabled"`);
}

function x509Of(attestation) {
  if (attestation === undefined) throw new EnrollmentError('attestation is missing');
  if (asciiLower(attestation.type) !== 'x509') throw new EnrollmentError(`attestation type ${debug(attestation.type)} is not supported; attest handles "x509"`);
  if (attestation.x509 === undefined) throw new EnrollmentError('attestation.x509 is missing');
  return attestation.x509;
}

/** One certificate given as PEM or as bare base64 of its DER. */
export function oneCertificate(text) {
  if (text.includes('-----BEGIN')) {
    let certs;
    try {
      certs = pemCertificates(text);
    } catch (e) {
      throw new EnrollmentError(`not valid PEM: ${e.message}`);
    }
    if (certs.length !== 1) throw new EnrollmentError(`expected one certificate, found ${certs.length}`);
    return certs[0];
  }
  const der = strictBase64(text.replace(/[ \t\n\r\f]/g, ''));
  if (der === null) throw new EnrollmentError('certificate is neither PEM nor base64 DER');
  return der;
}

function context(e, at) {
  if (e instanceof EnrollmentError) e.message = `${at}: ${e.message}`;
  return e;
}

function certificates(pair, what) {
  if (pair === undefined) throw new EnrollmentError(`attestation.x509.${what} is missing`);
  if (pair.primary?.certificate === undefined) throw new EnrollmentError(`attestation.x509.${what}.primary.certificate is missing`);
  const out = [];
  try {
    out.push(oneCertificate(pair.primary.certificate));
  } catch (e) {
    throw context(e, `${what}.primary`);
  }
  if (pair.secondary?.certificate !== undefined) {
    try {
      out.push(oneCertificate(pair.secondary.certificate));
    } catch (e) {
      throw context(e, `${what}.secondary`);
    }
  }
  return out;
}

// A v3 certificate's [cA, keyCertSign allowed]; null for v1/v2 or one
// that does not parse (left to path validation).
function caFacts(der) {
  let cert;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    return null;
  }
  const tbs = cert.tbsCertificate;
  if (tbs.version !== 2) return null;
  let ca = false;
  let keyCertSign = true;
  for (const ext of tbs.extensions ?? []) {
    if (ext.extnID === '2.5.29.19') {
      try {
        ca = AsnConvert.parse(ext.extnValue, BasicConstraints).cA === true;
      } catch {
        ca = false;
      }
    } else if (ext.extnID === '2.5.29.15') {
      try {
        keyCertSign = (AsnConvert.parse(ext.extnValue, KeyUsage).toNumber() & KeyUsageFlags.keyCertSign) !== 0;
      } catch {
        keyCertSign = false;
      }
    }
  }
  return [ca, keyCertSign];
}

/**
 * The leaf's subject CN the way the policy core reads it: the first
 * commonName that is a UTF8String, PrintableString or IA5String, in
 * encoded order. `undefined` if there is none, `null` if the certificate
 * does not parse.
 */
export function commonName(der) {
  let cert;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    return null;
  }
  for (const rdn of cert.tbsCertificate.subject) {
    for (const atv of rdn) {
      if (atv.type !== '2.5.4.3') continue;
      const v = atv.value;
      const text = v.utf8String ?? v.printableString ?? v.ia5String;
      if (text !== undefined) return text;
    }
  }
  return undefined;
}

const REGISTRATION_ID = /^[A-Za-z0-9]([A-Za-z0-9\-._:]*[A-Za-z0-9])?$/;

function checkId(id, what, max, specials) {
  const re = new RegExp(`^[A-Za-z0-9]([A-Za-z0-9${specials.replace(/[-\\\]]/g, '\\$&')}]*[A-Za-z0-9])?$`);
  if (Buffer.byteLength(id) > max || !re.test(id)) {
    const list = [...specials].map((c) => ` ${c}`).join('');
    throw new EnrollmentError(`${what} ${debug(shown(id))} must be 1 to ${max} characters of a-z A-Z 0-9${list}, beginning and ending with a letter or digit`);
  }
}

function checkRegistrationId(id) {
  if (Buffer.byteLength(id) > 128 || !REGISTRATION_ID.test(id)) {
    throw new EnrollmentError(`registration ID ${debug(shown(id))} must be 1 to 128 characters of a-z 0-9 - . _ :, beginning and ending with a letter or digit`);
  }
}

function checkDeviceId(id) {
  const specials = "-.+%_#*?!(),:=@$'";
  if (id.length === 0 || Buffer.byteLength(id) > 128 || ![...id].every((c) => /[A-Za-z0-9]/.test(c) || specials.includes(c))) {
    throw new EnrollmentError(`deviceId ${debug(shown(id))} must be 1 to 128 characters of a-z A-Z 0-9 ${specials} (IoT Hub's device ID rules)`);
  }
}

const key = (bytes) => Buffer.from(bytes).toString('hex');

function caKeys(der, policy) {
  const out = policy.indexCertificate(der);
  if (!out.ok) throw new EnrollmentError(`CA certificate is not usable: ${out.refusal.message}`);
  return out.ok;
}

/**
 * One DPS IndividualEnrollment document, loaded as the Rust hosts'
 * `IndividualEntry::load` does: the lookup answer the component is
 * handed (`registrationId`, `deviceId`, `enabled`, `certificates` as
 * SHA-256 digests). Throws EnrollmentError.
 */
export function loadIndividual(doc, policy) {
  const e = readEntry(doc);
  if (e.registrationId === undefined) throw new EnrollmentError('registrationId is missing');
  checkRegistrationId(e.registrationId);
  if (e.deviceId !== undefined) checkDeviceId(e.deviceId);
  const on = enabled(e.provisioningStatus);
  const certs = certificates(x509Of(e.attestation).clientCertificates, 'clientCertificates');
  certs.forEach((der, i) => {
    const which = ['primary', 'secondary'][i];
    const keys = policy.indexCertificate(der);
    if (!keys.ok) throw new EnrollmentError(`clientCertificates.${which} is not a usable certificate: ${keys.refusal.message}`);
    if (caFacts(der)?.[0]) {
      throw new EnrollmentError(`clientCertificates.${which} is a CA certificate; an individual enrollment holds a device certificate (enroll a CA as an enrollment group)`);
    }
  });
  return {
    registrationId: e.registrationId,
    deviceId: e.deviceId,
    enabled: on,
    certificates: certs.map((d) => new Uint8Array(createHash('sha256').update(d).digest())),
    revocation: e.revocation,
  };
}

/**
 * One DPS EnrollmentGroup document, loaded as the Rust hosts'
 * `GroupEntry::load` does. `caReference(name)` resolves a `caReferences`
 * name to a verified CA certificate's DER (undefined: unknown or not
 * verified); without it, `caReferences` are refused. Returns
 * `{ groupId, enabled, cas: [{ der, keys }], anchors }` (anchors: the
 * CAs are the group's own trust anchors, `signingCertificates`). Throws
 * EnrollmentError.
 */
export function loadGroup(doc, policy, caReference = () => undefined) {
  const g = readEntry(doc);
  if (g.enrollmentGroupId === undefined) throw new EnrollmentError('enrollmentGroupId is missing');
  checkId(g.enrollmentGroupId, 'enrollmentGroupId', 128, '-._:');
  const on = enabled(g.provisioningStatus);
  const x509 = x509Of(g.attestation);
  if (x509.signingCertificates !== undefined && x509.caReferences !== undefined) {
    throw new EnrollmentError('attestation.x509 has both signingCertificates and caReferences; an enrollment group names one CA, one way');
  }
  let ders;
  let anchors;
  if (x509.caReferences !== undefined) {
    ders = [];
    for (const name of [x509.caReferences.primary, x509.caReferences.secondary]) {
      if (name === undefined) continue;
      const der = caReference(name);
      if (der === undefined) throw new EnrollmentError(`caReferences names CA certificate '${name}', which is not a verified CA certificate of this service`);
      ders.push(der);
    }
    if (ders.length === 0) throw new EnrollmentError('caReferences.primary is missing');
    anchors = false;
  } else {
    if (x509.signingCertificates === undefined) throw new EnrollmentError('attestation.x509 needs signingCertificates or caReferences');
    ders = certificates(x509.signingCertificates, 'signingCertificates');
    ders.forEach((der, i) => {
      const facts = caFacts(der);
      const why = facts === null ? null
        : !facts[0] ? 'is not a CA certificate (basicConstraints cA is not true)'
        : !facts[1] ? 'is a CA certificate whose keyUsage lacks keyCertSign' : null;
      if (why) throw new EnrollmentError(`signingCertificates.${['primary', 'secondary'][i]} ${why}: it cannot issue device certificates, so the group could never admit one`);
    });
    anchors = true;
  }
  const cas = ders.map((der) => ({ der, keys: caKeys(der, policy) }));
  return { groupId: g.enrollmentGroupId, enabled: on, cas, anchors, revocation: g.revocation };
}

/**
 * The CA certificates that can still be read from a group document that
 * does not load (the Rust hosts' `readable_group_certificates`): its
 * signing certificates that parse and the verified CA certificates it
 * names. Lenient on purpose: their CAs refuse while the group is broken.
 */
export function readableGroupCertificates(doc, caReference) {
  let d = doc;
  try {
    d = normalizeEntry(doc);
  } catch {
    d = doc;
  }
  const x509 = isObject(d) && isObject(d.attestation) && isObject(d.attestation.x509) ? d.attestation.x509 : {};
  const at = (o, k) => (isObject(o) ? o[k] : undefined);
  const out = [];
  for (const which of ['primary', 'secondary']) {
    const text = at(at(x509.signingCertificates, which), 'certificate');
    if (typeof text === 'string') {
      try {
        out.push(oneCertificate(text));
      } catch {
        // not readable: skipped
      }
    }
    const name = at(x509.caReferences, which);
    if (typeof name === 'string') {
      const der = caReference(name);
      if (der !== undefined) out.push(der);
    }
  }
  return out;
}

/** Deepest nesting of arrays and objects the Rust hosts' JSON parser reads (serde_json's limit). */
export const MAX_NESTING = 127;

// The deepest nesting of `[` and `{` outside strings, in one pass (a
// document too deep for a recursive parser is measured without recursing).
function nesting(text) {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * An in-memory enrollment set answering the component's `enrollments`
 * lookups: pass it to Policy.resolve / Policy.attest.
 */
export class EnrollmentSet {
  #individuals = new Map();
  #groups = new Map();
  #anchors = new Map();
  #groupIds = new Set();
  #revocations = new Map();
  #policy;

  /** @param policy the Policy whose `index-certificate` computes lookup keys. */
  constructor(policy) {
    this.#policy = policy;
  }

  /** Parses an enrollment file (`individualEnrollments`, `enrollmentGroups`). */
  static fromJson(text, policy) {
    if (nesting(text) > MAX_NESTING) {
      throw new EnrollmentError(`not an enrollment set in DPS JSON shapes: nested more than ${MAX_NESTING} levels deep`);
    }
    let file;
    try {
      file = JSON.parse(text);
    } catch (e) {
      throw new EnrollmentError(`not an enrollment set in DPS JSON shapes: ${e.message}`);
    }
    if (!isObject(file)) throw new EnrollmentError('not an enrollment set in DPS JSON shapes: expected an object');
    for (const field of ['individualEnrollments', 'enrollmentGroups']) {
      if (field in file && !Array.isArray(file[field])) {
        throw new EnrollmentError(`not an enrollment set in DPS JSON shapes: ${field} must be an array`);
      }
    }
    const set = new EnrollmentSet(policy);
    const label = (d) => {
      const id = isObject(d) ? (d.registrationId ?? d.enrollmentGroupId) : undefined;
      return typeof id === 'string' ? ` ('${id}')` : '';
    };
    (file.individualEnrollments ?? []).forEach((e, i) => {
      try {
        set.insertIndividual(e);
      } catch (err) {
        throw context(err, `individualEnrollments[${i}]${label(e)}`);
      }
    });
    (file.enrollmentGroups ?? []).forEach((g, i) => {
      try {
        set.insertGroup(g);
      } catch (err) {
        throw context(err, `enrollmentGroups[${i}]${label(g)}`);
      }
    });
    return set;
  }

  /** Adds one DPS IndividualEnrollment document. */
  insertIndividual(doc) {
    const entry = loadIndividual(doc, this.#policy);
    const id = asciiLower(entry.registrationId);
    if (this.#individuals.has(id)) throw new EnrollmentError('registration ID appears more than once');
    const { revocation, ...enrollment } = entry;
    this.#individuals.set(id, enrollment);
    this.#revocations.set(`individual:${id}`, revocation);
  }

  /** Adds one DPS EnrollmentGroup document (with signingCertificates). */
  insertGroup(doc) {
    const g = loadGroup(doc, this.#policy);
    if (this.#groupIds.has(g.groupId)) throw new EnrollmentError('enrollment group ID appears more than once');
    for (const ca of g.cas) {
      const other = this.#groups.get(key(ca.keys.caIdentity));
      if (other) throw new EnrollmentError(`its CA (same subject and public key) is already the CA of enrollment group '${other.groupId}'`);
    }
    const group = { groupId: g.groupId, enabled: g.enabled };
    for (const ca of g.cas) {
      this.#groups.set(key(ca.keys.caIdentity), group);
      this.#addAnchor(ca.der, ca.keys.subjectKey);
    }
    this.#groupIds.add(g.groupId);
    this.#revocations.set(`group:${g.groupId}`, g.revocation);
  }

  /** Trusts a CA certificate (DER) as an anchor (a verified CA, `--trust`). */
  addAnchor(der) {
    this.#addAnchor(der, caKeys(der, this.#policy).subjectKey);
  }

  #addAnchor(der, subjectKey) {
    const k = key(subjectKey);
    const list = this.#anchors.get(k) ?? [];
    if (!list.some((d) => Buffer.compare(d, der) === 0)) list.push(der);
    this.#anchors.set(k, list);
  }

  /** Number of individual enrollments and groups. */
  get counts() {
    return { individual: this.#individuals.size, groups: this.#groupIds.size };
  }

  // The component's lookups.
  individual(registrationId) {
    return this.#individuals.get(asciiLower(registrationId));
  }

  group(caIdentity) {
    return this.#groups.get(key(caIdentity));
  }

  trustAnchors(subjectKey) {
    return this.#anchors.get(key(subjectKey)) ?? [];
  }

  // `entry`: { kind: 'individual' | 'group', id }.
  revocation(entry) {
    const id = entry.kind === 'individual' ? asciiLower(entry.id) : entry.id;
    return this.#revocations.get(`${entry.kind}:${id}`) ?? STRICTEST_REVOCATION;
  }
}
