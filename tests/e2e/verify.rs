//! Issue 19, verification on arrival: mail from outside (127.0.0.3 and
//! 127.0.0.4, not in relay.networks) gets one `Authentication-Results:`
//! field below smtpd's `Received:`, with DKIM (messages signed by an
//! independent implementation, Debian's dkimpy), SPF and DMARC checked
//! against the test DNS server; a forged field with our authserv-id is
//! removed; DMARC `p=reject` does what `verify.dmarc_reject` says.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::outbound::dns::{DnsServer, Zone};

/// dkimpy signs the message file argv[1] with the RSA key argv[2] as
/// selector argv[3] of domain argv[4], relaxed/relaxed; the signed
/// message on stdout.
const SIGN: &str = r#"
import sys, dkim
msg = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
sig = dkim.sign(msg, sys.argv[3].encode(), sys.argv[4].encode(), key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write(sig + msg)
"#;

/// A message signed by dkimpy with `key` as `sel._domainkey.DOMAIN`.
pub fn dkimpy_sign(message: &[u8], key: &Path, domain: &str) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), message).unwrap();
    let out = Command::new(crate::dkim::python())
        .arg("-c")
        .arg(SIGN)
        .arg(file.path())
        .arg(key)
        .args(["sel", domain])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy (apt-get install python3-dkim; .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An RSA-2048 key made by openssl in `dir`, and its DKIM record's text.
pub fn rsa_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("sel.key");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(der.status.success());
    use base64::Engine;
    let p = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
    (key, format!("v=DKIM1; k=rsa; p={p}"))
}

/// The test's world: a DKIM key of example.org, SPF that allows
/// 127.0.0.3 (not .4) for example.org, example.net and the HELO name
/// three.example, DMARC `p=reject` for example.org, `p=none; sp=reject`
/// for example.com, and a name that never answers.
struct World {
    p: Postern,
    _dns: DnsServer,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

fn world(verify: &str) -> World {
    world_with(verify, "")
}

fn world_with(verify: &str, tables: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = rsa_key(dir.path());
    let allow = "v=spf1 ip4:127.0.0.3 -all";
    let dns = DnsServer::start(
        Zone::new()
            .txt("sel._domainkey.example.org", &record)
            .txt("example.org", allow)
            .txt("example.net", allow)
            .txt("three.example", allow)
            .txt("four.example", allow)
            .txt("_dmarc.example.org", "v=DMARC1; p=reject")
            .txt("_dmarc.example.com", "v=DMARC1; p=none; sp=reject")
            .a("example.com", "192.0.2.1")
            .a("sub.example.com", "192.0.2.1")
            .silent("silent.example")
            .silent("_dmarc.silent.example"),
    );
    // Only 127.0.0.1 is ours: .3 and .4 are outsiders.
    let p = Postern::start(&format!(
        "[relay]\nnetworks = [\"127.0.0.1/32\"]\n\n{}\n[verify]\n{verify}\n\n{tables}",
        dns.config_table()
    ));
    World {
        p,
        _dns: dns,
        key,
        _dir: dir,
    }
}

fn message(from: &str, extra: &str) -> Vec<u8> {
    format!(
        "{extra}From: A <{from}>\r\nTo: {}@mail.test.example\r\nSubject: verify\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <v@example.org>\r\n\r\n\
         Hello.\r\nlast line\r\n",
        me()
    )
    .into_bytes()
}

/// One transaction from `source`, HELO `helo`, MAIL FROM `sender`: the
/// reply to the message.
fn send_from(p: &Postern, source: &str, helo: &str, sender: &str, data: &[u8]) -> String {
    let mut c = p.client_from(source);
    assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert_eq!(c.cmd(&format!("MAIL FROM:<{sender}>")), "250 2.1.0 Ok");
    let rcpt = format!("RCPT TO:<{}@mail.test.example>", me());
    assert_eq!(c.cmd(&rcpt), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let text = String::from_utf8(data.to_vec()).unwrap();
    let r = c.cmd(&format!("{}.", text.replace("\r\n.", "\r\n..")));
    c.cmd("QUIT");
    r
}

/// The delivered file's header fields up to the client's (the first
/// `From:`), each unfolded.
fn top_fields(file: &Path) -> Vec<String> {
    let text = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().unwrap();
            last.push(' ');
            last.push_str(line.trim());
        } else {
            fields.push(line.to_string());
        }
    }
    fields
}

