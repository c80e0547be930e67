//! The DPS management (service) API, authenticated with SAS tokens:
//!
//! - `PUT|GET|DELETE /enrollments/{registrationId}`, `POST /enrollments/query`
//! - `PUT|GET|DELETE /enrollmentGroups/{id}`, `POST /enrollmentGroups/query`
//! - `GET|DELETE /registrations/{registrationId}`, `POST /registrations/{groupId}/query`
//! - `GET /certificates`, `PUT|GET|DELETE /certificates/{name}`,
//!   `POST /certificates/{name}/generateVerificationCode`,
//!   `POST /certificates/{name}/verify`
//!
//! Writes honour `If-Match` (412 on a stale etag) and rebuild the in-memory
//! enrollment index the device API reads.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::Digest;

use policy_host::dps::{EnrollmentSet, ca_reference_names, normalize_entry, one_certificate};

use crate::store::{self, CaCert, Doc, Kind};
use crate::{Body, Service, dps_error, json_response, read_json};

/// Most items one query page returns.
const MAX_PAGE: usize = 1000;
/// Items per page when `x-ms-max-item-count` is absent.
const DEFAULT_PAGE: usize = 100;

pub(crate) async fn handle(
    service: &Arc<Service>,
    req: Request<Incoming>,
    segments: &[String],
) -> Response<Body> {
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(auth) = auth else {
        return dps_error(
            StatusCode::UNAUTHORIZED,
            401_000,
            "the management API needs an Authorization: SharedAccessSignature … header",
        );
    };
    if let Err(why) = crate::sas::verify(
        &auth,
        &service.config.shared_access_policies,
        crate::now_unix(),
        service.config.max_token_lifetime_seconds,
    ) {
        return dps_error(StatusCode::UNAUTHORIZED, 401_000, &why);
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let service = Arc::clone(service);
    let segments = segments.to_vec();
    // The store and the component are synchronous: run off the reactor.
    let result = tokio::task::spawn_blocking(move || {
        dispatch(&service, &method, &headers, &segments, &body)
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!("management API: {e:#}");
            dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                &format!("internal error: {e}"),
            )
        }
        Err(e) => {
            tracing::error!("management task: {e}");
            dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                "the request could not be completed",
            )
        }
    }
}

type Answer = anyhow::Result<Response<Body>>;

