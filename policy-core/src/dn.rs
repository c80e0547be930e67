//! Distinguished names (RFC 5280 §4.1.2.4, §4.1.2.6, §7.1).
//!
//! A Name is read from its DER strictly: a SEQUENCE of non-empty SETs whose
//! elements stand in DER SET OF order (X.690 §11.6), so that one encoding
//! cannot be read two ways (which CN comes "first" must not depend on a
//! parser that quietly sorts).
//!
//! Attribute values are compared as RFC 5280 §7.1 asks: by the LDAP
//! StringPrep profile (RFC 4518), whatever DirectoryString type carries
//! them. Each string value is transcoded to Unicode (UTF8String,
//! PrintableString, IA5String, VisibleString, NumericString, BMPString, and
//! TeletexString when it is ASCII), mapped (RFC 4518 §2.2, X.520 tables),
//! case folded for NFKC (RFC 3454 Table B.2), normalised to NFKC, checked
//! for prohibited characters (§2.4), and stripped of insignificant space
//! (§2.6.1: leading and trailing spaces removed, inner runs folded to one).
//! Values of other types are compared as bytes. A string value that cannot
//! be prepared (a TeletexString beyond ASCII, a prohibited character) equals
//! only the same bytes and is otherwise of *unknown* relation to any other
//! value: name chaining treats it as different, excluded name constraints
//! as a match (fail closed).
//!
//! Every name gets a canonical byte form: two names have the same
//! canonical form exactly when they are the same name by these rules. Its
//! SHA-256 is the name's key (hosts index trust anchors by it), and, with
//! the public key, a CA's identity (enrollment groups match it).

use core::cmp::Ordering;

use der::asn1::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader, Tag};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// commonName (X.520).
pub(crate) const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Domain separation of the name key and CA identity digests.
const NAME_KEY_CONTEXT: &[u8] = b"attest-name-v1\0";
const CA_IDENTITY_CONTEXT: &[u8] = b"attest-ca-identity-v1\0";

/// An attribute value, as it compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// A string, prepared by RFC 4518.
    Prepared(String),
    /// A value of a type RFC 4518 does not cover: compared as DER bytes.
    Binary(Vec<u8>),
    /// A string that could not be prepared: equal only to the same DER
    /// bytes, of unknown relation to anything else.
    Unpreparable(Vec<u8>),
}

impl Value {
    fn kind(&self) -> u8 {
        match self {
            Value::Prepared(_) => b'P',
            Value::Binary(_) => b'B',
            Value::Unpreparable(_) => b'U',
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Value::Prepared(s) => s.as_bytes(),
            Value::Binary(b) | Value::Unpreparable(b) => b,
        }
    }
}

/// One AttributeTypeAndValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// The attribute type.
    pub(crate) oid: ObjectIdentifier,
    /// The value as text, for UTF8String, PrintableString and IA5String
    /// (the types attest reads CNs and emailAddress from, and prints).
    pub(crate) text: Option<String>,
    /// The DER of the value (tag, length, content).
    pub(crate) der: Vec<u8>,
    /// The value as it compares.
    pub(crate) value: Value,
}

impl Attribute {
    /// Canonical order inside an RDN: by type, then by prepared value.
    fn canonical_cmp(&self, other: &Attribute) -> Ordering {
        (self.oid.as_bytes(), self.value.kind(), self.value.bytes()).cmp(&(
            other.oid.as_bytes(),
            other.value.kind(),
            other.value.bytes(),
        ))
    }
}

/// A parsed Name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DistinguishedName {
    /// Each RDN's attributes, outermost RDN first, attributes in canonical order.
    pub(crate) rdns: Vec<Vec<Attribute>>,
    /// Attributes in encoded order (for CNs and display).
    pub(crate) encoded: Vec<Vec<Attribute>>,
    /// The canonical form: equal exactly for names that are the same name.
    canonical: Vec<u8>,
}

/// The relation of two names, or name parts, when some values could not
/// be prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Same {
    /// The same by RFC 4518 comparison (or byte for byte).
    Yes,
    /// Different.
    No,
    /// Cannot tell: a value could not be prepared.
    Unknown,
}

