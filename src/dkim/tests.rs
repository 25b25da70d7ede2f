use std::sync::{Arc, OnceLock};

use base64::Engine;

use super::key::{Algorithm, PrivateKey, pem};
use super::sign::{Keys, Signer, canonicalization, from_domain, header_end, sign_message};
use super::*;
use crate::config::{DkimCanonicalization, DkimSign};

/// One RSA key for all the tests (making one takes a while unoptimized).
fn rsa_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| PrivateKey::generate(Algorithm::Rsa, 2048).unwrap().0)
}

fn entry(domain: &str, selector: &str, path: &std::path::Path) -> KeyEntry {
    KeyEntry {
        domain: domain.into(),
        selector: selector.into(),
        path: path.to_path_buf(),
    }
}

#[test]
fn key_table_entries_parse() {
    let e = KeyEntry::parse("Example.ORG.:Sel-2026:/var/lib/postern/dkim/a:b.key").unwrap();
    assert_eq!(e.domain, "example.org");
    assert_eq!(e.selector, "sel-2026");
    // Only the first two colons separate.
    assert_eq!(
        e.path,
        std::path::PathBuf::from("/var/lib/postern/dkim/a:b.key")
    );
    assert_eq!(e.record_name(), "sel-2026._domainkey.example.org");
    assert_eq!(
        e.to_string(),
        "example.org:sel-2026:/var/lib/postern/dkim/a:b.key"
    );
    assert_eq!(KeyEntry::parse(&e.to_string()).unwrap(), e);
    assert_eq!(
        KeyEntry::parse("a.example:s1.s2:/k").unwrap().selector,
        "s1.s2"
    );
    for (bad, why) in [
        (
            "example.org:sel",
            "expected domain:selector:/path/to/key.pem",
        ),
        ("example.org", "expected domain:selector:/path/to/key.pem"),
        (
            "example.org:sel:key.pem",
            "the key file must be an absolute path",
        ),
        (
            "exa mple.org:sel:/k",
            "domain \"exa mple.org\": character ' '",
        ),
        (":sel:/k", "domain \"\": empty name"),
        ("example.org::/k", "selector \"\": empty name"),
        ("example.org:s_1:/k", "selector \"s_1\": letters, digits"),
        (
            "example.org:-s:/k",
            "selector \"-s\": label `-s` starts or ends",
        ),
    ] {
        let e = KeyEntry::parse(bad).unwrap_err();
        assert!(e.starts_with(why), "{bad}: {e}");
    }
}

fn client(
    addr: &str,
    login: Option<&str>,
    uid: Option<u32>,
    protocol: &str,
) -> crate::queue::Client {
    crate::queue::Client {
        name: "client.example".into(),
        addr: addr.into(),
        helo: None,
        protocol: protocol.into(),
        sasl_username: login.map(str::to_string),
        uid,
    }
}

#[test]
fn the_signing_decision_follows_the_origin() {
    let mut config = crate::config::Config::builtin();
    config.relay.networks = vec!["192.0.2.0/24".parse().unwrap()];
    let inside = client("192.0.2.7", None, None, "ESMTP");
    let outsider = client("198.51.100.3", None, None, "ESMTP");
    let logged_in = client("198.51.100.3", Some("alice"), None, "ESMTP");
    let sendmail = client("127.0.0.1", None, Some(1000), "ESMTP");
    let bounce = client("127.0.0.1", None, None, "local");
    let tcp_localhost = client("127.0.0.1", None, None, "ESMTP");
    let all = [
        &inside,
        &outsider,
        &logged_in,
        &sendmail,
        &bounce,
        &tcp_localhost,
    ];
    let decide = |sign: &[DkimSign], config: &mut crate::config::Config| -> Vec<bool> {
        config.dkim.sign = sign.to_vec();
        all.iter().map(|c| eligible(config, c)).collect()
    };
    use DkimSign::*;
    assert_eq!(
        decide(&[Mynetworks, Authenticated, Local], &mut config),
        [true, false, true, true, true, false]
    );
    assert_eq!(
        decide(&[Mynetworks], &mut config),
        [true, false, false, false, false, false]
    );
    assert_eq!(
        decide(&[Authenticated], &mut config),
        [false, false, true, false, false, false]
    );
    assert_eq!(
        decide(&[Local], &mut config),
        [false, false, false, true, true, false]
    );
    assert_eq!(decide(&[], &mut config), [false; 6]);
    // An address that is not one (an old queue file's) is no network's.
    config.dkim.sign = vec![Mynetworks];
    assert!(!eligible(&config, &client("", None, None, "")));
}

