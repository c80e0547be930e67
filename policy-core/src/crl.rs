//! Certificate revocation lists (RFC 5280 §5) and the revocation check of
//! RFC 5280 §6.3.
//!
//! A [`CrlSet`] is parsed once from the CRLs an operator configured and is
//! then shared by every decision: each CRL's entries are indexed by
//! (certificate issuer, serial number), so a decision costs one lookup per
//! certificate however long the CRL is, and each CRL signature is verified
//! once per signing certificate, not once per decision.
//!
//! The check follows §6.3.3 for every certificate it is asked about:
//! distribution points (the certificate's, then the certificate issuer's
//! own CRLs), scope (issuer or indirect `cRLIssuer`, issuing distribution
//! point names, onlyContainsUserCerts / CACerts / AttributeCerts,
//! onlySomeReasons), the CRL signature under the issuer's key or under a CRL
//! issuer certified on a path to the same trust anchor (cRLSign required),
//! thisUpdate / nextUpdate, delta CRLs, and the reasons mask. A certificate
//! is REVOKED, UNREVOKED, or UNDETERMINED; nothing that cannot be read,
//! verified or scoped ever counts as "not revoked".

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Header, Reader, SliceReader};
use sha2::{Digest, Sha256};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlDistributionPoints, CrlNumber};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::name::{Name, RelativeDistinguishedName};

use crate::alg::{self, SignatureVerifier};
use crate::cert::{Cert, rfc3339};
use crate::dn::{DistinguishedName, format_name, hex_upper};
use crate::error::{Code, Refusal};
use crate::info::Purpose;
use crate::verify::{self, AnchorList, Flow, LeafRole};

/// Largest CRL accepted, bytes: a 100,000-entry CRL is about 4 MiB.
pub const MAX_CRL_SIZE: usize = 32 * 1024 * 1024;
/// Most entries in one CRL.
pub const MAX_CRL_ENTRIES: usize = 1_000_000;
/// Most CRLs in one set.
pub const MAX_CRLS: usize = 4096;
/// Most CRLs (complete and delta) from one issuer name: a CA partitions its
/// CRLs by distribution point and reason, but not into hundreds.
pub const MAX_CRLS_PER_ISSUER: usize = 32;
/// How deep CRL issuers may nest: the CRL issuer of a path certificate may
/// itself need a CRL issuer (its own CA's CRL key), and no further.
const MAX_SIGNER_DEPTH: usize = 2;
/// Most CRL-issuer path searches in one validation (each has its own path
/// budget), so that no set of CRLs makes one decision slow.
const MAX_SIGNER_SEARCHES: usize = 8;

mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub(super) const CRL_NUMBER: Oid = Oid::new_unwrap("2.5.29.20");
    pub(super) const DELTA_CRL_INDICATOR: Oid = Oid::new_unwrap("2.5.29.27");
    pub(super) const ISSUING_DISTRIBUTION_POINT: Oid = Oid::new_unwrap("2.5.29.28");
    pub(super) const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
    pub(super) const ISSUER_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.18");
    pub(super) const FRESHEST_CRL: Oid = Oid::new_unwrap("2.5.29.46");
    pub(super) const AUTHORITY_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");
    pub(super) const REASON_CODE: Oid = Oid::new_unwrap("2.5.29.21");
    pub(super) const INVALIDITY_DATE: Oid = Oid::new_unwrap("2.5.29.24");
    pub(super) const CERTIFICATE_ISSUER: Oid = Oid::new_unwrap("2.5.29.29");
}

/// ReasonFlags bits 1 to 8 (bit 0 is "unused"): RFC 5280 §6.3.3's
/// all-reasons.
pub(crate) const ALL_REASONS: u16 = 0x1FE;

/// Which certificates of a path are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationMode {
    /// None.
    Off,
    /// The leaf only.
    Leaf,
    /// Every certificate below the trust anchor.
    Chain,
    /// Every certificate below the trust anchor whose issuer (or a CRL
    /// issuer its distribution points name) has a CRL held: attest's
    /// default for enrollment entries, so that configuring a CA's CRL turns
    /// checking on for that CA and no other.
    Configured,
}

/// What a status that cannot be established means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lenience {
    /// Refuse the path (RFC 5280 §6.3.3: UNDETERMINED is not UNREVOKED).
    Refuse,
    /// Admit it, with a warning in the result.
    Warn,
}

/// The revocation policy of one validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// Which certificates are checked.
    pub mode: RevocationMode,
    /// When no usable CRL covers a certificate (or all its reasons).
    pub undetermined: Lenience,
    /// When the only CRLs that cover a certificate are past their
    /// nextUpdate: use them with a warning, or count them as absent.
    pub expired: Lenience,
}

impl RevocationPolicy {
    /// No revocation checking.
    pub const OFF: RevocationPolicy = RevocationPolicy {
        mode: RevocationMode::Off,
        undetermined: Lenience::Refuse,
        expired: Lenience::Refuse,
    };

    /// Every certificate of the path, failing closed (attest's default
    /// whenever CRLs are configured).
    pub const CHAIN: RevocationPolicy = RevocationPolicy {
        mode: RevocationMode::Chain,
        undetermined: Lenience::Refuse,
        expired: Lenience::Refuse,
    };

    /// The certificates whose CA has a CRL held, failing closed (the
    /// default of an enrollment entry that names no policy).
    pub const CONFIGURED: RevocationPolicy = RevocationPolicy {
        mode: RevocationMode::Configured,
        undetermined: Lenience::Refuse,
        expired: Lenience::Refuse,
    };
}

/// A name in a distribution point: a directory name (compared by
/// RFC 5280 §7.1) or any other GeneralName (compared as encoded).
#[derive(Clone, Debug)]
pub(crate) enum DpNameForm {
    Directory(DistinguishedName),
    Other(Vec<u8>),
}

impl DpNameForm {
    fn matches(&self, other: &DpNameForm) -> bool {
        match (self, other) {
            (DpNameForm::Directory(a), DpNameForm::Directory(b)) => a.matches(b),
            (DpNameForm::Other(a), DpNameForm::Other(b)) => a == b,
            _ => false,
        }
    }
}

/// A distribution point name as encoded: full names, or an RDN relative to
/// the CRL issuer.
#[derive(Clone, Debug)]
pub(crate) enum DpName {
    Full(Vec<DpNameForm>),
    Relative(RelativeDistinguishedName),
}

