//! Certificate path building and validation (RFC 5280 §6) under a work budget.
//!
//! Path building is a depth-first search from the leaf towards a trust
//! anchor. At each step the candidates are the trust anchors and presented
//! intermediates whose subject is the current certificate's issuer (names
//! compared by RFC 5280 §7.1), each distinct certificate once, in an order
//! fixed by their SHA-256: what the device sent, in which order and how
//! often, and what its key identifiers say, never changes which paths are
//! explored or in which order. A candidate that fails (not a CA, expired,
//! bad signature, …) is skipped (backtracking); every complete path is
//! handed to the caller, who may stop the search, settle the path, or have
//! it extended above its anchor. When no path is found, the most specific
//! refusal is reported. A [`Budget`] bounds the work so that no input can
//! make one validation slow.

use std::collections::HashMap;
use std::rc::Rc;

use crate::alg::{self, SignatureVerifier};
use crate::budget::Budget;
use crate::cert::{Cert, oid, rfc3339};
use crate::error::{Code, Failed, Refusal};
use crate::info::Purpose;
use x509_cert::certificate::Version;

/// Most untrusted intermediates accepted in one request. Real device chains
/// carry one to three; PKI "soups" with bridge and cross-certificates carry
/// tens. The number bounds parsing (256 × 16 KiB at most); the path
/// [`Budget`] bounds the search.
pub const MAX_INTERMEDIATES: usize = 256;

/// Most trust anchors accepted in one plain validation request.
pub const MAX_TRUST_ANCHORS: usize = 1024;

/// Most certificates in one path, leaf and anchor included: leaf, up to
/// eight CAs, anchor. Device PKIs use root → factory → line → device (4).
pub const MAX_PATH_LEN: usize = 10;

/// What the caller makes of a complete path (leaf first, anchor last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The answer is known: end the search.
    Stop,
    /// This path is settled: do not extend it above its anchor (every
    /// longer path through it would be judged the same).
    Settled,
    /// Extend this path above its anchor, if the anchor can issue as an
    /// intermediate.
    Continue,
}

/// The caller's judgement of complete paths.
pub(crate) type Visit<'a> = dyn FnMut(&[Rc<Cert>]) -> Flow + 'a;

/// Where trust anchors come from: a fixed list, or the host's store.
pub(crate) trait AnchorSource {
    /// Anchors whose subject is `name` (RFC 5280 §7.1 comparison),
    /// looked up by the name's key.
    fn anchors_for(&mut self, name_key: &[u8; 32]) -> Vec<Rc<Cert>>;
}

/// A fixed list of anchors (plain chain validation).
pub(crate) struct AnchorList(pub(crate) Vec<Rc<Cert>>);

impl AnchorSource for AnchorList {
    fn anchors_for(&mut self, name_key: &[u8; 32]) -> Vec<Rc<Cert>> {
        self.0
            .iter()
            .filter(|a| a.subject_key == *name_key)
            .cloned()
            .collect()
    }
}

/// What a path search found out: how it ended, and the refusal to report
/// when no path satisfied the caller.
pub(crate) struct Searched {
    /// `Ok` when the search is over; `Err` when the leaf is unusable or the
    /// budget ran out.
    pub(crate) ended: Result<(), Refusal>,
    /// The most specific refusal met, or unknown-issuer.
    pub(crate) failure: Refusal,
}

/// Explores the paths from `leaf` through `intermediates` (order and
/// duplicates do not matter) to an anchor of `anchors`, valid at `time`
/// for `purpose`, and hands each complete one to `visit`.
pub(crate) fn search_paths(
    leaf: Cert,
    intermediates: &[Rc<Cert>],
    anchors: &mut dyn AnchorSource,
    time: i64,
    purpose: Purpose,
    crypto: &dyn SignatureVerifier,
    visit: &mut Visit<'_>,
) -> Searched {
    search_paths_from(
        Rc::new(leaf),
        LeafRole::Device,
        intermediates,
        anchors,
        time,
        purpose,
        crypto,
        visit,
    )
}

