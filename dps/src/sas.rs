//! DPS-style shared access signatures for the management API:
//! `SharedAccessSignature sr=<url-encoded resource>&sig=<base64 HMAC-SHA256>&se=<expiry>&skn=<policy>`,
//! where the signature is over `sr` (as it appears in the token) + `"\n"` + `se`.
//!
//! The resource (`sr`) is signed but not compared with the request's host:
//! a service behind a proxy or reached by several names would otherwise
//! refuse valid tokens. The key proves the caller; the expiry bounds replay.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// One shared access policy (DPS: name, base64 key and rights).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SasPolicy {
    /// Policy name (`skn` in tokens).
    pub key_name: String,
    /// Base64 HMAC-SHA256 key.
    pub primary_key: String,
    /// What the policy may do, as DPS writes it (`"EnrollmentRead,
    /// RegistrationStatusRead"`). Absent: every right (configurations
    /// written before rights existed; the generated owner policy lists
    /// them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<Rights>,
}

impl SasPolicy {
    /// Whether the policy grants `right`.
    pub fn grants(&self, right: Right) -> bool {
        self.rights.as_ref().is_none_or(|r| r.0.contains(&right))
    }
}

/// A right a shared access policy grants, by DPS's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Right {
    /// Certificates (CA verification) and the service's configuration.
    ServiceConfig,
    /// Read enrollments and enrollment groups (get, query, attestation mechanism).
    EnrollmentRead,
    /// Create, replace and delete enrollments and enrollment groups (and bulk operations).
    EnrollmentWrite,
    /// Read registration records (get, query).
    RegistrationStatusRead,
    /// Delete registration records.
    RegistrationStatusWrite,
    /// attest's own: read edge snapshots (`GET /attest/snapshot`) and
    /// nothing else, for gateways.
    SnapshotRead,
    /// attest's own: upload the decisions a gateway made
    /// (`POST /attest/edgeDecisions`).
    EdgeDecisionWrite,
}

impl Right {
    /// Every right, in DPS's order, then attest's own.
    pub const ALL: [Right; 7] = [
        Right::ServiceConfig,
        Right::EnrollmentRead,
        Right::EnrollmentWrite,
        Right::RegistrationStatusRead,
        Right::RegistrationStatusWrite,
        Right::SnapshotRead,
        Right::EdgeDecisionWrite,
    ];

    /// DPS's name of the right.
    pub fn name(self) -> &'static str {
        match self {
            Right::ServiceConfig => "ServiceConfig",
            Right::EnrollmentRead => "EnrollmentRead",
            Right::EnrollmentWrite => "EnrollmentWrite",
            Right::RegistrationStatusRead => "RegistrationStatusRead",
            Right::RegistrationStatusWrite => "RegistrationStatusWrite",
            Right::SnapshotRead => "SnapshotRead",
            Right::EdgeDecisionWrite => "EdgeDecisionWrite",
        }
    }
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The rights of a policy, written as DPS writes them: names separated by
/// commas (`"ServiceConfig, EnrollmentRead"`), case-insensitive.
/// `DeviceConnect` (a DPS right for devices, which attest's X.509 devices
/// do not use) is accepted and grants nothing; an unknown name is an
/// error, and so is a list that grants nothing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rights(std::collections::BTreeSet<Right>);

impl Rights {
    /// Every right.
    pub fn all() -> Rights {
        Rights(Right::ALL.into_iter().collect())
    }

    /// Exactly these rights.
    pub fn of(rights: &[Right]) -> Rights {
        Rights(rights.iter().copied().collect())
    }
}

impl TryFrom<String> for Rights {
    type Error = String;