/// One DistributionPoint of a certificate's cRLDistributionPoints.
#[derive(Clone, Debug)]
pub(crate) struct DistributionPoint {
    name: Option<DpName>,
    /// ReasonFlags bits; `None` is all reasons.
    reasons: Option<u16>,
    /// cRLIssuer: directory names (an indirect CRL's issuer).
    crl_issuer: Option<Vec<DpNameForm>>,
}

/// Parses a cRLDistributionPoints extension value.
pub(crate) fn read_distribution_points(value: &[u8]) -> Result<Vec<DistributionPoint>, String> {
    let points = CrlDistributionPoints::from_der(value).map_err(|e| e.to_string())?;
    if points.0.is_empty() {
        return Err("no distribution point (SIZE (1..MAX))".into());
    }
    points
        .0
        .iter()
        .map(|dp| {
            if dp.distribution_point.is_none() && dp.crl_issuer.is_none() {
                return Err(
                    "a distribution point with neither distributionPoint nor cRLIssuer".into(),
                );
            }
            Ok(DistributionPoint {
                name: dp.distribution_point.as_ref().map(dp_name).transpose()?,
                reasons: dp.reasons.map(|r| r.bits()),
                crl_issuer: dp
                    .crl_issuer
                    .as_ref()
                    .map(|names| names.iter().map(name_form).collect())
                    .transpose()?,
            })
        })
        .collect()
}

fn dp_name(name: &DistributionPointName) -> Result<DpName, String> {
    Ok(match name {
        DistributionPointName::FullName(names) => {
            DpName::Full(names.iter().map(name_form).collect::<Result<_, _>>()?)
        }
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => DpName::Relative(rdn.clone()),
    })
}

fn name_form(name: &GeneralName) -> Result<DpNameForm, String> {
    Ok(match name {
        GeneralName::DirectoryName(n) => {
            let der = n.to_der().map_err(|e| e.to_string())?;
            DpNameForm::Directory(DistinguishedName::parse(&der)?)
        }
        other => DpNameForm::Other(other.to_der().map_err(|e| e.to_string())?),
    })
}

/// `base` (a Name, DER) with `rdn` appended: a nameRelativeToCRLIssuer made
/// full (RFC 5280 §4.2.1.13).
fn relative_to(base: &[u8], rdn: &RelativeDistinguishedName) -> Result<DpNameForm, String> {
    let mut name = Name::from_der(base).map_err(|e| e.to_string())?;
    name.0.push(rdn.clone());
    let der = name.to_der().map_err(|e| e.to_string())?;
    Ok(DpNameForm::Directory(DistinguishedName::parse(&der)?))
}

/// A CRL entry's reason (RFC 5280 §5.3.1), or unspecified when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reason(u8);

impl Reason {
    const UNSPECIFIED: Reason = Reason(0);
    const CERTIFICATE_HOLD: Reason = Reason(6);
    const REMOVE_FROM_CRL: Reason = Reason(8);

    fn name(self) -> &'static str {
        match self.0 {
            0 => "unspecified",
            1 => "keyCompromise",
            2 => "cACompromise",
            3 => "affiliationChanged",
            4 => "superseded",
            5 => "cessationOfOperation",
            6 => "certificateHold",
            8 => "removeFromCRL",
            9 => "privilegeWithdrawn",
            10 => "aACompromise",
            _ => "unknown",
        }
    }
}

/// One revoked certificate.
#[derive(Clone, Copy, Debug)]
struct Entry {
    revoked_at: i64,
    reason: Reason,
}

/// An issuing distribution point (RFC 5280 §5.2.5).
#[derive(Debug)]
struct Idp {
    /// The extension value as encoded: a delta CRL's scope must be the same.
    der: Vec<u8>,
    name: Option<DpName>,
    only_user: bool,
    only_ca: bool,
    only_attribute: bool,
    only_some_reasons: Option<u16>,
    indirect: bool,
}

/// One parsed CRL.
#[derive(Debug)]
pub(crate) struct Crl {
    sha256: [u8; 32],
    tbs: Vec<u8>,
    signature_algorithm: spki::AlgorithmIdentifierOwned,
    signature: Vec<u8>,
    issuer_name: DistinguishedName,
    issuer_der: Vec<u8>,
    issuer_key: [u8; 32],
    issuer_text: String,
    this_update: i64,
    next_update: Option<i64>,
    /// cRLNumber, big-endian without leading zeros.
    number: Option<Vec<u8>>,
    /// deltaCRLIndicator's BaseCRLNumber: this is a delta CRL.
    delta_base: Option<Vec<u8>>,
    idp: Option<Idp>,
    /// Certificate issuers named by entries (index 0: the CRL issuer).
    entry_issuers: Vec<DistinguishedName>,
    /// (index into `entry_issuers`, serial content octets) → entry.
    entries: HashMap<(u32, Vec<u8>), Entry>,
    /// Why the CRL cannot be used at all (an unknown critical extension, …).
    unusable: Option<String>,
}