/// What the first certificate of a searched path is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeafRole {
    /// A device (end-entity) certificate: [`check_leaf`].
    Device,
    /// The certificate of a CRL issuer (RFC 5280 §6.3.3(f)): valid, a
    /// usable key, and keyUsage (when present) asserting cRLSign.
    CrlSigner,
}

/// [`search_paths`] from a shared leaf whose rules depend on its role.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_paths_from(
    leaf: Rc<Cert>,
    role: LeafRole,
    intermediates: &[Rc<Cert>],
    anchors: &mut dyn AnchorSource,
    time: i64,
    purpose: Purpose,
    crypto: &dyn SignatureVerifier,
    visit: &mut Visit<'_>,
) -> Searched {
    let mut builder = PathBuilder::new(intermediates, anchors, time, purpose, crypto);
    let ended = match role {
        LeafRole::Device => check_leaf(&leaf, time, purpose),
        LeafRole::CrlSigner => check_crl_signer(&leaf, 0, time),
    }
    .and_then(|()| builder.search(leaf, visit));
    Searched {
        ended,
        failure: builder.failure(),
    }
}

/// RFC 5280 §6.3.3(f): the rules for a certificate whose key signs CRLs,
/// at `position` (0 when it heads its own path).
pub(crate) fn check_crl_signer(cert: &Cert, position: usize, time: i64) -> Result<(), Refusal> {
    check_defect(cert, position)?;
    check_validity(cert, position, "CRL issuer", time)?;
    check_key(cert, position)?;
    if cert.key_usage.as_ref().is_some_and(|ku| !ku.crl_sign()) {
        return Err(cert.refuse(
            position,
            Code::RevocationStatusUnknown,
            format!(
                "'{}' signs CRLs but its keyUsage lacks cRLSign (RFC 5280 §6.3.3(f))",
                cert.subject_text
            ),
        ));
    }
    Ok(())
}

/// The search state for one validation.
struct PathBuilder<'a> {
    /// Presented intermediates: each distinct certificate once, by SHA-256.
    intermediates: Vec<Rc<Cert>>,
    anchors: &'a mut dyn AnchorSource,
    time: i64,
    purpose: Purpose,
    crypto: &'a dyn SignatureVerifier,
    budget: Budget,
    /// Signature checks done: (certificate, issuer) SHA-256 → valid.
    signatures: HashMap<([u8; 32], [u8; 32]), bool>,
    /// The most specific refusal met so far (for when no path is found).
    best: Option<Refusal>,
}

