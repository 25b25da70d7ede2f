//! The access policy over SMTP (issue 8): restriction lists with access
//! tables in the classic style, DNS blocklists and sender domain checks
//! against a DNS server the test runs on loopback, the transaction
//! actions (DISCARD, WARN, PREPEND), the lists at their own commands
//! without delay_reject, and the policy tracer (`postern policy test`)
//! answering "am I an open relay?". Reject lines must match the regexes
//! fail2ban's postfix filter uses.
//!
//! Clients other than 127.0.0.1 are outsiders: `relay.networks` is
//! 127.0.0.1/32 in every test here.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::outbound::dns::{DnsServer, Zone};

/// A postern whose DNS is `dns`, with 127.0.0.1 as the only trusted
/// client, and `tables` added.
fn postern(dns: &DnsServer, tables: &str) -> Postern {
    Postern::start(&format!(
        "{}[relay]\nnetworks = [\"127.0.0.1/32\"]\n\n{tables}",
        dns.config_table()
    ))
}

/// EHLO and MAIL FROM from `source`; the client, ready for RCPT.
fn transaction(p: &Postern, source: &str, helo: &str, from: &str) -> Client {
    let mut c = p.client_from(source);
    assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")), "250 2.1.0 Ok");
    c
}

/// The hosts fail2ban's postfix filter would ban in `log`: its
/// `NOQUEUE: reject: RCPT from \S+\[<HOST>\]: 554 5\.7\.1` rule, run by
/// Python's `re` with `<HOST>` as fail2ban expands it for addresses.
fn fail2ban_hosts(log: &str) -> Vec<String> {
    let script = r#"
import re, sys
rule = r"NOQUEUE: reject: RCPT from \S+\[<HOST>\]: 554 5\.7\.1 "
rule = rule.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)")
for line in sys.stdin:
    m = re.search(r"postern/smtpd\[\d+\]: " + rule, line)
    if m:
        print(m.group("host"))