fn dispatch(
    service: &Service,
    method: &Method,
    headers: &HeaderMap,
    segments: &[String],
    body: &Value,
) -> Answer {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let if_match = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let page = Page::from_headers(headers)?;
    let page = match page {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    match (method, s.as_slice()) {
        (&Method::POST, ["enrollments", "query"]) => query(service, Kind::Individual, body, &page),
        (&Method::POST, ["enrollmentGroups", "query"]) => query(service, Kind::Group, body, &page),
        (&Method::PUT, ["enrollments", id]) => {
            put_enrollment(service, Kind::Individual, id, body, if_match.as_deref())
        }
        (&Method::PUT, ["enrollmentGroups", id]) => {
            put_enrollment(service, Kind::Group, id, body, if_match.as_deref())
        }
        (&Method::GET, ["enrollments", id]) => get_enrollment(service, Kind::Individual, id),
        (&Method::GET, ["enrollmentGroups", id]) => get_enrollment(service, Kind::Group, id),
        (&Method::DELETE, ["enrollments", id]) => {
            delete_enrollment(service, Kind::Individual, id, if_match.as_deref())
        }
        (&Method::DELETE, ["enrollmentGroups", id]) => {
            delete_enrollment(service, Kind::Group, id, if_match.as_deref())
        }
        (&Method::GET, ["registrations", id]) => match service.store.registration(id)? {
            Some(doc) => Ok(json_response(StatusCode::OK, &doc.doc)),
            None => Ok(not_found(&format!("no registration record for '{id}'"))),
        },
        (&Method::DELETE, ["registrations", id]) => {
            delete_registration(service, id, if_match.as_deref())
        }
        (&Method::POST, ["registrations", group, "query"]) => {
            let docs = service.store.registrations_of_group(group)?;
            Ok(paged(docs, &page, "deviceRegistration"))
        }
        (&Method::GET, ["certificates"]) => {
            let list: Vec<Value> = service
                .store
                .certificates()?
                .iter()
                .map(certificate_doc)
                .collect();
            Ok(json_response(StatusCode::OK, &json!({ "value": list })))
        }
        (&Method::PUT, ["certificates", name]) => {
            put_certificate(service, name, body, if_match.as_deref())
        }
        (&Method::GET, ["certificates", name]) => match service.store.certificate(name)? {
            Some(ca) => Ok(json_response(StatusCode::OK, &certificate_doc(&ca))),
            None => Ok(not_found(&format!("no CA certificate named '{name}'"))),
        },
        (&Method::DELETE, ["certificates", name]) => {
            delete_certificate(service, name, if_match.as_deref())
        }
        (&Method::POST, ["certificates", name, "generateVerificationCode"]) => {
            generate_code(service, name, if_match.as_deref())
        }
        (&Method::POST, ["certificates", name, "verify"]) => {
            verify_certificate(service, name, body, if_match.as_deref())
        }
        _ => Ok(dps_error(
            StatusCode::NOT_FOUND,
            404_000,
            &format!(
                "no management API resource {method} /{}",
                segments.join("/")
            ),
        )),
    }
}

fn not_found(message: &str) -> Response<Body> {
    dps_error(StatusCode::NOT_FOUND, 404_000, message)
}

fn bad_request(message: &str) -> Response<Body> {
    dps_error(StatusCode::BAD_REQUEST, 400_000, message)
}

fn precondition_failed(message: &str) -> Response<Body> {
    dps_error(StatusCode::PRECONDITION_FAILED, 412_000, message)
}

/// `If-Match` against the current etag: absent matches anything, `*`
/// matches any existing entity, otherwise the etags must be equal (quotes
/// optional).
fn etag_matches(if_match: Option<&str>, current: Option<&str>) -> bool {
    let strip = |s: &str| s.trim().trim_matches('"').to_string();
    match (if_match, current) {
        (None, _) => true,
        (Some(m), Some(_)) if m.trim() == "*" => true,
        (Some(m), Some(c)) => strip(m) == strip(c),
        (Some(_), None) => false,
    }
}

fn id_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Individual => "registrationId",
        Kind::Group => "enrollmentGroupId",
    }
}

fn key_of(kind: Kind, id: &str) -> String {
    match kind {
        Kind::Individual => id.to_ascii_lowercase(),
        Kind::Group => id.to_string(),
    }
}

/// Checks an enrollment document the way the index will read it.
fn validate(service: &Service, kind: Kind, doc: &Value) -> Result<(), String> {
    let mut scratch = EnrollmentSet::default();
    let result = match kind {
        Kind::Individual => scratch.insert_individual(doc),
        Kind::Group => {
            let cas = service.store.certificates().map_err(|e| e.to_string())?;
            scratch.insert_group(doc, &|name| {
                cas.iter()
                    .find(|c| c.name == name && c.verified)
                    .map(|c| c.der.clone())
            })
        }
    };
    result.map_err(|e| e.to_string())
}

/// Adds server-managed fields to a submitted document and drops the
/// read-only ones a caller may have sent (`registrationState` belongs to
/// the registration records, never to what a management caller writes).
fn complete(mut doc: Value, existing: Option<&Doc>, etag: &str) -> Value {
    if let Some(object) = doc.as_object_mut() {
        object.remove("registrationState");
    }
    let now = crate::now_rfc3339();
    let created = existing
        .and_then(|d| d.doc.get("createdDateTimeUtc"))
        .cloned()
        .unwrap_or_else(|| json!(now));
    if doc.get("provisioningStatus").is_none() {
        doc["provisioningStatus"] = json!("enabled");
    }
    doc["createdDateTimeUtc"] = created;
    doc["lastUpdatedDateTimeUtc"] = json!(now);
    doc["etag"] = json!(etag);
    doc
}