impl DistinguishedName {
    /// Parses the DER of a Name, strictly.
    pub(crate) fn parse(der: &[u8]) -> Result<DistinguishedName, String> {
        let body = expect(der, Tag::Sequence).map_err(|e| e.to_string())?;
        let mut reader = SliceReader::new(body).map_err(|e| e.to_string())?;
        let mut encoded = Vec::new();
        while !reader.is_finished() {
            let set = reader.tlv_bytes().map_err(|e| e.to_string())?;
            encoded.push(parse_rdn(set)?);
        }
        let rdns: Vec<Vec<Attribute>> = encoded
            .iter()
            .map(|rdn| {
                let mut sorted = rdn.clone();
                sorted.sort_by(Attribute::canonical_cmp);
                sorted
            })
            .collect();
        let mut canonical = Vec::with_capacity(der.len() + 8 * rdns.len());
        push_len(&mut canonical, rdns.len());
        for rdn in &rdns {
            push_len(&mut canonical, rdn.len());
            for attribute in rdn {
                let oid = attribute.oid.as_bytes();
                push_len(&mut canonical, oid.len());
                canonical.extend_from_slice(oid);
                canonical.push(attribute.value.kind());
                push_len(&mut canonical, attribute.value.bytes().len());
                canonical.extend_from_slice(attribute.value.bytes());
            }
        }
        Ok(DistinguishedName {
            rdns,
            encoded,
            canonical,
        })
    }

    /// Whether the name has no RDNs.
    pub(crate) fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// Whether two names are the same name (RFC 5280 §7.1).
    pub(crate) fn matches(&self, other: &DistinguishedName) -> bool {
        self.canonical == other.canonical
    }

    /// The name key: SHA-256 of the canonical form.
    pub(crate) fn key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(NAME_KEY_CONTEXT);
        h.update(&self.canonical);
        h.finalize().into()
    }

    /// A CA identity: this name (as subject) with a public key.
    pub(crate) fn identity(&self, spki_der: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(CA_IDENTITY_CONTEXT);
        h.update(
            u64::try_from(self.canonical.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        h.update(&self.canonical);
        h.update(spki_der);
        h.finalize().into()
    }

    /// Every commonName value in encoded order (`None` for a CN of a
    /// type attest does not read as text).
    pub(crate) fn common_names(&self) -> Vec<Option<&str>> {
        self.encoded
            .iter()
            .flatten()
            .filter(|a| a.oid == CN)
            .map(|a| a.text.as_deref())
            .collect()
    }

    /// Whether `base` is a prefix of this name, RDN by RDN (RFC 5280
    /// §4.2.1.10 directoryName subtrees).
    pub(crate) fn within(&self, base: &DistinguishedName) -> Same {
        if base.rdns.len() > self.rdns.len() {
            return Same::No;
        }
        let mut out = Same::Yes;
        for (name, base) in self.rdns.iter().zip(&base.rdns) {
            match rdn_same(name, base) {
                Same::No => return Same::No,
                Same::Unknown => out = Same::Unknown,
                Same::Yes => {}
            }
        }
        out
    }
}

/// Two RDNs compared as sets of prepared attributes.
fn rdn_same(a: &[Attribute], b: &[Attribute]) -> Same {
    if a.len() != b.len() {
        return Same::No;
    }
    // Both are in canonical order, so equal sets compare element-wise.
    if a.iter()
        .zip(b)
        .all(|(x, y)| x.oid == y.oid && x.value == y.value)
    {
        return Same::Yes;
    }
    let unpreparable = a
        .iter()
        .chain(b)
        .any(|x| matches!(x.value, Value::Unpreparable(_)));
    let mut types_a: Vec<&[u8]> = a.iter().map(|x| x.oid.as_bytes()).collect();
    let mut types_b: Vec<&[u8]> = b.iter().map(|x| x.oid.as_bytes()).collect();
    types_a.sort_unstable();
    types_b.sort_unstable();
    if unpreparable && types_a == types_b {
        Same::Unknown
    } else {
        Same::No
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// The content of a DER element with tag `tag` that fills `der` exactly.
pub(crate) fn expect(der: &[u8], tag: Tag) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    let header = Header::decode(&mut reader)?;
    if header.tag != tag {
        return Err(der::ErrorKind::TagUnexpected {
            expected: Some(tag),
            actual: header.tag,
        }
        .into());
    }
    let body = reader.read_slice(header.length)?;
    reader.finish(body)
}

/// X.690 §11.6: SET OF elements in ascending order of their encodings,
/// the shorter padded with trailing zero octets.
fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            (
                a.get(i).copied().unwrap_or(0),
                b.get(i).copied().unwrap_or(0),
            )
        })
        .find(|(x, y)| x != y)
        .map_or(Ordering::Equal, |(x, y)| x.cmp(&y))
}