"#;
    let out = run_with_input(
        std::process::Command::new("python3").args(["-c", script]),
        log.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The client's name: hickory, like the system's resolver with
/// /etc/hosts, answers reverse lookups of 127/8 itself (RFC 6761):
/// 127.0.0.1 is `localhost` (its forward lookup leads back to it), any
/// other loopback address has no verified name. So the host name this
/// test rejects is `localhost`.
#[test]
fn badclient_table_rejects_a_name_and_an_address_and_lets_a_friend_through() {
    let dns = DnsServer::start(
        Zone::new()
            // The friend is on the blocklist; its OK comes first.
            .a("4.0.0.127.bl.test", "127.0.0.2")
            .a("6.0.0.127.bl.test", "127.0.0.2"),
    );
    let p = postern(
        &dns,
        "[restrictions]\nclient = [\"inline:badclient\", \"reject_rbl_client bl.test\"]\n\n\
         [maps.badclient]\n\
         \"localhost\" = \"REJECT\"\n\
         \"127.0.0.5\" = \"REJECT blocked by address\"\n\
         \"127.0.0.4\" = \"OK\"\n",
    );
    let me = format!("{}@localhost", p.user);
    // Even a trusted client: the client list runs before the relay list.
    let mut c = transaction(&p, "127.0.0.1", "client.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    );
    let mut c = transaction(&p, "127.0.0.5", "five.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 <unknown[127.0.0.5]>: Client host rejected: blocked by address"
    );
    let mut c = transaction(&p, "127.0.0.4", "mx.friend.example", "a@example.org");
    assert_eq!(c.cmd(&format!("RCPT TO:<{me}>")), "250 2.1.5 Ok");
    // A friend is a friend for local mail only: relaying is another list.
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.example>"),
        "554 5.7.1 <x@elsewhere.example>: Relay access denied"
    );
    // Listed and not a friend: refused.
    let mut c = transaction(&p, "127.0.0.6", "six.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 Service unavailable; Client host [127.0.0.6] blocked using bl.test"
    );
    p.wait_log("connect from localhost[127.0.0.1]", 1, 5);
    p.wait_log(
        &format!(
            "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 \
             <localhost[127.0.0.1]>: Client host rejected: Access denied; \
             from=<a@example.org> to=<{me}> proto=ESMTP helo=<client.example>"
        ),
        1,
        5,
    );
    p.wait_log("connect from unknown[127.0.0.4]", 1, 5);
    p.wait_log(
        "hostname localhost does not resolve to address 127.0.0.4",
        1,
        5,
    );
    let banned = fail2ban_hosts(&p.log());
    // Every 554 5.7.1 counts, the friend's relay attempt too.
    assert_eq!(
        banned,
        vec!["127.0.0.1", "127.0.0.5", "127.0.0.4", "127.0.0.6"]
    );
}

#[test]
fn dnsbl_listed_is_refused_with_its_text_not_listed_and_timeouts_pass() {
    let dns = DnsServer::start(
        Zone::new()
            .a("3.0.0.127.zen.test", "127.0.0.2")
            .txt(
                "3.0.0.127.zen.test",
                "Listed by zen.test, see https://zen.test/q?ip=127.0.0.3",
            )
            // An answer outside the filter: not listed.
            .a("4.0.0.127.zen.test", "127.0.0.1")
            .silent("6.0.0.127.zen.test"),
    );
    let p = postern(
        &dns,
        "[restrictions]\nclient = [\"reject_rbl_client zen.test=127.0.0.[2..11]\"]\n",
    );
    let me = format!("{}@localhost", p.user);
    let mut c = transaction(&p, "127.0.0.3", "three.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using zen.test; \
         Listed by zen.test, see https://zen.test/q?ip=127.0.0.3"
    );
    for source in ["127.0.0.4", "127.0.0.5"] {
        let mut c = transaction(&p, source, "client.example", "a@example.org");
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{me}>")),
            "250 2.1.5 Ok",
            "{source}"
        );
    }
    // The blocklist does not answer: the client is not refused, within
    // the lookup deadline.
    let mut c = transaction(&p, "127.0.0.6", "six.example", "a@example.org");
    let started = Instant::now();
    assert_eq!(c.cmd(&format!("RCPT TO:<{me}>")), "250 2.1.5 Ok");
    assert!(started.elapsed() < Duration::from_secs(15));
    p.wait_log("6.0.0.127.zen.test: RBL lookup error", 1, 5);
    assert!(
        dns.queries()
            .contains(&("3.0.0.127.zen.test".to_string(), "TXT".to_string()))
    );
    p.wait_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1 Service unavailable; \
         Client host [127.0.0.3] blocked using zen.test; Listed by zen.test",
        1,
        5,
    );
    assert_eq!(fail2ban_hosts(&p.log()), vec!["127.0.0.3"]);
}

#[test]
fn dns_failure_defer_turns_a_timeout_into_a_4xx() {
    let dns = DnsServer::start(Zone::new().silent("6.0.0.127.zen.test"));
    let p = postern(
        &dns,
        "[restrictions]\ndns_failure = \"defer\"\nclient = [\"reject_rbl_client zen.test\"]\n",
    );
    let mut c = transaction(&p, "127.0.0.6", "six.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{}@localhost>", p.user)),
        "450 4.7.1 <unknown[127.0.0.6]>: Client host rejected: Temporary DNS failure looking up 6.0.0.127.zen.test"
    );
}

#[test]
fn unknown_sender_domains_get_postfix_codes() {
    let dns = DnsServer::start(
        Zone::new()
            .mx("good.test", 10, "mx.good.test")
            .a("mx.good.test", "127.0.0.10")
            .a("a-only.test", "127.0.0.11")
            // Exists (a TXT record) without MX, A or AAAA: NOERROR, no data.
            .txt("nodata.test", "v=spf1 -all")
            .null_mx("nullmx.test")
            .servfail("broken.test"),
    );
    let p = postern(
        &dns,
        "[restrictions]\nsender = [\"reject_unknown_sender_domain\"]\n",
    );
    let me = format!("{}@localhost", p.user);
    let rcpt = |from: &str| {
        let mut c = transaction(&p, "127.0.0.3", "client.example", from);
        c.cmd(&format!("RCPT TO:<{me}>"))
    };
    assert_eq!(rcpt("a@good.test"), "250 2.1.5 Ok");
    assert_eq!(rcpt("a@a-only.test"), "250 2.1.5 Ok");
    assert_eq!(
        rcpt("a@nowhere.test"),
        "450 4.1.8 <a@nowhere.test>: Sender address rejected: Domain not found"
    );
    assert_eq!(
        rcpt("a@nodata.test"),
        "450 4.1.8 <a@nodata.test>: Sender address rejected: Domain not found"
    );
    assert_eq!(
        rcpt("a@nullmx.test"),
        "550 5.7.27 <a@nullmx.test>: Sender address rejected: Domain nullmx.test does not accept mail (nullMX)"
    );
    // A DNS failure is not a reason to refuse.
    assert_eq!(rcpt("a@broken.test"), "250 2.1.5 Ok");
    // Bounces have no domain to check.
    assert_eq!(rcpt(""), "250 2.1.5 Ok");
    p.wait_log(
        &format!(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 450 4.1.8 <a@nowhere.test>: \
             Sender address rejected: Domain not found; from=<a@nowhere.test> to=<{me}> \
             proto=ESMTP helo=<client.example>"
        ),
        1,
        5,
    );
}

