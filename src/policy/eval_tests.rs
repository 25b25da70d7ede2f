//! Unit tests of the evaluation: the order of the lists and the first
//! decisive answer, access actions, DNS checks against fixed answers, the
//! reply texts, the trace.

use super::dns::{Answer, Resolver, Rtype};
use super::tests::{ctx, found, policy, reply, run};
use super::*;

#[test]
fn default_relay_list_is_the_old_relay_control() {
    let p = policy("", vec![]);
    let out = ctx("203.0.113.9", "a@example.org", "b@elsewhere.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &out)),
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
    let local = ctx("203.0.113.9", "a@example.org", "b@mail.here.example");
    assert_eq!(reply(&run(&p, When::Rcpt, &local)), "accepted");
    let inside = ctx("10.1.2.3", "a@example.org", "b@elsewhere.example");
    assert_eq!(reply(&run(&p, When::Rcpt, &inside)), "accepted");
    // Sender-specified routing through a local domain is relaying.
    let routed = ctx(
        "203.0.113.9",
        "a@example.org",
        "b%elsewhere.example@mail.here.example",
    );
    assert!(reply(&run(&p, When::Rcpt, &routed)).starts_with("554 5.7.1"));
}

#[test]
fn lists_run_in_postfix_order_and_the_first_refusal_wins() {
    let p = policy(
        "[restrictions]\nclient = [\"inline:c\"]\nhelo = [\"inline:h\"]\nsender = [\"inline:s\"]\n\
         recipient = [\"inline:r\"]\n\
         [maps.c]\n\"203.0.113.1\" = \"REJECT client says no\"\n\
         [maps.h]\n\"bad.example\" = \"REJECT helo says no\"\n\
         [maps.s]\n\"bad@example.org\" = \"REJECT sender says no\"\n\
         [maps.r]\n\"b@mail.here.example\" = \"REJECT recipient says no\"\n",
        vec![],
    );
    let mut c = ctx("203.0.113.1", "bad@example.org", "b@elsewhere.example");
    c.helo = Some("bad.example");
    assert!(reply(&run(&p, When::Rcpt, &c)).contains("client says no"));
    c.ip = "203.0.113.2".parse().unwrap();
    assert!(reply(&run(&p, When::Rcpt, &c)).contains("helo says no"));
    c.helo = Some("good.example");
    assert!(reply(&run(&p, When::Rcpt, &c)).contains("sender says no"));
    c.sender = Some("good@example.org");
    // Relay runs before recipient.
    assert!(reply(&run(&p, When::Rcpt, &c)).contains("Relay access denied"));
    c.recipient = Some("b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "554 5.7.1 <b@mail.here.example>: Recipient address rejected: recipient says no"
    );
    // Without HELO the helo list is not run.
    c.ip = "203.0.113.2".parse().unwrap();
    c.helo = None;
    c.sender = Some("good@example.org");
    c.recipient = Some("c@mail.here.example");
    assert_eq!(reply(&run(&p, When::Rcpt, &c)), "accepted");
}

#[test]
fn a_permit_ends_its_list_only() {
    let p = policy(
        "[restrictions]\nclient = [\"permit\", \"reject\"]\nsender = [\"reject\"]\n",
        vec![],
    );
    let c = ctx("203.0.113.1", "a@example.org", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "554 5.7.1 <a@example.org>: Sender address rejected: Access denied"
    );
}

#[test]
fn access_actions_follow_check_table_result() {
    let p = policy(
        "[restrictions]\nsender = [\"inline:s\"]\n\
         [maps.s]\n\
         \"ok@example.org\" = \"OK\"\n\
         \"digits@example.org\" = \"1234567\"\n\
         \"dunno@example.org\" = \"DUNNO\"\n\
         \"dsn@example.org\" = \"REJECT 5.7.0 go away\"\n\
         \"defer@example.org\" = \"DEFER\"\n\
         \"code@example.org\" = \"550 no such sender here\"\n\
         \"code4@example.org\" = \"421 4.7.0 later\"\n\
         \"class@example.org\" = \"reject_unauth_destination, permit\"\n\
         \"bogus@example.org\" = \"frobnicate\"\n\
         \"table@example.org\" = \"check_client_access inline:s\"\n\
         \"ignore@example.org\" = \"IGNORE\"\n",
        vec![],
    );
    let check =
        |sender: &str, rcpt: &str| reply(&run(&p, When::Rcpt, &ctx("203.0.113.1", sender, rcpt)));
    let here = "b@mail.here.example";
    assert_eq!(check("ok@example.org", here), "accepted");
    assert_eq!(check("digits@example.org", here), "accepted");
    assert_eq!(check("dunno@example.org", here), "accepted");
    assert_eq!(
        check("dsn@example.org", here),
        "554 5.7.0 <dsn@example.org>: Sender address rejected: go away"
    );
    assert_eq!(
        check("defer@example.org", here),
        "450 4.7.1 <defer@example.org>: Sender address rejected: Access denied"
    );
    assert_eq!(
        check("code@example.org", here),
        "550 5.7.1 <code@example.org>: Sender address rejected: no such sender here"
    );
    assert_eq!(
        check("code4@example.org", here),
        "421 4.7.0 <code4@example.org>: Sender address rejected: later"
    );
    // A restriction list as the value runs it.
    assert_eq!(check("class@example.org", here), "accepted");
    assert_eq!(
        check("class@example.org", "x@elsewhere.example"),
        "554 5.7.1 <x@elsewhere.example>: Relay access denied"
    );
    for bad in [
        "bogus@example.org",
        "table@example.org",
        "ignore@example.org",
    ] {
        assert_eq!(
            check(bad, here),
            "451 4.3.5 Server configuration error",
            "{bad}"
        );
    }
    // A permit in the sender list does not skip the relay list.
    assert_eq!(
        check("ok@example.org", "x@elsewhere.example"),
        "554 5.7.1 <x@elsewhere.example>: Relay access denied"
    );
}

#[test]
fn client_reject_texts_and_the_null_sender_key() {
    let p = policy(
        "[restrictions]\nclient = [\"inline:c\"]\nsender = [\"inline:s\"]\n\
         [maps.c]\n\"203.0.113\" = \"REJECT\"\n\"friend.example\" = \"OK\"\n\
         [maps.s]\n\"<>\" = \"REJECT no bounces\"\n",
        vec![],
    );
    let c = ctx("203.0.113.7", "a@example.org", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "554 5.7.1 <unknown[203.0.113.7]>: Client host rejected: Access denied"
    );
    let mut friend = c.clone();
    friend.name = "mx.friend.example";
    friend.name_status = NameStatus::Verified;
    assert_eq!(reply(&run(&p, When::Rcpt, &friend)), "accepted");
    let bounce = ctx("198.51.100.1", "", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &bounce)),
        "554 5.7.1 <>: Sender address rejected: no bounces"
    );
}