fn parse_rdn(set: &[u8]) -> Result<Vec<Attribute>, String> {
    let body = expect(set, Tag::Set).map_err(|e| e.to_string())?;
    if body.is_empty() {
        return Err("an RDN is an empty SET (RFC 5280 §4.1.2.4: SIZE (1..MAX))".into());
    }
    let mut reader = SliceReader::new(body).map_err(|e| e.to_string())?;
    let mut previous: Option<&[u8]> = None;
    let mut out = Vec::new();
    while !reader.is_finished() {
        let tlv = reader.tlv_bytes().map_err(|e| e.to_string())?;
        if let Some(previous) = previous
            && der_set_order(previous, tlv) != Ordering::Less
        {
            return Err(
                "the attributes of a multi-valued RDN are not in DER SET OF order, or repeat (X.690 §11.6)"
                    .into(),
            );
        }
        previous = Some(tlv);
        out.push(parse_attribute(tlv)?);
    }
    Ok(out)
}

fn parse_attribute(tlv: &[u8]) -> Result<Attribute, String> {
    let body = expect(tlv, Tag::Sequence).map_err(|e| e.to_string())?;
    let mut reader = SliceReader::new(body).map_err(|e| e.to_string())?;
    let oid = ObjectIdentifier::decode(&mut reader).map_err(|e| e.to_string())?;
    let der = reader.tlv_bytes().map_err(|e| e.to_string())?.to_vec();
    reader.finish(()).map_err(|e| e.to_string())?;
    let (tag, content) = {
        let mut r = SliceReader::new(&der).map_err(|e| e.to_string())?;
        let header = Header::decode(&mut r).map_err(|e| e.to_string())?;
        (
            header.tag,
            r.read_slice(header.length).map_err(|e| e.to_string())?,
        )
    };
    let malformed = |why: &str| format!("attribute {oid}: {why}");
    let (text, unicode): (Option<String>, Option<String>) = match tag {
        Tag::Utf8String => {
            let s = core::str::from_utf8(content)
                .map_err(|_| malformed("UTF8String is not valid UTF-8"))?;
            (Some(s.to_string()), Some(s.to_string()))
        }
        Tag::PrintableString => {
            if !content.iter().all(|b| is_printable(*b)) {
                return Err(malformed(
                    "PrintableString has characters outside its alphabet",
                ));
            }
            let s = ascii(content);
            (Some(s.clone()), Some(s))
        }
        Tag::Ia5String => {
            if !content.is_ascii() {
                return Err(malformed("IA5String is not ASCII"));
            }
            let s = ascii(content);
            (Some(s.clone()), Some(s))
        }
        Tag::VisibleString | Tag::NumericString => {
            if !content.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Err(malformed(
                    "VisibleString/NumericString is not printable ASCII",
                ));
            }
            (None, Some(ascii(content)))
        }
        Tag::TeletexString => (None, content.is_ascii().then(|| ascii(content))),
        Tag::BmpString => {
            if content.len() % 2 != 0 {
                return Err(malformed("BMPString has an odd number of octets"));
            }
            let units = content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            let s: Result<String, _> = char::decode_utf16(units).collect();
            (
                None,
                Some(s.map_err(|_| malformed("BMPString is not valid UTF-16"))?),
            )
        }
        _ => {
            return Ok(Attribute {
                oid,
                text: None,
                value: Value::Binary(der.clone()),
                der,
            });
        }
    };
    let value = match unicode.as_deref().map(prepare) {
        Some(Some(prepared)) => Value::Prepared(prepared),
        _ => Value::Unpreparable(der.clone()),
    };
    Ok(Attribute {
        oid,
        text,
        der,
        value,
    })
}

fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// X.680 §41.4 PrintableString alphabet.
fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
        )
}

/// RFC 4518 string preparation for case-ignore matching: map, fold,
/// normalise, prohibit, then insignificant space handling. `None` when
/// the string holds a prohibited character.
pub(crate) fn prepare(s: &str) -> Option<String> {
    let folded: String = if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        // ASCII fast path: mapping, folding and NFKC reduce to lower-casing.
        s.to_ascii_lowercase()
    } else if s.is_empty() {
        String::new()
    } else {
        let mapped = stringprep::x520prep(s, true).ok()?;
        // Table B.2 folding is defined for use with NFKC: normalise after.
        mapped.nfkc().collect()
    };
    let mut out = String::with_capacity(folded.len());
    for word in folded.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Some(out)
}

