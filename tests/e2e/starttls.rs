//! Issue 18: STARTTLS on smtpd (RFC 3207), against real clients: Python's
//! smtplib and ssl (verifying the certificate), and swaks.

use std::process::Command;

use crate::common::*;

/// A certificate for 127.0.0.1 and mail.test.example, its key first, as
/// `tls.chain_files` takes it: (chain file, CA file for clients).
pub(crate) fn certificate(dir: &std::path::Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "mail.test.example".to_string(),
    ])
    .unwrap()
    .self_signed(&key)
    .unwrap();
    let chain = dir.join("chain.pem");
    write_file(
        &chain,
        format!("{}{}", key.serialize_pem(), cert.pem()).as_bytes(),
    );
    let ca = dir.join("ca.pem");
    write_file(&ca, cert.pem().as_bytes());
    (chain.display().to_string(), ca.display().to_string())
}

/// postern offering STARTTLS at `level`.
fn with_tls(level: &str) -> (Postern, String) {
    let mut p = Postern::configure(
        &format!("[tls]\ninbound = \"{level}\"\nchain_files = [\"{{dir}}/chain.pem\"]\n"),
        &[],
        None,
    );
    let (_, ca) = certificate(p.dir.path());
    p.launch();
    (p, ca)
}

fn python(script: &str) -> std::process::Output {
    Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap()
}

#[test]
fn issue_18_smtplib_sends_over_starttls_with_a_verified_certificate() {
    let (p, ca) = with_tls("may");
    let u = p.user.clone();
    let port = p.addr.port();
    let out = python(&format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.example")
assert s.has_extn("starttls"), s.esmtp_features
ctx = ssl.create_default_context(cafile="{ca}")
s.starttls(context=ctx)
print(s.sock.version(), s.sock.cipher()[0])
s.ehlo("client.example")
assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
s.sendmail("a@example.org", ["{u}@localhost"], b"Subject: over tls\r\n\r\nsecret body\r\n")
code, text = s.docmd("STARTTLS")
print(code, text.decode())
s.quit()
"#
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("TLSv1.3 ") || stdout.starts_with("TLSv1.2 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("554 5.5.1 Error: TLS already active"),
        "{stdout}"
    );
    let got = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("with ESMTPS id "), "{text}");
    assert!(text.contains("secret body"), "{text}");
    p.wait_log(
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.",
        1,
        5,
    );
}

/// Plaintext pipelined behind STARTTLS (the injection of CVE-2011-0411)
/// is discarded: inside TLS the server answers only what came inside.
#[test]
fn issue_18_commands_injected_before_the_handshake_are_discarded() {
    let (p, ca) = with_tls("may");
    let port = p.addr.port();
    let out = python(&format!(
        r#"
import socket, ssl
raw = socket.create_connection(("127.0.0.1", {port}), timeout=20)
f = raw.makefile("rb")
def reply(f):
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l.strip())
        if l[3:4] != "-":
            return lines
reply(f)
raw.sendall(b"EHLO client.example\r\n"); reply(f)
raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
print(reply(f)[-1])
ctx = ssl.create_default_context(cafile="{ca}")
t = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
g = t.makefile("rb")
t.sendall(b"EHLO client.example\r\n")
print(reply(g)[-1])
t.sendall(b"MAIL FROM:<a@example.org>\r\n")
print(reply(g)[-1])
t.sendall(b"QUIT\r\n"); print(reply(g)[-1])
"#
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "220 2.0.0 Ready to start TLS",
            "250 CHUNKING",
            "250 2.1.0 Ok",
            "221 2.0.0 Bye"
        ],
        "{stdout}"
    );
    p.wait_log("discarding 34 bytes of plaintext sent after STARTTLS", 1, 5);
}

#[test]
fn issue_18_encrypt_requires_starttls_before_mail_and_swaks_complies() {
    let (p, _) = with_tls("encrypt");
    let mut c = p.client();
    c.cmd("EHLO client.example");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    // swaks as administrators test with it.
    let u = p.user.clone();
    let out = Command::new("swaks")
        .args(["--server", &p.addr.to_string(), "--tls", "--to"])
        .arg(format!("{u}@localhost"))
        .args(["--from", "a@example.org", "--body", "via swaks over tls"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("TLS started"), "{text}");
    assert!(text.contains("250 2.0.0 Ok: queued as"), "{text}");
    p.wait_delivered(&u, 1, 20);
}

/// `tls.inbound` without certificates is a configuration error naming
/// the key.
#[test]
fn issue_18_inbound_tls_needs_chain_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(&conf, "[tls]\ninbound = \"may\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["config", "show", "--non-default"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("key `tls.inbound`") && err.contains("needs tls.chain_files"),
        "{err}"
    );
}

/// `openssl s_client -starttls smtp`, as administrators check a server:
/// the certificate verifies against the test CA, the session is TLS 1.2
/// or 1.3, and SMTP goes on inside it (EHLO without STARTTLS, QUIT).
#[test]
fn issue_18_openssl_s_client_starttls_smtp() {
    use std::io::Write;
    let (p, ca) = with_tls("may");
    let mut child = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(p.addr.to_string())
        .args(["-CAfile", &ca, "-verify_return_error", "-crlf", "-ign_eof"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One command at a time, as a person types: EHLO and QUIT in one
    // packet would be improper pipelining (554 5.5.0), as in Postfix.
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(b"EHLO client.example\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(b"QUIT\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(
        text.contains("Protocol  : TLSv1.3")
            || text.contains("Protocol  : TLSv1.2")
            || text.contains("New, TLSv1.3")
            || text.contains("New, TLSv1.2"),
        "{text}"
    );
    // Inside TLS (s_client prints only what follows the handshake): EHLO
    // answered without STARTTLS, then QUIT.
    let smtp = String::from_utf8_lossy(&out.stdout);
    assert!(smtp.contains("250-mail.test.example"), "{text}");
    assert!(!smtp.contains("STARTTLS"), "{text}");
    assert!(smtp.contains("221 2.0.0 Bye"), "{text}");
}