impl<'a> PathBuilder<'a> {
    /// A builder over `intermediates` (duplicates and order do not matter).
    fn new(
        intermediates: &[Rc<Cert>],
        anchors: &'a mut dyn AnchorSource,
        time: i64,
        purpose: Purpose,
        crypto: &'a dyn SignatureVerifier,
    ) -> PathBuilder<'a> {
        let mut intermediates = intermediates.to_vec();
        intermediates.sort_by_key(|c| c.sha256);
        intermediates.dedup_by(|a, b| a.sha256 == b.sha256);
        PathBuilder {
            intermediates,
            anchors,
            time,
            purpose,
            crypto,
            budget: Budget::default(),
            signatures: HashMap::new(),
            best: None,
        }
    }

    /// Explores the paths from `leaf` (already checked for its role) to a
    /// trust anchor and hands each complete one to `visit`. `Ok(())` when
    /// the search is over (every path explored, or `visit` stopped it);
    /// `Err` when the budget ran out. [`PathBuilder::failure`] then says
    /// why no path was found.
    fn search(&mut self, leaf: Rc<Cert>, visit: &mut Visit<'_>) -> Result<(), Refusal> {
        let mut path = vec![leaf];
        self.extend(&mut path, visit).map(|_| ())
    }

    /// The most specific refusal of the search, or unknown-issuer.
    fn failure(&mut self) -> Refusal {
        self.best
            .take()
            .unwrap_or_else(|| Refusal::new(Code::UnknownIssuer, "no path to a trust anchor"))
    }

    fn keep_best(&mut self, candidate: Refusal) {
        keep_best(&mut self.best, candidate);
    }

    /// Anchors and presented intermediates whose subject is `child`'s
    /// issuer: each certificate once (an anchor when it is one), ordered
    /// by SHA-256.
    fn candidates(&mut self, child: &Cert) -> Vec<(Rc<Cert>, bool)> {
        let mut out: Vec<(Rc<Cert>, bool)> = self
            .anchors
            .anchors_for(&child.issuer_key)
            .into_iter()
            .filter(|a| a.subject_name.matches(&child.issuer_name))
            .map(|a| (a, true))
            .collect();
        out.sort_by_key(|(c, _)| c.sha256);
        out.dedup_by(|(a, _), (b, _)| a.sha256 == b.sha256);
        for c in &self.intermediates {
            if c.subject_key == child.issuer_key
                && c.subject_name.matches(&child.issuer_name)
                && !out.iter().any(|(a, _)| a.sha256 == c.sha256)
            {
                out.push((Rc::clone(c), false));
            }
        }
        out.sort_by_key(|(c, _)| c.sha256);
        out
    }

    /// Whether `issuer`'s key signed `child`, checked once per pair.
    fn signed_by(
        &mut self,
        child: &Cert,
        child_position: usize,
        issuer: &Cert,
    ) -> Result<(), Failed> {
        let pair = (child.sha256, issuer.sha256);
        let (budget, done, crypto) = (&mut self.budget, &mut self.signatures, self.crypto);
        check_signature(child, child_position, issuer, &mut |algorithm, key| {
            if let Some(valid) = done.get(&pair) {
                return Ok(*valid);
            }
            budget.consume_signature(key).map_err(Failed::Search)?;
            let valid =
                crypto.verify_signature(algorithm, &key.bytes, child.tbs(), &child.signature);
            done.insert(pair, valid);
            Ok(valid)
        })
    }

    /// Extends `path` by every candidate issuer of its last certificate.
    /// `Ok(true)` when `visit` stopped the search.
    fn extend(&mut self, path: &mut Vec<Rc<Cert>>, visit: &mut Visit<'_>) -> Result<bool, Refusal> {
        self.budget.consume_build_call()?;
        let position = path.len();
        let child = Rc::clone(&path[position - 1]);
        let mut tried = false;
        for (candidate, is_anchor) in self.candidates(&child) {
            // Loop detection: a CA (same subject and key) may appear once.
            if path.iter().any(|p| p.identity == candidate.identity) {
                continue;
            }
            tried = true;
            if position >= MAX_PATH_LEN {
                self.keep_best(candidate.refuse(
                    position,
                    Code::PathBudgetExceeded,
                    format!("path would exceed {MAX_PATH_LEN} certificates"),
                ));
                continue;
            }
            if let Err(r) = check_issuer(
                &candidate,
                position,
                path,
                is_anchor,
                self.time,
                self.purpose,
            ) {
                self.keep_best(r);
                continue;
            }
            match self.signed_by(&child, position - 1, &candidate) {
                Ok(()) => {}
                Err(Failed::Candidate(r)) => {
                    self.keep_best(r);
                    continue;
                }
                Err(Failed::Search(r)) => return Err(r),
            }
            // After the signature: a forged look-alike CA must be reported
            // as a bad signature, not as a constraint violation.
            match self.check_name_constraints(&candidate, position, path) {
                Ok(()) => {}
                Err(Failed::Candidate(r)) => {
                    self.keep_best(r);
                    continue;
                }
                Err(Failed::Search(r)) => return Err(r),
            }

            path.push(Rc::clone(&candidate));
            let flow = if is_anchor {
                visit(path)
            } else {
                Flow::Continue
            };
            if flow == Flow::Stop {
                return Ok(true);
            }
            // Continue above the candidate unless the caller settled the
            // path or it is a self-issued trust anchor (a root: nothing is
            // above it). A self-issued intermediate (a key rollover
            // certificate) is extended like any other; loop detection keeps
            // the search finite. Above an anchor, the anchor is an
            // intermediate like any other and must pass those rules too
            // (a v1 anchor, say, cannot issue as an intermediate).
            let mut above = flow == Flow::Continue && !(is_anchor && candidate.is_self_issued());
            if above
                && is_anchor
                && let Err(r) =
                    check_issuer(&candidate, position, path, false, self.time, self.purpose)
            {
                self.keep_best(r);
                above = false;
            }
            if above && self.extend(path, visit)? {
                return Ok(true);
            }
            path.pop();
        }
        if !tried {
            self.keep_best(child.refuse(
                position - 1,
                Code::UnknownIssuer,
                format!(
                    "no trusted or presented certificate issued '{}' (RFC 5280 §6.1)",
                    if child.issuer_text.is_empty() {
                        "(empty name)"
                    } else {
                        &child.issuer_text
                    }
                ),
            ));
        }
        Ok(false)
    }
}