impl Crl {
    /// Parses a DER CRL. Structural errors are `Err`; a CRL that parses but
    /// that RFC 5280 forbids using is kept with [`Crl::unusable`] set.
    pub(crate) fn parse(der: &[u8]) -> Result<Crl, String> {
        if der.len() > MAX_CRL_SIZE {
            return Err(format!(
                "CRL is {} bytes; the limit is {MAX_CRL_SIZE}",
                der.len()
            ));
        }
        let list = CertificateList::from_der(der)
            .map_err(|e| format!("not a DER X.509 CRL (RFC 5280 §5.1): {e}"))?;
        let tbs = tbs_bytes(der).map_err(|e| format!("not a DER X.509 CRL: {e}"))?;
        let t = &list.tbs_cert_list;
        let issuer_der = t.issuer.to_der().map_err(|e| e.to_string())?;
        let issuer_name =
            DistinguishedName::parse(&issuer_der).map_err(|e| format!("issuer: {e}"))?;
        let time = |t: &x509_cert::time::Time| -> Result<i64, String> {
            i64::try_from(t.to_unix_duration().as_secs()).map_err(|e| e.to_string())
        };
        let count = t.revoked_certificates.as_ref().map_or(0, Vec::len);
        if count > MAX_CRL_ENTRIES {
            return Err(format!(
                "CRL has {count} entries; the limit is {MAX_CRL_ENTRIES}"
            ));
        }
        let mut crl = Crl {
            sha256: Sha256::digest(der).into(),
            tbs,
            signature_algorithm: list.signature_algorithm.clone(),
            signature: list.signature.raw_bytes().to_vec(),
            issuer_key: issuer_name.key(),
            issuer_text: format_name(&issuer_name),
            issuer_name: issuer_name.clone(),
            issuer_der,
            this_update: time(&t.this_update)?,
            next_update: t.next_update.as_ref().map(time).transpose()?,
            number: None,
            delta_base: None,
            idp: None,
            entry_issuers: vec![issuer_name],
            entries: HashMap::with_capacity(count),
            unusable: None,
        };
        if list.signature_algorithm != t.signature {
            crl.unusable = Some(
                "its signatureAlgorithm differs from the tbsCertList signature field (RFC 5280 §5.1.1.2)"
                    .into(),
            );
        }
        if let Err(why) = crl.read_extensions(t.crl_extensions.as_deref()) {
            crl.unusable.get_or_insert(why);
        }
        if let Some(revoked) = &t.revoked_certificates {
            let indirect = crl.idp.as_ref().is_some_and(|i| i.indirect);
            let mut current = 0u32;
            for entry in revoked {
                let mut reason = Reason::UNSPECIFIED;
                for ext in entry.crl_entry_extensions.iter().flatten() {
                    match ext.extn_id {
                        oid::REASON_CODE => {
                            match x509_cert::ext::pkix::crl::CrlReason::from_der(
                                ext.extn_value.as_bytes(),
                            ) {
                                Ok(r) => reason = Reason(r as u8),
                                Err(e) => {
                                    crl.unusable.get_or_insert(format!(
                                        "malformed reasonCode entry extension: {e}"
                                    ));
                                }
                            }
                        }
                        oid::INVALIDITY_DATE => {}
                        oid::CERTIFICATE_ISSUER => {
                            if !indirect {
                                crl.unusable.get_or_insert(
                                    "a certificateIssuer entry extension in a CRL that is not indirect (RFC 5280 §5.3.3)".into(),
                                );
                                continue;
                            }
                            match certificate_issuer(ext.extn_value.as_bytes()) {
                                Ok(name) => {
                                    current = match crl
                                        .entry_issuers
                                        .iter()
                                        .position(|n| n.matches(&name))
                                    {
                                        Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
                                        None => {
                                            crl.entry_issuers.push(name);
                                            u32::try_from(crl.entry_issuers.len() - 1)
                                                .unwrap_or(u32::MAX)
                                        }
                                    };
                                }
                                Err(e) => {
                                    crl.unusable.get_or_insert(format!(
                                        "malformed certificateIssuer entry extension: {e}"
                                    ));
                                }
                            }
                        }
                        other if ext.critical => {
                            crl.unusable.get_or_insert(format!(
                                "an entry has critical extension {other}, which attest does not process (RFC 5280 §5.3)"
                            ));
                        }
                        _ => {}
                    }
                }
                let revoked_at = time(&entry.revocation_date)?;
                let key = (current, entry.serial_number.as_bytes().to_vec());
                let new = Entry { revoked_at, reason };
                // Two entries for one certificate: keep the one that revokes.
                crl.entries
                    .entry(key)
                    .and_modify(|old| {
                        if old.reason == Reason::REMOVE_FROM_CRL {
                            *old = new;
                        }
                    })
                    .or_insert(new);
            }
        }
        Ok(crl)
    }

    fn read_extensions(
        &mut self,
        extensions: Option<&[x509_cert::ext::Extension]>,
    ) -> Result<(), String> {
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in extensions.into_iter().flatten() {
            if seen.contains(&ext.extn_id) {
                return Err(format!(
                    "extension {} appears more than once (RFC 5280 §5.2)",
                    ext.extn_id
                ));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                oid::CRL_NUMBER => {
                    let n = CrlNumber::from_der(value)
                        .map_err(|e| format!("malformed cRLNumber: {e}"))?;
                    self.number = Some(unsigned(n.0.as_bytes()));
                }
                oid::DELTA_CRL_INDICATOR => {
                    let n = BaseCrlNumber::from_der(value)
                        .map_err(|e| format!("malformed deltaCRLIndicator: {e}"))?;
                    self.delta_base = Some(unsigned(n.0.as_bytes()));
                }
                oid::ISSUING_DISTRIBUTION_POINT => {
                    let idp = IssuingDistributionPoint::from_der(value)
                        .map_err(|e| format!("malformed issuingDistributionPoint: {e}"))?;
                    self.idp = Some(Idp {
                        der: value.to_vec(),
                        name: idp.distribution_point.as_ref().map(dp_name).transpose()?,
                        only_user: idp.only_contains_user_certs,
                        only_ca: idp.only_contains_ca_certs,
                        only_attribute: idp.only_contains_attribute_certs,
                        only_some_reasons: idp.only_some_reasons.map(|r| r.bits()),
                        indirect: idp.indirect_crl,
                    });
                }
                oid::AUTHORITY_KEY_ID
                | oid::ISSUER_ALT_NAME
                | oid::FRESHEST_CRL
                | oid::AUTHORITY_INFO_ACCESS => {}
                other if ext.critical => {
                    return Err(format!(
                        "it has critical extension {other}, which attest does not process (RFC 5280 §5.2)"
                    ));
                }
                _ => {}
            }
        }
        if self.delta_base.is_some() && self.number.is_none() {
            return Err("a delta CRL without cRLNumber (RFC 5280 §5.2.4)".into());
        }
        Ok(())
    }

    fn is_delta(&self) -> bool {
        self.delta_base.is_some()
    }

    /// The entry for `cert`, whose issuer is `cert.issuer_name`.
    fn lookup(&self, cert: &Cert) -> Option<Entry> {
        self.entry_issuers
            .iter()
            .enumerate()
            .filter(|(_, n)| n.matches(&cert.issuer_name))
            .find_map(|(i, _)| {
                self.entries
                    .get(&(u32::try_from(i).unwrap_or(u32::MAX), cert.serial.clone()))
                    .copied()
            })
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "the {}CRL of '{}'",
            if self.is_delta() { "delta " } else { "" },
            self.issuer_text
        );
        if let Some(n) = &self.number {
            s.push_str(&format!(" number {}", hex_upper(n)));
        }
        s.push_str(&format!(" (thisUpdate {})", rfc3339(self.this_update)));
        s
    }
}