#[test]
fn discard_hold_warn_prepend_are_transaction_actions() {
    let p = policy(
        "[restrictions]\nsender = [\"inline:s\"]\nrecipient = [\"inline:r\"]\n\
         [maps.s]\n\
         \"discard@example.org\" = \"DISCARD\"\n\
         \"hold@example.org\" = \"HOLD\"\n\
         \"warn@example.org\" = \"WARN odd sender\"\n\
         \"prepend@example.org\" = \"PREPEND X-Policy: checked\"\n\
         [maps.r]\n\"b@mail.here.example\" = \"REJECT\"\n",
        vec![],
    );
    let here = "c@mail.here.example";
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.1", "discard@example.org", here),
    );
    assert_eq!(reply(&d), "accepted");
    assert_eq!(
        d.discard.as_deref(),
        Some("<discard@example.org>: Sender address triggers DISCARD action")
    );
    assert_eq!(d.events[0].action, "discard");
    // DISCARD permits its list only: the recipient list still refuses.
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.1", "discard@example.org", "b@mail.here.example"),
    );
    assert!(reply(&d).starts_with("554"));
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.1", "hold@example.org", here),
    );
    assert_eq!(reply(&d), "accepted");
    assert_eq!(
        d.hold.as_deref(),
        Some("<hold@example.org>: Sender address triggers HOLD action")
    );
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.1", "warn@example.org", here),
    );
    assert_eq!(
        d.events,
        vec![Event {
            action: "warn",
            text: "odd sender".into()
        }]
    );
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.1", "prepend@example.org", here),
    );
    assert_eq!(d.prepend, vec!["X-Policy: checked".to_string()]);
}

