//! Issue 18: Debian's `testssl.sh` (`/usr/bin/testssl`) against smtpd's
//! STARTTLS, served from an RSA and an ECDSA chain side by side. Nothing
//! rated HIGH or CRITICAL; SSLv2, SSLv3, TLS 1.0 and 1.1 not offered; TLS
//! 1.2 and 1.3 offered.
//!
//! The certificates are made here by a CA of the test's own, which
//! testssl is given with `--add-ca`: the chain of trust is checked for
//! real and passes, so no finding is excused. What a private test CA
//! cannot have otherwise is filled in: a year's validity (testssl rates
//! under 30 days left HIGH, over 825 days MEDIUM) and a CRL URI on
//! loopback (no URI at all is HIGH, "cert_revocation"; without
//! `--phone-out` testssl never fetches it).
//!
//! Offline, loopback only (checked with `strace -f -e trace=connect`):
//! the target is an address, `--nodns none` keeps testssl from looking up
//! rDNS and CAA, `NXCONNECT=127.0.0.1:0` points its probes of openssl's
//! options at loopback instead of the name "invalid." (which the resolver
//! would be asked), and without `--phone-out` it asks no CRL, OCSP or key
//! database. About 30-40 s on 2 cores.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;

const TESTSSL: &str = "/usr/bin/testssl";

/// How long one scan may take before it counts as hung.
const SCAN_LIMIT: Duration = Duration::from_secs(150);

/// How testssl reaches the TLS of a listener.
#[derive(Clone, Copy, Debug)]
pub enum Tls {
    /// `STARTTLS` inside SMTP (ports 25 and 587).
    Starttls,
    /// TLS from the first byte (submissions, port 465, RFC 8314).
    Implicit,
}

/// One line of testssl's flat JSON.
#[derive(Debug)]
pub struct Finding {
    pub id: String,
    pub severity: String,
    pub finding: String,
}

/// Issue 18's check of one TLS listener: scan `target` as `tls` says,
/// trusting the test CA `ca`, print the rating and a summary, and assert
/// that nothing is HIGH or CRITICAL and that only TLS 1.2 and 1.3 are
/// offered. `dir` holds testssl's files. The findings, for checks of
/// the caller's own.
pub fn check_listener(target: SocketAddr, tls: Tls, ca: &Path, dir: &Path) -> Vec<Finding> {
    let findings = scan(target, tls, ca, dir);
    print_summary(target, tls, &findings);
    assert_sound(&findings);
    findings
}

/// The certificates of the test: a CA and two server chains signed by it
/// (ECDSA P-256, then RSA 2048), each a key followed by its certificate,
/// as `tls.chain_files` takes them. Returns (chain files, CA file).
pub fn test_pki(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "postern test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_params.not_before = (now - day).into();
    ca_params.not_after = (now + 730 * day).into();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    write_file(&ca_file, ca.as_ref().pem().as_bytes());

    let mut chains = Vec::new();
    for (name, key) in [
        ("ecdsa", rcgen::KeyPair::generate().unwrap()),
        ("rsa", rsa_key(dir)),
    ] {
        let mut params = rcgen::CertificateParams::new(vec![
            "mail.test.example".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.test.example");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (now - day).into();
        params.not_after = (now + 365 * day).into();
        // Never fetched (no --phone-out); nothing listens on port 1.
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec!["http://127.0.0.1:1/test-ca.crl".to_string()],
        }];
        let cert = params.signed_by(&key, &ca).unwrap();
        let file = dir.join(format!("{name}.pem"));
        write_file(
            &file,
            format!("{}{}", key.serialize_pem(), cert.pem()).as_bytes(),
        );
        chains.push(file);
    }
    (chains, ca_file)
}

