//! Certificate path building and validation (RFC 5280 §6) under a work budget.
//!
//! Path building is a depth-first search from the leaf towards a trust
//! anchor. At each step the candidates are the trust anchors and presented
//! intermediates whose subject equals the current certificate's issuer,
//! those whose subjectKeyIdentifier matches its authorityKeyIdentifier
//! first. A candidate that fails (not a CA, expired, bad signature, …) is
//! skipped and the next one tried (backtracking); when all fail, the most
//! specific refusal is reported. A [`Budget`] bounds the work so that no
//! input can make one validation slow.

use std::rc::Rc;

use crate::alg::{self, SignatureVerifier};
use crate::cert::{Cert, oid, rfc3339};
use crate::error::{Code, Refusal};
use crate::info::Purpose;
use x509_cert::certificate::Version;

/// Most untrusted intermediates accepted in one request. Real device chains
/// carry one to three; 32 leaves room for cross-signed extras while keeping
/// parsing cost bounded.
pub const MAX_INTERMEDIATES: usize = 32;

/// Most trust anchors accepted in one plain validation request.
pub const MAX_TRUST_ANCHORS: usize = 1024;

/// Most certificates in one path, leaf and anchor included: leaf, up to
/// eight CAs, anchor. Device PKIs use root → factory → line → device (4).
pub const MAX_PATH_LEN: usize = 10;

/// Work limits for one validation, in the style of rustls-webpki's `Budget`.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Signature verifications left. rustls-webpki allows 100; at ≈ 50 µs
    /// for the slowest allowed check (RSA-8192 verify is ≈ 0.3 ms natively,
    /// but such keys are rare) this caps a hostile input at a few ms.
    signatures: usize,
    /// Calls into the recursive builder left: bounds the search over
    /// candidates whose signatures are never checked (e.g. many candidates
    /// that fail a cheap check first).
    build_calls: usize,
    /// Name-constraint comparisons left (one subtree against one name).
    /// Real CAs carry tens of subtrees and devices a handful of names, so
    /// 50,000 is a hundred times what a legitimate path needs; a hostile
    /// pair of 16 KiB certificates (over a thousand subtrees and names each)
    /// would otherwise ask for millions. rustls-webpki allows 250,000; at
    /// ≈ 60 ns per comparison inside the component that would be 15 ms, so
    /// attest keeps the worst case near 3 ms.
    name_comparisons: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            signatures: 100,
            build_calls: 2_000,
            name_comparisons: 50_000,
        }
    }
}

impl Budget {
    fn consume_signature(&mut self) -> Result<(), Outcome> {
        self.signatures = self.signatures.checked_sub(1).ok_or_else(|| {
            Outcome::Fatal(Refusal::new(
                Code::PathBudgetExceeded,
                "path building stopped: more than 100 signature checks",
            ))
        })?;
        Ok(())
    }

    fn consume_build_call(&mut self) -> Result<(), Outcome> {
        self.build_calls = self.build_calls.checked_sub(1).ok_or_else(|| {
            Outcome::Fatal(Refusal::new(
                Code::PathBudgetExceeded,
                "path building stopped: more than 2000 candidate steps",
            ))
        })?;
        Ok(())
    }
}

/// How a path attempt ended when it did not succeed.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Stop the whole search (budget exhausted, a disabled enrollment decided).
    Fatal(Refusal),
    /// This candidate path failed; try the next.
    Soft(Refusal),
}

impl Outcome {
    pub(crate) fn into_refusal(self) -> Refusal {
        match self {
            Outcome::Fatal(r) | Outcome::Soft(r) => r,
        }
    }
}

/// Where trust anchors come from: a fixed list, or the host's store.
pub(crate) trait AnchorSource {
    /// Anchors whose subject Name DER equals `subject`.
    fn anchors_for(&mut self, subject: &[u8]) -> Vec<Rc<Cert>>;
}

/// A fixed list of anchors (plain chain validation).
pub(crate) struct AnchorList(pub(crate) Vec<Rc<Cert>>);

impl AnchorSource for AnchorList {
    fn anchors_for(&mut self, subject: &[u8]) -> Vec<Rc<Cert>> {
        self.0
            .iter()
            .filter(|a| a.subject == subject)
            .cloned()
            .collect()
    }
}

/// Decides whether a complete path (leaf first, anchor last) is accepted.
pub(crate) type Accept<'a, T> = dyn FnMut(&[Rc<Cert>]) -> Result<T, Outcome> + 'a;

/// The search state for one validation.
pub(crate) struct PathBuilder<'a> {
    pub(crate) intermediates: &'a [Rc<Cert>],
    pub(crate) anchors: &'a mut dyn AnchorSource,
    pub(crate) time: i64,
    pub(crate) purpose: Purpose,
    pub(crate) crypto: &'a dyn SignatureVerifier,
    pub(crate) budget: Budget,
}

