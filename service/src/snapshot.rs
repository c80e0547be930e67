//! Edge snapshots: everything a decision reads (individual enrollments,
//! enrollment groups, CA certificates) as one version of the store, signed
//! by the service, for gateways that decide offline.
//!
//! # The format (`application/x-ndjson`, one JSON value per line)
//!
//! ```text
//! {"attestSnapshot":1,"service":"0ne…","kid":"…","version":12,"since":null,"madeAt":"2026-…Z"}
//! {"put":"certificate","name":"root","der":"MII…","verified":true,"etag":"…","created":"…","updated":"…"}
//! {"put":"group","id":"line-a","etag":"…","doc":{…DPS enrollment group…}}
//! {"put":"individual","id":"device-1","etag":"…","doc":{…}}
//! {"put":"individual","id":"device-9","etag":"","unreadable":true}
//! {"delete":"group","id":"line-b"}
//! {"signature":"eyJ…"}
//! ```
//!
//! The first line names the service (its ID scope), the key that signs
//! (`kid`: the RFC 7638 thumbprint of its Ed25519 public key), the version
//! (the store's, see [`crate::store::Versions`]), the version a delta
//! starts from (`since`; `null`: a full snapshot, which replaces whatever
//! the gateway held) and when it was made. Records follow in a fixed
//! order: CA certificates, then groups, then individual enrollments (so a
//! group is applied after the certificates it references). The last line
//! is a JWT (RFC 7519; JWS compact serialisation, `alg` `EdDSA`, RFC 8037)
//! whose claims repeat the header's and add the number of lines before it
//! and the SHA-256 of their bytes (`\n` included): a truncated, reordered
//! or altered stream, or one signed by another key, does not verify.
//!
//! The stream is written from one read snapshot of the store, a page at a
//! time: 1M enrollments never sit in memory, and a snapshot taken while
//! writes go on holds each write transaction whole or not at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use attest_dps::documents::CaCert;
use attest_dps::{DpsError, ErrorKind};
use policy_host::EnrollmentKind;

use crate::sql::CERTIFICATE_KIND;
use crate::store::{Snapshot, StoreError, Transaction, Versions, kind_str};
use crate::{Service, now_unix, unavailable};

/// The format's version (the header's `attestSnapshot`).
pub const FORMAT: u64 = 1;
/// The JWS `typ` of a snapshot's signature.
pub const JWT_TYPE: &str = "attest-snapshot+jwt";
/// The media type of a snapshot stream.
pub const MEDIA_TYPE: &str = "application/x-ndjson";
/// The longest line a reader accepts: an enrollment document is at most
/// the management API's 4 MiB body.
pub const MAX_LINE: usize = 8 << 20;
/// The signing key's file name in the data directory.
pub const KEY_FILE: &str = "snapshot-key.pem";

/// Snapshots a service streams at once; more are answered 503 (each
/// holds a read transaction and a thread while its gateway reads).
pub const MAX_STREAMS: usize = 4;

/// Documents read per page while streaming.
const PAGE: usize = 256;
/// Bytes gathered before a chunk is handed to the sink.
const CHUNK: usize = 64 << 10;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The RFC 7638 thumbprint of an Ed25519 public key (base64url SHA-256 of
/// its canonical JWK): the `kid` of what it signs.
fn thumbprint(public: &[u8; 32]) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64URL.encode(public)
    );
    B64URL.encode(Sha256::digest(jwk.as_bytes()))
}