/// Short names for the attribute types RFC 4514 §3 lists (and a few that
/// device PKIs use); other types print as dotted OIDs.
const ATTRIBUTE_NAMES: &[(ObjectIdentifier, &str)] = &[
    (CN, "CN"),
    (ObjectIdentifier::new_unwrap("2.5.4.6"), "C"),
    (ObjectIdentifier::new_unwrap("2.5.4.7"), "L"),
    (ObjectIdentifier::new_unwrap("2.5.4.8"), "ST"),
    (ObjectIdentifier::new_unwrap("2.5.4.9"), "STREET"),
    (ObjectIdentifier::new_unwrap("2.5.4.10"), "O"),
    (ObjectIdentifier::new_unwrap("2.5.4.11"), "OU"),
    (ObjectIdentifier::new_unwrap("2.5.4.5"), "serialNumber"),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        "DC",
    ),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        "UID",
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1"),
        "emailAddress",
    ),
];

/// RFC 4514 string form of a Name: RDNs last to first, separated by ",",
/// multi-valued RDNs joined by "+", special characters escaped, values of
/// types other than UTF8String, PrintableString and IA5String as "#" and
/// the hex of their DER.
pub(crate) fn format_name(name: &DistinguishedName) -> String {
    let mut out = String::new();
    for (i, rdn) in name.encoded.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match ATTRIBUTE_NAMES.iter().find(|(o, _)| *o == atv.oid) {
                Some((_, short)) => out.push_str(short),
                None => out.push_str(&atv.oid.to_string()),
            }
            out.push('=');
            match &atv.text {
                Some(v) => escape_rfc4514(v, &mut out),
                None => {
                    out.push('#');
                    out.push_str(&hex_upper(&atv.der));
                }
            }
        }
    }
    out
}