#[test]
fn without_delay_reject_lists_run_at_their_commands() {
    let p = policy(
        "[restrictions]\ndelay_reject = false\nclient = [\"inline:c\"]\n\
         helo = [\"reject_invalid_helo_hostname\"]\nsender = [\"reject_non_fqdn_sender\"]\n\
         [maps.c]\n\"203.0.113.1\" = \"REJECT\"\n\"203.0.113.2\" = \"HOLD\"\n",
        vec![],
    );
    let mut c = ctx("203.0.113.1", "a@example.org", "b@elsewhere.example");
    c.helo = None;
    c.sender = None;
    c.recipient = None;
    assert_eq!(
        reply(&run(&p, When::Connect, &c)),
        "554 5.7.1 <unknown[203.0.113.1]>: Client host rejected: Access denied"
    );
    // The client list does not run again at RCPT.
    let r = ctx("203.0.113.1", "a@example.org", "b@mail.here.example");
    assert_eq!(reply(&run(&p, When::Rcpt, &r)), "accepted");
    // HOLD cannot work before MAIL: skipped.
    c.ip = "203.0.113.2".parse().unwrap();
    let d = run(&p, When::Connect, &c);
    assert_eq!((reply(&d), d.hold), ("accepted".to_string(), None));
    c.helo = Some("bad..name");
    assert_eq!(
        reply(&run(&p, When::Helo, &c)),
        "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"
    );
    c.sender = Some("user");
    assert_eq!(
        reply(&run(&p, When::Mail, &c)),
        "504 5.5.2 <user>: Sender address rejected: need fully-qualified address"
    );
}

#[test]
fn helo_and_fqdn_checks() {
    let p = policy(
        "[restrictions]\nhelo = [\"reject_invalid_helo_hostname\"]\n\
         recipient = [\"reject_non_fqdn_recipient\"]\n",
        vec![],
    );
    let check = |helo: &'static str| {
        let mut c = ctx("203.0.113.1", "a@example.org", "b@mail.here.example");
        c.helo = Some(helo);
        reply(&run(&p, When::Rcpt, &c))
    };
    for good in [
        "client.example",
        "client.example.",
        "localhost",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "192.0.2.1",
    ] {
        assert_eq!(check(good), "accepted", "{good}");
    }
    assert_eq!(
        check("[300.1.1.1]"),
        "501 5.5.2 <[300.1.1.1]>: Helo command rejected: invalid ip address"
    );
    for bad in ["24383590", "-bad.example", "bad_name!", "a..b"] {
        assert!(
            check(bad).ends_with("Helo command rejected: Invalid name"),
            "{bad}"
        );
    }
    // localhost is a local domain (the default local.domains), not a
    // fully-qualified one.
    let c = ctx("203.0.113.1", "a@example.org", "b@localhost");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "504 5.5.2 <b@localhost>: Recipient address rejected: need fully-qualified address"
    );
}

