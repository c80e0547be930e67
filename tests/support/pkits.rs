//! NIST PKITS (the Public Key Interoperability Test Suite) as published in
//! the `cryptography-vectors` package on PyPI: downloaded once with pip into
//! a cache directory, then read as its directory — every CA certificate and
//! every CRL, as a relying party fetching from the suite's repository would
//! see them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::run;

/// The `cryptography-vectors` release whose PKITS data the tests read.
pub const VECTORS: &str = "cryptography-vectors==50.0.2";

/// The validation time: 2012-01-01T12:00:00Z, inside every certificate's
/// validity (2010–2030) and after every CRL's thisUpdate (the delta CRLs
/// are from 2011), before the "old" CRLs' nextUpdate (2010) has any
/// chance of being current.
pub const TIME: i64 = 1_325_419_200;

/// The PKITS tests whose outcome depends on revocation: sections 4.4 (CRLs),
/// 4.14 (distribution points), 4.15 (delta CRLs), and the six of 4.5 and
/// 4.7 that turn on revocation data. The expected result is in the name
/// ("Valid…" or "Invalid…"); the leaf is `certs/<name>EE.crt`.
pub const REVOCATION_CASES: &[(&str, &str)] = &[
    ("4.4.1", "InvalidMissingCRLTest1"),
    ("4.4.2", "InvalidRevokedCATest2"),
    ("4.4.3", "InvalidRevokedEETest3"),
    ("4.4.4", "InvalidBadCRLSignatureTest4"),
    ("4.4.5", "InvalidBadCRLIssuerNameTest5"),
    ("4.4.6", "InvalidWrongCRLTest6"),
    ("4.4.7", "ValidTwoCRLsTest7"),
    ("4.4.8", "InvalidUnknownCRLEntryExtensionTest8"),
    ("4.4.9", "InvalidUnknownCRLExtensionTest9"),
    ("4.4.10", "InvalidUnknownCRLExtensionTest10"),
    ("4.4.11", "InvalidOldCRLnextUpdateTest11"),
    ("4.4.12", "Invalidpre2000CRLnextUpdateTest12"),
    ("4.4.13", "ValidGeneralizedTimeCRLnextUpdateTest13"),
    ("4.4.14", "ValidNegativeSerialNumberTest14"),
    ("4.4.15", "InvalidNegativeSerialNumberTest15"),
    ("4.4.16", "ValidLongSerialNumberTest16"),
    ("4.4.17", "ValidLongSerialNumberTest17"),
    ("4.4.18", "InvalidLongSerialNumberTest18"),
    ("4.4.19", "ValidSeparateCertificateandCRLKeysTest19"),
    ("4.4.20", "InvalidSeparateCertificateandCRLKeysTest20"),
    ("4.4.21", "InvalidSeparateCertificateandCRLKeysTest21"),
    ("4.5.2", "InvalidBasicSelfIssuedOldWithNewTest2"),
    ("4.5.5", "InvalidBasicSelfIssuedNewWithOldTest5"),
    ("4.5.6", "ValidBasicSelfIssuedCRLSigningKeyTest6"),
    ("4.5.7", "InvalidBasicSelfIssuedCRLSigningKeyTest7"),
    ("4.7.4", "InvalidkeyUsageCriticalcRLSignFalseTest4"),
    ("4.7.5", "InvalidkeyUsageNotCriticalcRLSignFalseTest5"),
    ("4.14.1", "ValiddistributionPointTest1"),
    ("4.14.2", "InvaliddistributionPointTest2"),
    ("4.14.3", "InvaliddistributionPointTest3"),
    ("4.14.4", "ValiddistributionPointTest4"),
    ("4.14.5", "ValiddistributionPointTest5"),
    ("4.14.6", "InvaliddistributionPointTest6"),
    ("4.14.7", "ValiddistributionPointTest7"),
    ("4.14.8", "InvaliddistributionPointTest8"),
    ("4.14.9", "InvaliddistributionPointTest9"),
    ("4.14.10", "ValidNoissuingDistributionPointTest10"),
    ("4.14.11", "InvalidonlyContainsUserCertsTest11"),
    ("4.14.12", "InvalidonlyContainsCACertsTest12"),
    ("4.14.13", "ValidonlyContainsCACertsTest13"),
    ("4.14.14", "InvalidonlyContainsAttributeCertsTest14"),
    ("4.14.15", "InvalidonlySomeReasonsTest15"),
    ("4.14.16", "InvalidonlySomeReasonsTest16"),
    ("4.14.17", "InvalidonlySomeReasonsTest17"),
    ("4.14.18", "ValidonlySomeReasonsTest18"),
    ("4.14.19", "ValidonlySomeReasonsTest19"),
    ("4.14.20", "InvalidonlySomeReasonsTest20"),
    ("4.14.21", "InvalidonlySomeReasonsTest21"),
    ("4.14.22", "ValidIDPwithindirectCRLTest22"),
    ("4.14.23", "InvalidIDPwithindirectCRLTest23"),
    ("4.14.24", "ValidIDPwithindirectCRLTest24"),
    ("4.14.25", "ValidIDPwithindirectCRLTest25"),
    ("4.14.26", "InvalidIDPwithindirectCRLTest26"),
    ("4.14.27", "InvalidcRLIssuerTest27"),
    ("4.14.28", "ValidcRLIssuerTest28"),
    ("4.14.29", "ValidcRLIssuerTest29"),
    ("4.14.30", "ValidcRLIssuerTest30"),
    ("4.14.31", "InvalidcRLIssuerTest31"),
    ("4.14.32", "InvalidcRLIssuerTest32"),
    ("4.14.33", "ValidcRLIssuerTest33"),
    ("4.14.34", "InvalidcRLIssuerTest34"),
    ("4.14.35", "InvalidcRLIssuerTest35"),
    ("4.15.1", "InvaliddeltaCRLIndicatorNoBaseTest1"),
    ("4.15.2", "ValiddeltaCRLTest2"),
    ("4.15.3", "InvaliddeltaCRLTest3"),
    ("4.15.4", "InvaliddeltaCRLTest4"),
    ("4.15.5", "ValiddeltaCRLTest5"),
    ("4.15.6", "InvaliddeltaCRLTest6"),
    ("4.15.7", "ValiddeltaCRLTest7"),
    ("4.15.8", "ValiddeltaCRLTest8"),
    ("4.15.9", "InvaliddeltaCRLTest9"),
    ("4.15.10", "InvaliddeltaCRLTest10"),
];