impl PathBuilder<'_> {
    /// Builds a path from `leaf` to a trust anchor and hands each complete
    /// path to `accept`; the first path `accept` takes wins. A `Soft`
    /// rejection from `accept` continues the search (also above the anchor,
    /// if it is not self-issued); a `Fatal` one ends it.
    pub(crate) fn build<T>(
        &mut self,
        leaf: Rc<Cert>,
        accept: &mut Accept<'_, T>,
    ) -> Result<T, Refusal> {
        check_leaf(&leaf, self.time, self.purpose)?;
        let mut path = vec![leaf];
        self.extend(&mut path, accept)
            .map_err(Outcome::into_refusal)
    }

    fn extend<T>(
        &mut self,
        path: &mut Vec<Rc<Cert>>,
        accept: &mut Accept<'_, T>,
    ) -> Result<T, Outcome> {
        self.budget.consume_build_call()?;
        let position = path.len();
        let child = Rc::clone(&path[position - 1]);
        let mut best: Option<Refusal> = None;

        let mut candidates: Vec<(Rc<Cert>, bool)> = self
            .anchors
            .anchors_for(&child.issuer)
            .into_iter()
            .map(|c| (c, true))
            .chain(
                self.intermediates
                    .iter()
                    .filter(|c| c.subject == child.issuer)
                    .map(|c| (Rc::clone(c), false)),
            )
            .collect();
        // Stable sort: key-identifier matches first (RFC 5280 §4.2.1.1 makes
        // AKI an aid to path building, not a rule), anchors before
        // intermediates within each group.
        if let Some(aki) = &child.authority_key_id {
            candidates.sort_by_key(|(c, _)| c.subject_key_id.as_ref() != Some(aki));
        }

        for (candidate, is_anchor) in candidates {
            // Loop detection: a CA (same subject and key) may appear once.
            if path
                .iter()
                .any(|p| p.subject == candidate.subject && p.spki_der == candidate.spki_der)
            {
                continue;
            }
            if position >= MAX_PATH_LEN {
                keep_best(
                    &mut best,
                    candidate.refuse(
                        position,
                        Code::PathBudgetExceeded,
                        format!("path would exceed {MAX_PATH_LEN} certificates"),
                    ),
                );
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
                keep_best(&mut best, r);
                continue;
            }
            self.budget.consume_signature()?;
            if let Err(r) = verify_signed_by(&child, position - 1, &candidate, self.crypto) {
                keep_best(&mut best, r);
                continue;
            }
            // After the signature: a forged look-alike CA must be reported
            // as a bad signature, not as a constraint violation.
            match self.check_name_constraints(&candidate, position, path) {
                Ok(()) => {}
                Err(Outcome::Soft(r)) => {
                    keep_best(&mut best, r);
                    continue;
                }
                Err(fatal) => return Err(fatal),
            }

            path.push(Rc::clone(&candidate));
            if is_anchor {
                match accept(path) {
                    Ok(t) => return Ok(t),
                    Err(Outcome::Fatal(r)) => return Err(Outcome::Fatal(r)),
                    Err(Outcome::Soft(r)) => keep_best(&mut best, r),
                }
            }
            // Continue above the candidate unless it is a self-issued
            // trust anchor (a root: nothing is above it). A self-issued
            // intermediate (a key rollover certificate) is extended like any
            // other; loop detection keeps the search finite.
            if !(is_anchor && candidate.is_self_issued()) {
                match self.extend(path, accept) {
                    Ok(t) => return Ok(t),
                    Err(Outcome::Fatal(r)) => return Err(Outcome::Fatal(r)),
                    Err(Outcome::Soft(r)) => keep_best(&mut best, r),
                }
            }
            path.pop();
        }

        Err(Outcome::Soft(best.unwrap_or_else(|| {
            child.refuse(
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
            )
        })))
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
    ) -> Result<(), Outcome> {
        let Some(constraints) = &holder.name_constraints else {
            return Ok(());
        };
        for (i, cert) in path[..position].iter().enumerate() {
            if i > 0 && cert.is_self_issued() {
                continue;
            }
            let names = cert
                .constrained_names()
                .map_err(|e| Outcome::Soft(cert.refuse(i, Code::MalformedCertificate, e)))?;
            match constraints.check(&names, &mut self.budget.name_comparisons) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    return Err(Outcome::Soft(cert.refuse(
                        i,
                        Code::NameConstraintViolation,
                        format!(
                            "{why} of {} '{}' (RFC 5280 §4.2.1.10)",
                            role(position, false),
                            holder.subject_text
                        ),
                    )));
                }
                Err(()) => {
                    return Err(Outcome::Fatal(Refusal::new(
                        Code::PathBudgetExceeded,
                        "path building stopped: more than 50000 name-constraint comparisons",
                    )));
                }
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
/// further from the leaf (the search got further before it failed).
fn keep_best(best: &mut Option<Refusal>, candidate: Refusal) {
    let score = |r: &Refusal| {
        (
            r.code.rank(),
            r.certificate.as_ref().map_or(0, |c| c.position),
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
                if let Some(max) = bc.path_len_constraint {
                    // Non-self-issued intermediates between this CA and the leaf.
                    let following = path[1..position]
                        .iter()
                        .filter(|c| !c.is_self_issued())
                        .count();
                    if following > usize::from(max) {
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
    let key = check_key(issuer, child_position + 1)?;
    let algorithm = alg::select(&child.signature_algorithm, key)
        .map_err(|(code, message)| child.refuse(child_position, code, message))?;
    if crypto.verify_signature(algorithm, &key.bytes, child.tbs(), &child.signature) {
        Ok(())
    } else {
        Err(child.refuse(
            child_position,
            Code::BadSignature,
            format!(
                "signature does not verify with the key of '{}' ({algorithm:?}; RFC 5280 §6.1.3(a)(1))",
                issuer.subject_text
            ),
        ))
    }
}