#[test]
fn canonicalization_words_map_to_mail_auth() {
    use crate::config::Choice;
    use mail_auth::dkim::Canonicalization::{Relaxed, Simple};
    for (word, want) in [
        ("relaxed/relaxed", (Relaxed, Relaxed)),
        ("relaxed/simple", (Relaxed, Simple)),
        ("relaxed", (Relaxed, Simple)),
        ("simple/relaxed", (Simple, Relaxed)),
        ("simple/simple", (Simple, Simple)),
        ("simple", (Simple, Simple)),
    ] {
        let c = DkimCanonicalization::from_name(word).unwrap();
        assert_eq!(canonicalization(c), want, "{word}");
    }
    assert!(DkimCanonicalization::from_name("relaxed/nofws").is_none());
}

#[test]
fn txt_records_are_split_in_255_byte_strings() {
    let text = "x".repeat(600);
    let parts = record::split(&text);
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [255, 255, 90]
    );
    assert_eq!(parts.concat(), text);
    assert_eq!(record::split(&"y".repeat(255)).len(), 1);
    assert!(record::split("").is_empty());
    assert_eq!(
        record::zone_line("s._domainkey.example.org", "v=DKIM1; k=ed25519; p=AAAA"),
        "s._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p=AAAA\""
    );
    let long = format!("v=DKIM1; k=rsa; p={}", "A".repeat(300));
    let line = record::zone_line("s._domainkey.example.org", &long);
    assert!(line.starts_with("s._domainkey.example.org. IN TXT ( \"v=DKIM1; k=rsa; p=AAA"));
    assert!(line.ends_with("AAAA\" )"), "{line}");
    assert_eq!(line.matches('"').count(), 4);
}

#[test]
fn keys_load_from_each_pem_form() {
    let rsa = PrivateKey::from_pem(rsa_pem().as_bytes()).unwrap();
    assert_eq!(rsa.algorithm, Algorithm::Rsa);
    assert!(rsa_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    // The public key is a SubjectPublicKeyInfo (30 82 01 22 for 2048 bits).
    assert_eq!(&rsa.public[..4], &[0x30, 0x82, 0x01, 0x22]);
    // PKCS#1, as older tools write.
    let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048).unwrap();
    let pkcs1 =
        PrivateKey::from_pem(pem("RSA PRIVATE KEY", pair.private_key()).as_bytes()).unwrap();
    assert_eq!(pkcs1.algorithm, Algorithm::Rsa);
    assert_eq!(pkcs1.public, key::spki_of_rsa(pair.public_key()));
    // Ed25519: our v1 form, and ring's v2 form with the public key.
    let (ed_pem, ed) = PrivateKey::generate(Algorithm::Ed25519, 0).unwrap();
    assert_eq!(ed.algorithm, Algorithm::Ed25519);
    assert_eq!(ed.public.len(), 32);
    assert_eq!(
        PrivateKey::from_pem(ed_pem.as_bytes()).unwrap().public,
        ed.public
    );
    let v2 = mail_auth::dkim::generate::DkimKeyPair::generate_ed25519().unwrap();
    let from_v2 = PrivateKey::from_pem(pem("PRIVATE KEY", v2.private_key()).as_bytes()).unwrap();
    assert_eq!(from_v2.public, v2.public_key());
    // What is not a key.
    for (text, why) in [
        ("hello\n".to_string(), "not a PEM private key"),
        (
            pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
            "not a usable RSA key",
        ),
        (
            pem("EC PRIVATE KEY", b"\x30\x03\x02\x01\x01"),
            "an EC key: DKIM signs with RSA or Ed25519 keys only",
        ),
    ] {
        let e = PrivateKey::from_pem(text.as_bytes()).unwrap_err();
        assert!(e.starts_with(why), "{e}");
    }
    assert!(
        PrivateKey::generate(Algorithm::Rsa, 1024)
            .unwrap_err()
            .contains("2048 to 4096")
    );
    let e = PrivateKey::load(std::path::Path::new("/nonexistent/k.pem")).unwrap_err();
    assert_eq!(e, "/nonexistent/k.pem: No such file or directory");
}