/// An RSA 2048 key made by openssl (ring, under rcgen, cannot make one;
/// openssl comes with testssl).
fn rsa_key(dir: &Path) -> rcgen::KeyPair {
    let file = dir.join("rsa.key");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .arg("-out")
        .arg(&file)
        .output()
        .expect("openssl (Debian's openssl, a dependency of testssl.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&file).unwrap();
    rcgen::KeyPair::from_pem(&pem).unwrap()
}

/// Run testssl against `target`; its findings from the JSON file.
fn scan(target: SocketAddr, tls: Tls, ca: &Path, dir: &Path) -> Vec<Finding> {
    assert!(
        Path::new(TESTSSL).exists(),
        "{TESTSSL} is missing: apt-get install testssl.sh (.ci/run does)"
    );
    let json = dir.join(format!("testssl-{}.json", target.port()));
    let log = dir.join(format!("testssl-{}.log", target.port()));
    let mut cmd = Command::new(TESTSSL);
    cmd.env("NXCONNECT", "127.0.0.1:0")
        .args(["--quiet", "--color", "0", "--warnings", "off"])
        .args(["--nodns", "none", "--connect-timeout", "10"])
        .args(["--openssl-timeout", "10"])
        .arg("--add-ca")
        .arg(ca)
        .arg("--jsonfile")
        .arg(&json)
        // Protocols, cipher categories, forward secrecy, server
        // preferences, server defaults (certificates), vulnerabilities:
        // the default run without the per-cipher list and the client
        // simulations, which take longer and judge nothing more.
        .args(["-p", "-s", "-f", "-P", "-S", "-U"]);
    if let Tls::Starttls = tls {
        cmd.args(["--starttls", "smtp"]);
    }
    cmd.arg(target.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("testssl.stderr")).unwrap())
        // Its own process group: a hung scan is ended with its openssl
        // children.
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCAN_LIMIT {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "testssl did not finish within {} s:\n{}",
                SCAN_LIMIT.as_secs(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // testssl 3.0's exit status adds up the return codes of its checks,
    // not a verdict (8 here on a sound server): the JSON decides.
    eprintln!(
        "testssl {target}: {status} after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; testssl said:\n{}",
            json.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    parse_findings(&text)
}

fn parse_findings(text: &str) -> Vec<Finding> {
    let v: serde_json::Value = serde_json::from_str(text).expect("testssl's JSON");
    let field = |f: &serde_json::Value, k: &str| f[k].as_str().unwrap_or_default().to_string();
    v.as_array()
        .expect("a flat JSON array (--jsonfile)")
        .iter()
        .map(|f| Finding {
            id: field(f, "id"),
            severity: field(f, "severity"),
            finding: field(f, "finding"),
        })
        .collect()
}

/// The finding with `id`, which testssl must have reported.
pub fn finding<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("testssl reported no {id:?}"))
}

/// The rating (testssl 3.1 and later; 3.0 has none) and the findings
/// counted by severity, with the ids of all but OK and INFO.
fn print_summary(target: SocketAddr, tls: Tls, findings: &[Finding]) {
    let mode = match tls {
        Tls::Starttls => "--starttls smtp ",
        Tls::Implicit => "",
    };
    println!("testssl {mode}{target}: {} findings", findings.len());
    let rating: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            ["overall_grade", "final_score", "grade_cap", "rating"]
                .iter()
                .any(|r| f.id.starts_with(r))
        })
        .collect();
    if rating.is_empty() {
        println!("rating: none in this testssl's output (ratings came with testssl 3.1)");
    }
    for f in rating {
        println!("rating: {} = {} ({})", f.id, f.finding, f.severity);
    }
    let mut by: BTreeMap<usize, (&str, Vec<&str>)> = BTreeMap::new();
    for f in findings {
        let rank = SEVERITIES
            .iter()
            .position(|s| *s == f.severity)
            .unwrap_or(SEVERITIES.len());
        let entry = by.entry(rank).or_insert((&f.severity, Vec::new()));
        entry.1.push(&f.id);
    }
    println!("| severity | count | ids |\n|---|---:|---|");
    for (severity, ids) in by.values() {
        let shown = if matches!(*severity, "OK" | "INFO") {
            String::new()
        } else {
            ids.join(", ")
        };
        println!("| {severity} | {} | {shown} |", ids.len());
    }
}

/// testssl's severities, worst first.
const SEVERITIES: [&str; 8] = [
    "FATAL", "CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "OK", "INFO",
];

/// Nothing HIGH, CRITICAL or FATAL (a scan that failed); the old
/// protocols off, TLS 1.2 and 1.3 on.
fn assert_sound(findings: &[Finding]) {
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f.severity.as_str(), "HIGH" | "CRITICAL" | "FATAL"))
        .map(|f| format!("{} {}: {}", f.severity, f.id, f.finding))
        .collect();
    assert!(bad.is_empty(), "testssl found:\n{}", bad.join("\n"));
    let scan_time = finding(findings, "scanTime");
    assert_eq!(scan_time.severity, "INFO", "{scan_time:?}");
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        let f = finding(findings, id);
        assert_eq!(f.finding, "not offered", "{f:?}");
    }
    for id in ["TLS1_2", "TLS1_3"] {
        let f = finding(findings, id);
        assert!(f.finding.starts_with("offered"), "{f:?}");
    }
}

#[test]
fn issue_18_testssl_rates_starttls_with_rsa_and_ecdsa_sound() {
    let mut p = Postern::configure(
        "[tls]\ninbound = \"may\"\nchain_files = [\"{dir}/ecdsa.pem\", \"{dir}/rsa.pem\"]\n",
        &[],
        None,
    );
    let (_, ca) = test_pki(p.dir.path());
    p.launch();
    let findings = check_listener(p.addr, Tls::Starttls, &ca, p.dir.path());
    // Both chains are served: testssl finds one certificate per key type.
    let keys: Vec<&str> = ["cert_keySize <cert#1>", "cert_keySize <cert#2>"]
        .iter()
        .map(|id| finding(&findings, id).finding.as_str())
        .collect();
    assert!(
        keys.iter().any(|k| k.starts_with("EC 256"))
            && keys.iter().any(|k| k.starts_with("RSA 2048")),
        "{keys:?}"
    );
}

/// The submissions listener (port 465, implicit TLS) is as sound as
/// STARTTLS on port 25.
#[test]
fn issue_18_testssl_rates_the_implicit_tls_of_submissions_sound() {
    let mut p = Postern::configure(
        "[tls]\nchain_files = [\"{dir}/ecdsa.pem\", \"{dir}/rsa.pem\"]\n\
         [submission]\nimplicit_tls_listen = [\"127.0.0.1:0\"]\n\
         [sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/passwd\"\n",
        &[],
        None,
    );
    let (_, ca) = test_pki(p.dir.path());
    crate::submission::add_login(&p, "alice", "s3cret pass");
    p.launch();
    let listeners = crate::submission::listeners(&p);
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    check_listener(listeners[1], Tls::Implicit, &ca, p.dir.path());
}