/// Orders CRLs of one scope newest first: cRLNumber, then thisUpdate,
/// then SHA-256 (so the order never depends on the order given).
fn newest_first(crls: &mut [Arc<Crl>]) {
    crls.sort_by(|a, b| {
        let key = |c: &Crl| {
            let n = c.number.clone().unwrap_or_default();
            (n.len(), n, c.this_update, c.sha256)
        };
        key(b).cmp(&key(a))
    });
}

/// The DER of tbsCertList: the first element of the outer SEQUENCE.
fn tbs_bytes(der: &[u8]) -> Result<Vec<u8>, der::Error> {
    let mut reader = SliceReader::new(der)?;
    let header = Header::decode(&mut reader)?;
    header.tag.assert_eq(der::Tag::Sequence)?;
    Ok(reader.tlv_bytes()?.to_vec())
}

/// An INTEGER's content octets as an unsigned big-endian number without
/// leading zeros (CRL numbers are non-negative).
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// `a` ≤ `b` for numbers from [`unsigned`].
fn number_le(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// certificateIssuer ::= GeneralNames: its directoryName.
fn certificate_issuer(value: &[u8]) -> Result<DistinguishedName, String> {
    let names = Vec::<GeneralName>::from_der(value).map_err(|e| e.to_string())?;
    names
        .iter()
        .find_map(|n| match n {
            GeneralName::DirectoryName(name) => Some(name),
            _ => None,
        })
        .ok_or_else(|| "no directoryName".to_string())
        .and_then(|name| {
            let der = name.to_der().map_err(|e| e.to_string())?;
            DistinguishedName::parse(&der)
        })
}

/// The CRLs a validation may use, parsed and indexed once.
#[derive(Debug, Default)]
pub struct CrlSet {
    crls: Vec<Arc<Crl>>,
    /// The issuer name key of each CRL given, in the order given.
    given: Vec<[u8; 32]>,
    /// Issuer name key → indexes into `crls`.
    by_issuer: HashMap<[u8; 32], Vec<usize>>,
    /// CRL signatures checked so far.
    signatures: Mutex<SignatureMemo>,
}

/// (CRL SHA-256, signer certificate SHA-256) → whether the signature is valid.
type SignatureMemo = HashMap<([u8; 32], [u8; 32]), bool>;

impl CrlSet {
    /// Parses DER CRLs. A CRL that is not DER, too large, or one too many
    /// for its issuer is an error naming it (CRLs are operator input); a CRL
    /// that RFC 5280 forbids using (an unknown critical extension, say) is
    /// kept, and makes the status of what it covers undetermined.
    pub fn parse(crls: &[Vec<u8>]) -> Result<CrlSet, String> {
        if crls.len() > MAX_CRLS {
            return Err(format!("{} CRLs; the limit is {MAX_CRLS}", crls.len()));
        }
        let mut set = CrlSet::default();
        for (i, der) in crls.iter().enumerate() {
            let crl = Crl::parse(der).map_err(|message| format!("CRL #{}: {message}", i + 1))?;
            set.given.push(crl.issuer_key);
            if set.crls.iter().any(|c| c.sha256 == crl.sha256) {
                continue;
            }
            let same = set.by_issuer.entry(crl.issuer_key).or_default();
            if same.len() >= MAX_CRLS_PER_ISSUER {
                return Err(format!(
                    "CRL #{}: more than {MAX_CRLS_PER_ISSUER} CRLs from '{}'",
                    i + 1,
                    crl.issuer_text
                ));
            }
            same.push(set.crls.len());
            set.crls.push(Arc::new(crl));
        }
        Ok(set)
    }

    /// The issuer name key of each CRL given to [`CrlSet::parse`], in the
    /// order given (duplicates included): what hosts index CRLs by for the
    /// component's `revocation` import.
    pub fn issuer_keys(&self) -> &[[u8; 32]] {
        &self.given
    }

    /// How many distinct CRLs the set holds.
    pub fn len(&self) -> usize {
        self.crls.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }
}

/// Where the check finds CRLs: a [`CrlSet`] the host built, or the host's
/// `revocation` import inside the component.
pub(crate) trait CrlSource {
    /// The CRLs (complete and delta) whose issuer is `name`.
    fn issued_by(&self, name: &DistinguishedName) -> Vec<Arc<Crl>>;
    /// CRL signatures checked so far (shared by the decisions that use this
    /// source).
    fn signatures(&self) -> &Mutex<SignatureMemo>;
}

impl CrlSource for CrlSet {
    fn issued_by(&self, name: &DistinguishedName) -> Vec<Arc<Crl>> {
        self.by_issuer
            .get(&name.key())
            .into_iter()
            .flatten()
            .map(|i| &self.crls[*i])
            .filter(|c| c.issuer_name.matches(name))
            .cloned()
            .collect()
    }

    fn signatures(&self) -> &Mutex<SignatureMemo> {
        &self.signatures
    }
}

/// What a host shows of a CRL it holds ([`crl_details`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlDetails {
    /// SHA-256 of the DER.
    pub sha256: [u8; 32],
    /// The issuer's name key (what the `revocation` import is asked by).
    pub issuer_key: [u8; 32],
    /// The issuer, RFC 4514 text.
    pub issuer: String,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds, if any.
    pub next_update: Option<i64>,
    /// cRLNumber, upper-case hex, if any.
    pub number: Option<String>,
    /// Whether it is a delta CRL (its base CRL number, upper-case hex).
    pub delta_base: Option<String>,
    /// How many revoked certificates it lists.
    pub entries: usize,
    /// Why RFC 5280 forbids using it, if it does (an unknown critical
    /// extension, …).
    pub unusable: Option<String>,
}

/// Parses a CRL (attest's limits) and says what it is.
pub fn crl_details(der: &[u8]) -> Result<CrlDetails, String> {
    let crl = Crl::parse(der)?;
    Ok(CrlDetails {
        sha256: crl.sha256,
        issuer_key: crl.issuer_key,
        issuer: crl.issuer_text.clone(),
        this_update: crl.this_update,
        next_update: crl.next_update,
        number: crl.number.as_deref().map(hex_upper),
        delta_base: crl.delta_base.as_deref().map(hex_upper),
        entries: crl.entries.len(),
        unusable: crl.unusable.clone(),
    })
}

