//! `pki demo` and the `demo` tour: the concept document's hierarchy on
//! disk, and SPEC §1's canonical scenario run through the policy component.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use time::{Duration, OffsetDateTime};

use policy_host::{AttestRequest, Proof, Purpose};

use attest_dps::EnrollmentSet;
use attest_pki::{Canonical, KeyAlg, Validity};

/// The enrollment files `pki demo` writes, with what each adds.
pub const STEPS: [(&str, &str); 3] = [
    (
        "enrollments-1-root-enabled.json",
        "an enabled group 'all-devices' on the root CA",
    ),
    (
        "enrollments-2-line-b-disabled.json",
        "plus a disabled group 'line-b' on line B's CA",
    ),
    (
        "enrollments-3-device-3-disabled.json",
        "plus a disabled individual enrollment for device-3",
    ),
];

fn write(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

/// Writes the demo PKI into `dir`: CA certificates and keys, one chain file
/// (leaf + intermediate) and key per device, and the three enrollment sets.
pub fn write_demo_pki(dir: &Path) -> Result<Canonical> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = OffsetDateTime::now_utc();
    let ca = Validity {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(3650),
    };
    let device = Validity {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(730),
    };
    let pki = Canonical::generate(KeyAlg::P256, ca, device)?;
    for (name, c) in [
        ("root-ca", &pki.root),
        ("line-a-ca", &pki.line_a),
        ("line-b-ca", &pki.line_b),
    ] {
        write(&dir.join(format!("{name}.pem")), c.pem.as_bytes(), false)?;
        write(
            &dir.join(format!("{name}.key")),
            c.key.serialize_pem().as_bytes(),
            true,
        )?;
    }
    for (i, d) in pki.devices.iter().enumerate() {
        write(
            &dir.join(format!("{}.pem", d.name)),
            pki.chain_pem(i + 1).as_bytes(),
            false,
        )?;
        write(
            &dir.join(format!("{}.key", d.name)),
            d.key.serialize_pem().as_bytes(),
            true,
        )?;
    }
    // CRLs of the three CAs, current for a week: line A revokes device-2
    // (`verify --crl crls.pem`).
    let revoked = hex::decode(
        policy_host::certificate_details(&pki.devices[1].der)?
            .0
            .serial,
    )
    .context("device-2's serial")?;
    let mut crls = String::new();
    for (ca, revoked) in [
        (&pki.root, vec![]),
        (&pki.line_a, vec![(revoked, now - Duration::minutes(30))]),
        (&pki.line_b, vec![]),
    ] {
        let der = ca.crl(
            &revoked,
            now - Duration::hours(1),
            now + Duration::days(7),
            1,
        )?;
        crls.push_str(&pem_block("X509 CRL", &der));
    }
    write(&dir.join("crls.pem"), crls.as_bytes(), false)?;
    let steps = pki.enrollment_steps();
    for ((file, _), set) in STEPS.iter().zip(&steps) {
        let text = serde_json::to_string_pretty(set)?;
        write(&dir.join(file), text.as_bytes(), false)?;
    }
    // Single entries of step 3, as the management API takes them
    // (PUT /enrollmentGroups/{id}, PUT /enrollments/{registrationId}).
    for (file, entry) in [
        ("group-all-devices.json", &steps[2]["enrollmentGroups"][0]),
        ("group-line-b.json", &steps[2]["enrollmentGroups"][1]),
        (
            "individual-device-3.json",
            &steps[2]["individualEnrollments"][0],
        ),
    ] {
        let text = serde_json::to_string_pretty(entry)?;
        write(&dir.join(file), text.as_bytes(), false)?;
    }
    Ok(pki)
}