#[test]
fn dnsbl_listed_filtered_and_failing() {
    let answers = vec![
        ("9.113.0.203.zen.example", Rtype::A, found(&["127.0.0.2"])),
        (
            "9.113.0.203.zen.example",
            Rtype::Txt,
            found(&["Listed, see https://zen.example/203.0.113.9"]),
        ),
        ("8.113.0.203.zen.example", Rtype::A, found(&["127.0.0.2"])),
        ("7.113.0.203.zen.example", Rtype::A, found(&["127.0.0.1"])),
        (
            "6.113.0.203.zen.example",
            Rtype::A,
            Answer::Temporary("timed out".into()),
        ),
    ];
    let p = policy(
        "[restrictions]\nclient = [\"reject_rbl_client zen.example=127.0.0.[2..11]\"]\n",
        answers.clone(),
    );
    let at = |ip: &str| {
        reply(&run(
            &p,
            When::Rcpt,
            &ctx(ip, "a@example.org", "b@mail.here.example"),
        ))
    };
    assert_eq!(
        at("203.0.113.9"),
        "554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.example; Listed, see https://zen.example/203.0.113.9"
    );
    // Listed without TXT.
    assert_eq!(
        at("203.0.113.8"),
        "554 5.7.1 Service unavailable; Client host [203.0.113.8] blocked using zen.example"
    );
    // An answer outside the filter, not listed, or a DNS failure: accepted.
    assert_eq!(at("203.0.113.7"), "accepted");
    assert_eq!(at("203.0.113.5"), "accepted");
    assert_eq!(at("203.0.113.6"), "accepted");
    // dns_failure = "defer": a 4xx unless something else decides.
    let p = policy(
        "[restrictions]\ndns_failure = \"defer\"\nclient = [\"reject_rbl_client zen.example\"]\n",
        answers,
    );
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.6", "a@example.org", "b@mail.here.example"),
    );
    assert_eq!(
        reply(&d),
        "450 4.7.1 <unknown[203.0.113.6]>: Client host rejected: Temporary DNS failure looking up 6.113.0.203.zen.example"
    );
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.6", "a@example.org", "b@elsewhere.example"),
    );
    assert_eq!(
        reply(&d),
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
}

#[test]
fn rhsbl_sender_and_maps_rbl() {
    let p = policy(
        "[restrictions]\nrbl_domains = [\"old.example\"]\nclient = [\"reject_maps_rbl\"]\n\
         sender = [\"reject_rhsbl_sender dbl.example\"]\n",
        vec![
            ("spam.example.dbl.example", Rtype::A, found(&["127.0.1.2"])),
            ("1.113.0.203.old.example", Rtype::A, found(&["127.0.0.2"])),
        ],
    );
    assert!(p.problems().iter().any(|w| w.contains("reject_maps_rbl")));
    let at = |ip: &str, sender: &str| {
        reply(&run(
            &p,
            When::Rcpt,
            &ctx(ip, sender, "b@mail.here.example"),
        ))
    };
    assert_eq!(
        at("203.0.113.2", "a@spam.example"),
        "554 5.7.1 Service unavailable; Sender address [a@spam.example] blocked using dbl.example"
    );
    assert_eq!(at("203.0.113.2", ""), "accepted");
    assert_eq!(
        at("203.0.113.1", "a@example.org"),
        "554 5.7.1 Service unavailable; Client host [203.0.113.1] blocked using old.example"
    );
}

#[test]
fn unknown_sender_domain_follows_postfix_codes() {
    let p = policy(
        "[restrictions]\nsender = [\"reject_unknown_sender_domain\"]\n",
        vec![
            ("mx.example", Rtype::Mx, found(&["10 mail.mx.example"])),
            ("a.example", Rtype::Mx, Answer::NoData),
            ("a.example", Rtype::A, found(&["192.0.2.1"])),
            ("nodata.example", Rtype::Mx, Answer::NoData),
            ("nodata.example", Rtype::A, Answer::NoData),
            ("nodata.example", Rtype::Aaaa, Answer::NoData),
            ("nullmx.example", Rtype::Mx, found(&["0 ."])),
            (
                "broken.example",
                Rtype::Mx,
                Answer::Temporary("SERVFAIL".into()),
            ),
            (
                "broken.example",
                Rtype::A,
                Answer::Temporary("SERVFAIL".into()),
            ),
            (
                "broken.example",
                Rtype::Aaaa,
                Answer::Temporary("SERVFAIL".into()),
            ),
        ],
    );
    let at = |sender: &str| {
        reply(&run(
            &p,
            When::Rcpt,
            &ctx("203.0.113.2", sender, "b@mail.here.example"),
        ))
    };
    assert_eq!(at("u@mx.example"), "accepted");
    assert_eq!(at("u@a.example"), "accepted");
    assert_eq!(
        at("u@nxdomain.example"),
        "450 4.1.8 <u@nxdomain.example>: Sender address rejected: Domain not found"
    );
    assert_eq!(
        at("u@nodata.example"),
        "450 4.1.8 <u@nodata.example>: Sender address rejected: Domain not found"
    );
    assert_eq!(
        at("u@nullmx.example"),
        "550 5.7.27 <u@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)"
    );
    assert_eq!(at("u@broken.example"), "accepted");
    // Local domains, literals and the null sender are not looked up.
    assert_eq!(at("u@mail.here.example"), "accepted");
    assert_eq!(at("u@[192.0.2.1]"), "accepted");
    assert_eq!(at(""), "accepted");
}