/// PEM text with `\n` line ends (the `pem` crate's default is `\r\n`).
fn pem_lf(p: &pem::Pem) -> String {
    pem::encode_config(
        p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The service's snapshot signing key (Ed25519).
pub struct SigningKey {
    pkcs8: Vec<u8>,
    public: [u8; 32],
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key in `path` (PKCS#8 PEM), created there (owner-only) if the
    /// file does not exist; the flag says whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool)> {
        if path.exists() {
            return Ok((SigningKey::load(path)?, false));
        }
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow!("cannot generate a snapshot signing key"))?;
        let text = pem_lf(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        crate::files::write_private(path, text.as_bytes())?;
        Ok((SigningKey::from_pkcs8(pkcs8.as_ref())?, true))
    }

    /// The key in `path` (an Ed25519 PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`).
    pub fn load(path: &Path) -> Result<SigningKey> {
        let text = policy_host::input::read_limited_text(path, 64 << 10)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let der = pem::parse(text.as_bytes())
            .ok()
            .filter(|p| p.tag() == "PRIVATE KEY")
            .ok_or_else(|| {
                anyhow!(
                    "{} is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
                    path.display()
                )
            })?;
        SigningKey::from_pkcs8(der.contents()).with_context(|| path.display().to_string())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey> {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| anyhow!("not an Ed25519 private key: {e}"))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| anyhow!("an Ed25519 public key is 32 bytes"))?;
        Ok(SigningKey {
            pkcs8: pkcs8.to_vec(),
            kid: thumbprint(&public),
            public,
        })
    }

    /// The public key as a PEM SubjectPublicKeyInfo (what gateways trust).
    pub fn public_pem(&self) -> String {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.public);
        pem_lf(&pem::Pem::new("PUBLIC KEY", spki))
    }

    /// The key's ID (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(JWT_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8),
        )
        .context("cannot sign the snapshot")
    }
}

/// A service's public snapshot key, as a gateway trusts it.
#[derive(Clone)]
pub struct TrustKey {
    public: [u8; 32],
    kid: String,
}

impl std::fmt::Debug for TrustKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustKey").field("kid", &self.kid).finish()
    }
}

impl TrustKey {
    /// The key of a PEM SubjectPublicKeyInfo (`host-http snapshot-key`'s output).
    pub fn from_pem(text: &[u8]) -> Result<TrustKey> {
        let not_one = || {
            anyhow!(
                "not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----, as host-http snapshot-key prints it)"
            )
        };
        let parsed = pem::parse(text).map_err(|_| not_one())?;
        let der = parsed.contents();
        if parsed.tag() != "PUBLIC KEY"
            || der.len() != 44
            || der[..ED25519_SPKI_PREFIX.len()] != ED25519_SPKI_PREFIX
        {
            return Err(not_one());
        }
        let public: [u8; 32] = der[ED25519_SPKI_PREFIX.len()..]
            .try_into()
            .map_err(|_| not_one())?;
        Ok(TrustKey {
            kid: thumbprint(&public),
            public,
        })
    }

    /// The key in a PEM file.
    pub fn load(path: &Path) -> Result<TrustKey> {
        let text = policy_host::input::read_limited_text(path, 64 << 10)
            .with_context(|| format!("cannot read {}", path.display()))?;
        TrustKey::from_pem(text.as_bytes()).with_context(|| path.display().to_string())
    }

    /// The key's ID (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims of a snapshot's signature, if it verifies with this key.
    fn verify(&self, jwt: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(jwt)
            .map_err(|e| anyhow!("the snapshot's signature is not a JWS: {e}"))?;
        if header.alg != jsonwebtoken::Algorithm::EdDSA {
            bail!("the snapshot is signed with {:?}, not EdDSA", header.alg);
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            bail!(
                "the snapshot is signed by another key (kid {}), not the trusted one ({})",
                header.kid.as_deref().unwrap_or("none"),
                self.kid
            );
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let key = jsonwebtoken::DecodingKey::from_ed_der(&self.public);
        let data = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
            .map_err(|e| anyhow!("the snapshot's signature does not verify: {e}"))?;
        Ok(data.claims)
    }
}

/// What a snapshot's signature says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The service (ID scope).
    iss: String,
    /// When it was made, Unix seconds.
    iat: i64,
    /// Its version.
    ver: u64,
    /// The version a delta starts from.
    since: Option<u64>,
    /// Lines before the signature.
    lines: u64,
    /// SHA-256 (hex) of those lines' bytes.
    sha256: String,
}

/// A snapshot's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    /// The format version ([`FORMAT`]).
    pub attest_snapshot: u64,
    /// The service (ID scope).
    pub service: String,
    /// The signing key's ID.
    pub kid: String,
    /// The version.
    pub version: u64,
    /// The version a delta starts from; `None`: a full snapshot.
    pub since: Option<u64>,
    /// When it was made, RFC 3339.
    pub made_at: String,
}

