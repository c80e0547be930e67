//! Name constraints (RFC 5280 §4.2.1.10, §6.1.3(b)–(c)).
//!
//! A CA's constraints apply to every certificate below it in the path:
//! each name of a constrained form must lie inside at least one permitted
//! subtree of that form and inside no excluded subtree. Evaluating each
//! CA's constraints separately against every name below it is equivalent to
//! RFC 5280 §6.1's running intersection and union of subtrees, and needs no
//! state beyond the path.
//!
//! Forms enforced: dNSName, iPAddress (v4 and v6 with masks), rfc822Name
//! (the three RFC 5280 forms; the subject's emailAddress attributes count as
//! rfc822 names, as §4.2.1.10 asks), uniformResourceIdentifier (on the
//! URI's host) and directoryName (applied to a non-empty subject and to
//! directoryName alternative names). A constraint of another form
//! (otherName, registeredID, …) cannot be evaluated: a certificate
//! below it that carries a name of that form is refused, as §4.2.1.10
//! requires ("MUST either process the constraint or reject the
//! certificate"); certificates without such names are unaffected.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{NameConstraints, constraints::name::GeneralSubtree};

use crate::budget::Budget;
use crate::dn::{DistinguishedName, Same};
use crate::error::{Code, Failed};

/// rfc822 attribute in a subject Name (PKCS #9 emailAddress).
const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// One subtree base, or one name, in a form attest can compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// dNSName, lower-cased.
    Dns(String),
    /// rfc822Name (mailbox, host, or `.domain`).
    Email(String),
    /// uniformResourceIdentifier: in a constraint, a host or `.domain`; in
    /// a certificate, the whole URI.
    Uri(String),
    /// iPAddress: 4 or 16 address octets; in a constraint, followed by as
    /// many mask octets.
    Ip(Vec<u8>),
    /// directoryName, parsed and prepared (RFC 4518).
    Directory(DistinguishedName),
    /// A form attest does not compare, by its RFC 5280 name.
    Other(&'static str),
}

impl Form {
    fn kind(&self) -> &'static str {
        match self {
            Form::Dns(_) => "dNSName",
            Form::Email(_) => "rfc822Name",
            Form::Uri(_) => "uniformResourceIdentifier",
            Form::Ip(_) => "iPAddress",
            Form::Directory(_) => "directoryName",
            Form::Other(kind) => kind,
        }
    }

    fn describe(&self) -> String {
        match self {
            Form::Dns(s) | Form::Email(s) | Form::Uri(s) => format!("{} {s:?}", self.kind()),
            Form::Ip(bytes) => format!("iPAddress {}", format_ip(bytes)),
            Form::Directory(name) => format!("directoryName '{}'", crate::dn::format_name(name)),
            Form::Other(kind) => (*kind).to_string(),
        }
    }
}

/// A parsed, checked nameConstraints extension.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Constraints {
    permitted: Vec<Form>,
    excluded: Vec<Form>,
}

impl Constraints {
    /// Parses the extension value. Refuses what RFC 5280 §4.2.1.10 rules
    /// out: no subtrees at all, an empty subtree list, minimum other than 0,
    /// a maximum, an iPAddress constraint that is not address + contiguous
    /// mask, a directoryName that does not re-encode.
    pub(crate) fn parse(value: &[u8]) -> Result<Constraints, (Code, String)> {
        let invalid = |why: String| {
            (
                Code::InvalidNameConstraints,
                format!("nameConstraints {why} (RFC 5280 §4.2.1.10)"),
            )
        };
        let nc =
            NameConstraints::from_der(value).map_err(|e| invalid(format!("is malformed: {e}")))?;
        let mut out = Constraints::default();
        let mut any = false;
        for (subtrees, into) in [
            (nc.permitted_subtrees, &mut out.permitted),
            (nc.excluded_subtrees, &mut out.excluded),
        ] {
            let Some(subtrees) = subtrees else { continue };
            if subtrees.is_empty() {
                return Err(invalid("has an empty list of subtrees".into()));
            }
            any = true;
            for GeneralSubtree {
                base,
                minimum,
                maximum,
            } in subtrees
            {
                if minimum != 0 || maximum.is_some() {
                    return Err(invalid(
                        "sets minimum or maximum; minimum MUST be 0 and maximum absent".into(),
                    ));
                }
                let form = form_of(&base).map_err(|e| invalid(format!("base: {e}")))?;
                check_base(&form).map_err(invalid)?;
                into.push(form);
            }
        }
        if !any {
            return Err(invalid(
                "has neither permittedSubtrees nor excludedSubtrees".into(),
            ));
        }
        Ok(out)
    }

