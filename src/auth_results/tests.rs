use std::sync::Arc;

use hickory_resolver::proto::op::ResponseCode;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::spf::Spf;

use super::*;
use crate::dkim::KeyEntry;
use crate::dkim::key::{Algorithm, PrivateKey};
use crate::dkim::sign::{Signer, sign_message};

/// What a name missing from the fixed answers is.
pub(super) fn nxdomain() -> Txt {
    Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
        ResponseCode::NXDomain,
    )))
}

const ID: &str = "mx.postern.test";

fn verifier(records: &[(&str, Txt)]) -> Verifier {
    // A nameserver that is never asked: every name has a fixed answer.
    let mut v = Verifier::new(&["127.0.0.1:9".parse().unwrap()], ID).unwrap();
    v.fixed = Some(
        records
            .iter()
            .map(|(name, txt)| (format!("{name}.").into_boxed_str(), txt.clone()))
            .collect(),
    );
    v
}

fn spf(text: &str) -> Txt {
    Spf::parse(text.as_bytes()).unwrap().into()
}

fn dmarc(text: &str) -> Txt {
    Dmarc::parse(text.as_bytes()).unwrap().into()
}

/// A message from `a@example.org` signed with a new Ed25519 key of
/// `ed._domainkey.example.org`, in the stored form, and the key's record.
fn signed_message() -> (Vec<u8>, Txt) {
    let (pem, key) = PrivateKey::generate(Algorithm::Ed25519, 0).unwrap();
    let record = crate::dkim::record::text(&key);
    let entry = KeyEntry {
        domain: "example.org".into(),
        selector: "ed".into(),
        path: "/k".into(),
    };
    let settings = crate::config::Config::builtin().dkim;
    let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
    let signer = Arc::new(Signer::new(entry, key, &settings));
    let body = b"From: A <a@example.org>\nTo: b@example.net\nSubject: hi\n\nHello.\n";
    let signed = sign_message(&[signer], body).unwrap();
    let mut stored = String::from_utf8(signed.fields)
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    stored.extend_from_slice(body);
    let key = DomainKey::parse(record.as_bytes()).unwrap();
    (stored, key.into())
}

fn who(ip: &str, mail_from: &'static str) -> Identity<'static> {
    Identity {
        client_ip: ip.parse().unwrap(),
        helo: "mail.example.org",
        mail_from,
    }
}

fn unfolded(field: &str) -> String {
    assert!(
        field.starts_with("Authentication-Results: mx.postern.test;\n\t"),
        "{field}"
    );
    assert!(field.ends_with('\n') && !field.contains('\r'), "{field:?}");
    field.replace("\n\t", " ")
}

#[tokio::test]
async fn a_signed_message_from_a_permitted_address_passes_all_three() {
    let (message, key) = signed_message();
    let v = verifier(&[
        ("ed._domainkey.example.org", key),
        ("example.org", spf("v=spf1 ip4:192.0.2.0/24 -all")),
        ("mail.example.org", spf("v=spf1 ip4:192.0.2.1 -all")),
        ("_dmarc.example.org", dmarc("v=DMARC1; p=reject")),
    ]);
    let field = v.field(&message, &who("192.0.2.1", "a@example.org")).await;
    let text = unfolded(&field);
    assert!(
        text.contains("; dkim=pass header.d=example.org header.s=ed header.b="),
        "{text}"
    );
    assert!(text.contains("; spf=pass ("), "{text}");
    assert!(text.contains("smtp.mailfrom=a@example.org"), "{text}");
    assert!(text.contains("smtp.helo=mail.example.org"), "{text}");
    assert!(
        text.contains("; dmarc=pass header.from=example.org policy.dmarc=reject"),
        "{text}"
    );
}

#[tokio::test]
async fn a_changed_body_fails_dkim_and_an_other_address_fails_spf() {
    let (mut message, key) = signed_message();
    message.extend_from_slice(b"Added in transit.\n");
    let v = verifier(&[
        ("ed._domainkey.example.org", key),
        ("example.org", spf("v=spf1 ip4:192.0.2.0/24 -all")),
        ("_dmarc.example.org", dmarc("v=DMARC1; p=quarantine")),
    ]);
    let field = v
        .field(&message, &who("198.51.100.7", "a@example.org"))
        .await;
    let text = unfolded(&field);
    assert!(
        text.contains("; dkim=fail (body hash did not verify) header.d=example.org"),
        "{text}"
    );
    assert!(text.contains("; spf=fail ("), "{text}");
    assert!(text.contains("; spf=none ("), "{text}");
    assert!(text.contains("; dmarc=fail"), "{text}");
    assert!(text.contains("policy.dmarc=quarantine"), "{text}");
}

#[tokio::test]
async fn an_unsigned_message_without_records_has_none_everywhere() {
    let v = verifier(&[]);
    let message = b"From: x@example.com\nSubject: s\n\nbody\n";
    let field = v.field(message, &who("203.0.113.5", "")).await;
    let text = unfolded(&field);
    assert!(text.contains("; dkim=none"), "{text}");
    assert!(text.contains("smtp.mailfrom=<>"), "{text}");
    assert!(text.contains("; dmarc=none"), "{text}");
}

#[test]
fn our_authserv_id_is_recognised_in_a_received_field() {
    assert!(is_ours(b" mx.postern.test; dkim=pass", ID));
    assert!(is_ours(b" MX.Postern.Test;\n\tspf=pass", ID));
    assert!(is_ours(b" (forged) mx.postern.test 1; none", ID));
    assert!(is_ours(b"mx.postern.test; none", ID));
    assert!(!is_ours(b" mx.example.net; dkim=pass", ID));
    assert!(!is_ours(b" mx.postern.test.example.net; none", ID));
    assert!(!is_ours(b"", ID));
}

#[test]
fn fields_claiming_our_id_are_removed_and_no_others() {
    let message = b"Received: from x\n\
Authentication-Results: mx.postern.test;\n\tdkim=pass header.d=bank.example\n\
authentication-results : other.example; spf=pass\n\
Subject: Authentication-Results: mx.postern.test; none\n\
AUTHENTICATION-RESULTS: (c) MX.POSTERN.TEST; none\n\
\n\
Authentication-Results: mx.postern.test; none\n";
    let (kept, removed) = without_ours(message, ID).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        String::from_utf8(kept).unwrap(),
        "Received: from x\n\
authentication-results : other.example; spf=pass\n\
Subject: Authentication-Results: mx.postern.test; none\n\
\n\
Authentication-Results: mx.postern.test; none\n"
    );
    assert!(without_ours(b"Subject: s\n\nbody\n", ID).is_none());
    assert!(without_ours(b"", ID).is_none());
}
