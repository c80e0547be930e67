//! Reading user input: files with a size limit, PEM certificates, base64.
//! Every failure is a one-line message naming the file and the problem.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Largest certificate or key file read, bytes: a chain of ten RSA-8192
/// certificates is under 100 KiB.
pub const MAX_PEM_FILE: u64 = 1 << 20;
/// Largest enrollment file read, bytes (thousands of entries with PEM).
pub const MAX_JSON_FILE: u64 = 16 << 20;

/// Reads a whole file, refusing anything larger than `limit` bytes. The
/// read itself is bounded, so a FIFO or `/dev/zero` is refused, not read
/// until memory runs out.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    policy_host::input::read_limited(path, limit)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Parses every `CERTIFICATE` PEM block in `bytes`, in order.
pub fn pem_certificates(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("{what} is empty");
    }
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(bytes) {
        let cert = cert.map_err(|e| anyhow!("{what} is not valid PEM: {e}"))?;
        out.push(cert.to_vec());
    }
    if out.is_empty() {
        bail!("{what} contains no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(out)
}

/// Reads a PEM file of certificates.
pub fn pem_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = read_limited(path, MAX_PEM_FILE)?;
    pem_certificates(&bytes, &path.display().to_string())
}

/// Largest CRL file read, bytes: a CRL of a million entries is about
/// 40 MiB of DER.
pub const MAX_CRL_FILE: u64 = 64 << 20;

/// Reads CRLs: every `X509 CRL` PEM block of the file, or the file as one
/// DER CRL.
pub fn crl_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    use rustls_pki_types::CertificateRevocationListDer;
    let bytes = read_limited(path, MAX_CRL_FILE)?;
    let what = path.display();
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    let mut out = Vec::new();
    for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
        let crl = crl.map_err(|e| anyhow!("{what} is not valid PEM: {e}"))?;
        out.push(crl.to_vec());
    }
    if out.is_empty() {
        bail!("{what} contains no CRL (a DER CRL, or PEM -----BEGIN X509 CRL-----)");
    }
    Ok(out)
}

/// Decodes base64 in either the URL-safe unpadded or the standard alphabet.
pub fn base64_decode(text: &str, what: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| STANDARD.decode(t))
        .map_err(|e| anyhow!("{what} is not base64: {e}"))
}

/// Encodes bytes as standard padded base64 (PEM bodies).
pub fn base64_standard(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Encodes bytes as URL-safe unpadded base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_pem_inputs_are_named() {
        assert!(format!("{:#}", pem_certificates(b"  \n", "x.pem").unwrap_err()).contains("empty"));
        assert!(
            format!("{:#}", pem_certificates(b"hello", "x.pem").unwrap_err())
                .contains("no PEM certificate")
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        assert!(
            format!("{:#}", pem_certificates(garbage, "x.pem").unwrap_err())
                .contains("not valid PEM")
        );
    }

    #[test]
    fn base64_alphabets() {
        assert_eq!(base64_decode("_-8", "x").unwrap(), vec![0xff, 0xef]);
        assert_eq!(base64_decode("/+8=", "x").unwrap(), vec![0xff, 0xef]);
        assert!(base64_decode("@@", "x").is_err());
    }
}