/// One record of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A CA certificate as the store holds it (never its verification code).
    Certificate(CaCert),
    /// An enrollment: its stored key, etag and document (`None`: the
    /// stored document is not JSON, and refuses its devices).
    Enrollment {
        /// Individual or group.
        kind: EnrollmentKind,
        /// The stored key.
        id: String,
        /// The etag.
        etag: String,
        /// The document.
        doc: Option<Value>,
    },
    /// A document that is gone: `kind` an enrollment kind's stored name or
    /// `certificate`.
    Delete {
        /// What went.
        kind: DeleteKind,
        /// Its key or name.
        id: String,
    },
}

/// What a [`Record::Delete`] deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteKind {
    /// A CA certificate.
    Certificate,
    /// An enrollment.
    Enrollment(EnrollmentKind),
}

impl DeleteKind {
    fn stored(self) -> &'static str {
        match self {
            DeleteKind::Certificate => CERTIFICATE_KIND,
            DeleteKind::Enrollment(kind) => kind_str(kind),
        }
    }

    fn from_stored(s: &str) -> Option<DeleteKind> {
        if s == CERTIFICATE_KIND {
            return Some(DeleteKind::Certificate);
        }
        attest_dps::kind::from_stored(s).map(DeleteKind::Enrollment)
    }
}

impl Record {
    /// The record as its line (no newline).
    fn line(&self) -> Value {
        match self {
            Record::Certificate(ca) => json!({
                "put": CERTIFICATE_KIND,
                "name": ca.name,
                "der": B64.encode(&ca.der),
                "verified": ca.verified,
                "etag": ca.etag,
                "created": ca.created,
                "updated": ca.updated,
            }),
            Record::Enrollment {
                kind,
                id,
                etag,
                doc: Some(doc),
            } => json!({"put": kind_str(*kind), "id": id, "etag": etag, "doc": doc}),
            Record::Enrollment {
                kind,
                id,
                etag,
                doc: None,
            } => json!({"put": kind_str(*kind), "id": id, "etag": etag, "unreadable": true}),
            Record::Delete { kind, id } => json!({"delete": kind.stored(), "id": id}),
        }
    }

    /// The record a line holds.
    fn parse(line: &Value) -> Result<Record> {
        let obj = line
            .as_object()
            .ok_or_else(|| anyhow!("a record is not a JSON object"))?;
        let text = |key: &str| -> Result<String> {
            obj.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("a record has no {key:?} string"))
        };
        if let Some(kind) = obj.get("delete") {
            let kind = kind
                .as_str()
                .and_then(DeleteKind::from_stored)
                .ok_or_else(|| anyhow!("a delete record names an unknown kind"))?;
            return Ok(Record::Delete {
                kind,
                id: text("id")?,
            });
        }
        let put = text("put")?;
        if put == CERTIFICATE_KIND {
            let der = B64
                .decode(text("der")?)
                .map_err(|_| anyhow!("a certificate record's der is not base64"))?;
            return Ok(Record::Certificate(CaCert {
                name: text("name")?,
                der,
                verified: obj
                    .get("verified")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| anyhow!("a certificate record has no verified flag"))?,
                code: None,
                etag: text("etag")?,
                created: text("created")?,
                updated: text("updated")?,
            }));
        }
        let kind = attest_dps::kind::from_stored(&put)
            .ok_or_else(|| anyhow!("a record puts an unknown kind {put:?}"))?;
        let doc = match (obj.get("doc"), obj.get("unreadable")) {
            (Some(doc), None) => Some(doc.clone()),
            (None, Some(Value::Bool(true))) => None,
            _ => bail!("an enrollment record has neither a doc nor unreadable: true"),
        };
        Ok(Record::Enrollment {
            kind,
            id: text("id")?,
            etag: text("etag")?,
            doc,
        })
    }
}

/// A snapshot ready to stream: one read snapshot of the store, opened and
/// checked; [`SnapshotStream::write`] writes it.
pub struct SnapshotStream {
    snapshot: Box<dyn Snapshot>,
    header: Header,
    key: Arc<SigningKey>,
    /// When it was made, Unix seconds (the header's `madeAt`, signed as `iat`).
    made_at: i64,
    _slot: StreamSlot,
}

/// One of [`MAX_STREAMS`], given back when the stream ends.
struct StreamSlot(Arc<std::sync::atomic::AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<std::sync::atomic::AtomicUsize>) -> Option<StreamSlot> {
        use std::sync::atomic::Ordering::SeqCst;
        open.fetch_update(SeqCst, SeqCst, |n| (n < MAX_STREAMS).then_some(n + 1))
            .ok()
            .map(|_| StreamSlot(Arc::clone(open)))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Gathers lines into chunks for a sink, hashing and counting them.
struct Writer<'a> {
    sink: &'a mut dyn FnMut(Vec<u8>) -> Result<()>,
    buf: Vec<u8>,
    sha: Sha256,
    lines: u64,
}