fn put_enrollment(
    service: &Service,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Answer {
    let field = id_field(kind);
    if !body.is_object() {
        return Ok(bad_request("the enrollment must be a JSON object"));
    }
    // Keys in their DPS spelling, near misses and null statuses refused:
    // what is stored is what the index reads.
    let mut doc = match normalize_entry(body) {
        Ok(d) => d,
        Err(e) => return Ok(bad_request(&e.to_string())),
    };
    match doc.get(field) {
        None => doc[field] = json!(id),
        Some(Value::String(s))
            if s == id || (kind == Kind::Individual && s.eq_ignore_ascii_case(id)) => {}
        Some(other) => {
            return Ok(bad_request(&format!(
                "{field} {other} in the body differs from '{id}' in the URL"
            )));
        }
    }
    if let Err(why) = validate(service, kind, &doc) {
        return Ok(bad_request(&why));
    }
    let key = key_of(kind, id);
    let stored = service.store.transaction(|tx| {
        let existing = store::get_enrollment(tx, kind, &key)?;
        if !etag_matches(if_match, existing.as_ref().map(|d| d.etag.as_str())) {
            return Ok(Err(precondition_failed(&format!(
                "If-Match does not match the current etag of '{id}'"
            ))));
        }
        if kind == Kind::Group
            && let Some(conflict) = group_conflict(tx, id, &doc)?
        {
            return Ok(Err(conflict));
        }
        let etag = crate::new_etag();
        let doc = complete(doc, existing.as_ref(), &etag);
        store::put_enrollment(tx, kind, &key, &doc, &etag)?;
        Ok(Ok(doc))
    })?;
    let doc = match stored {
        Ok(doc) => doc,
        Err(refusal) => return Ok(refusal),
    };
    service.rebuild_index()?;
    let mut r = json_response(StatusCode::OK, &doc);
    set_etag(&mut r, &doc);
    Ok(r)
}

fn conflict(message: &str) -> Response<Body> {
    dps_error(StatusCode::CONFLICT, 409_000, message)
}

/// Whether group `id`'s document claims a CA that another stored group
/// already has (same subject and key): validated against the whole store,
/// inside the write's transaction, so the index never has to choose.
fn group_conflict(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    doc: &Value,
) -> anyhow::Result<Option<Response<Body>>> {
    let cas = store::all_certificates(tx)?;
    let lookup = |name: &str| {
        cas.iter()
            .find(|c| c.name == name && c.verified)
            .map(|c| c.der.clone())
    };
    let mut others = EnrollmentSet::default();
    for (other, other_doc) in store::group_docs(tx)? {
        if other != id {
            // A stored group that does not load claims nothing here; the
            // index refuses its devices (fail closed).
            let _ = others.insert_group(&other_doc, &lookup);
        }
    }
    Ok(match others.insert_group(doc, &lookup) {
        Err(e) if e.is_conflict() => Some(conflict(&format!("enrollment group '{id}': {e}"))),
        Err(e) => Some(bad_request(&e.to_string())),
        Ok(()) => None,
    })
}

/// The enrollment groups whose `caReferences` name certificate `name`.
fn referencing_groups(tx: &rusqlite::Transaction<'_>, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(store::group_docs(tx)?
        .into_iter()
        .filter(|(_, doc)| ca_reference_names(doc).iter().any(|n| n == name))
        .map(|(id, _)| id)
        .collect())
}

fn set_etag(r: &mut Response<Body>, doc: &Value) {
    if let Some(v) = doc
        .get("etag")
        .and_then(Value::as_str)
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        r.headers_mut().insert("etag", v);
    }
}

fn get_enrollment(service: &Service, kind: Kind, id: &str) -> Answer {
    match service.store.enrollment(kind, &key_of(kind, id))? {
        Some(doc) => {
            let mut r = json_response(StatusCode::OK, &doc.doc);
            set_etag(&mut r, &doc.doc);
            Ok(r)
        }
        None => Ok(not_found(&format!("no {} '{id}'", id_field(kind)))),
    }
}

