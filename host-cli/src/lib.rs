//! attest's command line: a thin host over `policy-host`.
//!
//! Every decision comes from the policy component; this crate reads files,
//! parses arguments, looks up enrollments and prints what the component
//! decided. Exit codes: 0 accepted, 1 refused, 2 usage or input error.

pub mod demo;
pub mod import;
/// Enrollment sets in DPS JSON shapes (shared with host-http).
pub mod input;
mod mqtt;
pub mod register;
pub mod report;
pub mod sync;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use policy_host::{
    AttestRequest, ChainRequest, Lenience, Policy, Proof, Purpose, RevocationMode, RevocationPolicy,
};

use crate::report::{Outcome, Report};
use attest_dps::EnrollmentSet;

/// Exit code: accepted.
pub const EXIT_ACCEPTED: u8 = 0;
/// Exit code: refused by policy.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: usage or input error.
pub const EXIT_ERROR: u8 = 2;

/// attest: X.509 device attestation and provisioning.
#[derive(Debug, Parser)]
#[command(name = "host-cli", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a device chain and, with --enrollments, decide whether the device is admitted.
    ///
    /// Exit codes: 0 accepted, 1 refused, 2 usage or input error.
    Verify(VerifyArgs),
    /// Create a demo PKI and run SPEC §1's canonical scenario through the policy component.
    Demo {
        /// Where to write the demo PKI.
        #[arg(default_value = "attest-demo")]
        dir: PathBuf,
    },
    /// Demo PKIs.
    Pki {
        /// Which PKI.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Print a fresh proof-of-possession challenge (32 random bytes, base64url).
    Challenge,
    /// Device side: sign a challenge with the device key (prints base64url).
    Sign(SignArgs),
    /// Act as a device: register against host-http (or Azure DPS) over mutual TLS.
    ///
    /// Exit codes: 0 assigned, 1 refused, failed or disabled, 2 usage or connection error.
    Register(register::RegisterArgs),
    /// Load a fleet's enrollments into a service through its management API
    /// (bulk enrollment operations, several connections, a progress bar).
    ///
    /// Exit codes: 0 all imported, 1 some entries refused (listed), 2 error.
    Import(import::ImportArgs),
    /// Gateway side: create or update DIR with the service's newest verified
    /// edge snapshot (its enrollments, for deciding offline).
    ///
    /// Exit codes: 0 synced, 2 any error (bad signature, rollback, another
    /// service's key, unreachable server), DIR's last good snapshot untouched.
    Sync(sync::SyncArgs),
    /// Write the policy component this binary embeds (the exact bytes every
    /// Rust host loads) to a file, for other hosts (Node.js, Python) to load.
    ///
    /// Prints the file's SHA-256 and size. Exit codes: 0 written, 2 error.
    Component {
        /// Where to write the component (`-` for standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit trails (`host-http --audit FILE`).
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check an audit trail's hash chain from its first line: every line a
    /// record, `seq` without gaps, each `prev` the SHA-256 of the line before.
    ///
    /// Exit codes: 0 intact (prints the line count and the last line's
    /// SHA-256), 1 broken, naming the first broken, changed or missing line,
    /// 2 usage or I/O error.
    Verify {
        /// The trail (`-` for standard input).
        file: PathBuf,
        /// Also require the trail to end in a `stop` line (a clean shutdown):
        /// without it, lines cut from the end cannot be told from a trail
        /// still being written.
        #[arg(long)]
        closed: bool,
    },
}

/// `pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Write root → A → devices 1–3 and root → B → devices 4–5, with keys,
    /// chain files and the three enrollment sets of the canonical scenario.
    Demo {
        /// Output directory (created if missing; existing demo files are replaced).
        dir: PathBuf,
    },
}

/// Extended key usage required of the leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Eku {
    /// id-kp-clientAuth (device attestation's default).
    #[value(name = "clientAuth", alias = "client-auth")]
    ClientAuth,
    /// id-kp-serverAuth.
    #[value(name = "serverAuth", alias = "server-auth")]
    ServerAuth,
    /// Any purpose.
    #[value(name = "any", alias = "anyExtendedKeyUsage")]
    Any,
}