fn auth_results(fields: &[String]) -> Vec<&String> {
    fields
        .iter()
        .filter(|f| f.starts_with("Authentication-Results:"))
        .collect()
}

#[test]
fn issue_19_mail_signed_by_dkimpy_passes_and_a_forged_field_is_removed() {
    let w = world("");
    let forged = "Authentication-Results: mail.test.example; dkim=pass header.d=bank.example\r\n";
    let signed = dkimpy_sign(&message("a@example.org", forged), &w.key, "example.org");
    let r = send_from(&w.p, "127.0.0.3", "three.example", "a@example.org", &signed);
    let id = queue_id(&r);
    let file = &w.p.wait_delivered(&me(), 1, 20)[0];
    let fields = top_fields(file);
    let ours = auth_results(&fields);
    assert_eq!(ours.len(), 1, "{fields:#?}");
    let ours = ours[0];
    for part in [
        "Authentication-Results: mail.test.example;",
        // dkimpy writes i=@example.org, which mail-auth (as Gmail)
        // reports instead of d=.
        "dkim=pass header.i=@example.org header.s=sel",
        "spf=pass",
        "smtp.mailfrom=a@example.org",
        "smtp.helo=three.example",
        "dmarc=pass",
        "header.from=example.org",
    ] {
        assert!(ours.contains(part), "{part} not in {ours}");
    }
    // Right below our Received, above the client's fields.
    let at = fields.iter().position(|f| f == ours).unwrap();
    assert!(
        fields[at - 1].starts_with("Received: from three.example"),
        "{fields:#?}"
    );
    assert!(fields[at - 1].contains(&format!("id {id}")));
    assert!(fields[at + 1].starts_with("DKIM-Signature:"), "{fields:#?}");
    // The rest is the signed message without the forged field, unchanged.
    let data = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&data);
    let rest = &text[text.find("DKIM-Signature:").unwrap()..];
    let want = String::from_utf8(lf(&signed))
        .unwrap()
        .replace(&forged.replace("\r\n", "\n"), "");
    assert_eq!(rest, want);
    let log = w.p.log();
    assert!(log.contains(&format!(
        "{id}: removed 1 Authentication-Results header(s) claiming mail.test.example"
    )));
    assert!(
        log.contains(&format!(
            "{id}: Authentication-Results: dkim=pass spf=pass dmarc=pass (p=reject from example.org)"
        )),
        "{log}"
    );
}

#[test]
fn issue_19_a_message_changed_after_signing_fails_dkim_and_dmarc_follows_spf() {
    let w = world("");
    let signed = dkimpy_sign(&message("a@example.org", ""), &w.key, "example.org");
    let tampered = String::from_utf8(signed)
        .unwrap()
        .replace("last line", "last line!")
        .into_bytes();
    // From an allowed address: SPF passes, aligned, so DMARC passes.
    let r = send_from(
        &w.p,
        "127.0.0.3",
        "three.example",
        "a@example.org",
        &tampered,
    );
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    let ours = auth_results(&fields)[0];
    assert!(ours.contains("dkim=fail"), "{ours}");
    assert!(
        ours.contains("(body hash did not verify) header.i=@example.org"),
        "{ours}"
    );
    assert!(ours.contains("dmarc=pass"), "{ours}");
    // From 127.0.0.4: SPF fails too, DMARC fails under p=reject.
    let r = send_from(
        &w.p,
        "127.0.0.4",
        "three.example",
        "a@example.org",
        &tampered,
    );
    assert_eq!(r, "550 5.7.1 rejected by DMARC policy for example.org");
    let log = w.p.log();
    assert!(
        log.contains("reject: END-OF-MESSAGE from unknown[127.0.0.4]: 550 5.7.1 rejected by DMARC policy for example.org; from=<a@example.org> proto=ESMTP helo=<three.example>"),
        "{log}"
    );
    assert_eq!(w.p.delivered(&me()).len(), 1);
}