/// Whether the CA certificate `ca` (DER) issued the CRL `crl` (DER): its
/// subject is the CRL's issuer, it may sign CRLs (cRLSign when it has a
/// key usage) and is valid at `time`, and the CRL's signature verifies with
/// its key. A host checks this before it installs a CRL; the decision
/// checks every CRL again on the path it validates.
pub fn crl_signed_by(
    crl: &[u8],
    ca: &[u8],
    time: i64,
    crypto: &dyn SignatureVerifier,
) -> Result<(), String> {
    let crl = Crl::parse(crl)?;
    let ca = Cert::parse(ca).map_err(|(_, m)| format!("the CA certificate: {m}"))?;
    if !crl.issuer_name.matches(&ca.subject_name) {
        return Err(format!(
            "the CRL's issuer '{}' is not the CA certificate's subject '{}'",
            crl.issuer_text, ca.subject_text
        ));
    }
    let set = CrlSet::default();
    let checker = Checker::new(&set, RevocationPolicy::CHAIN, &[], time, crypto);
    checker.signed_by(&crl, &ca, 1)
}

/// The name key of a CRL's issuer (what the component's `revocation`
/// import is asked by), after checking that the CRL parses and fits the
/// limits: hosts call it when they load a CRL.
pub fn crl_issuer_key(der: &[u8]) -> Result<[u8; 32], String> {
    Crl::parse(der).map(|c| c.issuer_key)
}

/// CRLs fetched by issuer name key through `fetch` (the component's
/// `revocation` import), parsed once per validation. A CRL that does not
/// parse is left out (the host checked them at load); one whose issuer is
/// not the name asked for is ignored.
#[cfg_attr(
    not(all(feature = "component", target_arch = "wasm32")),
    allow(dead_code)
)]
pub(crate) struct FetchedCrls<F: Fn(&[u8; 32]) -> Vec<Vec<u8>>> {
    fetch: F,
    cache: std::cell::RefCell<HashMap<[u8; 32], Vec<Arc<Crl>>>>,
    signatures: Mutex<SignatureMemo>,
}

#[cfg_attr(
    not(all(feature = "component", target_arch = "wasm32")),
    allow(dead_code)
)]
impl<F: Fn(&[u8; 32]) -> Vec<Vec<u8>>> FetchedCrls<F> {
    pub(crate) fn new(fetch: F) -> Self {
        FetchedCrls {
            fetch,
            cache: std::cell::RefCell::new(HashMap::new()),
            signatures: Mutex::new(HashMap::new()),
        }
    }
}

impl<F: Fn(&[u8; 32]) -> Vec<Vec<u8>>> CrlSource for FetchedCrls<F> {
    fn issued_by(&self, name: &DistinguishedName) -> Vec<Arc<Crl>> {
        let key = name.key();
        let known = self.cache.borrow().get(&key).cloned();
        let crls = match known {
            Some(crls) => crls,
            None => {
                let mut crls: Vec<Arc<Crl>> = Vec::new();
                for der in (self.fetch)(&key).into_iter().take(MAX_CRLS_PER_ISSUER) {
                    if let Ok(crl) = Crl::parse(&der)
                        && !crls.iter().any(|c| c.sha256 == crl.sha256)
                    {
                        crls.push(Arc::new(crl));
                    }
                }
                self.cache.borrow_mut().insert(key, crls.clone());
                crls
            }
        };
        crls.into_iter()
            .filter(|c| c.issuer_name.matches(name))
            .collect()
    }

    fn signatures(&self) -> &Mutex<SignatureMemo> {
        &self.signatures
    }
}

/// What the check found about one certificate.
enum Status {
    Unrevoked,
    Revoked(Entry, String),
}

/// Why a CRL did not settle a certificate's status.
struct Problem {
    expired: bool,
    message: String,
}