    fn try_from(text: String) -> Result<Rights, String> {
        let mut out = std::collections::BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("DeviceConnect") {
                continue;
            }
            let right = Right::ALL
                .into_iter()
                .find(|r| r.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let known: Vec<&str> = Right::ALL.iter().map(|r| r.name()).collect();
                    format!(
                        "rights: {name:?} is not a right (known: {}, DeviceConnect)",
                        known.join(", ")
                    )
                })?;
            out.insert(right);
        }
        if out.is_empty() {
            let known: Vec<&str> = Right::ALL.iter().map(|r| r.name()).collect();
            return Err(format!(
                "rights {text:?} grants nothing; list one or more of {}",
                known.join(", ")
            ));
        }
        Ok(Rights(out))
    }
}

impl From<Rights> for String {
    fn from(r: Rights) -> String {
        let names: Vec<&str> = r.0.iter().map(|r| r.name()).collect();
        names.join(", ")
    }
}

/// Longest token accepted, bytes.
const MAX_TOKEN: usize = 4096;

/// Shortest management key accepted, bytes (after base64): HMAC-SHA256's
/// full strength, as DPS's generated keys have.
pub const MIN_KEY_BYTES: usize = 32;

/// How far in the future a token may expire by default, seconds (one
/// year): a leaked token must not be valid for ever.
pub const DEFAULT_MAX_TOKEN_LIFETIME: i64 = 365 * 24 * 3600;

/// Checks that a policy key can protect the management API: base64 of at
/// least [`MIN_KEY_BYTES`] bytes, not one byte repeated.
pub fn check_key(policy: &SasPolicy) -> Result<(), String> {
    let key = STANDARD
        .decode(policy.primary_key.trim())
        .map_err(|e| format!("policy '{}' key is not base64: {e}", policy.key_name))?;
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "policy '{}' key is {} bytes; at least {MIN_KEY_BYTES} random bytes are needed (e.g. `head -c 32 /dev/urandom | base64`)",
            policy.key_name,
            key.len()
        ));
    }
    if let Some(why) = trivial(&key) {
        return Err(format!(
            "policy '{}' key {why}: it is not random; use {MIN_KEY_BYTES} random bytes (e.g. `head -c 32 /dev/urandom | base64`)",
            policy.key_name
        ));
    }
    Ok(())
}

/// Fewest distinct byte values a key of 32 or more random bytes may have.
/// 32 random bytes have about 30 distinct values; fewer than 16 happens by
/// chance with a probability far below 2^-64, while hand-made keys (one
/// byte, a pattern, mostly zeros) have a handful.
const MIN_DISTINCT_BYTES: usize = 16;