    /// Checks `names` (one certificate's names) against these constraints,
    /// spending one name comparison of `budget` per subtree compared.
    /// [`Failed::Candidate`] is a violation (a message);
    /// [`Failed::Search`], the budget running out.
    pub(crate) fn check(&self, names: &[Form], budget: &mut Budget) -> Result<(), Failed<String>> {
        for name in names {
            let kind = name.kind();
            // A name attest cannot read cannot be shown to lie outside an
            // excluded subtree: under a name-constrained CA it is refused.
            let uri_constrained = self
                .permitted
                .iter()
                .chain(&self.excluded)
                .any(|b| matches!(b, Form::Uri(_)));
            if let Err(why) = check_name_syntax(name, uri_constrained) {
                return Err(Failed::Candidate(format!(
                    "{} cannot be checked against the issuer's name constraints: {why}",
                    name.describe()
                )));
            }
            let mut constrained = false;
            let mut permitted = false;
            for base in self.permitted.iter().filter(|b| b.kind() == kind) {
                constrained = true;
                budget.consume_name_comparison()?;
                if matches(name, base, Subtree::Permitted) {
                    permitted = true;
                    break;
                }
            }
            if let Form::Other(_) = name {
                if constrained || self.excluded.iter().any(|b| b.kind() == kind) {
                    return Err(Failed::Candidate(format!(
                        "the issuer constrains {kind} names, which attest cannot evaluate, and the certificate has one"
                    )));
                }
                continue;
            }
            if constrained && !permitted {
                return Err(Failed::Candidate(format!(
                    "{} is outside every permitted {kind} subtree",
                    name.describe()
                )));
            }
            for base in self.excluded.iter().filter(|b| b.kind() == kind) {
                budget.consume_name_comparison()?;
                if matches(name, base, Subtree::Excluded) {
                    return Err(Failed::Candidate(format!(
                        "{} is inside the excluded subtree {}",
                        name.describe(),
                        base.describe()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The names of one certificate that constraints apply to: the subject
/// (when non-empty), its emailAddress attributes, and every
/// subjectAltName entry.
pub(crate) fn names_of(
    subject: &DistinguishedName,
    alt_names: &[GeneralName],
) -> Result<Vec<Form>, String> {
    let mut names = Vec::new();
    if !subject.is_empty() {
        for attribute in subject.encoded.iter().flatten() {
            if attribute.oid == EMAIL_ADDRESS {
                // PKCS #9: emailAddress is an IA5String.
                match (&attribute.text, attribute.der.first()) {
                    (Some(text), Some(0x16)) => names.push(Form::Email(text.clone())),
                    _ => return Err("subject Name: emailAddress is not an IA5String".into()),
                }
            }
        }
        names.push(Form::Directory(subject.clone()));
    }
    for name in alt_names {
        names.push(form_of(name).map_err(|e| format!("subjectAltName: {e}"))?);
    }
    Ok(names)
}

/// Checks the structure of a subjectAltName entry that attest may have to
/// compare later: a malformed one is a malformed extension.
pub(crate) fn check_alt_name(name: &GeneralName) -> Result<(), String> {
    match form_of(name)? {
        Form::Ip(bytes) if bytes.len() != 4 && bytes.len() != 16 => Err(format!(
            "iPAddress of {} octets; expected 4 or 16",
            bytes.len()
        )),
        Form::Email(s) if !s.contains('@') => Err(format!("rfc822Name {s:?} is not a mailbox")),
        _ => Ok(()),
    }
}

fn form_of(name: &GeneralName) -> Result<Form, String> {
    Ok(match name {
        GeneralName::DnsName(s) => Form::Dns(s.as_str().to_ascii_lowercase()),
        GeneralName::Rfc822Name(s) => Form::Email(s.as_str().to_string()),
        GeneralName::IpAddress(o) => Form::Ip(o.as_bytes().to_vec()),
        GeneralName::DirectoryName(n) => {
            let der = n.to_der().map_err(|e| e.to_string())?;
            Form::Directory(DistinguishedName::parse(&der)?)
        }
        GeneralName::UniformResourceIdentifier(s) => Form::Uri(s.as_str().to_string()),
        GeneralName::OtherName(_) => Form::Other("otherName"),
        GeneralName::EdiPartyName(_) => Form::Other("ediPartyName"),
        GeneralName::RegisteredId(_) => Form::Other("registeredID"),
    })
}

/// A host name: dot-separated labels of letters, digits, '-' and '_'
/// (at most 63 octets each, 253 in all), one trailing dot allowed.
fn is_host(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Refuses subtree bases attest cannot interpret (RFC 5280 §4.2.1.10
/// gives each form's syntax): they would otherwise silently match nothing.
fn check_base(base: &Form) -> Result<(), String> {
    let domain_or_host = |s: &str| s.strip_prefix('.').is_some_and(is_host) || is_host(s);
    match base {
        Form::Ip(bytes) => check_ip_constraint(bytes),
        Form::Dns(s) if s.is_empty() || domain_or_host(s) => Ok(()),
        Form::Dns(s) => Err(format!("dNSName base {s:?} is not a domain name")),
        Form::Email(s) => {
            let ok = match s.rsplit_once('@') {
                // "local@host" a mailbox; "@host" (OpenSSL's reading: every
                // mailbox at host).
                Some((local, host)) => !local.contains('@') && is_host(host),
                None => domain_or_host(s),
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "rfc822Name base {s:?} is not a mailbox, a host or a .domain"
                ))
            }
        }
        Form::Uri(s) if domain_or_host(s) => Ok(()),
        Form::Uri(s) => Err(format!(
            "uniformResourceIdentifier base {s:?} is not a host or a .domain"
        )),
        Form::Directory(_) | Form::Other(_) => Ok(()),
    }
}

/// The syntax a name must have to be compared with constraints: a dNSName
/// is a host name (a leading "*." label allowed), an rfc822Name a mailbox
/// at a host name, and, where URI constraints exist, a URI has an
/// authority with a host name.
fn check_name_syntax(name: &Form, uri_constrained: bool) -> Result<(), String> {
    match name {
        Form::Dns(s) if is_host(s.strip_prefix("*.").unwrap_or(s)) => Ok(()),
        Form::Dns(_) => Err("not a valid DNS name (RFC 5280 §4.2.1.6)".into()),
        Form::Email(s) => match s.rsplit_once('@') {
            Some((local, host)) if !local.is_empty() && is_host(host) => Ok(()),
            _ => Err("not a mailbox at a host name (RFC 5280 §4.2.1.6)".into()),
        },
        Form::Uri(s) if uri_constrained && !uri_host(s).is_some_and(is_host) => Err(
            "the URI has no authority with a host name (RFC 5280 §4.2.1.10 requires one under URI constraints)"
                .into(),
        ),
        _ => Ok(()),
    }
}

fn check_ip_constraint(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != 8 && bytes.len() != 32 {
        return Err(format!(
            "iPAddress constraint is {} octets; expected 8 (IPv4) or 32 (IPv6)",
            bytes.len()
        ));
    }
    let mask = &bytes[bytes.len() / 2..];
    // Contiguous: ones, then zeros.
    let mut seen_zero = false;
    for bit in mask
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1))
    {
        match (bit, seen_zero) {
            (0, _) => seen_zero = true,
            (_, true) => {
                return Err(format!(
                    "iPAddress constraint {} has a non-contiguous mask",
                    format_ip(bytes)
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subtree {
    Permitted,
    Excluded,
}

fn matches(name: &Form, base: &Form, subtree: Subtree) -> bool {
    match (name, base) {
        (Form::Dns(name), Form::Dns(base)) => dns_matches(name, base, subtree),
        (Form::Email(name), Form::Email(base)) => email_matches(name, base),
        (Form::Uri(uri), Form::Uri(base)) => uri_host(uri).is_some_and(|host| {
            let host = host.strip_suffix('.').unwrap_or(host);
            // RFC 5280 §4.2.1.10: a host matches exactly; ".domain" matches
            // hosts under it. A URI without a host matches nothing (and is
            // therefore refused under any permitted URI subtree).
            match base.strip_prefix('.') {
                Some(_) => is_within(host, base),
                None => host.eq_ignore_ascii_case(base),
            }
        }),
        (Form::Ip(addr), Form::Ip(net)) => ip_matches(addr, net),
        // A name that cannot be prepared may or may not lie in the
        // subtree: outside every permitted one, inside an excluded one.
        (Form::Directory(name), Form::Directory(base)) => match name.within(base) {
            Same::Yes => true,
            Same::No => false,
            Same::Unknown => subtree == Subtree::Excluded,
        },
        _ => false,
    }
}

/// RFC 5280 §4.2.1.10: a dNSName constraint matches every name formed by
/// adding zero or more labels on the left. A leading "." (an OpenSSL/NSS
/// convention) matches proper subdomains only; an empty base matches all.
/// A wildcard name ("*.example.com") is treated as the set of names it
/// stands for: it is permitted only if all of them are, and excluded if any
/// of them is.
fn dns_matches(name: &str, base: &str, subtree: Subtree) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let base = base.strip_suffix('.').unwrap_or(base);
    if base.is_empty() {
        return true;
    }
    let Some(domain) = name.strip_prefix("*.") else {
        return is_within(name, base);
    };
    // "*.domain" stands for every "label.domain": all of them are in the
    // subtree iff domain is at or under the base's domain.
    let parent = base.strip_prefix('.').unwrap_or(base);
    let all = domain.eq_ignore_ascii_case(parent) || ends_with_label(domain, parent);
    let some = || {
        // One of them is the base itself when the base is one label below.
        !base.starts_with('.')
            && ends_with_label(base, domain)
            && !base[..base.len() - domain.len() - 1].contains('.')
    };
    match subtree {
        Subtree::Permitted => all,
        Subtree::Excluded => all || some(),
    }
}

/// Whether `name` lies in the DNS subtree `base` (see [`dns_matches`]).
fn is_within(name: &str, base: &str) -> bool {
    if let Some(parent) = base.strip_prefix('.') {
        return name.len() > parent.len() + 1 && ends_with_label(name, parent);
    }
    name.eq_ignore_ascii_case(base) || (name.len() > base.len() && ends_with_label(name, base))
}

fn ends_with_label(name: &str, parent: &str) -> bool {
    let (n, p) = (name.as_bytes(), parent.as_bytes());
    n.len() > p.len()
        && n[n.len() - p.len()..].eq_ignore_ascii_case(p)
        && n[n.len() - p.len() - 1] == b'.'
}

/// RFC 5280 §4.2.1.10 rfc822Name forms: "local@host" a mailbox (local
/// part compared exactly, host case-insensitively), "host" every mailbox
/// at that host, ".domain" every mailbox at a host under the domain.
fn email_matches(name: &str, base: &str) -> bool {
    let Some((local, host)) = name.rsplit_once('@') else {
        return false;
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    match base.rsplit_once('@') {
        Some(("", base_host)) => host.eq_ignore_ascii_case(base_host),
        Some((base_local, base_host)) => {
            local == base_local && host.eq_ignore_ascii_case(base_host)
        }
        None => match base.strip_prefix('.') {
            Some(_) => is_within(host, base),
            None => host.eq_ignore_ascii_case(base),
        },
    }
}

/// The host of a URI with an authority ("scheme://[user@]host[:port]/…"),
/// or `None` (a URN, an IP literal, an empty host).
fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return None;
    }
    let host = host_port.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// An address in a network (address octets then mask octets), same family.
fn ip_matches(addr: &[u8], net: &[u8]) -> bool {
    if net.len() != addr.len() * 2 {
        return false;
    }
    let (base, mask) = net.split_at(addr.len());
    addr.iter()
        .zip(base)
        .zip(mask)
        .all(|((a, b), m)| a & m == b & m)
}

fn format_ip(bytes: &[u8]) -> String {
    let part = |b: &[u8]| -> String {
        match b.len() {
            4 => b.iter().map(u8::to_string).collect::<Vec<_>>().join("."),
            16 => b
                .chunks(2)
                .map(|c| format!("{:x}", u16::from_be_bytes([c[0], c[1]])))
                .collect::<Vec<_>>()
                .join(":"),
            _ => crate::dn::hex_upper(b),
        }
    };
    match bytes.len() {
        8 | 32 => format!(
            "{}/{}",
            part(&bytes[..bytes.len() / 2]),
            part(&bytes[bytes.len() / 2..])
        ),
        _ => part(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subtrees() {
        let p = Subtree::Permitted;
        assert!(dns_matches("example.com", "example.com", p));
        assert!(dns_matches("a.b.example.com", "example.com", p));
        assert!(dns_matches("A.Example.COM", "example.com", p));
        assert!(!dns_matches("badexample.com", "example.com", p));
        assert!(!dns_matches("example.com", ".example.com", p));
        assert!(dns_matches("x.example.com", ".example.com", p));
        assert!(dns_matches("anything", "", p));
        assert!(dns_matches("example.com.", "example.com", p));
    }

    #[test]
    fn dns_wildcards() {
        let (p, x) = (Subtree::Permitted, Subtree::Excluded);
        assert!(dns_matches("*.example.com", "example.com", p));
        assert!(!dns_matches("*.com", "example.com", p));
        assert!(dns_matches("*.com", "example.com", x));
        assert!(dns_matches("*.a.example.com", "example.com", x));
        assert!(!dns_matches("*.other.org", "example.com", x));
    }

    #[test]
    fn email_forms() {
        assert!(email_matches("ops@example.com", "ops@example.com"));
        assert!(!email_matches("Ops@example.com", "ops@example.com"));
        assert!(email_matches("ops@EXAMPLE.com", "ops@example.com"));
        assert!(email_matches("x@example.com", "example.com"));
        assert!(!email_matches("x@mail.example.com", "example.com"));
        assert!(email_matches("x@mail.example.com", ".example.com"));
        assert!(!email_matches("x@example.com", ".example.com"));
        assert!(!email_matches("no-at-sign", "example.com"));
    }

    #[test]
    fn uri_hosts() {
        let uri = |u: &str, b: &str| {
            matches(
                &Form::Uri(u.into()),
                &Form::Uri(b.into()),
                Subtree::Permitted,
            )
        };
        assert!(uri("https://dev.example.com/x", ".example.com"));
        assert!(!uri("https://example.com/x", ".example.com"));
        assert!(uri("https://user@Example.com:8443/x", "example.com"));
        assert!(!uri("https://dev.example.com/x", "example.com"));
        assert!(!uri("urn:uuid:1234", "example.com"));
        assert!(!uri("https://[::1]/", "example.com"));
    }

    #[test]
    fn forms_attest_cannot_evaluate_refuse_only_when_present() {
        let c = Constraints {
            permitted: vec![Form::Other("otherName")],
            excluded: vec![],
        };
        let mut budget = Budget::with_name_comparisons(100);
        assert!(
            c.check(&[Form::Dns("a.example".into())], &mut budget)
                .is_ok()
        );
        assert!(matches!(
            c.check(&[Form::Other("otherName")], &mut budget),
            Err(Failed::Candidate(_))
        ));
    }

    #[test]
    fn ip_networks() {
        let net = [10, 1, 0, 0, 255, 255, 0, 0];
        assert!(ip_matches(&[10, 1, 2, 3], &net));
        assert!(!ip_matches(&[10, 2, 0, 1], &net));
        // v4 never matches a v6 constraint and vice versa.
        assert!(!ip_matches(&[0; 16], &net));
        assert!(check_ip_constraint(&net).is_ok());
        assert!(check_ip_constraint(&[10, 0, 0, 0, 255, 0, 255, 0]).is_err());
        assert!(check_ip_constraint(&[10, 0, 0, 0, 255]).is_err());
        assert_eq!(format_ip(&net), "10.1.0.0/255.255.0.0");
    }

    #[test]
    fn budget_runs_out() {
        let c = Constraints {
            permitted: vec![Form::Dns("a.example".into()); 10],
            excluded: vec![],
        };
        let names = vec![Form::Dns("b.example".into())];
        let mut budget = Budget::with_name_comparisons(5);
        assert!(matches!(
            c.check(&names, &mut budget),
            Err(Failed::Search(_))
        ));
        let mut budget = Budget::with_name_comparisons(100);
        assert!(matches!(
            c.check(&names, &mut budget),
            Err(Failed::Candidate(_))
        ));
        assert_eq!(budget.name_comparisons_left(), 90);
    }
}