#[test]
fn a_published_record_is_compared_with_the_key() {
    let rsa = PrivateKey::from_pem(rsa_pem().as_bytes()).unwrap();
    let (_, ed) = PrivateKey::generate(Algorithm::Ed25519, 0).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let text = record::text(&rsa);
    assert!(text.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
    assert_eq!(record::compare(&text, &rsa), Ok(()));
    // As a resolver joins the strings, blanks and all; t=y, h=sha256.
    let spaced = format!(
        "v=DKIM1; h=sha256; t=y; k=rsa; p={} {}",
        &b64(&rsa.public)[..100],
        &b64(&rsa.public)[100..]
    );
    assert_eq!(record::compare(&spaced, &rsa), Ok(()));
    // No k=: rsa. The bare RSAPublicKey (PKCS#1) form is the same key.
    let bare = &rsa.public[24..];
    assert_eq!(key::spki_of_rsa(bare), rsa.public);
    assert_eq!(record::compare(&format!("p={}", b64(bare)), &rsa), Ok(()));
    assert_eq!(record::compare(&record::text(&ed), &ed), Ok(()));
    for (published, key, why) in [
        (
            record::text(&ed),
            &rsa,
            "k=ed25519, but the key is rsa (rsa-sha256)",
        ),
        (
            record::text(&rsa),
            &ed,
            "k=rsa, but the key is ed25519 (ed25519-sha256)",
        ),
        (
            "v=DKIM1; k=rsa; p=".to_string(),
            &rsa,
            "p= is empty: the key is revoked",
        ),
        ("v=DKIM1; k=rsa".to_string(), &rsa, "no p= tag"),
        ("v=DKIM2; p=AAAA".to_string(), &rsa, "v=DKIM2, not DKIM1"),
        ("v=spf1 -all".to_string(), &rsa, "v=spf1 -all, not DKIM1"),
        ("hello".to_string(), &rsa, "\"hello\" is not tag=value"),
        (
            format!("k=ed25519; p={}", b64(&[7; 32])),
            &ed,
            "p= is another key",
        ),
        (
            format!("h=sha1; {text}"),
            &rsa,
            "h=sha1 does not allow sha256",
        ),
        (format!("s=tlsrpt; {text}"), &rsa, "s=tlsrpt: not for email"),
    ] {
        let e = record::compare(&published, key).unwrap_err();
        assert!(e.starts_with(why), "{published}: {e}");
    }
}

#[test]
fn the_from_domain_is_the_first_address_of_the_first_from() {
    for (header, want) in [
        ("From: Alice <alice@Example.ORG>\r\n", Some("example.org")),
        ("from:alice@example.org\r\n", Some("example.org")),
        (
            "Subject: x\r\nFrom: \"Doe, John\" <j@a.example>, b@b.example\r\nFrom: c@c.example\r\n",
            Some("a.example"),
        ),
        (
            "From: =?utf-8?q?J=C3=B6rg?= <j@x.example> (comment)\r\n",
            Some("x.example"),
        ),
        (
            "From: Team: a@g.example, b@h.example;\r\n",
            Some("g.example"),
        ),
        (
            "From: Folded\r\n <f@fold.example>\r\n",
            Some("fold.example"),
        ),
        ("To: b@example.org\r\n", None),
        ("From: undisclosed\r\n", None),
    ] {
        assert_eq!(
            from_domain(header.as_bytes()).as_deref(),
            want,
            "{header:?}"
        );
    }
}

#[test]
fn the_header_section_ends_at_its_empty_line() {
    assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
    assert_eq!(header_end(b"\r\nbody"), Some(2));
    assert_eq!(header_end(b"A: b\r\nC: d\r\n"), None);
}

/// The fields of the signatures a message gets: one per key, in order,
/// each with the configured tags; From signed twice (oversigned).
#[test]
fn signing_makes_one_field_per_key() {
    let mut settings = crate::config::Config::builtin().dkim;
    settings.canonicalization = DkimCanonicalization::SimpleSimple;
    let dir = std::path::Path::new("/k");
    let rsa = Arc::new(Signer::new(
        entry("example.org", "rsa", dir),
        PrivateKey::from_pem(rsa_pem().as_bytes()).unwrap(),
        &settings,
    ));
    let (_, ed) = PrivateKey::generate(Algorithm::Ed25519, 0).unwrap();
    let ed = Arc::new(Signer::new(entry("example.org", "ed", dir), ed, &settings));
    let message = b"From: a@example.org\nTo: b@example.net\nSubject: hi\n\n.dot\nend";
    let signed = sign_message(&[rsa, ed], message).unwrap();
    let text = String::from_utf8(signed.fields).unwrap();
    assert_eq!(
        signed.signatures,
        [
            ("example.org".to_string(), "rsa".to_string()),
            ("example.org".to_string(), "ed".to_string())
        ]
    );
    let fields: Vec<&str> = text.split("DKIM-Signature: ").skip(1).collect();
    assert_eq!(fields.len(), 2, "{text}");
    assert!(fields[0].starts_with("v=1; a=rsa-sha256; s=rsa; d=example.org; c=simple/simple;"));
    assert!(fields[1].starts_with("v=1; a=ed25519-sha256; s=ed; d=example.org; c=simple/simple;"));
    let unfolded = text.replace("\r\n\t", "");
    assert!(
        unfolded.contains("h=Subject:To:From:From:Reply-To:Date:Cc:Message-ID:"),
        "{unfolded}"
    );
    // CRLF lines, each continuation folded with a tab, ending in CRLF.
    assert!(text.ends_with(";\r\n"));
    assert!(!text.replace("\r\n", "").contains('\n'));
    assert!(text.lines().all(|l| !l.starts_with('.')));
}

#[test]
fn a_key_is_read_again_when_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    let late = dir.path().join("late.key");
    std::fs::write(&good, rsa_pem()).unwrap();
    let mut settings = crate::config::Config::builtin().dkim;
    settings.keys = vec![
        entry("example.org", "a", &good),
        entry("example.net", "b", &late),
    ];
    let keys = Keys::load(&settings);
    assert_eq!(keys.for_domain("example.org").unwrap().len(), 1);
    assert!(keys.for_domain("other.example").unwrap().is_empty());
    let e = keys.for_domain("example.net").unwrap_err();
    assert_eq!(
        e,
        format!(
            "DKIM key b of example.net unusable: {}: No such file or directory",
            late.display()
        )
    );
    // A broken replacement is refused, the key before kept; the missing
    // file, once there, is used.
    std::fs::write(&good, "not a key\n").unwrap();
    let (ed_pem, _) = PrivateKey::generate(Algorithm::Ed25519, 0).unwrap();
    std::fs::write(&late, &ed_pem).unwrap();
    std::thread::sleep(crate::watch::CHECK_EVERY + std::time::Duration::from_millis(100));
    let kept = keys.for_domain("example.org").unwrap();
    assert_eq!(kept[0].algorithm, Algorithm::Rsa);
    let now = keys.for_domain("example.net").unwrap();
    assert_eq!(now[0].algorithm, Algorithm::Ed25519);
}

