//! The null client of a provider (issue 18): a relay host that wants a
//! login, Python's aiosmtpd with its authenticator (`real_server`'s, with
//! STARTTLS on a certificate made here), and postern with `relay.host`
//! and the login in `relay.sasl_password_files`. A right password
//! delivers, a wrong one and a session without TLS defer,
//! `relay.sasl_plaintext` lets the password go without TLS.

use std::path::Path;

use super::pki;
use super::real_server::AioSmtpd;
use super::*;

const USER: &str = "relayuser@provider.test";
const PASSWORD: &str = "correct horse:battery";

/// The provider's relay host: with STARTTLS (a self-signed certificate,
/// AUTH offered only after it) or without; `exclude` mechanisms it does
/// not offer.
fn provider(dir: &Path, tls: bool, exclude: &str) -> AioSmtpd {
    let (cert, key) = (dir.join("relay.crt"), dir.join("relay.key"));
    if tls {
        let c = pki::self_signed(&["relay.provider.test"]);
        c.write_pem(&cert);
        std::fs::write(&key, c.key_pem()).unwrap();
    }
    let path = |p: &Path| {
        if tls {
            p.display().to_string()
        } else {
            "-".into()
        }
    };
    let tls_flag = if tls { "1" } else { "0" };
    AioSmtpd::start_with(
        &dir.join("out"),
        &[&path(&cert), &path(&key), USER, PASSWORD, tls_flag, exclude],
    )
}

/// The AUTH attempts the provider saw.
fn auth_log(server: &AioSmtpd) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.dir.join("auth.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A null client relaying everything to `server` with `password` in its
/// password table (mode 0640, readable by the group of the postern user
/// postern's smtp client runs as under root), and `extra` in `[relay]`.
/// The table is in a directory of its own, which only the smtp client's
/// Landlock room for it opens.
fn null_client(server: &AioSmtpd, password: &str, extra: &str) -> Postern {
    let mut p = Postern::configure(
        &format!(
            "[relay]\nhost = \"[127.0.0.1]:{}\"\nsasl_password_files = [\"hash:{{dir}}/secrets/sasl_passwd\"]\n{extra}\n",
            server.port
        ),
        &[],
        None,
    );
    std::fs::create_dir(p.dir.path().join("secrets")).unwrap();
    let file = p.dir.path().join("secrets/sasl_passwd");
    std::fs::write(
        &file,
        format!(
            "# the provider\n[127.0.0.1]:{} {USER}:{password}\n",
            server.port
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    if is_root()
        && let Ok(Some(u)) = nix::unistd::User::from_name("postern")
    {
        std::os::unix::fs::chown(&file, Some(0), Some(u.gid.as_raw())).unwrap();
    }
    p.launch();
    p
}

fn sender(p: &Postern) -> String {
    format!("{}@localhost", p.user)
}

/// One message submitted to `p` reaches `server` as sent, after AUTH
/// `mechanism` with the right login, over TLS or not (`tls`); the
/// password is nowhere in postern's log.
fn delivers_after_auth(p: &Postern, server: &AioSmtpd, mechanism: &str, tls: bool) {
    let id = submit(p, &sender(p), &["rcpt@example.test"], MESSAGE);
    let m = server.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(m[0].0["authenticated"], true);
    assert_eq!(m[0].0["tls"], tls);
    assert_eq!(
        String::from_utf8_lossy(after_received(&m[0].1)),
        String::from_utf8_lossy(MESSAGE)
    );
    assert_eq!(
        auth_log(server),
        [serde_json::json!({"mechanism": mechanism, "login": USER, "ok": true, "tls": tls})]
    );
    let st = status(p, &id, "rcpt@example.test");
    assert_eq!(st.relay, format!("127.0.0.1[127.0.0.1]:{}", server.port));
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    assert!(!p.log().contains("battery"), "the password is never logged");
}

#[test]
fn the_right_password_over_starttls_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let server = provider(dir.path(), true, "-");
    let p = null_client(&server, PASSWORD, "");
    let check = p.postern(&["check"]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(!said.contains("sasl_passwd"), "{said}");
    delivers_after_auth(&p, &server, "PLAIN", true);
}

#[test]
fn a_wrong_password_defers_with_the_servers_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = provider(dir.path(), true, "-");
    let p = null_client(&server, "wrong-password-77", "");
    let id = submit(&p, &sender(&p), &["rcpt@example.test"], MESSAGE);
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 1, 30);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("4.7.8", "deferred"));
    let said = "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: \
                535 5.7.8 Authentication credentials invalid";
    assert_eq!(st.text, said);
    assert_eq!(
        delay_reason(&p, &id, "rcpt@example.test").as_deref(),
        Some(said)
    );
    let tried = auth_log(&server);
    assert_eq!(tried[0]["ok"], false);
    assert_eq!(tried[0]["tls"], true);
    assert!(server.messages().is_empty());
    assert!(!p.log().contains("status=bounced"), "{}", p.log());
    assert!(
        !p.log().contains("wrong-password-77"),
        "the password is never logged"
    );
}

#[test]
fn no_password_in_plain_text_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = provider(dir.path(), false, "-");
    let p = null_client(&server, PASSWORD, "");
    let id = submit(&p, &sender(&p), &["rcpt@example.test"], MESSAGE);
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 1, 30);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("4.7.0", "deferred"));
    assert_eq!(
        st.text,
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: \
         the session is not encrypted (no TLS), and the password is not sent in plain text \
         (relay.sasl_plaintext = false)"
    );
    assert!(auth_log(&server).is_empty(), "no AUTH was sent");
    assert!(server.messages().is_empty());
}

/// With `sasl_plaintext`, the login goes without TLS; LOGIN when the
/// server does not offer PLAIN.
#[test]
fn sasl_plaintext_sends_it_with_login_when_plain_is_not_offered() {
    let dir = tempfile::tempdir().unwrap();
    let server = provider(dir.path(), false, "PLAIN");
    let p = null_client(&server, PASSWORD, "sasl_plaintext = true");
    delivers_after_auth(&p, &server, "LOGIN", false);
}

/// `postern check`: a typo in the table is an error at its line; a file
/// others can read, a warning.
#[test]
fn check_names_the_line_of_a_typo_and_a_readable_file() {
    let p = Postern::configure(
        "[relay]\nhost = \"[smtp.provider.test]:587\"\nsasl_password_files = [\"{dir}/sasl_passwd\"]\n",
        &[],
        None,
    );
    let file = p.dir.path().join("sasl_passwd");
    std::fs::write(
        &file,
        "[smtp.provider.test]:587 u:p\n[smtp.provider.test]:465\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p.postern(&["check"]);
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let f = file.display();
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "relay.sasl_password_files: {f}:2: error: expected format: key whitespace value"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "{f} (relay.sasl_password_files): readable by everyone (mode 644)"
        )),
        "{said}"
    );
}