impl PathBuilder<'_> {
    /// RFC 5280 §6.1.3(b)–(c): the names of every certificate below
    /// `holder` (the leaf always; self-issued intermediates are exempt)
    /// must satisfy `holder`'s name constraints.
    fn check_name_constraints(
        &mut self,
        holder: &Cert,
        position: usize,
        path: &[Rc<Cert>],
    ) -> Result<(), Failed> {
        let Some(constraints) = &holder.name_constraints else {
            return Ok(());
        };
        for (i, cert) in path[..position].iter().enumerate() {
            if i > 0 && cert.is_self_issued() {
                continue;
            }
            let names = match cert.constrained_names() {
                Ok(names) => names,
                Err(e) => {
                    return Err(Failed::Candidate(cert.refuse(
                        i,
                        Code::MalformedCertificate,
                        e,
                    )));
                }
            };
            match constraints.check(&names, &mut self.budget) {
                Ok(()) => {}
                Err(Failed::Candidate(why)) => {
                    return Err(Failed::Candidate(cert.refuse(
                        i,
                        Code::NameConstraintViolation,
                        format!(
                            "{why} of {} '{}' (RFC 5280 §4.2.1.10)",
                            role(position, false),
                            holder.subject_text
                        ),
                    )));
                }
                Err(Failed::Search(r)) => return Err(Failed::Search(r)),
            }
        }
        Ok(())
    }
}

/// How messages name a certificate by its place in the path.
pub(crate) fn role(position: usize, is_anchor: bool) -> &'static str {
    match (position, is_anchor) {
        (0, _) => "leaf",
        (_, true) => "trust anchor",
        _ => "intermediate",
    }
}

/// Keeps the more specific of two refusals: higher rank, then the one found
/// further from the leaf (the search got further before it failed); ties
/// go to the lower certificate SHA-256, code and message, so the choice
/// never depends on the order in which candidates were met.
pub(crate) fn keep_best(best: &mut Option<Refusal>, candidate: Refusal) {
    use core::cmp::Reverse;
    let score = |r: &Refusal| {
        (
            r.code.rank(),
            r.certificate.as_ref().map_or(0, |c| c.position),
            Reverse(r.certificate.as_ref().map(|c| c.sha256)),
            Reverse(r.code),
            Reverse(r.message.clone()),
        )
    };
    match best {
        Some(b) if score(b) >= score(&candidate) => {}
        _ => *best = Some(candidate),
    }
}

/// RFC 5280 §4.1.2.5: the validity period includes both bounds.
/// `role` names the certificate in the message ("leaf", "intermediate", …).
pub(crate) fn check_validity(
    cert: &Cert,
    position: usize,
    role: &str,
    time: i64,
) -> Result<(), Refusal> {
    if time < cert.not_before {
        return Err(cert.refuse(
            position,
            Code::CertificateNotYetValid,
            format!(
                "{role} '{}' is not valid before {} (validation time {}; RFC 5280 §4.1.2.5)",
                cert.subject_text,
                rfc3339(cert.not_before),
                rfc3339(time)
            ),
        ));
    }
    if time > cert.not_after {
        return Err(cert.refuse(
            position,
            Code::CertificateExpired,
            format!(
                "{role} '{}' expired at {} (validation time {}; RFC 5280 §4.1.2.5)",
                cert.subject_text,
                rfc3339(cert.not_after),
                rfc3339(time)
            ),
        ));
    }
    Ok(())
}

