//! `/attest/crls`: the certificate revocation lists decisions check
//! (attest's own resource, beside the DPS API; DPS has none). A CRL is
//! installed only when it parses within attest's limits, RFC 5280 allows
//! using it, and a CA certificate the service holds, whose subject is the
//! CRL's issuer, signed it; a CRL older than the one it would replace is
//! refused (a replayed CRL must not un-revoke a device). Every decision
//! then reads the CRLs of its snapshot and verifies them again on the
//! device's own path, so a CRL here can refuse a device, never admit one.

use serde_json::{Value, json};

use attest_dps::documents::{etag_matches, rfc3339};
use attest_dps::{DpsError, ErrorKind};
use policy_host::CrlDetails;

use super::{TxError, bad_request, conflict, not_found, stale};
use crate::store::{LookupKind, StoredCrl, Transaction};
use crate::{Answer, Reply, Service, new_etag, now_rfc3339, now_unix};

/// Why a CRL was not installed.
#[derive(Debug)]
pub enum CrlRefused {
    /// The CRL itself is at fault (400): not a CRL, unusable, unsigned by
    /// a held CA, older than the one held.
    Invalid(String),
    /// The request conflicts with what is held (409, 412).
    Conflict(DpsError),
    /// The store failed.
    Store(anyhow::Error),
}

impl std::fmt::Display for CrlRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlRefused::Invalid(m) => f.write_str(m),
            CrlRefused::Conflict(e) => write!(f, "{}", e.message),
            CrlRefused::Store(e) => write!(f, "the store failed: {e:#}"),
        }
    }
}

/// The DER of a CRL body: DER as sent, or one PEM `X509 CRL` block.
pub fn crl_der(body: &[u8]) -> Result<Vec<u8>, String> {
    let trimmed = body.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(body.to_vec());
    }
    let mut found = Vec::new();
    for block in rustls_pki_types::pem::PemObject::pem_slice_iter(trimmed) {
        let block: rustls_pki_types::CertificateRevocationListDer<'static> =
            block.map_err(|e| format!("not a PEM CRL: {e}"))?;
        found.push(block.as_ref().to_vec());
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("the PEM holds no X509 CRL block".into()),
        n => Err(format!("the PEM holds {n} CRLs; upload one per name")),
    }
}

/// The resource a CRL is answered as.
pub(crate) fn crl_resource(crl: &StoredCrl, details: Option<&CrlDetails>) -> Value {
    let mut v = json!({
        "name": crl.name,
        "source": crl.source,
        "etag": crl.etag,
        "created": crl.created,
        "updated": crl.updated,
    });
    if let Some(d) = details {
        v["issuer"] = d.issuer.clone().into();
        v["thisUpdate"] = rfc3339(d.this_update).into();
        v["nextUpdate"] = d.next_update.map(rfc3339).into();
        v["crlNumber"] = d.number.clone().into();
        v["deltaBaseCrlNumber"] = d.delta_base.clone().into();
        v["revokedCount"] = d.entries.into();
        v["sha256"] = hex::encode(d.sha256).into();
    }
    v
}

/// Whether `new` is older than `held` (same issuer): a lower cRLNumber, or
/// without numbers an earlier thisUpdate.
fn older(new: &CrlDetails, held: &CrlDetails) -> bool {
    if new.issuer_key != held.issuer_key || new.delta_base.is_some() != held.delta_base.is_some() {
        return false;
    }
    let number = |n: &Option<String>| {
        n.as_deref().map(|h| {
            let h = h.trim_start_matches('0');
            (h.len(), h.to_string())
        })
    };
    match (number(&new.number), number(&held.number)) {
        (Some(a), Some(b)) if a != b => a < b,
        _ => new.this_update < held.this_update,
    }
}