/// A `b=` value that ends a line leaves no fold before its `;` (which a
/// verifier would keep, and the signer did not hash).
#[test]
fn no_fold_before_the_last_semicolon() {
    use super::sign::without_trailing_fold;
    assert_eq!(
        without_trailing_fold("DKIM-Signature: a=b;\r\n\tb=AAAA\r\n\t;\r\n".into()),
        "DKIM-Signature: a=b;\r\n\tb=AAAA;\r\n"
    );
    let untouched = "DKIM-Signature: a=b;\r\n\tb=AAAA;\r\n";
    assert_eq!(without_trailing_fold(untouched.into()), untouched);
}

/// `postern check`: each key loads, is not everyone's, and is out of
/// smtpd's room.
#[test]
fn postern_check_reads_the_keys_and_keeps_them_from_smtpd() {
    use crate::check::Level;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str, mode: u32| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let good = write("good.key", rsa_pem(), 0o600);
    let open = write("open.key", rsa_pem(), 0o644);
    let junk = write("junk.key", "junk\n", 0o600);
    let mut config = crate::config::Config::builtin();
    config.dkim.keys = vec![
        entry("a.example", "s", &good),
        entry("b.example", "s", &open),
        entry("c.example", "s", &junk),
        entry("d.example", "s", &d.join("missing.key")),
    ];
    let text = |found: Vec<(Level, String)>| -> Vec<String> {
        found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect()
    };
    let etc = std::path::Path::new("/etc/postern/postern.toml");
    let found = text(check::keys(&config, Some(etc), &|_| None));
    let (o, j, m) = (open.display(), junk.display(), d.join("missing.key"));
    assert_eq!(
        found,
        [
            format!(
                "Warning: {o} (dkim.keys): readable by everyone (mode 644), but it is a private key: chown postern {o} && chmod 600 {o}"
            ),
            format!(
                "Error: dkim.keys: {j}: not a PEM private key (PKCS#8 or PKCS#1): mail from c.example would be deferred (4.7.5) until the key can be used"
            ),
            format!(
                "Error: dkim.keys: {}: No such file or directory: mail from d.example would be deferred (4.7.5) until the key can be used",
                m.display()
            ),
        ]
    );
    // The roles' user cannot read it: an error.
    config.dkim.keys.truncate(1);
    let found = text(check::keys(&config, Some(etc), &|_| Some("no".into())));
    assert_eq!(
        found,
        [format!(
            "Error: {} (dkim.keys): no: the smtp client could not sign with it",
            good.display()
        )]
    );
    // Beside the configuration, smtpd could read it.
    let found = text(check::keys(&config, Some(&d.join("postern.toml")), &|_| {
        None
    }));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(&format!(
            "Error: {} (dkim.keys): smtpd's sandbox can read it (through {}): keep DKIM keys",
            good.display(),
            d.display()
        )),
        "{found:?}"
    );
}
