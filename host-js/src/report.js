// Decisions in the JSON shape of `host-cli verify --json`, and the exact
// text of that document: keys in code-point order, no spaces (what
// serde_json writes for the Rust CLI).

const PURPOSES = { clientAuth: 'client-auth', serverAuth: 'server-auth', any: 'any' };
const KINDS = { individual: 'individualEnrollment', group: 'enrollmentGroup' };

/** The WIT `purpose` for a CLI/JSON name (`clientAuth`, `serverAuth`, `any`). */
export function witPurpose(name) {
  const p = PURPOSES[name];
  if (!p) throw new TypeError(`purpose must be clientAuth, serverAuth or any, not ${JSON.stringify(name)}`);
  return p;
}

const hex = (bytes) => Buffer.from(bytes).toString('hex').toUpperCase();

/**
 * RFC 3339 for a Unix time, as the Rust hosts write it: whole seconds,
 * `Z`; `@<seconds>` for a time outside the years 0000 to 9999.
 */
export function rfc3339(seconds) {
  const t = BigInt(seconds);
  // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
  if (t < -62167219200n || t > 253402300799n) return `@${t}`;
  const d = new Date(Number(t) * 1000);
  const year = d.getUTCFullYear();
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(year, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
}

/** A WIT `certificate-info` as a path element of the decision document. */
export function certificateJson(c) {
  return {
    subject: c.subject,
    issuer: c.issuer,
    commonName: c.commonName ?? null,
    serialNumber: c.serial,
    sha256Thumbprint: hex(c.sha256),
    notBeforeUtc: rfc3339(c.notBefore),
    notAfterUtc: rfc3339(c.notAfter),
  };
}

/** A WIT `refusal` as the JSON `refusal` object. */
export function refusalJson(r) {
  return {
    code: r.code,
    message: r.message,
    certificate: r.certificate
      ? { position: r.certificate.position, subject: r.certificate.subject, sha256Thumbprint: hex(r.certificate.sha256) }
      : null,
    enrollment: r.enrollment ? { kind: KINDS[r.enrollment.kind], id: r.enrollment.id } : null,
  };
}

/**
 * The decision document: `mode` is chain, resolve or attest; `outcome` is
 * `{ ok: value }` or `{ err: refusal }` as the component returned it.
 */
export function decisionJson(mode, time, purposeName, outcome) {
  const out = {
    verdict: 'ok' in outcome ? 'accepted' : 'refused',
    mode,
    validationTime: rfc3339(time),
    extendedKeyUsage: purposeName,
  };
  if ('ok' in outcome) {
    if (mode === 'chain') {
      out.path = outcome.ok.map(certificateJson);
    } else {
      const d = outcome.ok;
      out.registrationId = d.registrationId;
      out.deviceId = d.deviceId;
      out.enrollment = { kind: KINDS[d.enrollment.kind], id: d.enrollment.id };
      out.path = d.path.map(certificateJson);
      out.proofOfPossession = mode === 'attest' ? 'verified' : 'not-checked';
    }
  } else {
    out.refusal = refusalJson(outcome.err);
  }
  return out;
}

/** JSON text with object keys sorted (by UTF-16 code unit, as serde_json's BTreeMap does for these ASCII keys), no spaces. */
export function canonicalJson(value) {
  return JSON.stringify(value, (_key, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const sorted = {};
      for (const k of Object.keys(v).sort()) sorted[k] = v[k];
      return sorted;
    }
    return v;
  });
}