impl From<Eku> for Purpose {
    fn from(e: Eku) -> Purpose {
        match e {
            Eku::ClientAuth => Purpose::ClientAuth,
            Eku::ServerAuth => Purpose::ServerAuth,
            Eku::Any => Purpose::Any,
        }
    }
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// PEM file: the leaf first, then intermediates.
    pub chain: PathBuf,
    /// PEM file of trusted root / CA certificates.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Enrollment set (DPS JSON shapes); runs full enrollment resolution.
    #[arg(long, conflicts_with = "snapshot")]
    pub enrollments: Option<PathBuf>,
    /// A gateway's snapshot directory (`host-cli sync --dir`): decides from the
    /// service's enrollments as the service would have at that version.
    #[arg(long, conflicts_with = "trust")]
    pub snapshot: Option<PathBuf>,
    /// With --snapshot: refuse every device (enrollments-stale) once the snapshot
    /// is older than this at the validation time (e.g. 30m, 24h, 7d).
    #[arg(long, requires = "snapshot", default_value = "24h")]
    pub max_age: humantime::Duration,
    /// With --snapshot: append the decision to DIR's decision log, which the
    /// next `host-cli sync` uploads to the service.
    #[arg(long, requires = "snapshot")]
    pub record: bool,
    /// Validation time, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// Required extended key usage of the leaf.
    #[arg(long, value_enum, default_value = "clientAuth")]
    pub eku: Eku,
    /// Registration ID the device claims (default: the leaf's subject CN).
    #[arg(long)]
    pub registration_id: Option<String>,
    /// Proof of possession: the challenge (base64) the device signed.
    // base64url values may start with '-': never mistake them for flags.
    #[arg(long, requires = "signature", allow_hyphen_values = true)]
    pub challenge: Option<String>,
    /// Proof of possession: the device's signature (base64).
    #[arg(long, requires = "challenge", allow_hyphen_values = true)]
    pub signature: Option<String>,
    /// CRLs to check revocation against (RFC 5280 §6.3): a file of PEM
    /// `X509 CRL` blocks or one DER CRL; repeat for more files. With --crl
    /// and --trust, every certificate below the trust anchor is checked
    /// (--revocation chain) and one whose issuer has no CRL here is refused
    /// as undetermined. With --enrollments, each entry's revocationPolicy
    /// decides (default: the certificates whose CA has a CRL here).
    #[arg(long, value_name = "CRLS", conflicts_with = "snapshot")]
    pub crl: Vec<PathBuf>,
    /// Which certificates are checked for revocation (default: chain when
    /// --crl is given, else off). Not with --enrollments: there each
    /// entry's revocationPolicy decides.
    #[arg(long, value_enum, conflicts_with_all = ["enrollments", "snapshot"])]
    pub revocation: Option<Revocation>,
    /// Admit, with a warning, a certificate whose revocation status cannot
    /// be determined (default: refuse, revocation-status-unknown).
    #[arg(long, conflicts_with_all = ["enrollments", "snapshot"])]
    pub allow_undetermined: bool,
    /// Use, with a warning, CRLs past their nextUpdate (default: they do not
    /// count, crl-expired).
    #[arg(long, conflicts_with_all = ["enrollments", "snapshot"])]
    pub allow_expired_crl: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--revocation`: which certificates of the path are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Revocation {
    /// No revocation checking.
    Off,
    /// The leaf only.
    Leaf,
    /// Every certificate below the trust anchor.
    Chain,
    /// Every certificate below the trust anchor whose issuer has a CRL
    /// among those given.
    Configured,
}

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The device's private key, PKCS#8 PEM.
    #[arg(long)]
    pub key: PathBuf,
    /// The challenge (base64) from `host-cli challenge` or the service.
    #[arg(long, allow_hyphen_values = true)]
    pub challenge: String,
    /// The registration ID the signature is bound to.
    #[arg(long, required_unless_present = "cert")]
    pub registration_id: Option<String>,
    /// Or: take the registration ID from this certificate's subject CN.
    #[arg(long)]
    pub cert: Option<PathBuf>,
}

/// Runs a parsed command line; errors become exit code 2.
pub fn run(cli: Cli) -> ExitCode {
    let json = match &cli.command {
        Command::Verify(v) => v.json,
        Command::Register(r) => r.json,
        _ => false,
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = format!("{e:#}").replace('\n', " ");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"verdict": "error", "error": message})
                );
            }
            eprintln!("error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Verify(args) => verify(&args),
        Command::Demo { dir } => demo::tour(&dir).map(|()| EXIT_ACCEPTED),
        Command::Pki {
            command: PkiCommand::Demo { dir },
        } => {
            demo::write_demo_pki(&dir)?;
            println!("{}", demo::pki_summary(&dir));
            Ok(EXIT_ACCEPTED)
        }
        Command::Challenge => {
            let mut challenge = [0u8; 32];
            aws_lc_rs::rand::fill(&mut challenge).map_err(|_| anyhow!("no system randomness"))?;
            println!("{}", input::base64_encode(&challenge));
            Ok(EXIT_ACCEPTED)
        }
        Command::Sign(args) => sign(&args).map(|()| EXIT_ACCEPTED),
        Command::Component { out } => write_component(&out).map(|()| EXIT_ACCEPTED),
        Command::Audit {
            command: AuditCommand::Verify { file, closed },
        } => audit_verify(&file, closed),
        Command::Import(args) => {
            let done = import::import(&args)?;
            const LISTED: usize = 10;
            for (what, why) in done.refused.iter().take(LISTED) {
                eprintln!("refused: {what}: {why}");
            }
            let unlisted = done.refused_count() - done.refused.len().min(LISTED) as u64;
            if unlisted > 0 {
                let codes: Vec<String> = done
                    .refused_by_code
                    .iter()
                    .map(|(code, n)| format!("{code} ×{n}"))
                    .collect();
                eprintln!(
                    "refused: … and {unlisted} more (all refusals by error code: {})",
                    codes.join(", ")
                );
            }
            println!("{}", done.summary(&args.file));
            Ok(if done.refused_count() == 0 {
                EXIT_ACCEPTED
            } else {
                EXIT_REFUSED
            })
        }
        Command::Sync(args) => {
            println!("{}", sync::sync(&args)?.summary());
            Ok(EXIT_ACCEPTED)
        }
        Command::Register(args) => {
            let (registration_id, answer) = register::register(&args)?;
            if args.json {
                println!("{}", answer.body);
            } else {
                println!("{}", answer.human(&registration_id));
            }
            Ok(if answer.status() == "assigned" {
                EXIT_ACCEPTED
            } else {
                EXIT_REFUSED
            })
        }
    }
}

/// Loads the policy component (compiled once, then cached), with the
/// limits of a one-shot command: no pre-reserved sandboxes, so `host-cli`
/// runs under a small address-space limit.
pub fn load_policy() -> Result<Policy> {
    Policy::with_options(
        policy_host::Limits::one_shot(),
        policy_host::CacheMode::default(),
    )
    .context("loading the policy component")
}

fn parse_time(at: Option<&str>) -> Result<i64> {
    match at {
        None => Ok(OffsetDateTime::now_utc().unix_timestamp()),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| {
                anyhow!("--at {s:?} is not an RFC 3339 time (e.g. 2026-06-01T00:00:00Z): {e}")
            }),
    }
}

fn verify(args: &VerifyArgs) -> Result<u8> {
    let time = parse_time(args.at.as_deref())?;
    let chain = input::pem_file(&args.chain)?;
    let trust = args.trust.as_deref().map(input::pem_file).transpose()?;
    let (leaf, intermediates) = chain
        .split_first()
        .map(|(l, i)| (l.clone(), i.to_vec()))
        .ok_or_else(|| anyhow!("{} holds no certificate", args.chain.display()))?;
    let purpose = Purpose::from(args.eku);
    let policy = load_policy()?;

    let report = match (&args.enrollments, &args.snapshot) {
        (None, Some(dir)) => {
            if !dir.join("attest.db").is_file() {
                bail!(
                    "{} holds no snapshot: run host-cli sync --dir {} first",
                    dir.display(),
                    dir.display()
                );
            }
            let replica = attest_service::replica::Replica::open(dir)?;
            let request = AttestRequest {
                registration_id: registration_id_of(args, &leaf)?,
                leaf,
                intermediates,
                time,
                purpose,
            };
            let proof = proof_of(args)?;
            let outcome = replica.decide(&policy, &request, proof.as_ref(), *args.max_age)?;
            if args.record {
                replica.log(&request, proof.is_some(), &outcome)?;
            }
            Report {
                time,
                purpose,
                outcome: Outcome::decided(proof.is_some(), outcome),
                revocation: None,
                warnings: Vec::new(),
            }
        }
        (None, None) => {
            if args.challenge.is_some() {
                bail!(
                    "--challenge/--signature need --enrollments (proof of possession is part of attestation)"
                );
            }
            let trust_anchors = trust.ok_or_else(|| {
                anyhow!("give --trust ROOTS.pem (chain validation) or --enrollments FILE.json (attestation)")
            })?;
            let request = ChainRequest {
                leaf,
                intermediates,
                trust_anchors,
                time,
                purpose,
            };
            match revocation_of(args)? {
                None => Report {
                    time,
                    purpose,
                    outcome: Outcome::Chain(policy.validate_chain(&request)?),
                    revocation: None,
                    warnings: Vec::new(),
                },
                Some((crls, revocation)) => {
                    let verdict =
                        policy.validate_chain_revocation(&request, Arc::new(crls), revocation)?;
                    let (outcome, warnings) = split_warnings(verdict, |v| (v.path, v.warnings));
                    Report {
                        time,
                        purpose,
                        outcome: Outcome::Chain(outcome),
                        revocation: Some(mode_name(revocation.mode)),
                        warnings,
                    }
                }
            }
        }
        (Some(path), _) => {
            let text = input::read_limited(path, input::MAX_JSON_FILE)?;
            let text = String::from_utf8(text)
                .map_err(|_| anyhow!("{} is not UTF-8 text", path.display()))?;
            let mut set =
                EnrollmentSet::from_json(&text).with_context(|| format!("{}", path.display()))?;
            for anchor in trust.unwrap_or_default() {
                set.add_anchor(anchor)?;
            }
            let registration_id = registration_id_of(args, &leaf)?;
            let request = AttestRequest {
                registration_id,
                leaf,
                intermediates,
                time,
                purpose,
            };
            let set = Arc::new(set);
            // Each entry's own revocationPolicy applies; with no --crl no
            // CRL is held (an entry whose policy needs one refuses).
            let crls = Arc::new(crls_of(args)?);
            let checked = !args.crl.is_empty();
            let proof = proof_of(args)?;
            let verdict = match &proof {
                Some(proof) => policy.attest_checked(&request, proof, set, crls)?,
                None => policy.resolve_checked(&request, set, crls)?,
            };
            let (outcome, warnings) = split_warnings(verdict, |a| (a.decision, a.warnings));
            Report {
                time,
                purpose,
                outcome: Outcome::decided(proof.is_some(), outcome),
                revocation: checked.then_some("entry"),
                warnings,
            }
        }
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(if report.accepted() {
        EXIT_ACCEPTED
    } else {
        EXIT_REFUSED
    })
}

/// The CRLs and revocation policy of a `verify`, or `None` when it checks
/// no revocation (no `--crl`, no `--revocation`, or `--revocation off`).
fn revocation_of(args: &VerifyArgs) -> Result<Option<(policy_host::Crls, RevocationPolicy)>> {
    let mode = match (args.revocation, args.crl.is_empty()) {
        (Some(Revocation::Off), _) | (None, true) => return Ok(None),
        (Some(Revocation::Leaf), _) => RevocationMode::Leaf,
        (Some(Revocation::Chain), _) | (None, false) => RevocationMode::Chain,
        (Some(Revocation::Configured), _) => RevocationMode::Configured,
    };
    let crls = crls_of(args)?;
    let lenience = |warn: bool| {
        if warn {
            Lenience::Warn
        } else {
            Lenience::Refuse
        }
    };
    Ok(Some((
        crls,
        RevocationPolicy {
            mode,
            undetermined: lenience(args.allow_undetermined),
            expired: lenience(args.allow_expired_crl),
        },
    )))
}

/// A verdict's outcome and the warnings of an admission.
fn split_warnings<T, U>(
    verdict: Result<T, policy_host::Refusal>,
    parts: impl FnOnce(T) -> (U, Vec<policy_host::Refusal>),
) -> (Result<U, policy_host::Refusal>, Vec<policy_host::Refusal>) {
    match verdict {
        Ok(v) => {
            let (outcome, warnings) = parts(v);
            (Ok(outcome), warnings)
        }
        Err(r) => (Err(r), Vec::new()),
    }
}

/// The CRLs of `--crl`, every file in order.
fn crls_of(args: &VerifyArgs) -> Result<policy_host::Crls> {
    let mut ders = Vec::new();
    for path in &args.crl {
        ders.extend(input::crl_file(path)?);
    }
    policy_host::Crls::from_der(&ders).map_err(|e| {
        anyhow!(
            "--crl: {e} (CRLs in the order given: {})",
            args.crl
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn mode_name(mode: RevocationMode) -> &'static str {
    match mode {
        RevocationMode::Off => "off",
        RevocationMode::Leaf => "leaf",
        RevocationMode::Chain => "chain",
        RevocationMode::Configured => "configured",
    }
}

/// The registration ID a verification decides for: `--registration-id`,
/// else the leaf's subject CN.
fn registration_id_of(args: &VerifyArgs, leaf: &[u8]) -> Result<String> {
    Ok(match &args.registration_id {
        Some(id) => id.clone(),
        None => match policy_host::certificate_common_name(leaf) {
            Ok(Some(cn)) => cn,
            Ok(None) => bail!("the leaf has no subject CN; pass --registration-id explicitly"),
            // An unusable leaf is the policy's to refuse, with the
            // same code and exit status (1) as with --trust.
            Err(_) => "unreadable-leaf".to_string(),
        },
    })
}

/// The `--challenge`/`--signature` proof of possession, if given.
fn proof_of(args: &VerifyArgs) -> Result<Option<Proof>> {
    Ok(match (&args.challenge, &args.signature) {
        (Some(c), Some(s)) => Some(Proof::ChallengeSignature {
            challenge: input::base64_decode(c, "--challenge")?,
            signature: input::base64_decode(s, "--signature")?,
        }),
        _ => None,
    })
}

/// Writes [`policy_host::COMPONENT`] to `out` (or standard output for
/// `-`), replacing the file in one rename so a reader never sees half of it.
fn write_component(out: &std::path::Path) -> Result<()> {
    use std::io::Write as _;
    let bytes = policy_host::COMPONENT;
    if out.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .context("writing the component to standard output")?;
        return Ok(());
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, out));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write {}: {e}", out.display());
    }
    use sha2::Digest as _;
    println!(
        "{}  {} ({} bytes)",
        hex::encode(sha2::Sha256::digest(bytes)),
        out.display(),
        bytes.len(),
    );
    Ok(())
}

/// The subject CN of a DER certificate.
pub fn common_name_of(der: &[u8]) -> Result<String> {
    policy_host::certificate_common_name(der)
        .map_err(|r| anyhow!("the leaf certificate is unusable: {r}"))?
        .ok_or_else(|| anyhow!("the leaf has no subject CN; pass --registration-id explicitly"))
}

fn sign(args: &SignArgs) -> Result<()> {
    let key_pem = input::read_limited(&args.key, input::MAX_PEM_FILE)?;
    let key_pem = String::from_utf8(key_pem)
        .map_err(|_| anyhow!("{} is not a PEM text file", args.key.display()))?;
    let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| {
        anyhow!(
            "{} is not a PKCS#8 private key (-----BEGIN PRIVATE KEY-----): {e}",
            args.key.display()
        )
    })?;
    let registration_id = match (&args.registration_id, &args.cert) {
        (Some(id), _) => id.clone(),
        (None, Some(cert)) => {
            let chain = input::pem_file(cert)?;
            common_name_of(&chain[0])?
        }
        (None, None) => bail!("give --registration-id or --cert"),
    };
    let challenge = input::base64_decode(&args.challenge, "--challenge")?;
    let message = policy_host::challenge_message(&registration_id, &challenge)
        .map_err(|r| anyhow!("{}", r.message))?;
    let signature =
        rcgen::SigningKey::sign(&key, &message).map_err(|e| anyhow!("signing failed: {e}"))?;
    println!("{}", input::base64_encode(&signature));
    Ok(())
}

/// `host-cli audit verify FILE`: 0 intact, 1 broken (the line named), 2 I/O.
fn audit_verify(file: &std::path::Path, closed: bool) -> Result<u8> {
    use attest_service::audit::{Verification, verify};
    let verification = if file == std::path::Path::new("-") {
        verify(std::io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        verify(f)
    }
    .with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display();
    match verification {
        Verification::Intact {
            lines,
            head,
            closed: stopped,
        } => {
            if closed && !stopped {
                println!(
                    "{name}: broken at line {}: the trail does not end in a stop line (the service is still writing it, was killed, or lines were cut from its end)",
                    lines + 1
                );
                return Ok(EXIT_REFUSED);
            }
            println!(
                "{name}: intact: {lines} line{}, last line SHA-256 {head}{}",
                if lines == 1 { "" } else { "s" },
                if stopped { ", closed cleanly" } else { "" }
            );
            Ok(EXIT_ACCEPTED)
        }
        Verification::Broken { line, reason } => {
            println!("{name}: broken at line {line}: {reason}");
            Ok(EXIT_REFUSED)
        }
    }
}
