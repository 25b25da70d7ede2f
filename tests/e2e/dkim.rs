//! Issue 19: DKIM signing, proved by an independent verifier. postern
//! relays mail from 127.0.0.1 (relay.networks) to aiosmtpd; what arrives
//! there is checked by dkimpy (Debian's python3-dkim), which looks the
//! public keys up in the test's own DNS server with dnspython — the same
//! records `postern dkim keygen` printed and `postern dkim check` reads.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::outbound::dns::{DnsServer, Zone};
use crate::outbound::real_server::AioSmtpd;
use crate::outbound::{MESSAGE, submit};

/// dkimpy on a message file: one line per DKIM-Signature field, `pass` or
/// `fail`, with its a=, d= and s=. The TXT records come from the DNS
/// server at 127.0.0.1:PORT, never from the machine's resolver.
const VERIFY: &str = r#"
import sys, dkim, dns.resolver
msg = open(sys.argv[1], "rb").read()
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    try:
        answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
    except Exception:
        return None
    return b"".join(answer[0].strings)
headers, _ = dkim.rfc822_parse(msg)
sigs = [v for (k, v) in headers if k.lower() == b"dkim-signature"]
for i, value in enumerate(sigs):
    tags = dkim.util.parse_tag_value(value)
    try:
        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        # A body hash that differs is an exception, not a False.
        ok = False
    print("%s a=%s d=%s s=%s" % ("pass" if ok else "fail", tags[b"a"].decode(),
          tags[b"d"].decode(), tags[b"s"].decode()))
"#;

pub fn python() -> &'static str {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p)
            .args(["-c", "import dkim, dns.resolver"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return p;
        }
    }
    panic!("dkimpy is not installed (apt-get install python3-dkim; .ci/run does)");
}

