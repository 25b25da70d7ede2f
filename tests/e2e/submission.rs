//! Issue 18: authenticated submission on 587 (STARTTLS, then AUTH) and
//! 465 (implicit TLS), against real clients: swaks (`--tls`, `--tlsc`,
//! `--auth PLAIN|LOGIN`), Python's smtplib, a real Dovecot as the SASL
//! backend, and fail2ban's postfix filter reading the failure lines.

use std::net::SocketAddr;
use std::process::Command;

use crate::common::*;

/// `postern passwd` as an administrator runs it: the password on stdin.
pub(crate) fn add_login(p: &Postern, login: &str, password: &str) {
    let file = p.dir.path().join("passwd");
    let out = run_with_input(
        Command::new(BIN)
            .args(["passwd", "--file"])
            .arg(&file)
            .arg(login),
        format!(
            "{password}
"
        )
        .as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The listeners postern bound, in the role table's order: smtp, then
/// submission, then submissions.
pub(crate) fn listeners(p: &Postern) -> Vec<SocketAddr> {
    p.log()
        .lines()
        .filter_map(|l| l.split("listening on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// postern with submission on 587 and 465 (ports the kernel picks), the
/// password file backend with alice's login, and `extra` tables.
/// Returns (postern, submission address, submissions address).
fn submission(extra: &str) -> (Postern, SocketAddr, SocketAddr) {
    let backend = if extra.contains("[sasl]") {
        String::new()
    } else {
        "[sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/passwd\"\nfailure_delay = 0\n"
            .to_string()
    };
    let mut p = Postern::configure(
        &format!(
            "[tls]\nchain_files = [\"{{dir}}/chain.pem\"]\n\
             [submission]\nlisten = [\"127.0.0.1:0\"]\nimplicit_tls_listen = [\"127.0.0.1:0\"]\n\
             {backend}{extra}"
        ),
        &[],
        None,
    );
    crate::starttls::certificate(p.dir.path());
    add_login(&p, "alice", "s3cret pass");
    p.launch();
    let l = listeners(&p);
    assert_eq!(l.len(), 3, "{l:?}");
    (p, l[1], l[2])
}

fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// swaks logging in: `tls` is `--tls` (STARTTLS) or `--tlsc` (implicit),
/// `mech` PLAIN or LOGIN; `rest` the other arguments.
fn swaks_auth(
    server: SocketAddr,
    tls: &str,
    (mech, user, password): (&str, &str, &str),
    rest: &[&str],
) -> (bool, String) {
    let server = server.to_string();
    let mut args = vec!["--server", &server, tls, "--auth", mech];
    args.extend(["--auth-user", user, "--auth-password", password]);
    args.extend(rest);
    swaks(&args)
}

#[test]
fn issue_18_swaks_submits_on_587_and_465_with_plain_and_login() {
    let (p, sub, subs) = submission("");
    let to = format!("{}@localhost", p.user);
    let (ok, text) = swaks_auth(
        sub,
        "--tls",
        ("PLAIN", "alice", "s3cret pass"),
        &[
            "--from",
            "alice@example.org",
            "--to",
            &to,
            "--header",
            "Subject: via 587",
            "--body",
            "submitted on 587",
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("235 2.7.0 Authentication successful"),
        "{text}"
    );
    let (ok, text) = swaks_auth(
        subs,
        "--tlsc",
        ("LOGIN", "alice", "s3cret pass"),
        &[
            "--from",
            "alice@example.org",
            "--to",
            &to,
            "--header",
            "Subject: via 465",
            "--body",
            "submitted on 465",
        ],
    );
    assert!(ok, "{text}");
    let got = p.wait_delivered(&p.user, 2, 20);
    let texts: Vec<String> = got
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for t in &texts {
        assert!(t.contains(" with ESMTPSA id "), "{t}");
        assert!(t.contains("\t(using TLSv1.3 with cipher TLS_"), "{t}");
        assert!(
            t.contains("bits))\n\t(No client certificate requested)\n"),
            "{t}"
        );
    }
    assert!(texts.iter().any(|t| t.contains("submitted on 587")));
    assert!(texts.iter().any(|t| t.contains("submitted on 465")));
    p.wait_log(", sasl_method=PLAIN, sasl_username=alice", 1, 5);
    p.wait_log(", sasl_method=LOGIN, sasl_username=alice", 1, 5);
    assert!(!p.log().contains("s3cret"), "a password in the log");
}

#[test]
fn issue_18_auth_is_offered_only_where_it_should_be() {
    let (p, sub, subs) = submission("");
    // Port 25: no AUTH, whatever the backend.
    let mut c = p.client();
    let ehlo = c.cmd("EHLO client.example");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz"),
        "503 5.5.1 Error: authentication not enabled"
    );
    // 587 before STARTTLS: STARTTLS, no AUTH; MAIL needs TLS first.
    let mut c = Client::connect(sub, None);
    let ehlo = c.cmd("EHLO client.example");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz"),
        "503 5.5.1 Error: authentication not enabled"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.org>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    // 465 inside TLS without AUTH: MAIL needs AUTH (Python's smtplib).
    let out = Command::new("python3")
        .args([
            "-c",
            &format!(
                r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", {port}, context=ctx, timeout=20)
s.ehlo("client.example")
print("auth", s.esmtp_features.get("auth"))
print("starttls" in s.esmtp_features)
print(*s.docmd("MAIL FROM:<alice@example.org>"))
print(*s.docmd("AUTH CRAM-MD5"))
s.login("alice", "wrong")
"#,
                port = subs.port()
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("auth  PLAIN LOGIN"), "{stdout}{stderr}");
    assert!(
        stdout.contains("False\n"),
        "STARTTLS offered inside TLS: {stdout}"
    );
    assert!(
        stdout.contains("530 b'5.7.0 Authentication required'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("504 b'5.5.4 Unsupported authentication mechanism'"),
        "{stdout}"
    );
    assert!(
        stderr.contains("535") && stderr.contains("5.7.8 Error: authentication failed"),
        "{stderr}"
    );
    p.wait_log(
        "SASL PLAIN authentication failed: wrong password, sasl_username=alice",
        1,
        5,
    );
}

#[test]
fn issue_18_failed_logins_are_limited_per_client_and_fail2ban_reads_them() {
    let (p, _, subs) = submission(
        "[sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/passwd\"\nfailure_delay = 0\n\
         failure_limit = 2\n",
    );
    for _ in 0..2 {
        let (ok, text) = swaks_auth(
            subs,
            "--tlsc",
            ("LOGIN", "alice", "guess"),
            &["--to", "x@localhost", "--quit-after", "AUTH"],
        );
        assert!(
            !ok && text.contains("535 5.7.8 Error: authentication failed"),
            "{text}"
        );
    }
    // The third try from the same address: refused before the exchange,
    // even with the right password.
    let (ok, text) = swaks_auth(
        subs,
        "--tlsc",
        ("PLAIN", "alice", "s3cret pass"),
        &["--to", "x@localhost", "--quit-after", "AUTH"],
    );
    assert!(
        !ok && text.contains("421 4.7.0 mail.test.example Error: too many failed logins"),
        "{text}"
    );
    p.wait_log("too many failed logins", 1, 5);
    // fail2ban's postfix filter (mode auth), as shipped by Debian, finds
    // each failure and the address to ban, told only that the daemon
    // is postern's.
    let out = Command::new("fail2ban-regex")
        .arg(p.log_path())
        .arg("postfix[mode=auth, _daemon=postern/smtpd]")
        .output();
    let Ok(out) = out else {
        eprintln!("fail2ban-regex is not installed: the filter check is skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("Failregex: 2 total"), "{text}");
}

#[test]
fn issue_18_sender_login_mismatch_on_submission() {
    let (p, sub, _) = submission(
        "sender = [\"reject_sender_login_mismatch\"]\n\
         [maps.owners]\n\"alice@example.org\" = \"alice\"\n\"boss@example.org\" = \"boss\"\n\
         [sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/passwd\"\nfailure_delay = 0\n\
         sender_login_maps = [\"inline:owners\"]\n",
    );
    let to = format!("{}@localhost", p.user);
    let args = |from: &'static str| {
        swaks_auth(
            sub,
            "--tls",
            ("PLAIN", "alice", "s3cret pass"),
            &["--from", from, "--to", &to],
        )
    };
    let (ok, text) = args("boss@example.org");
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "553 5.7.1 <boss@example.org>: Sender address rejected: not owned by user alice"
        ),
        "{text}"
    );
    let (ok, text) = args("alice@example.org");
    assert!(ok, "{text}");
    p.wait_delivered(&p.user, 1, 20);
    // What postern policy test says agrees.
    let out = p.postern(&[
        "policy",
        "test",
        "--client",
        "192.0.2.1",
        "--client-name",
        "pc.example",
        "--submission",
        "--sasl-user",
        "alice",
        "--from",
        "boss@example.org",
        "--to",
        "x@elsewhere.example",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not owned by user alice"), "{text}");
}

/// Dovecot as the backend (`smtpd_sasl_type = dovecot`): good 235, bad
/// 535, the account Dovecot named in the log.
#[test]
fn issue_18_dovecot_is_the_sasl_backend() {
    if !crate::sasl::have_dovecot() {
        eprintln!("dovecot is not installed: skipped");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let users = work.path().join("users");
    write_file(&users, b"carol:{PLAIN}dove pass\n");
    let auth = crate::sasl::Auth::start(work.path(), &users);
    let (p, sub, _) = submission(&format!(
        "[sasl]\nbackend = \"dovecot\"\ndovecot_socket = \"{}\"\nfailure_delay = 0\n",
        auth.socket.display()
    ));
    let to = format!("{}@localhost", p.user);
    let (ok, text) = swaks_auth(
        sub,
        "--tls",
        ("PLAIN", "carol", "dove pass"),
        &["--from", "carol@example.org", "--to", &to],
    );
    assert!(ok, "{text}");
    let (ok, text) = swaks_auth(
        sub,
        "--tls",
        ("LOGIN", "carol", "nope"),
        &["--from", "carol@example.org", "--to", &to],
    );
    assert!(!ok && text.contains("535 5.7.8"), "{text}");
    p.wait_delivered(&p.user, 1, 20);
    p.wait_log(", sasl_method=PLAIN, sasl_username=carol", 1, 5);
    p.wait_log("SASL LOGIN authentication failed", 1, 5);
}

/// `postern check` refuses submission without certificates or a
/// backend, naming the key.
#[test]
fn issue_18_submission_needs_certificates_and_a_backend() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let file = dir.path().join("postern.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&file)
            .args(["check", "--no-system"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let text = check("[submission]\nlisten = [\"127.0.0.1:587\"]\n");
    assert!(
        text.contains("key `submission.listen`") && text.contains("needs tls.chain_files"),
        "{text}"
    );
    let text = check(
        "[tls]\nchain_files = [\"/etc/ssl/x.pem\"]\n[submission]\nimplicit_tls_listen = [\"127.0.0.1:465\"]\n",
    );
    assert!(text.contains("needs sasl.backend"), "{text}");
    let text = check(
        "[tls]\nchain_files = [\"/etc/ssl/x.pem\"]\n[sasl]\nbackend = \"passwd\"\n\
         [submission]\nlisten = [\"127.0.0.1:587\"]\nrelay = [\"permit\"]\n",
    );
    assert!(text.contains("open relay"), "{text}");
}
