// PEM certificates and base64, read the way the Rust hosts read them
// (rustls-pki-types' PEM reader): every CERTIFICATE section in order,
// other sections skipped, strict base64 inside a section. The bytes are
// not parsed here: a certificate that is not X.509 is the component's to
// refuse.

const BEGIN = /^-----BEGIN ([^-]*)-----\s*$/;
const END = /^-----END ([^-]*)-----\s*$/;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard-alphabet base64 with canonical padding, or null. */
export function strictBase64(text) {
  if (!B64.test(text) || text.length % 4 !== 0) return null;
  const out = Buffer.from(text, 'base64');
  // Buffer ignores non-zero trailing bits; re-encoding must round-trip.
  return out.toString('base64') === text ? new Uint8Array(out) : null;
}

/** The DER of every CERTIFICATE section of `text`, in order; throws on a broken section. */
export function pemCertificates(text) {
  const out = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const begin = BEGIN.exec(lines[i].trim());
    if (!begin) continue;
    const label = begin[1];
    let body = '';
    let closed = false;
    for (i++; i < lines.length; i++) {
      const line = lines[i].trim();
      const end = END.exec(line);
      if (end) {
        if (end[1] !== label) throw new Error(`section ${label} ends with END ${end[1]}`);
        closed = true;
        break;
      }
      body += line.replace(/\s+/g, '');
    }
    if (!closed) throw new Error(`no end marker for ${label}`);
    if (label !== 'CERTIFICATE') continue;
    const der = strictBase64(body);
    if (der === null) throw new Error('invalid base64 in a CERTIFICATE section');
    out.push(der);
  }
  return out;
}

/** URL-safe unpadded base64, else standard base64 (as `host-cli` decodes `--challenge`). */
export function base64Decode(text) {
  const t = text.trim();
  if (/^[A-Za-z0-9_-]*$/.test(t) && t.length % 4 !== 1) {
    const out = Buffer.from(t, 'base64url');
    if (out.toString('base64url') === t) return new Uint8Array(out);
  }
  return strictBase64(t);
}

/** URL-safe unpadded base64. */
export function base64Encode(bytes) {
  return Buffer.from(bytes).toString('base64url');
}