#[test]
fn unknown_client_hostname() {
    let p = policy(
        "[restrictions]\nclient = [\"reject_unknown_client_hostname\"]\n",
        vec![],
    );
    let mut c = ctx("203.0.113.2", "a@example.org", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "450 4.7.25 Client host rejected: cannot find your hostname, [203.0.113.2]"
    );
    c.name_status = NameStatus::Temporary;
    assert_eq!(reply(&run(&p, When::Rcpt, &c)), "accepted");
    c.name_status = NameStatus::Verified;
    c.name = "mx.example";
    assert_eq!(reply(&run(&p, When::Rcpt, &c)), "accepted");
}

#[test]
fn client_names_are_verified_forward() {
    let r = Resolver::fixed(vec![
        (
            "3.0.0.127.in-addr.arpa",
            Rtype::Ptr,
            found(&["host.example"]),
        ),
        ("host.example", Rtype::A, found(&["127.0.0.3"])),
        (
            "4.0.0.127.in-addr.arpa",
            Rtype::Ptr,
            found(&["liar.example"]),
        ),
        ("liar.example", Rtype::A, found(&["192.0.2.1"])),
        (
            "5.0.0.127.in-addr.arpa",
            Rtype::Ptr,
            Answer::Temporary("SERVFAIL".into()),
        ),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = |ip: &str| rt.block_on(r.client_name(ip.parse().unwrap()));
    let n = name("127.0.0.3");
    assert_eq!(
        (n.name.as_str(), n.status),
        ("host.example", NameStatus::Verified)
    );
    let n = name("127.0.0.4");
    assert_eq!(
        (n.name.as_str(), n.status),
        ("unknown", NameStatus::Permanent)
    );
    let n = name("127.0.0.5");
    assert_eq!(
        (n.name.as_str(), n.status),
        ("unknown", NameStatus::Temporary)
    );
    let n = name("127.0.0.6");
    assert_eq!(
        (n.name.as_str(), n.status),
        ("unknown", NameStatus::Permanent)
    );
}

#[test]
fn warn_if_reject_logs_instead() {
    let p = policy(
        "[restrictions]\nclient = [\"warn_if_reject reject_unknown_client_hostname\"]\n",
        vec![],
    );
    let d = run(
        &p,
        When::Rcpt,
        &ctx("203.0.113.2", "a@example.org", "b@mail.here.example"),
    );
    assert_eq!(reply(&d), "accepted");
    assert_eq!(d.events[0].action, "reject_warning");
    assert!(d.events[0].text.starts_with("450 4.7.25"));
}

#[test]
fn deferred_decisions() {
    let p = policy("[restrictions]\nclient = [\"defer_if_permit\"]\n", vec![]);
    let c = ctx("203.0.113.2", "a@example.org", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "450 4.7.0 <unknown[203.0.113.2]>: Client host rejected: defer_if_permit requested"
    );
    let p = policy("[restrictions]\nclient = [\"defer_if_reject\"]\n", vec![]);
    let c = ctx("203.0.113.2", "a@example.org", "b@elsewhere.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "450 4.7.0 <unknown[203.0.113.2]>: Client host rejected: defer_if_reject requested"
    );
}

#[test]
fn an_unavailable_table_defers() {
    // A table that cannot be opened is a configuration error: Postfix's
    // smtpd dies on it and the client sees 451 4.3.5.
    let p = policy(
        "[restrictions]\nsender = [\"hash:/nonexistent/postern-access\"]\n",
        vec![],
    );
    let c = ctx("203.0.113.2", "a@example.org", "b@mail.here.example");
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "451 4.3.5 Server configuration error"
    );
}

#[test]
fn the_trace_records_lists_elements_and_lookups() {
    let p = policy(
        "[restrictions]\nsender = [\"check_sender_access inline:s\"]\n\
         [maps.s]\n\"example.org\" = \"reject_unauth_destination\"\n",
        vec![],
    );
    let c = ctx("203.0.113.2", "a@example.org", "b@elsewhere.example");
    let mut trace = Trace::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = rt.block_on(p.check_traced(When::Rcpt, &c, &mut trace));
    assert_eq!(
        reply(&d),
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
    let stages: Vec<_> = trace.lists.iter().map(|l| l.stage).collect();
    assert_eq!(stages, vec![Stage::Client, Stage::Helo, Stage::Sender]);
    let sender = &trace.lists[2];
    assert_eq!(sender.steps[0].element, "check_sender_access inline:s");
    assert!(matches!(
        &sender.steps[0].details[0],
        trace::Detail::Lookup { key: Some(k), value: Some(v), .. }
            if k == "example.org" && v == "reject_unauth_destination"
    ));
    assert_eq!(
        sender.steps[0].steps[0].element,
        "reject_unauth_destination"
    );
    assert_eq!(
        sender.result,
        "554 5.7.1 <b@elsewhere.example>: Relay access denied"
    );
}

#[test]
fn submission_lists_permit_only_logged_in_clients() {
    let p = policy("", vec![]);
    let mut c = ctx("203.0.113.9", "a@example.org", "b@elsewhere.example");
    c.submission = true;
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "554 5.7.1 <b@elsewhere.example>: Recipient address rejected: Access denied"
    );
    c.sasl_user = Some("alice");
    assert_eq!(reply(&run(&p, When::Rcpt, &c)), "accepted");
    // On port 25 a login permits only where a list says so.
    c.submission = false;
    assert!(reply(&run(&p, When::Rcpt, &c)).starts_with("554 5.7.1"));
    let p = policy(
        "[restrictions]\nrelay = [\"permit_sasl_authenticated\", \"reject_unauth_destination\"]\n",
        vec![],
    );
    assert_eq!(reply(&run(&p, When::Rcpt, &c)), "accepted");
}

#[test]
fn sender_login_mismatch_follows_postfix() {
    let extra = |check: &str| {
        format!(
            "[local]\nrecipient_delimiter = \"+\"\n[submission]\nsender = [\"{check}\"]\n\
             [sasl]\nsender_login_maps = [\"inline:owners\"]\n\
             [maps.owners]\n\"alice@example.org\" = \"alice, boss\"\n\"@team.example\" = \"bob\"\n"
        )
    };
    let run_as = |p: &Policy, login: Option<&str>, sender: &str| {
        let mut c = ctx("203.0.113.9", sender, "x@elsewhere.example");
        c.submission = true;
        c.sasl_user = login;
        reply(&run(p, When::Rcpt, &c))
    };
    let p = policy(&extra("reject_sender_login_mismatch"), vec![]);
    assert_eq!(run_as(&p, Some("alice"), "alice@example.org"), "accepted");
    assert_eq!(run_as(&p, Some("boss"), "Alice+x@Example.org"), "accepted");
    assert_eq!(
        run_as(&p, Some("bob"), "alice@example.org"),
        "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user bob"
    );
    assert_eq!(run_as(&p, Some("bob"), "anyone@team.example"), "accepted");
    assert_eq!(
        run_as(&p, Some("alice"), "nobody@else.example"),
        "553 5.7.1 <nobody@else.example>: Sender address rejected: not owned by user alice"
    );
    assert_eq!(run_as(&p, Some("alice"), ""), "accepted", "null sender");
    // Unauthenticated: a sender someone owns needs the login.
    let p = policy(
        &extra("reject_unauthenticated_sender_login_mismatch"),
        vec![],
    );
    let mut c = ctx("203.0.113.9", "alice@example.org", "x@mail.here.example");
    c.submission = true;
    assert_eq!(
        reply(&run(&p, When::Rcpt, &c)),
        "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in"
    );
    let p = policy(&extra("reject_known_sender_login_mismatch"), vec![]);
    assert_eq!(run_as(&p, Some("alice"), "nobody@else.example"), "accepted");
    assert!(run_as(&p, Some("bob"), "alice@example.org").starts_with("553 5.7.1"));
}