fn check_defect(cert: &Cert, position: usize) -> Result<(), Refusal> {
    match &cert.defect {
        Some((code, message)) => Err(cert.refuse(position, *code, message.clone())),
        None => Ok(()),
    }
}

fn check_key(cert: &Cert, position: usize) -> Result<&alg::PublicKey, Refusal> {
    cert.key
        .as_ref()
        .map_err(|(code, message)| cert.refuse(position, *code, message.clone()))
}

/// RFC 5280 §4.2.1.12. An absent EKU permits every purpose.
fn check_eku(cert: &Cert, position: usize, purpose: Purpose) -> Result<(), Refusal> {
    let required = match purpose {
        Purpose::Any => return Ok(()),
        Purpose::ClientAuth => oid::KP_CLIENT_AUTH,
        Purpose::ServerAuth => oid::KP_SERVER_AUTH,
    };
    let Some(eku) = &cert.ext_key_usage else {
        return Ok(());
    };
    if eku.contains(&required) || eku.contains(&oid::ANY_EXTENDED_KEY_USAGE) {
        return Ok(());
    }
    let name = match purpose {
        Purpose::ServerAuth => "serverAuth",
        _ => "clientAuth",
    };
    Err(cert.refuse(
        position,
        Code::ExtendedKeyUsageNotPermitted,
        format!("extendedKeyUsage does not include {name} (RFC 5280 §4.2.1.12)"),
    ))
}

/// The end-entity rules: profile defects, validity, key, not a CA,
/// keyUsage (RFC 5280 §4.2.1.3) and the required purpose.
pub(crate) fn check_leaf(leaf: &Cert, time: i64, purpose: Purpose) -> Result<(), Refusal> {
    check_defect(leaf, 0)?;
    if leaf.version != Version::V3 {
        return Err(leaf.refuse(
            0,
            Code::UnsupportedCertificateVersion,
            format!(
                "the leaf is a {:?} certificate; attest accepts v1 and v2 certificates only as trust anchors (RFC 5280 §4.1.2.1, §6.1.4(k))",
                leaf.version
            ),
        ));
    }
    check_validity(leaf, 0, "leaf", time)?;
    check_key(leaf, 0)?;
    if leaf.is_ca() {
        return Err(leaf.refuse(
            0,
            Code::CaUsedAsEndEntity,
            "the leaf is a CA certificate (basicConstraints cA is true; RFC 5280 §4.2.1.9)".into(),
        ));
    }
    if leaf.name_constraints.is_some() {
        return Err(leaf.refuse(
            0,
            Code::InvalidNameConstraints,
            "nameConstraints in an end-entity certificate (RFC 5280 §4.2.1.10: CA certificates only)"
                .into(),
        ));
    }
    if let Some(ku) = &leaf.key_usage {
        if !ku.digital_signature() {
            return Err(leaf.refuse(
                0,
                Code::MissingDigitalSignature,
                "keyUsage lacks digitalSignature, needed to prove possession (RFC 5280 §4.2.1.3)"
                    .into(),
            ));
        }
        if ku.key_cert_sign() {
            return Err(leaf.refuse(
                0,
                Code::LeafKeyCertSign,
                "keyUsage asserts keyCertSign in a certificate that is not a CA (RFC 5280 §4.2.1.3)"
                    .into(),
            ));
        }
    }
    check_eku(leaf, 0, purpose)
}