fn delete_enrollment(service: &Service, kind: Kind, id: &str, if_match: Option<&str>) -> Answer {
    let key = key_of(kind, id);
    let outcome = service.store.transaction(|tx| {
        let Some(existing) = store::get_enrollment(tx, kind, &key)? else {
            return Ok(StatusCode::NOT_FOUND);
        };
        if !etag_matches(if_match, Some(&existing.etag)) {
            return Ok(StatusCode::PRECONDITION_FAILED);
        }
        store::delete_enrollment(tx, kind, &key)?;
        Ok(StatusCode::NO_CONTENT)
    })?;
    match outcome {
        StatusCode::NOT_FOUND => Ok(not_found(&format!("no {} '{id}'", id_field(kind)))),
        StatusCode::PRECONDITION_FAILED => Ok(precondition_failed(&format!(
            "If-Match does not match the current etag of '{id}'"
        ))),
        status => {
            service.rebuild_index()?;
            Ok(empty(status))
        }
    }
}

fn delete_registration(service: &Service, id: &str, if_match: Option<&str>) -> Answer {
    let outcome = service.store.transaction(|tx| {
        let Some(existing) = store::get_registration(tx, id)? else {
            return Ok(StatusCode::NOT_FOUND);
        };
        if !etag_matches(if_match, Some(&existing.etag)) {
            return Ok(StatusCode::PRECONDITION_FAILED);
        }
        store::delete_registration(tx, id)?;
        Ok(StatusCode::NO_CONTENT)
    })?;
    Ok(match outcome {
        StatusCode::NOT_FOUND => not_found(&format!("no registration record for '{id}'")),
        StatusCode::PRECONDITION_FAILED => precondition_failed(&format!(
            "If-Match does not match the current etag of registration '{id}'"
        )),
        status => empty(status),
    })
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = status;
    r
}

/// Paging: `x-ms-max-item-count` and `x-ms-continuation` (an opaque
/// offset token this service issued).
struct Page {
    size: usize,
    offset: usize,
}

impl Page {
    fn from_headers(headers: &HeaderMap) -> anyhow::Result<Result<Page, Response<Body>>> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let size = match header("x-ms-max-item-count") {
            None => DEFAULT_PAGE,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Ok(Err(bad_request(&format!(
                        "x-ms-max-item-count {v:?} must be 1 to {MAX_PAGE}"
                    ))));
                }
            },
        };
        let offset = match header("x-ms-continuation") {
            None => 0,
            Some(token) => match token.strip_prefix("offset:").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    return Ok(Err(bad_request(&format!(
                        "x-ms-continuation {token:?} is not a token this service issued"
                    ))));
                }
            },
        };
        Ok(Ok(Page { size, offset }))
    }
}

fn paged(docs: Vec<Doc>, page: &Page, item_type: &'static str) -> Response<Body> {
    let total = docs.len();
    let items: Vec<Value> = docs
        .into_iter()
        .skip(page.offset)
        .take(page.size)
        .map(|d| d.doc)
        .collect();
    let next = page.offset + items.len();
    let mut r = json_response(StatusCode::OK, &Value::Array(items));
    r.headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if next < total
        && let Ok(v) = HeaderValue::from_str(&format!("offset:{next}"))
    {
        r.headers_mut().insert("x-ms-continuation", v);
    }
    r
}

fn query(service: &Service, kind: Kind, body: &Value, page: &Page) -> Answer {
    match body.get("query") {
        None => {}
        Some(Value::String(q)) if q.trim() == "*" || q.trim().eq_ignore_ascii_case("select *") => {}
        Some(other) => {
            return Ok(bad_request(&format!(
                "query {other} is not supported; attest answers \"*\" (all entries)"
            )));
        }
    }
    let docs = service.store.enrollments(kind)?;
    Ok(paged(
        docs,
        page,
        match kind {
            Kind::Individual => "enrollment",
            Kind::Group => "enrollmentGroup",
        },
    ))
}