fn escape_rfc4514(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// Upper-case hex.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_format_per_rfc_4514() {
        use core::str::FromStr;
        use der::Encode;
        let name = x509_cert::name::Name::from_str("CN=dev\\,ice+serialNumber=42,O=Acme,C=DE")
            .unwrap()
            .to_der()
            .unwrap();
        // Multi-valued RDNs come out in DER SET OF order.
        assert_eq!(
            format_name(&DistinguishedName::parse(&name).unwrap()),
            "serialNumber=42+CN=dev\\,ice,O=Acme,C=DE"
        );
        let empty = DistinguishedName::parse(&[0x30, 0]).unwrap();
        assert_eq!(format_name(&empty), "");
    }

    #[test]
    fn hex_is_upper() {
        assert_eq!(hex_upper(&[0x0a, 0xff]), "0AFF");
    }
    use der::Encode;

    fn name(rdns: &[&[(&str, u8, &[u8])]]) -> Vec<u8> {
        let mut body = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in *rdn {
                let oid = ObjectIdentifier::new_unwrap(oid).to_der().unwrap();
                let mut atv = oid;
                atv.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &atv));
            }
            body.extend(tlv(0x31, &set));
        }
        tlv(0x30, &body)
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(body.len()).unwrap()];
        out.extend_from_slice(body);
        out
    }

    const O: &str = "2.5.4.10";
    const C: &str = "2.5.4.6";
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const TELETEX: u8 = 0x14;
    const BMP: u8 = 0x1e;

    fn parse(der: &[u8]) -> DistinguishedName {
        DistinguishedName::parse(der).unwrap()
    }

    #[test]
    fn preparation_folds_case_space_and_type() {
        let base = parse(&name(&[
            &[(C, PRINTABLE, b"US")],
            &[(O, UTF8, b"Contoso Ltd")],
        ]));
        for variant in [
            name(&[&[(C, PRINTABLE, b"us")], &[(O, UTF8, b"contoso ltd")]]),
            name(&[&[(C, UTF8, b"US")], &[(O, PRINTABLE, b"Contoso Ltd")]]),
            name(&[&[(C, PRINTABLE, b"US")], &[(O, UTF8, b"  Contoso   Ltd ")]]),
            name(&[
                &[(C, PRINTABLE, b"US")],
                &[(
                    O,
                    BMP,
                    &[
                        0, b'C', 0, b'O', 0, b'N', 0, b'T', 0, b'O', 0, b'S', 0, b'O', 0, b' ', 0,
                        b'l', 0, b't', 0, b'd',
                    ],
                )],
            ]),
            name(&[&[(C, PRINTABLE, b"US")], &[(O, TELETEX, b"Contoso Ltd")]]),
        ] {
            let v = parse(&variant);
            assert!(v.matches(&base), "{variant:02x?}");
            assert_eq!(v.key(), base.key());
            assert_eq!(v.within(&base), Same::Yes);
        }
        let other = parse(&name(&[
            &[(C, PRINTABLE, b"US")],
            &[(O, UTF8, b"Contoso Inc")],
        ]));
        assert!(!other.matches(&base));
        assert_eq!(other.within(&base), Same::No);
    }

    #[test]
    fn unicode_is_folded_and_normalised() {
        assert_eq!(prepare("STRASSE").unwrap(), prepare("Straße").unwrap());
        // NFKC: the "fi" ligature and a composed/decomposed é.
        assert_eq!(prepare("\u{FB01}ne").unwrap(), "fine");
        assert_eq!(
            prepare("Caf\u{E9}").unwrap(),
            prepare("CAFE\u{301}").unwrap()
        );
        // Mapped to nothing (soft hyphen) and to space (no-break space).
        assert_eq!(prepare("Con\u{AD}toso\u{A0}Ltd").unwrap(), "contoso ltd");
        // Prohibited: private use.
        assert_eq!(prepare("x\u{E000}"), None);
        assert_eq!(prepare("   ").unwrap(), "");
    }

    #[test]
    fn unpreparable_values_are_unknown_not_different() {
        let base = parse(&name(&[&[(O, UTF8, b"Contoso")]]));
        let teletex = parse(&name(&[&[(O, TELETEX, b"Contoso\xe9")]]));
        assert!(!teletex.matches(&base));
        assert_eq!(teletex.within(&base), Same::Unknown);
        assert!(teletex.matches(&parse(&name(&[&[(O, TELETEX, b"Contoso\xe9")]]))));
    }

    #[test]
    fn multi_valued_rdns_must_be_in_der_order() {
        // 2.5.4.3 (CN) sorts before 2.5.4.5 (serialNumber) by encoding.
        let sorted = name(&[&[("2.5.4.3", UTF8, b"a"), ("2.5.4.5", UTF8, b"1")]]);
        let unsorted = name(&[&[("2.5.4.5", UTF8, b"1"), ("2.5.4.3", UTF8, b"a")]]);
        assert!(DistinguishedName::parse(&sorted).is_ok());
        let err = DistinguishedName::parse(&unsorted).unwrap_err();
        assert!(err.contains("X.690 §11.6"), "{err}");
        let repeated = name(&[&[("2.5.4.3", UTF8, b"a"), ("2.5.4.3", UTF8, b"a")]]);
        assert!(DistinguishedName::parse(&repeated).is_err());
        assert!(DistinguishedName::parse(&tlv(0x30, &tlv(0x31, &[]))).is_err());
    }

    #[test]
    fn common_names_in_encoded_order() {
        let two = parse(&name(&[
            &[("2.5.4.3", UTF8, b"device-1")],
            &[("2.5.4.3", UTF8, b"device-2")],
        ]));
        assert_eq!(two.common_names(), vec![Some("device-1"), Some("device-2")]);
    }

    #[test]
    fn malformed_strings_are_errors() {
        assert!(DistinguishedName::parse(&name(&[&[(O, UTF8, b"\xff")]])).is_err());
        assert!(DistinguishedName::parse(&name(&[&[(O, PRINTABLE, b"a@b")]])).is_err());
        assert!(DistinguishedName::parse(&name(&[&[(O, BMP, b"\x00")]])).is_err());
    }

    #[test]
    fn identity_binds_name_and_key() {
        let a = parse(&name(&[&[(O, UTF8, b"Line B")]]));
        let b = parse(&name(&[&[(O, PRINTABLE, b"LINE B")]]));
        assert_eq!(a.identity(b"key-1"), b.identity(b"key-1"));
        assert_ne!(a.identity(b"key-1"), a.identity(b"key-2"));
        assert_ne!(a.key(), a.identity(b""));
    }
}