#[test]
fn issue_19_dmarc_unaligned_and_subdomain_policies() {
    let w = world("");
    // SPF passes for example.net, but From: is example.org: unaligned.
    let unsigned = message("a@example.org", "");
    let r = send_from(
        &w.p,
        "127.0.0.3",
        "three.example",
        "b@example.net",
        &unsigned,
    );
    assert_eq!(r, "550 5.7.1 rejected by DMARC policy for example.org");
    // example.com says p=none, sp=reject: its own mail passes with the
    // field saying fail, a subdomain's is refused.
    let r = send_from(
        &w.p,
        "127.0.0.4",
        "four.example",
        "a@example.com",
        &message("a@example.com", ""),
    );
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    let ours = auth_results(&fields)[0];
    assert!(ours.contains("spf=fail"), "{ours}");
    assert!(ours.contains("dmarc=fail"), "{ours}");
    assert!(ours.contains("policy.dmarc=none"), "{ours}");
    let sub = message("a@sub.example.com", "");
    let r = send_from(&w.p, "127.0.0.4", "four.example", "a@sub.example.com", &sub);
    assert_eq!(r, "550 5.7.1 rejected by DMARC policy for sub.example.com");
}

#[test]
fn issue_19_dmarc_reject_hold_and_header_only() {
    let unsigned = message("a@example.org", "");
    let w = world("dmarc_reject = \"hold\"");
    let r = send_from(
        &w.p,
        "127.0.0.4",
        "four.example",
        "a@example.org",
        &unsigned,
    );
    let id = queue_id(&r);
    w.p.wait_log(&format!("{id}: on hold"), 1, 10);
    assert!(w.p.log().contains(&format!(
        "{id}: hold: END-OF-MESSAGE from unknown[127.0.0.4]: DMARC policy of example.org"
    )));
    assert!(w.p.delivered(&me()).is_empty());
    drop(w);
    let w = world("dmarc_reject = \"header\"");
    let r = send_from(
        &w.p,
        "127.0.0.4",
        "four.example",
        "a@example.org",
        &unsigned,
    );
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    let ours = auth_results(&fields)[0];
    assert!(ours.contains("dmarc=fail"), "{ours}");
    assert!(ours.contains("policy.dmarc=reject"), "{ours}");
}

#[test]
fn issue_19_dns_that_never_answers_is_a_temperror_and_the_mail_is_accepted() {
    let w = world("");
    let m = message("a@silent.example", "");
    let r = send_from(&w.p, "127.0.0.3", "three.example", "a@silent.example", &m);
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 40)[0]);
    let ours = auth_results(&fields)[0];
    assert!(ours.contains("spf=temperror"), "{ours}");
    assert!(ours.contains("dmarc=temperror"), "{ours}");
}

#[test]
fn issue_19_mail_from_our_own_networks_is_not_verified() {
    let w = world("");
    let m = message("a@example.org", "");
    let r = send_from(&w.p, "127.0.0.1", "three.example", "a@example.org", &m);
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    assert!(auth_results(&fields).is_empty(), "{fields:#?}");
    // And with verification off, outsiders are not either.
    drop(w);
    let w = world("inbound = false");
    let r = send_from(&w.p, "127.0.0.4", "four.example", "a@example.org", &m);
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    assert!(auth_results(&fields).is_empty(), "{fields:#?}");
}