/// DPS `CertificateResponse`.
fn certificate_doc(ca: &CaCert) -> Value {
    let info = policy_core::certificate_common_name(&ca.der).ok().flatten();
    let mut properties = json!({
        "subject": info,
        "thumbprint": hex::encode_upper(Sha1::digest(&ca.der)),
        "sha256Thumbprint": hex::encode_upper(sha2::Sha256::digest(&ca.der)),
        "isVerified": ca.verified,
        "certificate": STANDARD.encode(&ca.der),
        "created": ca.created,
    });
    if let Some(code) = &ca.code {
        properties["verificationCode"] = json!(code);
    }
    json!({
        "name": ca.name,
        "etag": ca.etag,
        "type": "Microsoft.Devices/provisioningServices/Certificates",
        "properties": properties,
    })
}

fn certificate_text(body: &Value) -> Option<&str> {
    body.get("certificate")
        .or_else(|| body.get("properties").and_then(|p| p.get("certificate")))
        .and_then(Value::as_str)
}

fn put_certificate(service: &Service, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
    if name.is_empty() || name.len() > 256 {
        return Ok(bad_request("certificate name must be 1 to 256 characters"));
    }
    let Some(text) = certificate_text(body) else {
        return Ok(bad_request(
            "body must be {\"certificate\": \"<PEM or base64 DER>\"}",
        ));
    };
    let der = match one_certificate(text) {
        Ok(d) => d,
        Err(e) => return Ok(bad_request(&format!("certificate: {e}"))),
    };
    if let Err(r) = policy_core::certificate_keys(&der) {
        return Ok(bad_request(&format!("certificate is not usable: {r}")));
    }
    let now = crate::now_rfc3339();
    let stored = service.store.transaction(|tx| {
        let existing = store::get_certificate(tx, name)?;
        if !etag_matches(if_match, existing.as_ref().map(|c| c.etag.as_str())) {
            return Ok(Err(precondition_failed(&format!(
                "If-Match does not match the current etag of certificate '{name}'"
            ))));
        }
        // Replacing a certificate makes it unverified: a group that names
        // it would silently stop applying.
        let groups = referencing_groups(tx, name)?;
        if existing.is_some() && !groups.is_empty() {
            return Ok(Err(conflict(&format!(
                "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); replacing it would unverify it and silently stop those groups from applying. Change or delete the groups first",
                groups.join(", ")
            ))));
        }
        let ca = CaCert {
            name: name.to_string(),
            der,
            verified: false,
            code: None,
            etag: crate::new_etag(),
            created: existing.map_or_else(|| now.clone(), |c| c.created),
        };
        store::put_certificate(tx, &ca, &now)?;
        Ok(Ok(ca))
    })?;
    let ca = match stored {
        Ok(ca) => ca,
        Err(refusal) => return Ok(refusal),
    };
    service.rebuild_index()?;
    Ok(json_response(StatusCode::OK, &certificate_doc(&ca)))
}