/// The classic sender access table; `spec` is the table.
fn sender_access(p: &Postern) {
    let me = format!("{}@localhost", p.user);
    let rcpt = |from: &str| {
        let mut c = transaction(p, "127.0.0.3", "client.example", from);
        c.cmd(&format!("RCPT TO:<{me}>"))
    };
    assert_eq!(
        rcpt("anyone@spammer.example"),
        "554 5.7.1 <anyone@spammer.example>: Sender address rejected: Access denied"
    );
    assert_eq!(
        rcpt("boss@partner.example"),
        "554 5.7.1 <boss@partner.example>: Sender address rejected: not from you"
    );
    assert_eq!(rcpt("other@partner.example"), "250 2.1.5 Ok");
    assert_eq!(
        rcpt("x@sub.spammer.example"),
        "554 5.7.1 <x@sub.spammer.example>: Sender address rejected: Access denied"
    );
    assert_eq!(
        rcpt("later@example.org"),
        "450 4.7.1 <later@example.org>: Sender address rejected: try tomorrow"
    );
    assert_eq!(rcpt("a@example.org"), "250 2.1.5 Ok");
}

#[test]
fn sender_access_inline_table() {
    let dns = DnsServer::start(Zone::new());
    let p = postern(
        &dns,
        "[restrictions]\nsender = [\"check_sender_access inline:sender_access\"]\n\n\
         [maps.sender_access]\n\
         \"spammer.example\" = \"REJECT\"\n\
         \"boss@partner.example\" = \"REJECT not from you\"\n\
         \"later@\" = \"DEFER try tomorrow\"\n",
    );
    sender_access(&p);
}

#[test]
fn sender_access_hash_file() {
    let dns = DnsServer::start(Zone::new());
    let p = postern(
        &dns,
        "[restrictions]\nsender = [\"check_sender_access hash:{dir}/sender_access\"]\n",
    );
    write_file(
        &p.dir.path().join("sender_access"),
        b"# classic access(5) file\nspammer.example      REJECT\nboss@partner.example REJECT not from you\nlater@               DEFER try tomorrow\n",
    );
    sender_access(&p);
}

#[test]
fn discard_warn_and_prepend_act_on_the_transaction() {
    let dns = DnsServer::start(Zone::new());
    let p = postern(
        &dns,
        "[restrictions]\nsender = [\"inline:senders\"]\n\n\
         [maps.senders]\n\
         \"discard@example.org\" = \"DISCARD\"\n\
         \"watched@example.org\" = \"WARN watched sender\"\n\
         \"tagged@example.org\" = \"PREPEND X-Policy: tagged by postern\"\n",
    );
    let user = p.user.clone();
    let me = format!("{user}@localhost");
    let send = |from: &str| {
        let mut c = transaction(&p, "127.0.0.3", "client.example", from);
        assert_eq!(c.cmd(&format!("RCPT TO:<{me}>")), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!("Subject: from {from}\r\n\r\nbody\r\n."));
        assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
        c.cmd("QUIT");
        r.rsplit(' ').next().unwrap().to_string()
    };
    let discarded = send("discard@example.org");
    send("watched@example.org");
    send("tagged@example.org");
    let files = p.wait_delivered(&user, 2, 20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.delivered(&user).len(), 2, "the discarded message arrived");
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let tagged = texts
        .iter()
        .find(|t| t.contains("Subject: from tagged@example.org"))
        .unwrap();
    // PREPEND puts the header above smtpd's Received header.
    let (before, _) = tagged.split_once("Received: ").unwrap();
    assert!(before.contains("X-Policy: tagged by postern\n"), "{tagged}");
    p.wait_log(
        &format!(
            "NOQUEUE: discard: RCPT from unknown[127.0.0.3]: <discard@example.org>: Sender \
             address triggers DISCARD action; from=<discard@example.org> to=<{me}> proto=ESMTP \
             helo=<client.example>"
        ),
        1,
        5,
    );
    p.wait_log(&format!("{discarded}: removed (discarded)"), 1, 5);
    p.wait_log(
        &format!(
            "NOQUEUE: warn: RCPT from unknown[127.0.0.3]: watched sender; \
             from=<watched@example.org> to=<{me}> proto=ESMTP helo=<client.example>"
        ),
        1,
        5,
    );
}

