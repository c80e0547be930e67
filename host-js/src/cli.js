// `attest verify`: host-cli verify's contract in Node.js. Same flags, same
// exit codes (0 accepted, 1 refused, 2 usage or input error), and with
// --json the same document, byte for byte, as `host-cli verify --json`.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { constants as os } from 'node:os';

import { EnrollmentSet, HostError, Policy, toJson } from './index.js';
import { commonName } from './enrollments.js';
import { base64Decode, pemCertificates } from './pem.js';

export const EXIT_ACCEPTED = 0;
export const EXIT_REFUSED = 1;
export const EXIT_ERROR = 2;

/** Largest certificate file read (bytes), as host-cli. */
export const MAX_PEM_FILE = 1 << 20;
/** Largest enrollment file read (bytes), as host-cli. */
export const MAX_JSON_FILE = 16 << 20;

const USAGE = `Usage: attest verify [OPTIONS] <CHAIN>

Validate a device chain and, with --enrollments, decide whether the device is admitted.
Exit codes: 0 accepted, 1 refused, 2 usage or input error.

Arguments:
  <CHAIN>  PEM file: the leaf first, then intermediates

Options:
      --trust <TRUST>                      PEM file of trusted root / CA certificates
      --enrollments <ENROLLMENTS>          Enrollment set (DPS JSON shapes); runs full enrollment resolution
      --at <AT>                            Validation time, RFC 3339 (default: now)
      --eku <EKU>                          Required extended key usage of the leaf [default: clientAuth] [possible values: clientAuth, serverAuth, any]
      --registration-id <REGISTRATION_ID>  Registration ID the device claims (default: the leaf's subject CN)
      --challenge <CHALLENGE>              Proof of possession: the challenge (base64) the device signed
      --signature <SIGNATURE>              Proof of possession: the device's signature (base64)
      --json                               Print the decision as JSON
  -h, --help                               Print help
`;

class UsageError extends Error {}
class InputError extends Error {}

const EKU = { clientAuth: 'clientAuth', 'client-auth': 'clientAuth', serverAuth: 'serverAuth', 'server-auth': 'serverAuth', any: 'any', anyExtendedKeyUsage: 'any' };
const VALUED = new Set(['trust', 'enrollments', 'at', 'eku', 'registration-id', 'challenge', 'signature']);
// base64url values may start with '-': never mistaken for flags.
const HYPHEN_VALUES = new Set(['challenge', 'signature']);

function parseVerify(args) {
  const opts = { json: false, eku: 'clientAuth' };
  let chain;
  let onlyPositional = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (onlyPositional || !arg.startsWith('--') || arg === '-') {
      if (arg === '-h' && !onlyPositional) return { help: true };
      if (chain !== undefined) throw new UsageError(`unexpected argument '${arg}' found`);
      chain = arg;
      continue;
    }
    if (arg === '--') {
      onlyPositional = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (name === 'help') return { help: true };
    if (name === 'json') {
      if (eq >= 0) throw new UsageError("unexpected value for '--json'");
      if (opts.json) throw new UsageError("the argument '--json' cannot be used multiple times");
      opts.json = true;
      continue;
    }
    if (!VALUED.has(name)) throw new UsageError(`unexpected argument '--${name}' found`);
    let value;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      value = args[++i];
      if (value === undefined || (value.startsWith('-') && value !== '-' && !HYPHEN_VALUES.has(name))) {
        throw new UsageError(`a value is required for '--${name} <${name.toUpperCase().replace('-', '_')}>' but none was supplied`);
      }
    }
    const field = name.replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (field in opts && field !== 'eku') throw new UsageError(`the argument '--${name}' cannot be used multiple times`);
    if (name === 'eku') {
      if (opts.ekuGiven) throw new UsageError("the argument '--eku' cannot be used multiple times");
      if (!(value in EKU)) throw new UsageError(`invalid value '${value}' for '--eku <EKU>' [possible values: clientAuth, serverAuth, any]`);
      opts.eku = EKU[value];
      opts.ekuGiven = true;
      continue;
    }
    opts[field] = value;
  }
  if (chain === undefined) throw new UsageError('the following required arguments were not provided: <CHAIN>');
  if ((opts.challenge === undefined) !== (opts.signature === undefined)) {
    throw new UsageError(opts.challenge === undefined
      ? "the following required arguments were not provided: --challenge <CHALLENGE>"
      : "the following required arguments were not provided: --signature <SIGNATURE>");
  }
  opts.chain = chain;
  return opts;
}