fn delete_certificate(service: &Service, name: &str, if_match: Option<&str>) -> Answer {
    let outcome = service.store.transaction(|tx| {
        let Some(existing) = store::get_certificate(tx, name)? else {
            return Ok(Err(not_found(&format!("no CA certificate named '{name}'"))));
        };
        if !etag_matches(if_match, Some(&existing.etag)) {
            return Ok(Err(precondition_failed(&format!(
                "If-Match does not match the current etag of certificate '{name}'"
            ))));
        }
        let groups = referencing_groups(tx, name)?;
        if !groups.is_empty() {
            return Ok(Err(conflict(&format!(
                "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); deleting it would silently stop those groups from applying. Change or delete the groups first",
                groups.join(", ")
            ))));
        }
        store::delete_certificate(tx, name)?;
        Ok(Ok(()))
    })?;
    if let Err(refusal) = outcome {
        return Ok(refusal);
    }
    service.rebuild_index()?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn generate_code(service: &Service, name: &str, if_match: Option<&str>) -> Answer {
    let now = crate::now_rfc3339();
    let outcome = service.store.transaction(|tx| {
        let Some(mut ca) = store::get_certificate(tx, name)? else {
            return Ok(Err(StatusCode::NOT_FOUND));
        };
        if !etag_matches(if_match, Some(&ca.etag)) {
            return Ok(Err(StatusCode::PRECONDITION_FAILED));
        }
        let mut code = [0u8; 16];
        aws_lc_rs::rand::fill(&mut code).map_err(|_| anyhow!("no system randomness"))?;
        ca.code = Some(hex::encode_upper(code));
        ca.etag = crate::new_etag();
        store::put_certificate(tx, &ca, &now)?;
        Ok(Ok(ca))
    })?;
    Ok(match outcome {
        Ok(ca) => json_response(StatusCode::OK, &certificate_doc(&ca)),
        Err(StatusCode::NOT_FOUND) => not_found(&format!("no CA certificate named '{name}'")),
        Err(_) => precondition_failed(&format!(
            "If-Match does not match the current etag of certificate '{name}'"
        )),
    })
}

fn verify_certificate(
    service: &Service,
    name: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Answer {
    let Some(ca) = service.store.certificate(name)? else {
        return Ok(not_found(&format!("no CA certificate named '{name}'")));
    };
    if !etag_matches(if_match, Some(&ca.etag)) {
        return Ok(precondition_failed(&format!(
            "If-Match does not match the current etag of certificate '{name}'"
        )));
    }
    let Some(code) = ca.code.clone() else {
        return Ok(bad_request(
            "no verification code: POST generateVerificationCode first",
        ));
    };
    let Some(text) = certificate_text(body) else {
        return Ok(bad_request(
            "body must be {\"certificate\": \"<verification certificate, PEM or base64 DER>\"}",
        ));
    };
    let verification = match one_certificate(text) {
        Ok(d) => d,
        Err(e) => return Ok(bad_request(&format!("verification certificate: {e}"))),
    };
    let verdict =
        service
            .policy
            .verify_ca_possession(&ca.der, &verification, &code, crate::now_unix())?;
    if let Err(r) = verdict {
        return Ok(bad_request(&format!("proof of possession refused: {r}")));
    }
    let now = crate::now_rfc3339();
    let updated = service.store.transaction(|tx| {
        let Some(mut current) = store::get_certificate(tx, name)? else {
            return Ok(None);
        };
        if current.etag != ca.etag {
            return Ok(None);
        }
        current.verified = true;
        current.code = None;
        current.etag = crate::new_etag();
        store::put_certificate(tx, &current, &now)?;
        Ok(Some(current))
    })?;
    let Some(updated) = updated else {
        return Ok(precondition_failed(&format!(
            "certificate '{name}' changed during verification; retry"
        )));
    };
    service.rebuild_index()?;
    Ok(json_response(StatusCode::OK, &certificate_doc(&updated)))
}

/// Upserts an enrollment file (DPS JSON shapes, as `host-cli verify
/// --enrollments` reads) into the store; returns (individuals, groups).
pub(crate) fn upsert_file(service: &Service, path: &Path) -> anyhow::Result<(usize, usize)> {
    const MAX_FILE: u64 = 16 << 20;
    let text = policy_host::input::read_limited_text(path, MAX_FILE)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    // Validates the whole file first (same rules as the index).
    EnrollmentSet::from_json(&text).with_context(|| path.display().to_string())?;
    let list = |key: &str| {
        file.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (individuals, groups) = (list("individualEnrollments"), list("enrollmentGroups"));
    service.store.transaction(|tx| {
        for (kind, docs) in [(Kind::Individual, &individuals), (Kind::Group, &groups)] {
            for doc in docs {
                let id = doc
                    .get(id_field(kind))
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("an entry has no {}", id_field(kind)))?;
                let key = key_of(kind, id);
                let existing = store::get_enrollment(tx, kind, &key)?;
                let etag = crate::new_etag();
                let doc = complete(doc.clone(), existing.as_ref(), &etag);
                store::put_enrollment(tx, kind, &key, &doc, &etag)?;
            }
        }
        Ok(())
    })?;
    Ok((individuals.len(), groups.len()))
}