impl Writer<'_> {
    fn line(&mut self, value: &Value) -> Result<()> {
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, value)?;
        self.buf.push(b'\n');
        self.sha.update(&self.buf[start..]);
        self.lines += 1;
        if self.buf.len() >= CHUNK {
            (self.sink)(std::mem::take(&mut self.buf))?;
        }
        Ok(())
    }
}

impl SnapshotStream {
    /// The first line's contents.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Writes the snapshot to `sink`, a chunk at a time; returns the number
    /// of records. A sink error (the client went) or a store failure ends
    /// the stream before its signature, which a reader refuses.
    pub fn write(mut self, sink: &mut dyn FnMut(Vec<u8>) -> Result<()>) -> Result<u64> {
        let mut w = Writer {
            sink,
            buf: Vec::with_capacity(CHUNK + 4096),
            sha: Sha256::new(),
            lines: 0,
        };
        w.line(&serde_json::to_value(&self.header)?)?;
        let mut records = 0u64;
        let since = self.header.since;
        let snapshot = &mut self.snapshot;
        match since {
            None => {
                let cas = snapshot.read_with(|tx| tx.certificates())?;
                for ca in cas {
                    w.line(&Record::Certificate(without_code(ca)).line())?;
                    records += 1;
                }
                for kind in [EnrollmentKind::Group, EnrollmentKind::Individual] {
                    let mut after: Option<String> = None;
                    loop {
                        let page = snapshot
                            .read_with(|tx| tx.enrollments(kind, after.as_deref(), PAGE))?;
                        let Some((last, _)) = page.last() else { break };
                        after = Some(last.clone());
                        for (id, doc) in page {
                            w.line(&enrollment_record(kind, id, doc)?.line())?;
                            records += 1;
                        }
                    }
                }
            }
            Some(since) => {
                let mut after: Option<(String, String)> = None;
                loop {
                    let page = snapshot.read_with(|tx| {
                        let changed = tx.changes_after(
                            since,
                            after.as_ref().map(|(k, i)| (k.as_str(), i.as_str())),
                            PAGE,
                        )?;
                        changed
                            .into_iter()
                            .map(|(kind, id)| change_record(tx, &kind, id))
                            .collect::<Result<Vec<Record>>>()
                            .map(|records| {
                                let last = after_of(&records);
                                (records, last)
                            })
                    })?;
                    let (page, last) = page;
                    let Some(last) = last else { break };
                    after = Some(last);
                    for record in page {
                        w.line(&record.line())?;
                        records += 1;
                    }
                }
            }
        }
        let claims = Claims {
            iss: self.header.service.clone(),
            iat: self.made_at,
            ver: self.header.version,
            since: self.header.since,
            lines: w.lines,
            sha256: hex::encode(w.sha.clone().finalize()),
        };
        let jwt = self.key.sign(&claims)?;
        w.buf
            .extend_from_slice(json!({ "signature": jwt }).to_string().as_bytes());
        w.buf.push(b'\n');
        let rest = std::mem::take(&mut w.buf);
        (w.sink)(rest)?;
        Ok(records)
    }
}

/// The keyset position after a page of change records.
fn after_of(records: &[Record]) -> Option<(String, String)> {
    records.last().map(|r| match r {
        Record::Certificate(ca) => (CERTIFICATE_KIND.to_string(), ca.name.clone()),
        Record::Enrollment { kind, id, .. } => (kind_str(*kind).to_string(), id.clone()),
        Record::Delete { kind, id } => (kind.stored().to_string(), id.clone()),
    })
}

fn without_code(ca: CaCert) -> CaCert {
    CaCert { code: None, ..ca }
}