impl Service {
    /// Checks and stores a CRL under `name` (an upload, or a fetch from the
    /// distribution point `source`), in one transaction. `if_match` as a
    /// write of the management API.
    pub fn install_crl(
        &self,
        name: &str,
        der: Vec<u8>,
        source: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<(StoredCrl, CrlDetails, Option<String>), CrlRefused> {
        let details = policy_host::crl_details(&der).map_err(CrlRefused::Invalid)?;
        if let Some(why) = &details.unusable {
            return Err(CrlRefused::Invalid(format!(
                "RFC 5280 forbids using this CRL: {why}"
            )));
        }
        let etag = new_etag().map_err(|e| CrlRefused::Store(anyhow::anyhow!("{}", e.message)))?;
        let now = now_rfc3339();
        let time = now_unix();
        let mut refused = None;
        let mut replaced = None;
        let written = self.store.write_with(|tx| {
            match check_and_put(
                tx, name, &der, &details, source, if_match, time, &etag, &now,
            ) {
                Ok((crl, before)) => {
                    replaced = before;
                    Ok(crl)
                }
                Err(TxError::Refused(e)) => {
                    refused = Some(e);
                    Err(anyhow::anyhow!("refused: roll back"))
                }
                Err(TxError::Store(e)) => Err(e),
            }
        });
        match (written, refused) {
            (Ok(crl), _) => Ok((crl, details, replaced)),
            (Err(_), Some(e)) if e.kind == ErrorKind::BadRequest => {
                Err(CrlRefused::Invalid(e.message))
            }
            (Err(_), Some(e)) => Err(CrlRefused::Conflict(e)),
            (Err(e), None) => Err(CrlRefused::Store(e)),
        }
    }

    /// The CRLs fetched from a distribution point: (name, URL).
    pub fn crl_sources(&self) -> Result<Vec<(String, String)>, DpsError> {
        let crls = self.read("the CRLs", |tx| Ok(tx.crls()?))?;
        Ok(crls
            .into_iter()
            .filter_map(|c| c.source.map(|url| (c.name, url)))
            .collect())
    }

    /// The source URL of the CRL `name`: 404 when there is no such CRL,
    /// 409 when it was uploaded (there is nothing to fetch).
    pub fn crl_source(&self, name: &str) -> Result<String, DpsError> {
        match self.read("the CRL", |tx| Ok(tx.crl(name)?))? {
            None => Err(not_found(format!("no CRL named '{name}'"))),
            Some(c) => c.source.ok_or_else(|| {
                conflict(format!(
                    "CRL '{name}' was uploaded, not fetched: it has no distribution point to refresh from"
                ))
            }),
        }
    }

    /// The answer to an install (an upload or a fetch) of the CRL `name`.
    pub fn crl_installed(
        &self,
        name: &str,
        installed: Result<(StoredCrl, CrlDetails, Option<String>), CrlRefused>,
    ) -> Answer {
        match installed {
            Ok((crl, details, replaced)) => {
                tracing::info!(
                    name,
                    issuer = %details.issuer,
                    entries = details.entries,
                    source = crl.source.as_deref().unwrap_or("upload"),
                    "CRL installed"
                );
                Ok(Reply::ok(crl_resource(&crl, Some(&details)))
                    .with_etag(crl.etag.clone())
                    .replacing(replaced))
            }
            Err(CrlRefused::Invalid(m)) => Err(bad_request(format!("CRL '{name}': {m}"))),
            Err(CrlRefused::Conflict(e)) => Err(e),
            Err(CrlRefused::Store(e)) => Err(crate::internal("the CRL could not be stored", &e)),
        }
    }

    /// `GET /attest/crls`.
    pub fn list_crls(&self) -> Answer {
        let crls = self.read("the CRLs", |tx| Ok(tx.crls()?))?;
        let list: Vec<Value> = crls
            .iter()
            .map(|c| crl_resource(c, policy_host::crl_details(&c.der).ok().as_ref()))
            .collect();
        Ok(Reply::ok(json!({ "value": list })))
    }

    /// `GET /attest/crls/{name}`.
    pub fn get_crl(&self, name: &str) -> Answer {
        match self.read("the CRL", |tx| Ok(tx.crl(name)?))? {
            Some(c) => Ok(Reply::ok(crl_resource(
                &c,
                policy_host::crl_details(&c.der).ok().as_ref(),
            ))
            .with_etag(c.etag.clone())),
            None => Err(not_found(format!("no CRL named '{name}'"))),
        }
    }

    /// `PUT /attest/crls/{name}`: body DER (`application/pkix-crl`) or PEM.
    pub fn put_crl(&self, name: &str, body: &[u8], if_match: Option<&str>) -> Answer {
        attest_dps::ids::check_certificate_name(name).map_err(bad_request)?;
        let der = crl_der(body).map_err(bad_request)?;
        self.crl_installed(name, self.install_crl(name, der, None, if_match))
    }

    /// `DELETE /attest/crls/{name}`.
    pub fn delete_crl(&self, name: &str, if_match: Option<&str>) -> Answer {
        let mut replaced = None;
        self.write("the CRL", |tx| {
            let existing = tx.crl(name)?;
            let Some(existing) = existing else {
                return Err(TxError::Refused(not_found(format!(
                    "no CRL named '{name}'"
                ))));
            };
            if !etag_matches(if_match, Some(&existing.etag)) {
                return Err(TxError::Refused(stale(&format!("CRL '{name}'"))));
            }
            replaced = Some(existing.etag);
            tx.delete_crl(name)?;
            Ok(())
        })?;
        Ok(Reply::no_content().replacing(replaced))
    }
}

/// [`Service::install_crl`]'s transaction.
#[allow(clippy::too_many_arguments)]
fn check_and_put(
    tx: &dyn Transaction,
    name: &str,
    der: &[u8],
    details: &CrlDetails,
    source: Option<&str>,
    if_match: Option<&str>,
    time: i64,
    etag: &str,
    now: &str,
) -> Result<(StoredCrl, Option<String>), TxError> {
    let existing = tx.crl(name)?;
    if !etag_matches(if_match, existing.as_ref().map(|c| c.etag.as_str())) {
        return Err(TxError::Refused(stale(&format!("CRL '{name}'"))));
    }
    if let Some(held) = &existing
        && let Ok(held_details) = policy_host::crl_details(&held.der)
    {
        if held_details.sha256 == details.sha256 {
            // The same CRL again (a refresh that found nothing new).
            return Ok((held.clone(), None));
        }
        if older(details, &held_details) {
            return Err(TxError::Refused(bad_request(format!(
                "it is older than the CRL held under this name (thisUpdate {}, number {}): a CRL never replaces a newer one",
                rfc3339(held_details.this_update),
                held_details.number.as_deref().unwrap_or("none")
            ))));
        }
    }
    // Signed by a CA certificate the service holds whose subject is the
    // CRL's issuer: a trust anchor, or any CA certificate uploaded.
    let mut candidates: Vec<Vec<u8>> = tx
        .lookup(LookupKind::Anchor, &details.issuer_key)?
        .into_iter()
        .filter_map(|(_, der)| der)
        .collect();
    candidates.extend(tx.certificates()?.into_iter().map(|c| c.der));
    let mut tried = Vec::new();
    let mut signed = false;
    for ca in &candidates {
        match policy_host::crl_signed_by(der, ca, time) {
            Ok(()) => {
                signed = true;
                break;
            }
            Err(e) if !e.contains("is not the CA certificate's subject") => tried.push(e),
            Err(_) => {}
        }
    }
    if !signed {
        tried.dedup();
        return Err(TxError::Refused(bad_request(if tried.is_empty() {
            format!(
                "no CA certificate of its issuer '{}' is held; upload it under /certificates first",
                details.issuer
            )
        } else {
            format!("no CA certificate held verifies it: {}", tried.join("; "))
        })));
    }
    // One name per CRL issuer scope is the operator's choice; the same CRL
    // under two names is one CRL twice, which is harmless but confusing.
    if let Some(other) = tx.crls()?.into_iter().find(|c| {
        c.name != name && policy_host::crl_details(&c.der).is_ok_and(|d| d.sha256 == details.sha256)
    }) {
        return Err(TxError::Refused(conflict(format!(
            "the same CRL is already held as '{}'",
            other.name
        ))));
    }
    let crl = StoredCrl {
        name: name.to_string(),
        der: der.to_vec(),
        issuer_key: details.issuer_key.to_vec(),
        source: source.map(str::to_string),
        etag: etag.to_string(),
        created: existing
            .as_ref()
            .map_or_else(|| now.to_string(), |c| c.created.clone()),
        updated: now.to_string(),
    };
    tx.put_crl(&crl)?;
    Ok((crl, existing.map(|c| c.etag)))
}