/// dkimpy's verdicts on `message`, one line per signature.
pub fn verify(message: &[u8], dns: &DnsServer) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), message).unwrap();
    let out = Command::new(python())
        .arg("-c")
        .arg(VERIFY)
        .arg(file.path())
        .arg(dns.addr.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A key made by `postern dkim keygen` in `dir`: its `dkim.keys` entry
/// and the TXT record's text it printed (the strings joined).
struct Key {
    entry: String,
    txt: String,
}

fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> Key {
    let out = Command::new(BIN)
        .args([
            "dkim",
            "keygen",
            domain,
            selector,
            "--algorithm",
            algorithm,
            "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = text
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.{domain}. IN TXT ")))
        .unwrap_or_else(|| panic!("no record in {text}"));
    // Every string at most 255 bytes, joined as a resolver does.
    let strings: Vec<&str> = record.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{record}");
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("keys = [\"")?.strip_suffix("\"]"))
        .unwrap_or_else(|| panic!("no keys line in {text}"))
        .to_string();
    let path = dir.join(format!("{domain}.{selector}.key"));
    assert_eq!(entry, format!("{domain}:{selector}:{}", path.display()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    Key {
        entry,
        txt: strings.concat(),
    }
}

/// A directory for keys the smtp role (the postern user, when we are
/// root) may enter; keygen makes `dkim/` in it.
fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// An RSA and an Ed25519 key of example.org and the DNS server that
/// publishes both.
fn two_keys(dir: &Path) -> (Key, Key, DnsServer) {
    let keys = dir.join("dkim");
    let rsa = keygen(&keys, "example.org", "rsa", "rsa");
    let ed = keygen(&keys, "example.org", "ed", "ed25519");
    let dns = DnsServer::start(
        Zone::new()
            .txt("rsa._domainkey.example.org", &rsa.txt)
            .txt("ed._domainkey.example.org", &ed.txt),
    );
    (rsa, ed, dns)
}

/// postern relaying to aiosmtpd with `dkim` in its [dkim] table.
fn relay(server: &AioSmtpd, dns: &DnsServer, dkim: &str) -> Postern {
    Postern::start(&format!(
        "[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{}\" }}\n\n[dkim]\n{dkim}\n\n{}",
        server.port,
        dns.config_table()
    ))
}

/// The changes after signing that a verifier must notice: the body, and
/// a second From: (From is signed twice, so an added one counts).
fn tampered(message: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert!(text.contains("last line"));
    let body = text.replace("last line", "last line!");
    let at = text.find("From: ").unwrap();
    let from = format!(
        "{}From: Mallory <m@example.org>\r\n{}",
        &text[..at],
        &text[at..]
    );
    vec![body.into_bytes(), from.into_bytes()]
}

#[test]
fn issue_19_dual_signed_relaxed_mail_verifies_with_dkimpy() {
    let dir = key_dir();
    let (rsa, ed, dns) = two_keys(dir.path());
    let server = AioSmtpd::start(&dir.path().join("out"));
    let p = relay(
        &server,
        &dns,
        &format!("keys = [\"{}\", \"{}\"]", rsa.entry, ed.entry),
    );
    let id = submit(&p, "alice@example.org", &["rcpt@example.test"], MESSAGE);
    let m = server.wait_messages(1, 20, || p.log());
    p.wait_log(
        &format!("{id}: DKIM-Signature field added (s=rsa, d=example.org)"),
        1,
        10,
    );
    p.wait_log(
        &format!("{id}: DKIM-Signature field added (s=ed, d=example.org)"),
        1,
        10,
    );
    let got = &m[0].1;
    assert!(got.starts_with(
        b"DKIM-Signature: v=1; a=rsa-sha256; s=rsa; d=example.org; c=relaxed/relaxed;"
    ));
    assert_eq!(
        verify(got, &dns),
        [
            "pass a=rsa-sha256 d=example.org s=rsa",
            "pass a=ed25519-sha256 d=example.org s=ed"
        ]
    );
    for bad in tampered(got) {
        assert_eq!(
            verify(&bad, &dns),
            [
                "fail a=rsa-sha256 d=example.org s=rsa",
                "fail a=ed25519-sha256 d=example.org s=ed"
            ]
        );
    }
    // The delivery line keeps Postfix's shape.
    let st = crate::outbound::status(&p, &id, "rcpt@example.test");
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
}

/// simple/simple, each algorithm alone, and mail from `sendmail` (the
/// `local` origin, the only one `dkim.sign` names here); mail from the
/// network (127.0.0.1) is then not signed.
#[test]
fn issue_19_simple_mail_from_sendmail_verifies_with_dkimpy() {
    let dir = key_dir();
    let (rsa, ed, dns) = two_keys(dir.path());
    let server = AioSmtpd::start(&dir.path().join("out"));
    for (n, key, algorithm) in [(1, &rsa, "rsa-sha256"), (2, &ed, "ed25519-sha256")] {
        let p = relay(
            &server,
            &dns,
            &format!(
                "keys = [\"{}\"]\ncanonicalization = \"simple/simple\"\nsign = [\"local\"]",
                key.entry
            ),
        );
        let input = b"From: Alice <alice@Example.org>\nTo: rcpt@example.test\nSubject: simple\n\n.dot\ntrailing   \n\n\n";
        let out = crate::sendmail::sendmail(&p, &["rcpt@example.test"], input, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = server.wait_messages(2 * n - 1, 20, || p.log());
        let got = &m[2 * n - 2].1;
        let selector = if n == 1 { "rsa" } else { "ed" };
        assert_eq!(
            verify(got, &dns),
            [format!("pass a={algorithm} d=example.org s={selector}")]
        );
        let mut bad = got.clone();
        bad.extend_from_slice(b"appended\r\n");
        assert_eq!(
            verify(&bad, &dns),
            [format!("fail a={algorithm} d=example.org s={selector}")]
        );
        // From the network: not signed (sign = ["local"]).
        submit(&p, "alice@example.org", &["rcpt@example.test"], MESSAGE);
        let m = server.wait_messages(2 * n, 20, || p.log());
        assert!(m[2 * n - 1].1.starts_with(b"Received: "), "signed");
    }
}

/// `postern dkim check` asks the configured DNS server: the published
/// key matches; another algorithm's record, or none, does not (exit 1);
/// keygen never overwrites a key.
#[test]
fn issue_19_dkim_check_compares_the_record_with_the_key() {
    let dir = key_dir();
    let (rsa, ed, dns) = two_keys(dir.path());
    let ed_path = ed.entry.splitn(3, ':').nth(2).unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[dkim]\nkeys = [\"{}\", \"{}\", \"example.org:swapped:{ed_path}\", \"example.org:absent:{ed_path}\"]\n\n{}",
            rsa.entry,
            ed.entry,
            dns.config_table()
        ),
    )
    .unwrap();
    let check = |selector: &str| {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["dkim", "check", "example.org", selector])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check("rsa");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("rsa._domainkey.example.org publishes the key of"),
        "{text}"
    );
    assert_eq!(check("ed").0, Some(0));
    drop(dns);
    // Another server: the ed key's name publishes the RSA record.
    let dns = DnsServer::start(Zone::new().txt("swapped._domainkey.example.org", &rsa.txt));
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("[dns]") && !l.starts_with("servers"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
            + &dns.config_table(),
    )
    .unwrap();
    let (code, text) = check("swapped");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("differs from"), "{text}");
    assert!(text.contains("k=rsa, but the key is ed25519"), "{text}");
    assert!(
        text.contains(
            "Publish instead:\nswapped._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p="
        ),
        "{text}"
    );
    let (code, text) = check("absent");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("absent._domainkey.example.org: no DKIM record: NXDOMAIN"),
        "{text}"
    );
    let (code, text) = check("nosuch");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        text,
        "dkim.keys has no key for example.org with selector nosuch\n"
    );
    // A key is never overwritten.
    let before = std::fs::read(ed_path).unwrap();
    let out = Command::new(BIN)
        .args(["dkim", "keygen", "example.org", "ed", "--dir"])
        .arg(dir.path().join("dkim"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists: a key is never overwritten"));
    assert_eq!(std::fs::read(ed_path).unwrap(), before);
}