/// The revocation check of one validation.
pub(crate) struct Checker<'a> {
    pub(crate) crls: &'a dyn CrlSource,
    pub(crate) policy: RevocationPolicy,
    pub(crate) intermediates: &'a [Rc<Cert>],
    pub(crate) time: i64,
    pub(crate) crypto: &'a dyn SignatureVerifier,
    searches_left: std::cell::Cell<usize>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(
        crls: &'a dyn CrlSource,
        policy: RevocationPolicy,
        intermediates: &'a [Rc<Cert>],
        time: i64,
        crypto: &'a dyn SignatureVerifier,
    ) -> Checker<'a> {
        Checker {
            crls,
            policy,
            intermediates,
            time,
            crypto,
            searches_left: std::cell::Cell::new(MAX_SIGNER_SEARCHES),
        }
    }

    /// Checks the certificates of `path` (leaf first, anchor last) that the
    /// policy asks for. `Ok` carries the warnings of an admitted path.
    pub(crate) fn check_path(&self, path: &[Rc<Cert>]) -> Result<Vec<Refusal>, Refusal> {
        let checked = match self.policy.mode {
            RevocationMode::Off => 0,
            RevocationMode::Leaf => 1,
            RevocationMode::Chain | RevocationMode::Configured => path.len() - 1,
        };
        let mut warnings = Vec::new();
        for position in 0..checked.min(path.len() - 1) {
            if self.policy.mode == RevocationMode::Configured
                && !self.configured_for(&path[position])
            {
                continue;
            }
            self.check(path, position, 0, &mut warnings)?;
        }
        Ok(warnings)
    }

    /// Whether a CRL is held for `cert`: from its issuer, or from a CRL
    /// issuer one of its distribution points names. A certificate whose
    /// distribution points do not parse counts as configured (its check
    /// then says why it cannot be settled).
    pub(crate) fn configured_for(&self, cert: &Cert) -> bool {
        if !self.crls.issued_by(&cert.issuer_name).is_empty() {
            return true;
        }
        match &cert.crl_distribution_points {
            None => false,
            Some(Err(_)) => true,
            Some(Ok(points)) => points.iter().any(|p| {
                p.crl_issuer.iter().flatten().any(|n| match n {
                    DpNameForm::Directory(d) => !self.crls.issued_by(d).is_empty(),
                    DpNameForm::Other(_) => false,
                })
            }),
        }
    }

    /// An UNDETERMINED status for `cert` (position 0, the device) for
    /// `why`, under the policy's lenience.
    pub(crate) fn leaf_undetermined(
        &self,
        cert: &Cert,
        why: String,
        warnings: &mut Vec<Refusal>,
    ) -> Result<(), Refusal> {
        self.undetermined(cert, 0, verify::role(0, false), vec![why], warnings)
    }

    /// RFC 5280 §6.3.3 for `path[position]`, issued by `path[position + 1]`.
    fn check(
        &self,
        path: &[Rc<Cert>],
        position: usize,
        depth: usize,
        warnings: &mut Vec<Refusal>,
    ) -> Result<(), Refusal> {
        let cert = &path[position];
        let role = verify::role(position, false);
        let points = match &cert.crl_distribution_points {
            Some(Ok(points)) => points.clone(),
            Some(Err(e)) => {
                return self.undetermined(cert, position, role, vec![e.clone()], warnings);
            }
            None => Vec::new(),
        };
        // The certificate's distribution points, then (RFC 5280 §6.3.3, last
        // paragraph) the issuer's own CRLs as if named by a distribution
        // point whose name is the issuer.
        let mut points: Vec<(DistributionPoint, bool)> =
            points.into_iter().map(|p| (p, false)).collect();
        points.push((
            DistributionPoint {
                name: Some(DpName::Full(vec![DpNameForm::Directory(
                    cert.issuer_name.clone(),
                )])),
                reasons: None,
                crl_issuer: None,
            },
            true,
        ));
        let mut mask = 0u16;
        let mut problems: Vec<Problem> = Vec::new();
        let mut used_expired: Vec<String> = Vec::new();
        for (point, synthetic) in &points {
            let issuers: Vec<DistinguishedName> = match &point.crl_issuer {
                Some(names) => names
                    .iter()
                    .filter_map(|n| match n {
                        DpNameForm::Directory(d) => Some(d.clone()),
                        DpNameForm::Other(_) => None,
                    })
                    .collect(),
                None => vec![cert.issuer_name.clone()],
            };
            for issuer in &issuers {
                // One scope (issuingDistributionPoint) at a time; within a
                // scope the newest CRL the CA signed supersedes the older
                // ones, and every scope that covers the certificate is
                // consulted: any of them revoking it revokes it.
                let mut scopes: Vec<Vec<Arc<Crl>>> = Vec::new();
                for crl in self
                    .crls
                    .issued_by(issuer)
                    .into_iter()
                    .filter(|c| !c.is_delta())
                {
                    let key = crl.idp.as_ref().map(|i| i.der.clone());
                    match scopes
                        .iter_mut()
                        .find(|g| g[0].idp.as_ref().map(|i| i.der.clone()) == key)
                    {
                        Some(group) => group.push(crl),
                        None => scopes.push(vec![crl]),
                    }
                }
                scopes.sort_by(|a, b| {
                    let key = |g: &Vec<Arc<Crl>>| g[0].idp.as_ref().map(|i| i.der.clone());
                    key(a).cmp(&key(b))
                });
                for mut group in scopes {
                    newest_first(&mut group);
                    if let Err(why) = in_scope(cert, point, *synthetic, &group[0]) {
                        problems.push(Problem {
                            expired: false,
                            message: format!("{} does not cover it: {why}", group[0].describe()),
                        });
                        continue;
                    }
                    let interim = point.reasons.unwrap_or(ALL_REASONS)
                        & group[0]
                            .idp
                            .as_ref()
                            .and_then(|i| i.only_some_reasons)
                            .unwrap_or(ALL_REASONS)
                        & ALL_REASONS;
                    let crl = match self.current(&group, path, position, depth) {
                        Ok((crl, expired)) => {
                            if let Some(e) = expired {
                                used_expired.push(e);
                            }
                            crl
                        }
                        Err(p) => {
                            problems.push(p);
                            continue;
                        }
                    };
                    let delta = match self.delta_for(&crl, path, position, depth) {
                        Ok(d) => d,
                        Err(p) => {
                            problems.push(p);
                            continue;
                        }
                    };
                    let mut status = Status::Unrevoked;
                    if let Some((delta, expired)) = delta {
                        if let Some(e) = expired {
                            used_expired.push(e);
                        }
                        if let Some(entry) = delta.lookup(cert) {
                            status = Status::Revoked(entry, delta.describe());
                        }
                    }
                    if matches!(status, Status::Unrevoked)
                        && let Some(entry) = crl.lookup(cert)
                    {
                        status = Status::Revoked(entry, crl.describe());
                    }
                    if let Status::Revoked(entry, _) = &status
                        && entry.reason == Reason::REMOVE_FROM_CRL
                    {
                        status = Status::Unrevoked;
                    }
                    mask |= interim;
                    if let Status::Revoked(entry, source) = status {
                        return Err(revoked(cert, position, role, entry, &source));
                    }
                }
            }
        }
        if mask == ALL_REASONS {
            for e in used_expired {
                warnings.push(cert.refuse(
                    position,
                    Code::CrlExpired,
                    format!("{role} '{}': admitted on {e}", cert.subject_text),
                ));
            }
            return Ok(());
        }
        // Expired CRLs that would have covered the certificate: report that,
        // not a bare "no CRL".
        if problems.iter().any(|p| p.expired) && self.policy.expired == Lenience::Refuse {
            let message = problems
                .iter()
                .filter(|p| p.expired)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let refusal = cert.refuse(
                position,
                Code::CrlExpired,
                format!(
                    "the revocation status of {role} '{}' (serial {}) is unknown: {message} (RFC 5280 §6.3.3(a))",
                    cert.subject_text,
                    hex_upper(&cert.serial)
                ),
            );
            return match self.policy.undetermined {
                Lenience::Refuse => Err(refusal),
                Lenience::Warn => {
                    warnings.push(refusal);
                    Ok(())
                }
            };
        }
        let mut reasons: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        if mask != 0 {
            reasons.push(format!(
                "the CRLs found cover only reasons {} (RFC 5280 §6.3.3(k))",
                reason_names(mask)
            ));
        }
        self.undetermined(cert, position, role, reasons, warnings)
    }

    fn undetermined(
        &self,
        cert: &Cert,
        position: usize,
        role: &str,
        reasons: Vec<String>,
        warnings: &mut Vec<Refusal>,
    ) -> Result<(), Refusal> {
        let why = if reasons.is_empty() {
            format!("no CRL from '{}' is configured", cert.issuer_text)
        } else {
            reasons.join("; ")
        };
        let refusal = cert.refuse(
            position,
            Code::RevocationStatusUnknown,
            format!(
                "the revocation status of {role} '{}' (serial {}) cannot be determined: {why} (RFC 5280 §6.3.3)",
                cert.subject_text,
                hex_upper(&cert.serial)
            ),
        );
        match self.policy.undetermined {
            Lenience::Refuse => Err(refusal),
            Lenience::Warn => {
                warnings.push(refusal);
                Ok(())
            }
        }
    }

    /// Whether the signed, already-current `crl` may be used (RFC 5280
    /// §5.2, §6.3.3(a)): no unknown critical extension, and nextUpdate not
    /// passed. `Ok(Some)` when it is past nextUpdate and the policy lets it
    /// be used with a warning.
    fn usable(&self, crl: &Crl) -> Result<Option<String>, Problem> {
        if let Some(why) = &crl.unusable {
            return Err(Problem {
                expired: false,
                message: format!("{} cannot be used: {why}", crl.describe()),
            });
        }
        if let Some(next) = crl.next_update
            && next < self.time
        {
            let message = format!(
                "{} was due to be replaced at {} (nextUpdate; validation time {})",
                crl.describe(),
                rfc3339(next),
                rfc3339(self.time)
            );
            return match self.policy.expired {
                Lenience::Refuse => Err(Problem {
                    expired: true,
                    message,
                }),
                Lenience::Warn => Ok(Some(message)),
            };
        }
        Ok(None)
    }

    /// The CRL of one scope at the validation time: the newest one (by
    /// cRLNumber, then thisUpdate) that existed then (thisUpdate not after
    /// it) and that its issuer signed. An older CRL never stands in for a
    /// newer one that cannot be used (an unknown critical extension, past
    /// nextUpdate): what the newer one says is not known.
    fn current(
        &self,
        newest_first: &[Arc<Crl>],
        path: &[Rc<Cert>],
        position: usize,
        depth: usize,
    ) -> Result<(Arc<Crl>, Option<String>), Problem> {
        let mut first_problem = None;
        for crl in newest_first {
            if crl.this_update > self.time {
                first_problem.get_or_insert(Problem {
                    expired: false,
                    message: format!(
                        "{} is not yet valid at {}",
                        crl.describe(),
                        rfc3339(self.time)
                    ),
                });
                continue;
            }
            if let Err(message) = self.verify_signature(crl, path, position, depth) {
                first_problem.get_or_insert(Problem {
                    expired: false,
                    message,
                });
                continue;
            }
            return self.usable(crl).map(|expired| (Arc::clone(crl), expired));
        }
        Err(first_problem.unwrap_or(Problem {
            expired: false,
            message: "no CRL".into(),
        }))
    }

    /// RFC 5280 §6.3.3(c), (g): the newest usable delta CRL for the
    /// complete CRL `base`, if any delta exists for it. A delta that exists
    /// but cannot be used makes `base` unusable too: what it says is not
    /// known.
    #[allow(clippy::type_complexity)]
    fn delta_for(
        &self,
        base: &Crl,
        path: &[Rc<Cert>],
        position: usize,
        depth: usize,
    ) -> Result<Option<(Arc<Crl>, Option<String>)>, Problem> {
        let Some(base_number) = &base.number else {
            return Ok(None);
        };
        let mut deltas: Vec<Arc<Crl>> = self
            .crls
            .issued_by(&base.issuer_name)
            .into_iter()
            .filter(|d| {
                d.is_delta()
                    && d.idp.as_ref().map(|i| &i.der) == base.idp.as_ref().map(|i| &i.der)
                    && d.delta_base
                        .as_ref()
                        .is_some_and(|b| number_le(b, base_number))
                    && d.number
                        .as_ref()
                        .is_some_and(|n| !number_le(n, base_number))
                    // A delta issued after the validation time did not exist then.
                    && d.this_update <= self.time
            })
            .collect();
        if deltas.is_empty() {
            return Ok(None);
        }
        newest_first(&mut deltas);
        match self.current(&deltas, path, position, depth) {
            Ok((delta, expired)) => Ok(Some((delta, expired))),
            Err(p) => Err(Problem {
                expired: p.expired,
                message: format!("{}, whose {}", base.describe(), p.message),
            }),
        }
    }

    /// Verifies `crl`'s signature under its issuer's key: the certificate
    /// above `path[position]` when it is the CRL issuer and its key signed
    /// the CRL, or another certificate of the CRL issuer on a path to the
    /// same trust anchor, itself not revoked (RFC 5280 §6.3.3(f)).
    fn verify_signature(
        &self,
        crl: &Crl,
        path: &[Rc<Cert>],
        position: usize,
        depth: usize,
    ) -> Result<(), String> {
        // Certificates of this path above the certificate are validated
        // already (their own status is checked in chain mode). On a CRL
        // issuer's own path (depth > 0) the certificate itself counts too:
        // an indirect CRL issuer whose certificate names its own CRL
        // (PKITS 4.14.30). A device's certificate never vouches for itself.
        let mut tried = Vec::new();
        let first = if depth > 0 { position } else { position + 1 };
        for (i, candidate) in path.iter().enumerate().skip(first) {
            if candidate.subject_name.matches(&crl.issuer_name) {
                match self.signed_by(crl, candidate, i) {
                    Ok(()) => return Ok(()),
                    Err(e) => tried.push(e),
                }
            }
        }
        let anchor = Rc::clone(&path[path.len() - 1]);
        let others: Vec<Rc<Cert>> = self
            .intermediates
            .iter()
            .filter(|c| {
                c.subject_name.matches(&crl.issuer_name)
                    && !path.iter().any(|p| p.sha256 == c.sha256)
            })
            .cloned()
            .collect();
        for signer in others {
            if depth + 1 > MAX_SIGNER_DEPTH {
                tried.push(format!("CRL issuers nest deeper than {MAX_SIGNER_DEPTH}"));
                break;
            }
            // The signature first: a search only for a key that signed it.
            if let Err(e) = self.signed_by(crl, &signer, 0) {
                tried.push(e);
                continue;
            }
            match self.signer_path(&signer, &anchor, depth + 1) {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(e),
            }
        }
        Err(if tried.is_empty() {
            format!(
                "{} has no certificate of its issuer to verify it with",
                crl.describe()
            )
        } else {
            format!(
                "{} cannot be verified: {}",
                crl.describe(),
                tried.join("; ")
            )
        })
    }

    /// Whether `signer` (at `position` of its path) signed `crl`.
    fn signed_by(&self, crl: &Crl, signer: &Cert, position: usize) -> Result<(), String> {
        verify::check_crl_signer(signer, position, self.time).map_err(|r| r.message)?;
        let pair = (crl.sha256, signer.sha256);
        let known = self
            .crls
            .signatures()
            .lock()
            .ok()
            .and_then(|m| m.get(&pair).copied());
        let valid = match known {
            Some(v) => v,
            None => {
                let key = signer.key.as_ref().map_err(|(_, m)| m.clone())?;
                let algorithm = alg::select(&crl.signature_algorithm, key).map_err(|(_, m)| m)?;
                let v =
                    self.crypto
                        .verify_signature(algorithm, &key.bytes, &crl.tbs, &crl.signature);
                if let Ok(mut m) = self.crls.signatures().lock() {
                    m.insert(pair, v);
                }
                v
            }
        };
        if valid {
            Ok(())
        } else {
            Err(format!(
                "its signature does not verify with the key of '{}'",
                signer.subject_text
            ))
        }
    }

    /// A path from the CRL issuer's certificate `signer` to `anchor`, every
    /// certificate of it not revoked.
    fn signer_path(
        &self,
        signer: &Rc<Cert>,
        anchor: &Rc<Cert>,
        depth: usize,
    ) -> Result<(), String> {
        let left = self.searches_left.get();
        if left == 0 {
            return Err(format!(
                "more than {MAX_SIGNER_SEARCHES} CRL issuer paths in one validation"
            ));
        }
        self.searches_left.set(left - 1);
        let mut outcome: Option<Refusal> = None;
        let mut found = false;
        let searched = verify::search_paths_from(
            Rc::clone(signer),
            LeafRole::CrlSigner,
            self.intermediates,
            &mut AnchorList(vec![Rc::clone(anchor)]),
            self.time,
            Purpose::Any,
            self.crypto,
            &mut |p| {
                let mut ignored = Vec::new();
                let checked =
                    (0..p.len() - 1).try_for_each(|i| self.check(p, i, depth, &mut ignored));
                match checked {
                    Ok(()) => {
                        found = true;
                        Flow::Stop
                    }
                    Err(r) => {
                        verify::keep_best(&mut outcome, r);
                        Flow::Settled
                    }
                }
            },
        );
        if found {
            return Ok(());
        }
        let why = match searched.ended {
            Err(r) => r,
            Ok(()) => outcome.unwrap_or(searched.failure),
        };
        Err(format!(
            "the CRL issuer certificate '{}' is not usable: {}",
            signer.subject_text, why.message
        ))
    }
}