/// Why `key` is of trivial entropy, if it is: a short pattern repeated
/// (one byte, `abab…`, any period up to half its length), or too few
/// distinct byte values.
fn trivial(key: &[u8]) -> Option<String> {
    if let Some(period) =
        (1..=key.len() / 2).find(|&p| key[p..].iter().zip(key).all(|(a, b)| a == b))
    {
        return Some(if period == 1 {
            "is one byte repeated".into()
        } else {
            format!("repeats a {period}-byte pattern")
        });
    }
    let mut seen = [false; 256];
    for b in key {
        seen[usize::from(*b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    (distinct < MIN_DISTINCT_BYTES.min(key.len()))
        .then(|| format!("has only {distinct} distinct byte values"))
}

/// Makes a token for `resource` (e.g. the service host name) valid until
/// `expiry` (Unix seconds).
pub fn token(policy: &SasPolicy, resource: &str, expiry: i64) -> Result<String, String> {
    let key = STANDARD
        .decode(policy.primary_key.trim())
        .map_err(|e| format!("policy '{}' key is not base64: {e}", policy.key_name))?;
    let sr = utf8_percent_encode(&resource.to_ascii_lowercase(), NON_ALPHANUMERIC).to_string();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        format!("{sr}\n{expiry}").as_bytes(),
    );
    let sig = utf8_percent_encode(&STANDARD.encode(tag.as_ref()), NON_ALPHANUMERIC).to_string();
    let token = format!(
        "SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={}",
        policy.key_name
    );
    // Never mint what `verify` refuses (found by the `sas` fuzz target).
    if token.len() > MAX_TOKEN {
        return Err(format!(
            "the token would be {} bytes; the service accepts at most {MAX_TOKEN} (use a shorter resource)",
            token.len()
        ));
    }
    Ok(token)
}

/// Checks an `Authorization` header value at time `now`; a token that
/// expires more than `max_lifetime` seconds from now is refused too. The
/// error says why the token is refused.
pub fn verify(
    header: &str,
    policies: &[SasPolicy],
    now: i64,
    max_lifetime: i64,
) -> Result<(), String> {
    verify_policy(header, policies, now, max_lifetime).map(|_| ())
}

/// [`verify`], answering the policy whose key signed the token (for its
/// rights).
pub fn verify_policy<'p>(
    header: &str,
    policies: &'p [SasPolicy],
    now: i64,
    max_lifetime: i64,
) -> Result<&'p SasPolicy, String> {
    if header.len() > MAX_TOKEN {
        return Err("the SAS token is too long".into());
    }
    let fields = header
        .trim()
        .strip_prefix("SharedAccessSignature ")
        .ok_or("Authorization is not a SharedAccessSignature token")?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for pair in fields.split('&') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("SAS token field {pair:?} has no '='"))?;
        let slot = match k {
            "sr" => &mut sr,
            "sig" => &mut sig,
            "se" => &mut se,
            "skn" => &mut skn,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(format!("SAS token field {k} appears twice"));
        }
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (sr, sig, se, skn) else {
        return Err("SAS token needs sr, sig, se and skn".into());
    };
    let expiry: i64 = se
        .parse()
        .map_err(|_| format!("SAS token expiry {se:?} is not a number"))?;
    if expiry <= now {
        return Err(format!("SAS token expired at {expiry} (now {now})"));
    }
    if expiry - now > max_lifetime {
        return Err(format!(
            "SAS token expires at {expiry}, more than the {max_lifetime} s this service allows (maxTokenLifetimeSeconds)"
        ));
    }
    let policy = policies
        .iter()
        .find(|p| p.key_name == skn)
        .ok_or_else(|| format!("no shared access policy named {skn:?}"))?;
    let key = STANDARD
        .decode(policy.primary_key.trim())
        .map_err(|_| "the policy key is not base64".to_string())?;
    let signature = percent_encoding::percent_decode_str(sig).decode_utf8_lossy();
    let signature = STANDARD
        .decode(signature.as_bytes())
        .map_err(|_| "SAS token signature is not base64".to_string())?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        format!("{sr}\n{se}").as_bytes(),
        &signature,
    )
    .map_err(|_| "SAS token signature does not verify".to_string())?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SasPolicy {
        SasPolicy {
            key_name: "owner".into(),
            primary_key: STANDARD.encode([7u8; 32]),
            rights: None,
        }
    }

    #[test]
    fn round_trip_expiry_and_tampering() {
        let p = policy();
        let t = token(&p, "Attest.Example:8443", 1_000).unwrap();
        assert!(t.contains("sr=attest%2Eexample%3A8443"), "{t}");
        let max = DEFAULT_MAX_TOKEN_LIFETIME;
        assert_eq!(verify(&t, std::slice::from_ref(&p), 999, max), Ok(()));
        assert!(
            verify(&t, std::slice::from_ref(&p), 1_000, max)
                .unwrap_err()
                .contains("expired")
        );
        let later = t.replace("se=1000", "se=2000");
        assert!(
            verify(&later, std::slice::from_ref(&p), 999, max)
                .unwrap_err()
                .contains("does not verify")
        );
        let other = SasPolicy {
            key_name: "owner".into(),
            primary_key: STANDARD.encode([8u8; 32]),
            rights: None,
        };
        assert!(verify(&t, &[other], 999, max).is_err());
        assert!(verify("Bearer x", std::slice::from_ref(&p), 0, max).is_err());
        assert!(
            verify(
                "SharedAccessSignature sr=a",
                std::slice::from_ref(&p),
                0,
                max
            )
            .is_err()
        );
        // Regression (issue 9, item 4): a token valid for longer than the
        // service allows is refused, however well signed.
        assert!(
            verify(&t, std::slice::from_ref(&p), 999 - max - 1, max)
                .unwrap_err()
                .contains("maxTokenLifetimeSeconds")
        );
    }

    #[test]
    fn rights_parse_as_dps_writes_them_and_unknown_names_are_errors() {
        let parse = |t: &str| Rights::try_from(t.to_string());
        assert_eq!(
            parse("EnrollmentRead, registrationstatusread"),
            Ok(Rights::of(&[
                Right::EnrollmentRead,
                Right::RegistrationStatusRead
            ]))
        );
        assert_eq!(
            parse("DeviceConnect,ServiceConfig"),
            Ok(Rights::of(&[Right::ServiceConfig]))
        );
        assert!(
            parse("EnrollmentRead, EnrolmentWrite")
                .unwrap_err()
                .contains("EnrolmentWrite")
        );
        assert!(parse("").unwrap_err().contains("grants nothing"));
        assert!(
            parse("DeviceConnect")
                .unwrap_err()
                .contains("grants nothing")
        );
        let all = String::from(Rights::all());
        assert_eq!(parse(&all), Ok(Rights::all()));
        // A policy without rights is every right; with rights, only those.
        let mut p = policy();
        assert!(Right::ALL.iter().all(|r| p.grants(*r)));
        p.rights = Some(Rights::of(&[Right::EnrollmentRead]));
        assert!(p.grants(Right::EnrollmentRead) && !p.grants(Right::EnrollmentWrite));
        let json: SasPolicy = serde_json::from_str(
            r#"{"keyName":"reader","primaryKey":"x","rights":"EnrollmentRead"}"#,
        )
        .unwrap();
        assert_eq!(json.rights, Some(Rights::of(&[Right::EnrollmentRead])));
        assert!(
            serde_json::from_str::<SasPolicy>(
                r#"{"keyName":"r","primaryKey":"x","rights":"Admin"}"#
            )
            .is_err()
        );
    }

    /// Found by the `sas` fuzz target: `token` minted tokens longer than
    /// `verify` accepts (a long resource), which the service then refused.
    #[test]
    fn token_never_mints_what_verify_refuses() {
        let p = policy();
        let long = "h".repeat(MAX_TOKEN);
        assert!(token(&p, &long, 1_000).unwrap_err().contains("at most"));
        let fits = "h".repeat(MAX_TOKEN - 200);
        let t = token(&p, &fits, 1_000).unwrap();
        assert_eq!(
            verify(
                &t,
                std::slice::from_ref(&p),
                999,
                DEFAULT_MAX_TOKEN_LIFETIME
            ),
            Ok(())
        );
    }

    /// Regression (issue 9, item 4): an empty key used to start the
    /// service and let anyone mint tokens.
    #[test]
    fn weak_keys_are_refused() {
        let key = |k: &str| SasPolicy {
            key_name: "owner".into(),
            primary_key: k.into(),
            rights: None,
        };
        // Issue 18: 32 bytes of trivial entropy passed (a repeated short
        // pattern, one byte set in zeros).
        let mut mostly_zero = [0u8; 32];
        mostly_zero[0] = 1;
        for weak in [
            String::new(),
            STANDARD.encode([1u8; 16]),
            STANDARD.encode([0u8; 64]),
            STANDARD.encode(b"abababababababababababababababab"),
            STANDARD.encode(b"0123456789abcdef0123456789abcdef0123"),
            STANDARD.encode(mostly_zero),
            "not base64!".into(),
        ] {
            assert!(check_key(&key(&weak)).is_err(), "{weak:?}");
        }
        let strong: Vec<u8> = (0u32..32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(
            check_key(&key(&STANDARD.encode(&strong))).is_ok(),
            "{strong:?}"
        );
        // The keys attest makes itself pass (random bytes).
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random).unwrap();
        assert!(check_key(&key(&STANDARD.encode(random))).is_ok());
    }
}