/// The suite's directory: `certs/` and `crls/`, DER.
pub struct Pkits {
    /// The unpacked `PKITS_data` directory.
    pub dir: PathBuf,
}

impl Pkits {
    /// The PKITS data under `cache`, downloaded (pip) and unpacked on first
    /// use; later runs find it there.
    pub fn load(cache: &Path) -> Pkits {
        // Tests of one binary run in parallel: one downloads, the others
        // wait (test binaries themselves run one after another).
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = cache.join("PKITS_data");
        if !dir.join("crls/TrustAnchorRootCRL.crl").exists() {
            let wheels = cache.join("wheels");
            std::fs::create_dir_all(&wheels).unwrap();
            run(
                Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-deps",
                        "--dest",
                    ])
                    .arg(&wheels)
                    .arg(VECTORS),
                Duration::from_secs(600),
            );
            // Unpack only the PKITS directory, into a temporary directory
            // renamed into place: a run killed half-way leaves nothing
            // that looks complete.
            let partial = cache.join(format!("PKITS_data.partial-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&partial);
            run(
                Command::new("python3").arg("-c").arg(
                    "import glob, os, sys, zipfile\n\
                     wheel = glob.glob(os.path.join(sys.argv[1], 'cryptography_vectors-*.whl'))[0]\n\
                     prefix = 'cryptography_vectors/x509/PKITS_data/'\n\
                     with zipfile.ZipFile(wheel) as z:\n\
                     \x20   for name in z.namelist():\n\
                     \x20       rest = name[len(prefix):]\n\
                     \x20       if name.startswith(prefix) and rest.split('/')[0] in ('certs', 'crls') and not name.endswith('/'):\n\
                     \x20           out = os.path.join(sys.argv[2], rest)\n\
                     \x20           os.makedirs(os.path.dirname(out), exist_ok=True)\n\
                     \x20           open(out, 'wb').write(z.read(name))\n",
                )
                .arg(&wheels)
                .arg(&partial),
                Duration::from_secs(120),
            );
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&partial, &dir).unwrap();
        }
        Pkits { dir }
    }

    /// A certificate by file stem (`GoodCACert`), DER.
    pub fn cert(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("certs").join(format!("{name}.crt")))
            .unwrap_or_else(|e| panic!("PKITS certificate {name}: {e}"))
    }

    /// The trust anchor every PKITS path ends at.
    pub fn anchor(&self) -> Vec<u8> {
        self.cert("TrustAnchorRootCertificate")
    }

    /// Every CA certificate of the suite (no end entity, no anchor), sorted
    /// by file name: (name, DER).
    pub fn ca_certificates(&self) -> Vec<(String, Vec<u8>)> {
        self.files("certs", ".crt")
            .into_iter()
            .filter(|(n, _)| !n.ends_with("EE") && n != "TrustAnchorRootCertificate")
            .collect()
    }

    /// The directory as attest sees it: every CA certificate attest can
    /// parse (BadSignedCACert's signature BIT STRING has unused bits, and a
    /// request carrying a certificate that is not DER is refused whole; it
    /// serves no revocation test), and every CRL.
    pub fn directory(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let cas = self
            .ca_certificates()
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| policy_core::certificate_keys(d).is_ok())
            .collect();
        let crls = self.crls().into_iter().map(|(_, d)| d).collect();
        (cas, crls)
    }

    /// Every CRL of the suite, sorted by file name: (name, DER).
    pub fn crls(&self) -> Vec<(String, Vec<u8>)> {
        self.files("crls", ".crl")
    }

    fn files(&self, sub: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(self.dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.strip_suffix(ext)?.to_string();
                Some((name, std::fs::read(&p).unwrap()))
            })
            .collect();
        out.sort();
        out
    }
}