/// RFC 5280 §6.3.3(b): whether `crl` is in scope for `cert` through the
/// distribution point `point` (`synthetic`: the issuer's own CRLs for a
/// certificate they were not named for).
fn in_scope(
    cert: &Cert,
    point: &DistributionPoint,
    synthetic: bool,
    crl: &Crl,
) -> Result<(), String> {
    let indirect = crl.idp.as_ref().is_some_and(|i| i.indirect);
    match &point.crl_issuer {
        Some(_) if !indirect => {
            return Err(
                "the distribution point names a cRLIssuer but the CRL is not indirect (RFC 5280 §6.3.3(b)(1))"
                    .into(),
            );
        }
        Some(_) => {}
        None => {
            if !crl.issuer_name.matches(&cert.issuer_name) {
                return Err("its issuer is not the certificate's issuer".into());
            }
        }
    }
    let Some(idp) = &crl.idp else {
        return Ok(());
    };
    if let Some(idp_name) = &idp.name {
        let idp_names = full_names(idp_name, &crl.issuer_der)?;
        let point_names: Vec<DpNameForm> = match (&point.name, &point.crl_issuer) {
            (Some(name), issuers) => {
                let base = match issuers {
                    Some(names) => names
                        .iter()
                        .find_map(|n| match n {
                            DpNameForm::Directory(_) => Some(crl.issuer_der.clone()),
                            DpNameForm::Other(_) => None,
                        })
                        .unwrap_or_else(|| cert.issuer_der.clone()),
                    None => cert.issuer_der.clone(),
                };
                full_names(name, &base)?
            }
            (None, Some(issuers)) => issuers.clone(),
            (None, None) => Vec::new(),
        };
        if !idp_names
            .iter()
            .any(|a| point_names.iter().any(|b| a.matches(b)))
        {
            return Err(if synthetic {
                "it is a partitioned CRL (issuingDistributionPoint names a distribution point) and the certificate names no distribution point it covers (RFC 5280 §6.3.3(b)(2)(i))".into()
            } else {
                "its issuingDistributionPoint name matches no name of the certificate's distribution point (RFC 5280 §6.3.3(b)(2)(i))".into()
            });
        }
    }
    if idp.only_user && cert.is_ca() {
        return Err("it only contains end-entity certificates (onlyContainsUserCerts)".into());
    }
    if idp.only_ca && !cert.is_ca() {
        return Err("it only contains CA certificates (onlyContainsCACerts)".into());
    }
    if idp.only_attribute {
        return Err("it only contains attribute certificates (onlyContainsAttributeCerts)".into());
    }
    Ok(())
}