/// What `pki demo` wrote, for people.
pub fn pki_summary(dir: &Path) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(s, "wrote a demo PKI to {d}/");
    let _ = writeln!(
        s,
        "  root-ca.pem          self-signed root CA (key: root-ca.key)"
    );
    let _ = writeln!(
        s,
        "  line-a-ca.pem        intermediate A, issues device-1, device-2, device-3"
    );
    let _ = writeln!(
        s,
        "  line-b-ca.pem        intermediate B, issues device-4, device-5"
    );
    let _ = writeln!(
        s,
        "  device-N.pem / .key  device chain (leaf + intermediate) and private key"
    );
    let _ = writeln!(
        s,
        "  crls.pem             CRLs of the three CAs, current for 7 days (line A revokes device-2;\n                       verify --crl checks it, with --trust or --enrollments)"
    );
    for (file, what) in STEPS {
        let _ = writeln!(s, "  {file:<38} {what}");
    }
    let _ = writeln!(
        s,
        "  group-all-devices.json, group-line-b.json, individual-device-3.json\n                                         the same entries one by one, for host-http's management API"
    );
    let _ = writeln!(s, "try:");
    let _ = writeln!(
        s,
        "  host-cli verify {d}/device-4.pem --enrollments {d}/{}",
        STEPS[1].0
    );
    let _ = writeln!(
        s,
        "  host-cli verify {d}/device-1.pem --trust {d}/root-ca.pem"
    );
    let _ = writeln!(
        s,
        "  host-cli verify {d}/device-2.pem --trust {d}/root-ca.pem --crl {d}/crls.pem"
    );
    s
}

/// One PEM block.
fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = crate::input::base64_standard(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// How to call this binary from the current directory.
fn this_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| "host-cli".into());
    let cwd = std::env::current_dir().unwrap_or_default();
    exe.strip_prefix(&cwd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| exe.display().to_string())
}

/// Writes the demo PKI and runs the canonical scenario through the
/// component, printing each device's verdict at each step, then a proof of
/// possession round trip.
pub fn tour(dir: &Path) -> Result<()> {
    let pki = write_demo_pki(dir)?;
    print!("{}", pki_summary(dir));
    let policy = crate::load_policy()?;
    let time = OffsetDateTime::now_utc().unix_timestamp();
    let request = |n: usize| AttestRequest {
        registration_id: format!("device-{n}"),
        leaf: pki.devices[n - 1].der.clone(),
        intermediates: vec![pki.issuer_of(n).der.clone()],
        time,
        purpose: Purpose::ClientAuth,
    };

    println!();
    println!("SPEC §1 canonical scenario, decided by the policy component:");
    let mut last = None;
    for (step, ((file, what), _)) in STEPS.iter().zip(pki.enrollment_steps()).enumerate() {
        let text = std::fs::read_to_string(dir.join(file))?;
        let set = Arc::new(EnrollmentSet::from_json(&text)?);
        println!("step {}: {what} ({file})", step + 1);
        for n in 1..=5 {
            match policy.resolve(&request(n), set.clone())? {
                Ok(d) => println!("  device-{n}  admitted  by {}", d.enrollment),
                Err(r) => {
                    let at = r
                        .certificate
                        .as_ref()
                        .map(|c| format!(" at {c}"))
                        .unwrap_or_default();
                    let entry = r
                        .enrollment
                        .as_ref()
                        .map(|e| format!(", {e}"))
                        .unwrap_or_default();
                    println!("  device-{n}  REFUSED   {}{at}{entry}", r.code);
                }
            }
        }
        last = Some(set);
    }
    let set = last.ok_or_else(|| anyhow!("no enrollment steps"))?;

    println!();
    println!("proof of possession (challenge signed with the device key):");
    let mut challenge = [0u8; 32];
    aws_lc_rs::rand::fill(&mut challenge).map_err(|_| anyhow!("no system randomness"))?;
    for (n, signer, label) in [(1, 1, "device-1's own key"), (1, 2, "device-2's key")] {
        let message = policy_host::challenge_message(&format!("device-{n}"), &challenge)
            .map_err(|r| anyhow!("{r}"))?;
        let signature = rcgen::SigningKey::sign(&pki.devices[signer - 1].key, &message)
            .map_err(|e| anyhow!("signing: {e}"))?;
        let proof = Proof::ChallengeSignature {
            challenge: challenge.to_vec(),
            signature,
        };
        match policy.attest(&request(n), &proof, set.clone())? {
            Ok(d) => println!(
                "  device-{n} signed with {label}: admitted as '{}' by {}",
                d.device_id, d.enrollment
            ),
            Err(r) => println!("  device-{n} signed with {label}: REFUSED {}", r.code),
        }
    }
    let d = dir.display();
    println!();
    println!("do it by hand (host-cli is {}):", this_binary());
    println!("  C=$(host-cli challenge)");
    println!("  S=$(host-cli sign --key {d}/device-1.key --cert {d}/device-1.pem --challenge $C)");
    println!(
        "  host-cli verify {d}/device-1.pem --enrollments {d}/{} --challenge $C --signature $S",
        STEPS[2].0
    );
    Ok(())
}