fn enrollment_record(
    kind: EnrollmentKind,
    id: String,
    doc: std::result::Result<crate::store::Doc, StoreError>,
) -> Result<Record> {
    match doc {
        Ok(doc) => Ok(Record::Enrollment {
            kind,
            id,
            etag: doc.etag,
            doc: Some(doc.doc),
        }),
        Err(StoreError::Unreadable(_)) => Ok(Record::Enrollment {
            kind,
            id,
            etag: String::new(),
            doc: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// The record for a document that changed: as it is now, or its delete.
fn change_record(tx: &dyn Transaction, kind: &str, id: String) -> Result<Record> {
    let Some(what) = DeleteKind::from_stored(kind) else {
        bail!("the change log names an unknown kind {kind:?}");
    };
    match what {
        DeleteKind::Certificate => Ok(match tx.certificate(&id)? {
            Some(ca) => Record::Certificate(without_code(ca)),
            None => Record::Delete { kind: what, id },
        }),
        DeleteKind::Enrollment(kind) => match tx.enrollment(kind, &id) {
            Ok(Some(doc)) => enrollment_record(kind, id, Ok(doc)),
            Ok(None) => Ok(Record::Delete { kind: what, id }),
            Err(e) => enrollment_record(kind, id, Err(e)),
        },
    }
}

impl Service {
    /// The snapshot key's file in `data` ([`KEY_FILE`]).
    pub fn snapshot_key_path(data: &Path) -> PathBuf {
        data.join(KEY_FILE)
    }

    /// `GET /attest/snapshot[?since=N]`: opens one read snapshot of the
    /// store and checks `since` against it. A version newer than the
    /// store's (a gateway of another service, or this one restored from an
    /// older backup) is a 409; one from before the history kept is a 410,
    /// and the gateway takes a full snapshot.
    pub fn snapshot(&self, since: Option<u64>) -> Result<SnapshotStream, DpsError> {
        let key = self.snapshot_key.clone().ok_or_else(|| {
            DpsError::new(
                ErrorKind::NotFound,
                "this service has no snapshot signing key",
            )
        })?;
        let slot = StreamSlot::take(&self.snapshot_streams).ok_or_else(|| {
            DpsError::new(
                ErrorKind::Unavailable,
                format!("{MAX_STREAMS} snapshots are being sent; retry shortly"),
            )
            .retry_after_seconds(5)
        })?;
        let mut snapshot = self
            .store
            .snapshot()
            .map_err(|e| unavailable("the store cannot be read", &e))?;
        let versions: Versions = snapshot
            .read_with(|tx| tx.versions())
            .map_err(|e| unavailable("the store cannot be read", &e))?;
        if let Some(since) = since {
            if since > versions.version {
                return Err(DpsError::new(
                    ErrorKind::Conflict,
                    format!(
                        "version {since} is newer than this service's ({}): a gateway of another service, or this service restored from an older backup; the gateway keeps what it holds",
                        versions.version
                    ),
                ));
            }
            if since < versions.horizon {
                return Err(DpsError::new(
                    ErrorKind::SnapshotHistoryGone,
                    format!(
                        "the changes after version {since} are no longer kept (history starts at {}): take a full snapshot",
                        versions.horizon
                    ),
                ));
            }
        }
        let made_at = now_unix();
        Ok(SnapshotStream {
            snapshot,
            header: Header {
                attest_snapshot: FORMAT,
                service: self.id_scope.clone(),
                kid: key.kid().to_string(),
                version: versions.version,
                since,
                made_at: attest_dps::documents::rfc3339(made_at),
            },
            key,
            made_at,
            _slot: slot,
        })
    }
}

/// A snapshot read and verified: its header and records, in order.
#[derive(Debug)]
pub struct Verified {
    /// The first line.
    pub header: Header,
    /// Records applied.
    pub records: u64,
    /// When it was made, Unix seconds (the signed time).
    pub made_at: i64,
}

/// Reads a snapshot from `input`, handing each record to `apply` as it is
/// read, and verifies it at the end: every line hashed, the signature
/// checked with `key`, its claims compared with the header. `apply` must
/// be undone by the caller when this fails (a replica applies inside one
/// transaction and rolls it back).
pub fn read(
    input: &mut dyn std::io::BufRead,
    key: &TrustKey,
    apply: &mut dyn FnMut(&Header, Record) -> Result<()>,
) -> Result<Verified> {
    let mut sha = Sha256::new();
    let mut lines = 0u64;
    let mut header: Option<Header> = None;
    let mut records = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_line(input, &mut line)?;
        if n == 0 {
            bail!("the snapshot ends before its signature (truncated)");
        }
        if line.last() != Some(&b'\n') {
            bail!("the snapshot ends inside a line (truncated)");
        }
        let value: Value = serde_json::from_slice(&line)
            .map_err(|e| anyhow!("line {} of the snapshot is not JSON: {e}", lines + 1))?;
        if let Some(jwt) = value.get("signature") {
            let jwt = jwt
                .as_str()
                .ok_or_else(|| anyhow!("the snapshot's signature is not a string"))?;
            let header = header.ok_or_else(|| anyhow!("the snapshot has no header"))?;
            let claims = key.verify(jwt)?;
            let digest = hex::encode(sha.finalize());
            if claims.sha256 != digest || claims.lines != lines {
                bail!("the snapshot's lines are not the ones signed (altered, reordered or cut)");
            }
            if claims.iss != header.service
                || claims.ver != header.version
                || claims.since != header.since
                || header.kid != key.kid()
            {
                bail!("the snapshot's header differs from its signed claims");
            }
            let mut rest = [0u8; 1];
            if std::io::Read::read(input, &mut rest)? != 0 {
                bail!("the snapshot goes on after its signature");
            }
            return Ok(Verified {
                header,
                records,
                made_at: claims.iat,
            });
        }
        sha.update(&line);
        lines += 1;
        match &header {
            None => {
                let h: Header = serde_json::from_value(value)
                    .map_err(|e| anyhow!("the snapshot's first line is not its header: {e}"))?;
                if h.attest_snapshot != FORMAT {
                    bail!(
                        "snapshot format {} is not the one this gateway reads ({FORMAT})",
                        h.attest_snapshot
                    );
                }
                header = Some(h);
            }
            Some(h) => {
                apply(
                    h,
                    Record::parse(&value).with_context(|| format!("line {lines}"))?,
                )?;
                records += 1;
            }
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes (its newline included).
fn read_line(input: &mut dyn std::io::BufRead, out: &mut Vec<u8>) -> Result<usize> {
    loop {
        let (done, used) = {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                return Ok(out.len());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    out.extend_from_slice(&buf[..=i]);
                    (true, i + 1)
                }
                None => {
                    out.extend_from_slice(buf);
                    (false, buf.len())
                }
            }
        };
        input.consume(used);
        if out.len() > MAX_LINE {
            bail!("a snapshot line exceeds {MAX_LINE} bytes");
        }
        if done {
            return Ok(out.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_thumbprints_differ() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (key, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(key.kid(), again.kid());
        let trust = TrustKey::from_pem(key.public_pem().as_bytes()).unwrap();
        assert_eq!(trust.kid(), key.kid());
        let (other, _) = SigningKey::load_or_create(&dir.path().join("other.pem")).unwrap();
        assert_ne!(other.kid(), key.kid());
        assert!(
            TrustKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
        assert!(TrustKey::from_pem(b"garbage").is_err());
    }

    #[test]
    fn records_round_trip_through_their_lines() {
        let records = [
            Record::Certificate(CaCert {
                name: "root".into(),
                der: vec![1, 2, 3],
                verified: true,
                code: None,
                etag: "\"e\"".into(),
                created: "c".into(),
                updated: "u".into(),
            }),
            Record::Enrollment {
                kind: EnrollmentKind::Group,
                id: "g".into(),
                etag: "\"e\"".into(),
                doc: Some(json!({"enrollmentGroupId": "g"})),
            },
            Record::Enrollment {
                kind: EnrollmentKind::Individual,
                id: "d".into(),
                etag: String::new(),
                doc: None,
            },
            Record::Delete {
                kind: DeleteKind::Certificate,
                id: "x".into(),
            },
            Record::Delete {
                kind: DeleteKind::Enrollment(EnrollmentKind::Individual),
                id: "y".into(),
            },
        ];
        for r in records {
            assert_eq!(Record::parse(&r.line()).unwrap(), r);
        }
        for bad in [
            json!([]),
            json!({"put": "nothing", "id": "a", "etag": "", "doc": {}}),
            json!({"put": "group", "id": "a", "etag": ""}),
            json!({"put": "group", "id": "a", "etag": "", "unreadable": false}),
            json!({"delete": "groups", "id": "a"}),
            json!({"put": "certificate", "name": "a", "der": "*", "verified": true, "etag": "", "created": "", "updated": ""}),
        ] {
            assert!(Record::parse(&bad).is_err(), "{bad}");
        }
    }
}