/// A message above `queue.large_message_threshold` (its own file while
/// it comes in) is verified and rewritten the same way.
#[test]
fn issue_19_a_large_message_spilled_to_its_file_gets_the_field_too() {
    let queue = "[queue]\ndirectory = \"{dir}/queue\"\nlarge_message_threshold = 4096\n";
    let w = world_with("", queue);
    let big = format!(
        "Big.\r\n{}\r\nlast line\r\n",
        "0123456789abcdef ".repeat(30_000)
    );
    let m = String::from_utf8(message("a@example.org", "")).unwrap();
    let m = m.replace("Hello.\r\nlast line\r\n", &big);
    let forged = "Authentication-Results: mail.test.example; dmarc=pass\r\n";
    let signed = dkimpy_sign(format!("{forged}{m}").as_bytes(), &w.key, "example.org");
    let r = send_from(&w.p, "127.0.0.3", "three.example", "a@example.org", &signed);
    queue_id(&r);
    let file = &w.p.wait_delivered(&me(), 1, 20)[0];
    let fields = top_fields(file);
    let ours = auth_results(&fields);
    assert_eq!(ours.len(), 1, "{fields:#?}");
    assert!(ours[0].contains("dkim=pass"), "{}", ours[0]);
    let data = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
    let rest = &data[data.find("DKIM-Signature:").unwrap()..];
    let want = String::from_utf8(lf(&signed))
        .unwrap()
        .replace(&forged.replace("\r\n", "\n"), "");
    assert!(rest == want, "the content changed");
}

/// RCPT from `source` with MAIL FROM `sender`: the reply to RCPT.
fn rcpt_from(p: &Postern, source: &str, helo: &str, sender: &str) -> String {
    let mut c = p.client_from(source);
    assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert_eq!(c.cmd(&format!("MAIL FROM:<{sender}>")), "250 2.1.0 Ok");
    let r = c.cmd(&format!("RCPT TO:<{}@mail.test.example>", me()));
    c.cmd("QUIT");
    r
}

#[test]
fn issue_19_reject_spf_fail_at_rcpt() {
    let tables = "[restrictions]\nrecipient = [\"reject_spf_fail\"]\n";
    let w = world_with("", tables);
    let r = rcpt_from(&w.p, "127.0.0.4", "four.example", "a@example.org");
    assert_eq!(
        r,
        "550 5.7.23 <a@example.org>: Sender address rejected: SPF fail: \
         127.0.0.4 is not a permitted sender of example.org"
    );
    let log = w.p.log();
    assert!(
        log.contains(&format!(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.4]: {r}; from=<a@example.org> \
             to=<{}@mail.test.example> proto=ESMTP helo=<four.example>",
            me()
        )),
        "{log}"
    );
    // Allowed, or no SPF record: on to the message; the field reuses
    // the result made at RCPT.
    assert_eq!(
        rcpt_from(&w.p, "127.0.0.3", "three.example", "a@example.org"),
        "250 2.1.5 Ok"
    );
    assert_eq!(
        rcpt_from(&w.p, "127.0.0.4", "four.example", "a@nospf.example"),
        "250 2.1.5 Ok"
    );
    let m = message("a@example.net", "");
    let r = send_from(&w.p, "127.0.0.3", "three.example", "a@example.net", &m);
    queue_id(&r);
    let fields = top_fields(&w.p.wait_delivered(&me(), 1, 20)[0]);
    assert!(auth_results(&fields)[0].contains("spf=pass"), "{fields:#?}");
}

#[test]
fn issue_19_check_spf_results_as_access_actions() {
    let tables = "[restrictions]\nrecipient = [\"check_spf inline:spf\"]\n\n\
                  [maps.spf]\n\
                  \"fail\" = \"REJECT 5.7.23 SPF says no\"\n\
                  \"none\" = \"HOLD no SPF record\"\n\
                  \"temperror\" = \"DEFER_IF_PERMIT 4.7.24 SPF lookup failed\"\n";
    let w = world_with("", tables);
    let r = rcpt_from(&w.p, "127.0.0.4", "four.example", "a@example.org");
    assert_eq!(
        r,
        "554 5.7.23 <a@example.org>: Sender address rejected: SPF says no"
    );
    let r = rcpt_from(&w.p, "127.0.0.4", "four.example", "a@silent.example");
    assert_eq!(
        r,
        "450 4.7.24 <a@silent.example>: Sender address rejected: SPF lookup failed"
    );
    let m = message("a@nospf.example", "");
    let r = send_from(&w.p, "127.0.0.4", "four.example", "a@nospf.example", &m);
    let id = queue_id(&r);
    w.p.wait_log(&format!("{id}: on hold"), 1, 10);
}