fn full_names(name: &DpName, issuer_der: &[u8]) -> Result<Vec<DpNameForm>, String> {
    Ok(match name {
        DpName::Full(names) => names.clone(),
        DpName::Relative(rdn) => vec![relative_to(issuer_der, rdn)?],
    })
}

fn revoked(cert: &Cert, position: usize, role: &str, entry: Entry, source: &str) -> Refusal {
    let hold = if entry.reason == Reason::CERTIFICATE_HOLD {
        " (on hold)"
    } else {
        ""
    };
    cert.refuse(
        position,
        Code::CertificateRevoked,
        format!(
            "{role} '{}' (serial {}) was revoked at {}, reason {}{hold}, by {source} (RFC 5280 §6.3.3)",
            cert.subject_text,
            hex_upper(&cert.serial),
            rfc3339(entry.revoked_at),
            entry.reason.name()
        ),
    )
}

fn reason_names(mask: u16) -> String {
    const NAMES: [&str; 9] = [
        "unused",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"\x30\x03\x30\x01\x00",
            &[0xff; 64],
        ] {
            assert!(Crl::parse(bytes).is_err(), "{bytes:?}");
        }
        let big = vec![0u8; MAX_CRL_SIZE + 1];
        assert!(Crl::parse(&big).unwrap_err().contains("limit"));
    }

    #[test]
    fn numbers_compare_as_unsigned_integers() {
        assert_eq!(unsigned(&[0, 0, 5]), vec![5]);
        assert!(number_le(&unsigned(&[0, 5]), &[5]));
        assert!(number_le(&[5], &[1, 0]));
        assert!(!number_le(&[1, 0], &[0xff]));
        assert!(number_le(&[], &[]));
    }

    #[test]
    fn reason_masks_name_their_reasons() {
        assert_eq!(reason_names(0b110), "keyCompromise, cACompromise");
        assert_eq!(ALL_REASONS.count_ones(), 8);
    }
}