/// The rules for a certificate used as an issuer at `position`.
fn check_issuer(
    cert: &Cert,
    position: usize,
    path: &[Rc<Cert>],
    is_anchor: bool,
    time: i64,
    purpose: Purpose,
) -> Result<(), Refusal> {
    check_defect(cert, position)?;
    check_validity(cert, position, role(position, is_anchor), time)?;
    check_key(cert, position)?;
    if cert.subject_is_empty() {
        return Err(cert.refuse(
            position,
            Code::EmptySubject,
            "a CA certificate's subject must not be empty (RFC 5280 §4.1.2.6)".into(),
        ));
    }
    match cert.version {
        // A v1/v2 certificate has no basicConstraints; RFC 5280 §6.1.4(k)
        // only lets such a certificate act as a CA when it is a trust anchor.
        Version::V1 | Version::V2 if is_anchor => {}
        Version::V1 | Version::V2 => {
            return Err(cert.refuse(
                position,
                Code::UnsupportedCertificateVersion,
                format!(
                    "a {:?} certificate can only issue as a trust anchor (RFC 5280 §6.1.4(k))",
                    cert.version
                ),
            ));
        }
        Version::V3 => match &cert.basic_constraints {
            Some(bc) if bc.ca => {
                if let Some(max) = bc.path_len {
                    // Non-self-issued intermediates between this CA and the leaf.
                    let following = path[1..position]
                        .iter()
                        .filter(|c| !c.is_self_issued())
                        .count();
                    if u64::try_from(following).unwrap_or(u64::MAX) > max {
                        return Err(cert.refuse(
                            position,
                            Code::PathLengthExceeded,
                            format!(
                                "pathLenConstraint {max} allows {max} intermediate(s) below it; the path has {following} (RFC 5280 §4.2.1.9)"
                            ),
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(cert.refuse(
                    position,
                    Code::IssuerNotCa,
                    "issues a certificate but basicConstraints cA is false (RFC 5280 §4.2.1.9)"
                        .into(),
                ));
            }
            None => {
                return Err(cert.refuse(
                    position,
                    Code::IssuerNotCa,
                    "issues a certificate but has no basicConstraints (RFC 5280 §4.2.1.9)".into(),
                ));
            }
        },
    }
    if cert
        .key_usage
        .as_ref()
        .is_some_and(|ku| !ku.key_cert_sign())
    {
        return Err(cert.refuse(
            position,
            Code::MissingKeyCertSign,
            "issues a certificate but keyUsage lacks keyCertSign (RFC 5280 §4.2.1.3)".into(),
        ));
    }
    // EKU in a CA constrains the purposes of the certificates below it (the
    // industry reading used by Windows, NSS and rustls-webpki).
    check_eku(cert, position, purpose)
}

/// Verifies that `issuer`'s key signed `child`.
pub(crate) fn verify_signed_by(
    child: &Cert,
    child_position: usize,
    issuer: &Cert,
    crypto: &dyn SignatureVerifier,
) -> Result<(), Refusal> {
    check_signature(child, child_position, issuer, &mut |algorithm, key| {
        Ok(crypto.verify_signature(algorithm, &key.bytes, child.tbs(), &child.signature))
    })
    .map_err(|(Failed::Candidate(r) | Failed::Search(r))| r)
}

/// Signature arithmetic for [`check_signature`]: whether the signature is
/// valid under an algorithm and key, or a refusal that stops the search.
type Arithmetic<'a> =
    dyn FnMut(alg::SignatureAlgorithm, &alg::PublicKey) -> Result<bool, Failed> + 'a;

/// The signature rules, with the arithmetic done by `verify` (which may
/// stop the search: [`Failed::Search`]).
fn check_signature(
    child: &Cert,
    child_position: usize,
    issuer: &Cert,
    verify: &mut Arithmetic<'_>,
) -> Result<(), Failed> {
    let key = check_key(issuer, child_position + 1).map_err(Failed::Candidate)?;
    let algorithm = alg::select(&child.signature_algorithm, key).map_err(|(code, message)| {
        Failed::Candidate(child.refuse(child_position, code, message))
    })?;
    if verify(algorithm, key)? {
        Ok(())
    } else {
        Err(Failed::Candidate(child.refuse(
            child_position,
            Code::BadSignature,
            format!(
                "signature does not verify with the key of '{}' ({algorithm:?}; RFC 5280 §6.1.3(a)(1))",
                issuer.subject_text
            ),
        )))
    }
}