#[test]
fn without_delay_reject_the_client_list_refuses_the_connection() {
    let dns = DnsServer::start(Zone::new());
    let p = Postern::start(&format!(
        "{}[restrictions]\ndelay_reject = false\nclient = [\"inline:c\"]\n\
         helo = [\"reject_invalid_helo_hostname\"]\n\n[maps.c]\n\"127.0.0.1\" = \"REJECT\"\n",
        dns.config_table()
    ));
    let stream = std::net::TcpStream::connect(p.addr).unwrap();
    let (mut c, greeting) = Client::greeted(stream);
    assert_eq!(
        greeting,
        "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    );
    assert_eq!(
        c.cmd("EHLO client.example"),
        "503 5.7.0 Error: access denied for localhost[127.0.0.1]"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>"),
        "503 5.7.0 Error: access denied for localhost[127.0.0.1]"
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    p.wait_log(
        "NOQUEUE: reject: CONNECT from localhost[127.0.0.1]: 554 5.7.1 \
         <localhost[127.0.0.1]>: Client host rejected: Access denied; proto=SMTP",
        1,
        5,
    );
    // Another client is greeted; its HELO list runs at EHLO.
    let mut c = p.client_from("127.0.0.3");
    assert_eq!(
        c.cmd("EHLO bad..name"),
        "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"
    );
    assert!(c.cmd("EHLO good.example").starts_with("250-"));
    p.wait_log(
        "NOQUEUE: reject: EHLO from unknown[127.0.0.3]: 501 5.5.2 <bad..name>: Helo command \
         rejected: Invalid name; proto=SMTP helo=<bad..name>",
        1,
        5,
    );
}

#[test]
fn open_relay_probe_with_the_tracer_and_over_smtp() {
    let dns = DnsServer::start(Zone::new());
    let p = postern(&dns, "");
    // Text.
    let out = p.postern(&[
        "policy",
        "test",
        "--client",
        "203.0.113.9",
        "--from",
        "a@example.org",
        "--to",
        "b@elsewhere.example",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "reject_unauth_destination → 554 5.7.1 <b@elsewhere.example>: Relay access denied"
        ),
        "{text}"
    );
    assert!(text.contains("permit_mynetworks → no decision"), "{text}");
    assert!(
        text.contains("203.0.113.9 is not in relay.networks"),
        "{text}"
    );
    assert!(
        text.contains("DNS 9.113.0.203.in-addr.arpa PTR → NXDOMAIN"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("rejected"), "{text}");
    // JSON, and a trusted client may relay.
    let json = |client: &str, to: &str| {
        let out = p.postern(&[
            "policy",
            "test",
            "--client",
            client,
            "--client-name",
            "c.example",
            "--helo",
            "c.example",
            "--from",
            "a@example.org",
            "--to",
            to,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code(), v)
    };
    let (code, v) = json("203.0.113.9", "b@elsewhere.example");
    assert_eq!(code, Some(1));
    assert_eq!(v["accepted"], false);
    assert_eq!(v["client"]["name"], "c.example");
    let rcpt = &v["recipients"][0];
    assert_eq!(
        rcpt["reply"],
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
    let relay = rcpt["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["stage"] == "relay")
        .unwrap();
    assert_eq!(relay["steps"][1]["element"], "reject_unauth_destination");
    assert_eq!(relay["result"], rcpt["reply"]);
    let (code, v) = json("127.0.0.1", "b@elsewhere.example");
    assert_eq!((code, &v["accepted"]), (Some(0), &serde_json::json!(true)));
    let (code, _) = json("203.0.113.9", &format!("{}@localhost", p.user));
    assert_eq!(code, Some(0));
    // Over SMTP: the same answer.
    let mut c = transaction(&p, "127.0.0.3", "outsider.example", "a@example.org");
    assert_eq!(
        c.cmd("RCPT TO:<b@elsewhere.example>"),
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
    p.wait_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1",
        1,
        5,
    );
    assert_eq!(fail2ban_hosts(&p.log()), vec!["127.0.0.3"]);
}

#[test]
fn a_typo_in_a_restriction_is_refused_with_its_line() {
    let p = Postern::configure(
        "[restrictions]\nclient = [\n  \"permit_mynetworks\",\n  \"reject_rbl_clinet zen.example\",\n]\n",
        &[],
        None,
    );
    let out = p.postern(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = p.config.to_string_lossy().to_string();
    let text = std::fs::read_to_string(&p.config).unwrap();
    let n = text
        .lines()
        .position(|l| l.contains("reject_rbl_clinet"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "{line}:{n}: key `restrictions.client`: bad value \"reject_rbl_clinet\""
        )),
        "{err}"
    );
    assert!(err.contains("did you mean \"reject_rbl_client\""), "{err}");
}

/// Issue 19: `postern policy test --message FILE` shows what smtpd's
/// verification at the end of DATA would find: each DKIM signature
/// (dkimpy's, checked against the key the test's DNS server publishes),
/// SPF for MAIL FROM and HELO with the record used, the DMARC verdict
/// with its policy and record, and the whole `Authentication-Results:`
/// field. DMARC's `p=reject` refuses as smtpd would (exit 1); mail from
/// relay.networks is not verified, its results only shown.
#[test]
fn issue_19_the_tracer_shows_dkim_spf_and_dmarc_of_a_message() {
    use crate::verify::{dkimpy_sign, rsa_key};
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = rsa_key(dir.path());
    let dns = DnsServer::start(
        Zone::new()
            .txt("sel._domainkey.example.org", &record)
            .txt("example.org", "google-site-verification=abc")
            .txt("example.org", "v=spf1 ip4:127.0.0.3 -all")
            .txt("_dmarc.example.org", "v=DMARC1; p=reject"),
    );
    // Only 127.0.0.1 is ours: .3 and .4 are outsiders, verified.
    let p = Postern::configure(
        &format!(
            "{}[relay]\nnetworks = [\"127.0.0.1/32\"]\n",
            dns.config_table()
        ),
        &[],
        None,
    );
    let signed = dkimpy_sign(
        b"From: Alice <a@example.org>\r\nTo: b@example.net\r\nSubject: verify\r\n\r\nHello.\r\nlast line\r\n",
        &key,
        "example.org",
    );
    let text = String::from_utf8(signed).unwrap();
    // As a user may give it: CRLF as signed, or LF (an editor's); the
    // altered one with a forged field in our name, which smtpd removes.
    let forged = "Authentication-Results: mail.test.example; dkim=pass\r\n";
    let files = [
        ("signed.eml", text.clone()),
        ("signed-lf.eml", text.replace("\r\n", "\n")),
        (
            "altered.eml",
            forged.to_string() + &text.replace("last line", "last line!"),
        ),
    ];
    for (name, content) in &files {
        write_file(&p.dir.path().join(name), content.as_bytes());
    }
    let me = format!("{}@localhost", p.user);
    let trace = |file: &str, client: &str, json: bool| {
        let path = p.dir.path().join(file).display().to_string();
        let mut args = vec![
            "policy",
            "test",
            "--client",
            client,
            "--client-name",
            "mail.example.org",
            "--helo",
            "mail.example.org",
            "--from",
            "a@example.org",
            "--to",
            &me,
            "--message",
            &path,
        ];
        if json {
            args.push("--json");
        }
        let out = p.postern(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text + &err)
    };

    let (code, text) = trace("signed.eml", "127.0.0.3", false);
    assert_eq!(code, Some(0), "{text}");
    let expect = [
        "\n  DATA: 250 accepted\n",
        "\nauthentication: as smtpd would verify the message at the end of DATA\n",
        "\n  DKIM → dkim=pass header.i=@example.org header.s=sel header.b=",
        "\n  SPF MAIL FROM example.org → pass\n    · SPF record of example.org: \"v=spf1 ip4:127.0.0.3 -all\"\n",
        "\n  SPF HELO mail.example.org → none\n    · SPF record of mail.example.org: (no SPF record)\n    \
         · DNS mail.example.org TXT → NXDOMAIN (no such name)\n",
        "\n  DMARC → dmarc=pass header.from=example.org policy.dmarc=reject\n    · policy: reject\n    \
         · DMARC record of example.org: _dmarc.example.org \"v=DMARC1; p=reject\"\n",
        "\n  Authentication-Results: mail.test.example;\n  \tdkim=pass header.i=@example.org header.s=sel header.b=",
        "\n  \tspf=pass (mail.test.example: domain of a@example.org designates 127.0.0.3 as permitted sender) smtp.mailfrom=a@example.org;\n",
    ];
    for e in expect {
        assert!(text.contains(e), "{e:?} not in\n{text}");
    }
    assert!(text.ends_with("\naccepted\n"), "{text}");

    // The same message with LF line ends, from an address SPF refuses:
    // DKIM still passes and makes DMARC pass.
    let (code, text) = trace("signed-lf.eml", "127.0.0.4", false);
    assert_eq!(code, Some(0), "{text}");
    for e in [
        "\n  DKIM → dkim=pass header.i=@example.org header.s=sel",
        "\n  SPF MAIL FROM example.org → fail\n    · SPF record of example.org: \"v=spf1 ip4:127.0.0.3 -all\"\n",
        "\n  DMARC → dmarc=pass header.from=example.org policy.dmarc=reject\n",
    ] {
        assert!(text.contains(e), "{e:?} not in\n{text}");
    }

    // Altered after signing and from that address: all three fail, and
    // DMARC's p=reject refuses the message, as smtpd would (exit 1).
    let (code, json) = trace("altered.eml", "127.0.0.4", true);
    assert_eq!(code, Some(1), "{json}");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["accepted"], false);
    assert!(
        v["message"].as_str().unwrap().ends_with(
            "\n  DMARC: fail under p=reject of example.org; verify.dmarc_reject = \"reject\"\
             \n  DATA: 550 5.7.1 rejected by DMARC policy for example.org"
        ),
        "{}",
        v["message"]
    );
    let auth = &v["authentication"];
    assert_eq!(auth["removed"], 1, "{auth}");
    let dkim = auth["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 1, "{auth}");
    assert!(
        dkim[0]
            .as_str()
            .unwrap()
            .starts_with("dkim=fail (body hash did not verify) header.i=@example.org header.s=sel"),
        "{auth}"
    );
    assert_eq!(auth["spf"][0]["identity"], "mailfrom");
    assert_eq!(auth["spf"][0]["result"], "fail");
    assert_eq!(auth["spf"][0]["record"], "v=spf1 ip4:127.0.0.3 -all");
    assert_eq!(auth["spf"][1]["identity"], "helo");
    assert_eq!(auth["spf"][1]["result"], "none");
    assert_eq!(auth["spf"][1]["record"], serde_json::Value::Null);
    assert_eq!(auth["spf"][1]["missing"], "no SPF record");
    let dmarc = &auth["dmarc"];
    assert_eq!(dmarc["result"], "fail", "{dmarc}");
    assert_eq!(dmarc["policy"], "reject");
    assert_eq!(dmarc["record_name"], "_dmarc.example.org");
    assert_eq!(dmarc["record"], "v=DMARC1; p=reject");
    let field = auth["field"].as_str().unwrap();
    assert!(
        field.starts_with("Authentication-Results: mail.test.example;\n\tdkim=fail "),
        "{field}"
    );
    assert!(field.contains("\n\tdmarc=fail"), "{field}");
    assert!(field.ends_with('\n') && !field.contains('\r'), "{field:?}");

    // From relay.networks smtpd verifies nothing: shown, not acted on.
    let (code, text) = trace("altered.eml", "127.0.0.1", false);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "\nauthentication: smtpd would not verify this message (the client is in \
             relay.networks) nor add the field below; the results, for information\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n  DATA: 250 accepted\n"), "{text}");
    assert!(!text.contains("removed first"), "{text}");
}

/// Issue 21: a `cidr:` file for client access, as Postfix's
/// `check_client_access cidr:/etc/postfix/client.cidr`; `postern map
/// build` checks it.
#[test]
fn issue_21_client_access_by_network_from_a_cidr_file() {
    let dns = DnsServer::start(Zone::new());
    let p = postern(
        &dns,
        "[restrictions]\nclient = [\"check_client_access cidr:{dir}/client.cidr\"]\n",
    );
    write_file(
        &p.dir.path().join("client.cidr"),
        b"# Postfix's cidr_table(5)\n127.0.0.4/32  OK\n127.0.0.0/29  REJECT go away\n",
    );
    let me = format!("{}@localhost", p.user);
    let mut c = transaction(&p, "127.0.0.3", "three.example", "a@example.org");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: go away"
    );
    let mut c = transaction(&p, "127.0.0.4", "four.example", "a@example.org");
    assert_eq!(c.cmd(&format!("RCPT TO:<{me}>")), "250 2.1.5 Ok");
    let mut c = transaction(&p, "127.0.0.9", "nine.example", "a@example.org");
    assert_eq!(c.cmd(&format!("RCPT TO:<{me}>")), "250 2.1.5 Ok");
    // A bad line is named with its file and line.
    let bad = p.dir.path().join("bad.cidr");
    write_file(&bad, b"127.0.0.1/24 OK\n");
    let out = p.postern(&["map", "build", &format!("cidr:{}", bad.display())]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{}:1:", bad.display())) && text.contains("\"127.0.0.0/24\""),
        "{text}"
    );
}

/// Debian's postgrey on 127.0.0.1:PORT, greylisting for `delay` seconds,
/// its database in a temporary directory.
struct Postgrey {
    child: std::process::Child,
    port: u16,
    _db: tempfile::TempDir,
}

impl Postgrey {
    fn start(delay: u32) -> Postgrey {
        let db = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = std::process::Command::new("/usr/sbin/postgrey");
        cmd.arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", db.path().display()))
            .arg(format!("--delay={delay}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if is_root() {
            cmd.args(["--user=root", "--group=root"]);
        }
        let child = cmd
            .spawn()
            .expect("postgrey (apt-get install postgrey; .ci/run does)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postgrey did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Postgrey {
            child,
            port,
            _db: db,
        }
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 21: `check_policy_service` with a real postgrey: the first
/// attempt is greylisted with postgrey's words, the retry after the
/// delay passes; a server that is down answers 451 4.3.5.
#[test]
fn issue_21_check_policy_service_greylists_with_postgrey() {
    let grey = Postgrey::start(2);
    let dns = DnsServer::start(Zone::new());
    let p = postern(
        &dns,
        &format!(
            "[restrictions]\nrecipient = [\"check_policy_service inet:127.0.0.1:{}\"]\n",
            grey.port
        ),
    );
    let me = format!("{}@localhost", p.user);
    let rcpt = format!("RCPT TO:<{me}>");
    let mut c = transaction(&p, "127.0.0.3", "three.example", "a@example.org");
    let first = c.cmd(&rcpt);
    assert!(
        first.starts_with(&format!(
            "450 4.7.1 <{me}>: Recipient address rejected: Greylisted, see http"
        )),
        "{first}"
    );
    assert!(
        p.log()
            .contains("NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 450 4.7.1")
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut c = transaction(&p, "127.0.0.3", "three.example", "a@example.org");
    assert_eq!(c.cmd(&rcpt), "250 2.1.5 Ok");
    drop(grey);
    let refused = refused_port();
    let down = refused.port;
    let p = postern(
        &dns,
        &format!("[restrictions]\nrecipient = [\"check_policy_service inet:127.0.0.1:{down}\"]\n"),
    );
    let mut c = transaction(&p, "127.0.0.3", "three.example", "a@example.org");
    assert_eq!(c.cmd(&rcpt), "451 4.3.5 Server configuration problem");
    assert!(p.log().contains(&format!(
        "warning: problem talking to server inet:127.0.0.1:{down}: connect:"
    )));
}