// Rust's io::Error text for the errors a file read meets.
const STRERROR = {
  ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory', ELOOP: 'Too many levels of symbolic links', ENAMETOOLONG: 'File name too long',
  EPERM: 'Operation not permitted', ENXIO: 'No such device or address', EIO: 'Input/output error',
};

function ioMessage(e) {
  const errno = os.errno[e.code];
  return STRERROR[e.code] && errno !== undefined ? `${STRERROR[e.code]} (os error ${errno})` : e.message;
}

/** Reads at most `limit` bytes of `path` (a FIFO or /dev/zero costs limit + 1 bytes, never more). */
export function readLimited(path, limit) {
  let fd;
  try {
    fd = openSync(path, 'r');
    if (fstatSync(fd).isDirectory()) throw new InputError(`cannot read ${path}: is a directory, not a file`);
    const buf = Buffer.alloc(Math.min(limit + 1, 1 << 16));
    const chunks = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, limit + 1 - total), null);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
      total += n;
      if (total > limit) throw new InputError(`cannot read ${path}: is larger than the ${limit}-byte limit`);
    }
    return Buffer.concat(chunks);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot read ${path}: ${ioMessage(e)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function pemFile(path) {
  const bytes = readLimited(path, MAX_PEM_FILE);
  if (bytes.every((b) => b === 0x20 || (b >= 0x09 && b <= 0x0d && b !== 0x0b))) throw new InputError(`${path} is empty`);
  let certs;
  try {
    certs = pemCertificates(bytes.toString('latin1'));
  } catch (e) {
    throw new InputError(`${path} is not valid PEM: ${e.message}`);
  }
  if (certs.length === 0) throw new InputError(`${path} contains no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return certs;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** An RFC 3339 date-time as Unix seconds (fractions dropped), or throws. */
export function parseRfc3339(text) {
  const m = RFC3339.exec(text);
  const fail = (why) => new InputError(`--at ${JSON.stringify(text)} is not an RFC 3339 time (e.g. 2026-06-01T00:00:00Z): ${why}`);
  if (!m) throw fail('it does not match YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)');
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const mdays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (mo < 1 || mo > 12) throw fail('the month is out of range');
  if (d < 1 || d > mdays[mo - 1]) throw fail('the day is out of range');
  if (h > 23) throw fail('the hour is out of range');
  if (mi > 59) throw fail('the minute is out of range');
  if (s > 59) throw fail('the second is out of range');
  let offset = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23) throw fail('the offset hour is out of range');
    if (om > 59) throw fail('the offset minute is out of range');
    offset = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  return BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(h * 3600 + mi * 60 + s - offset);
}

const hex8 = (thumbprint) => thumbprint.slice(0, 16);

function pathLine(path) {
  return path.map((c) => c.commonName ?? c.subject).join(' <- ');
}

function enrollmentText(e) {
  return e.kind === 'individualEnrollment' ? `individual enrollment '${e.id}'` : `enrollment group '${e.id}'`;
}

function certificateText(c) {
  const where = c.position === 0 ? 'leaf' : `chain position ${c.position}`;
  return `${where} '${c.subject}'`;
}

/** The decision for people, as host-cli prints it. */
export function human(d) {
  const at = d.validationTime;
  const purpose = d.extendedKeyUsage;
  let s = '';
  if (d.verdict === 'accepted' && d.mode === 'chain') {
    s += `ACCEPTED  chain is valid for ${purpose} at ${at}\n`;
    s += `  path: ${pathLine(d.path)} (trust anchor)\n`;
  } else if (d.verdict === 'accepted') {
    s += `ACCEPTED  ${d.registrationId} is admitted by ${enrollmentText(d.enrollment)} as device ID '${d.deviceId}'\n`;
    s += `  path: ${pathLine(d.path)}${d.path.length > 1 ? ' (trust anchor)' : ' (enrolled certificate)'}\n`;
    s += d.mode === 'attest' ? '  proof of possession: verified\n' : '  proof of possession: not checked (add --challenge and --signature)\n';
    s += `  checked at ${at} for ${purpose}\n`;
  }
  if (d.refusal) {
    const r = d.refusal;
    s += `REFUSED   ${r.code}: ${r.message}\n`;
    if (r.certificate) s += `  certificate: ${certificateText(r.certificate)} (sha256 ${hex8(r.certificate.sha256Thumbprint)})\n`;
    if (r.enrollment) s += `  enrollment: ${enrollmentText(r.enrollment)}\n`;
    s += `  checked at ${at} for ${purpose}\n`;
  }
  return s;
}

function verify(o, policyOptions) {
  const time = o.at === undefined ? BigInt(Math.floor(Date.now() / 1000)) : parseRfc3339(o.at);
  const chain = pemFile(o.chain);
  const trust = o.trust === undefined ? undefined : pemFile(o.trust);
  const [leaf, ...intermediates] = chain;
  const policy = new Policy(policyOptions);
  if (o.enrollments === undefined) {
    if (o.challenge !== undefined) throw new InputError('--challenge/--signature need --enrollments (proof of possession is part of attestation)');
    if (trust === undefined) throw new InputError('give --trust ROOTS.pem (chain validation) or --enrollments FILE.json (attestation)');
    return policy.validateChain({ leaf, intermediates, trustAnchors: trust, time, purpose: o.eku });
  }
  const raw = readLimited(o.enrollments, MAX_JSON_FILE);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new InputError(`${o.enrollments} is not UTF-8 text`);
  }
  let set;
  try {
    set = EnrollmentSet.fromJson(text, policy);
  } catch (e) {
    if (e.name === 'EnrollmentError') throw new InputError(`${o.enrollments}: ${e.message}`);
    throw e;
  }
  for (const anchor of trust ?? []) {
    try {
      set.addAnchor(anchor);
    } catch (e) {
      if (e.name === 'EnrollmentError') throw new InputError(e.message);
      throw e;
    }
  }
  let registrationId = o.registrationId;
  if (registrationId === undefined) {
    const cn = commonName(leaf);
    if (cn === undefined) throw new InputError('the leaf has no subject CN; pass --registration-id explicitly');
    // An unusable leaf is the policy's to refuse, with the same code and
    // exit status (1) as with --trust.
    registrationId = cn ?? 'unreadable-leaf';
  }
  const request = { registrationId, leaf, intermediates, time, purpose: o.eku };
  if (o.challenge !== undefined) {
    const challenge = base64Decode(o.challenge);
    if (challenge === null) throw new InputError('--challenge is not base64');
    const signature = base64Decode(o.signature);
    if (signature === null) throw new InputError('--signature is not base64');
    return policy.attest(request, { challenge, signature }, set);
  }
  return policy.resolve(request, set);
}

/**
 * Runs the command line `args` (without `node attest.js`); returns the
 * exit code and what goes to standard output and standard error.
 */
export function run(args, policyOptions) {
  const [command, ...rest] = args;
  if (command === '--help' || command === '-h' || command === 'help') return { code: 0, stdout: USAGE, stderr: '' };
  if (command !== 'verify') {
    return { code: EXIT_ERROR, stdout: '', stderr: `error: ${command === undefined ? "a subcommand is required ('verify')" : `unrecognized subcommand '${command}'`}\n\n${USAGE}` };
  }
  let opts;
  try {
    opts = parseVerify(rest);
  } catch (e) {
    if (e instanceof UsageError) return { code: EXIT_ERROR, stdout: '', stderr: `error: ${e.message}\n\n${USAGE}` };
    throw e;
  }
  if (opts.help) return { code: 0, stdout: USAGE, stderr: '' };
  try {
    const decision = verify(opts, policyOptions);
    const stdout = opts.json ? `${toJson(decision)}\n` : human(decision);
    return { code: decision.verdict === 'accepted' ? EXIT_ACCEPTED : EXIT_REFUSED, stdout, stderr: '' };
  } catch (e) {
    const known = e instanceof InputError || e instanceof HostError;
    const message = (known ? e.message : `internal error: ${e?.message ?? e}`).replace(/\n/g, ' ');
    return {
      code: EXIT_ERROR,
      stdout: opts.json ? `${toJson({ verdict: 'error', error: message })}\n` : '',
      stderr: `error: ${message}\n`,
    };
  }
}

