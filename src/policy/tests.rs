//! Unit tests: parsing the elements, DNSBL names and filters, DSN
//! details, the configuration hook; the helpers the evaluation tests
//! (`eval_tests`) share.

use std::net::IpAddr;
use std::sync::Arc;

use super::dns::{Answer, Resolver, Rtype};
use super::syntax::{dsn_fix, dsn_split};
use super::*;
use crate::config::Config;

pub(super) fn config(extra: &str) -> Arc<Config> {
    let text = format!(
        "[server]\nhostname = \"mail.here.example\"\n[relay]\nnetworks = [\"10.0.0.0/8\"]\n{extra}"
    );
    Arc::new(Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}")))
}

pub(super) fn policy(extra: &str, answers: Vec<(&'static str, Rtype, Answer)>) -> Policy {
    Policy::with_resolver(config(extra), Resolver::fixed(answers))
}

pub(super) fn ctx<'a>(ip: &str, sender: &'a str, rcpt: &'a str) -> Context<'a> {
    Context {
        ip: ip.parse().unwrap(),
        name: "unknown",
        name_status: NameStatus::Permanent,
        helo: Some("client.example"),
        sender: Some(sender),
        recipient: Some(rcpt),
        sasl_user: None,
        submission: false,
        spf: None,
        aliases: None,
    }
}

pub(super) fn run(p: &Policy, when: When, c: &Context<'_>) -> Decision {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(p.check(when, c))
}

pub(super) fn reply(d: &Decision) -> String {
    d.reject
        .as_ref()
        .map_or("accepted".into(), |r| r.to_string())
}

pub(super) fn found(ips: &[&str]) -> Answer {
    Answer::Found(ips.iter().map(|s| s.to_string()).collect())
}

// ---- parsing ----

#[test]
fn parses_every_element_and_prints_it_back() {
    let items = [
        "permit_mynetworks",
        "reject_unauth_destination",
        "permit_auth_destination",
        "check_client_access hash:/etc/postern/badclient",
        "check_helo_access inline:helo",
        "check_sender_access pcre:/etc/postern/senders",
        "check_recipient_access static:OK",
        "reject_rbl_client zen.example=127.0.0.[2..11]",
        "reject_rbl_client bl.example",
        "reject_maps_rbl",
        "reject_rhsbl_sender dbl.example",
        "reject_unknown_sender_domain",
        "reject_non_fqdn_sender",
        "reject_non_fqdn_recipient",
        "reject_unknown_client_hostname",
        "reject_invalid_helo_hostname",
        "permit",
        "reject",
        "defer",
        "warn_if_reject reject_unknown_client_hostname",
    ];
    let list = parse_list(Stage::Recipient, &items).unwrap();
    let back: Vec<String> = list.iter().map(|e| e.to_string()).collect();
    assert_eq!(back, items);
}

#[test]
fn a_bare_table_is_the_stage_access_check() {
    for (stage, what) in [
        (Stage::Client, Access::Client),
        (Stage::Helo, Access::Helo),
        (Stage::Sender, Access::Sender),
        (Stage::Relay, Access::Recipient),
        (Stage::Recipient, Access::Recipient),
    ] {
        assert_eq!(
            parse_list(stage, &["hash:/etc/postern/access"]).unwrap(),
            vec![Element::CheckAccess {
                what,
                table: "hash:/etc/postern/access".into()
            }]
        );
    }
}

#[test]
fn one_string_may_hold_several_elements_and_braces_stay_whole() {
    let list = parse_list(
        Stage::Client,
        &["permit_mynetworks, check_client_access inline:{ 1.2.3.4=REJECT, {5.6.7.8 = OK} }  reject"],
    )
    .unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list[1],
        Element::CheckAccess {
            what: Access::Client,
            table: "inline:{ 1.2.3.4=REJECT, {5.6.7.8 = OK} }".into()
        }
    );
    // Old Postfix names are aliases; names are case-insensitive.
    assert_eq!(
        parse_list(
            Stage::Client,
            &["reject_unknown_client", "REJECT_RBL bl.example"]
        )
        .unwrap(),
        vec![
            Element::RejectUnknownClientHostname,
            Element::RejectRbl {
                target: RblTarget::ClientAddress,
                zone: "bl.example".into(),
                filter: None
            }
        ]
    );
}

#[test]
fn errors_name_the_element_and_the_string() {
    let e = parse_list(Stage::Relay, &["permit_mynetworks", "permit_mynetwork"]).unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(e.element, "permit_mynetwork");
    assert!(e.reason.contains("\"permit_mynetworks\""), "{e}");
    assert_eq!(
        e.to_string(),
        "\"permit_mynetwork\": unknown restriction (did you mean \"permit_mynetworks\"?)"
    );
    let e = parse_list(Stage::Client, &["check_client_access"]).unwrap_err();
    assert_eq!(e.element, "check_client_access");
    assert!(e.reason.contains("needs a table"), "{e}");
    let e = parse_list(Stage::Client, &["check_client_access badclient"]).unwrap_err();
    assert!(e.reason.contains("type:name"), "{e}");
    let e = parse_list(
        Stage::Client,
        &["reject_rbl_client zen.example=127.0.0.[2..x]"],
    )
    .unwrap_err();
    assert_eq!(e.element, "reject_rbl_client zen.example=127.0.0.[2..x]");
    let e = parse_list(Stage::Client, &["reject_rbl_client bad_zone!"]).unwrap_err();
    assert!(e.reason.contains("DNS zone"), "{e}");
    let e = parse_list(Stage::Client, &["inline:{ a=b"]).unwrap_err();
    assert!(e.reason.contains("unbalanced"), "{e}");
    let e = parse_list(Stage::Client, &[""]).unwrap_err();
    assert_eq!(e.reason, "empty restriction");
    let e = parse_list(Stage::Client, &["warn_if_reject"]).unwrap_err();
    assert!(e.reason.contains("needs a restriction"), "{e}");
}

#[test]
fn an_access_result_may_name_restrictions_but_not_tables() {
    assert_eq!(
        parse_result("reject_unauth_destination, permit").unwrap(),
        vec![Element::RejectUnauthDestination, Element::Permit]
    );
    assert!(parse_result("check_client_access hash:/x").is_err());
    assert!(parse_result("frobnicate").is_err());
}

#[test]
fn relay_guard_is_required_before_permit() {
    let l = |items: &[&str]| parse_list(Stage::Relay, items).unwrap();
    assert!(has_relay_guard(
        &l(&["permit_mynetworks", "reject_unauth_destination"]),
        &[]
    ));
    assert!(!has_relay_guard(&l(&["permit_mynetworks"]), &[]));
    assert!(!has_relay_guard(&l(&["permit", "reject"]), &[]));
    assert!(has_relay_guard(&[], &l(&["defer_unauth_destination"])));
}

// ---- DNSBL names and filters ----

#[test]
fn dnsbl_names_reverse_octets_and_nibbles() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        dns::rbl_query(ip("192.0.2.10"), "zen.example"),
        "10.2.0.192.zen.example"
    );
    assert_eq!(
        dns::rbl_query(ip("2001:db8::567:89ab"), "bl.example"),
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example"
    );
    // An IPv4-mapped IPv6 client is an IPv4 client.
    assert_eq!(
        dns::rbl_query(ip("::ffff:192.0.2.10"), "zen.example"),
        "10.2.0.192.zen.example"
    );
    assert_eq!(
        dns::reverse_name(ip("192.0.2.10")),
        "10.2.0.192.in-addr.arpa"
    );
    assert!(dns::reverse_name(ip("::1")).ends_with(".0.ip6.arpa"));
    assert!(dns::reverse_name(ip("::1")).starts_with("1.0.0."));
}

#[test]
fn filters_match_octet_sets_and_ranges() {
    let f = RblFilter::parse("127.0.0.[2..11]").unwrap();
    assert!(f.matches("127.0.0.2".parse().unwrap()));
    assert!(f.matches("127.0.0.11".parse().unwrap()));
    assert!(!f.matches("127.0.0.1".parse().unwrap()));
    assert!(!f.matches("127.0.0.12".parse().unwrap()));
    assert!(!f.matches("127.0.1.2".parse().unwrap()));
    let f = RblFilter::parse("127.0.0.2").unwrap();
    assert!(f.matches("127.0.0.2".parse().unwrap()));
    assert!(!f.matches("127.0.0.3".parse().unwrap()));
    let f = RblFilter::parse("127.[0;1].0.[2;4..6]").unwrap();
    assert!(f.matches("127.1.0.5".parse().unwrap()));
    assert!(!f.matches("127.1.0.3".parse().unwrap()));
    for bad in [
        "127.0.0",
        "127.0.0.256",
        "127.0.0.[3..2]",
        "127.0.0.[",
        "127.0.0.02",
        "a.b.c.d",
    ] {
        assert!(RblFilter::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn txt_reasons_are_joined_and_bounded() {
    assert_eq!(dns::txt_reason(&["a".into(), "b".into()]), "a / b");
    assert_eq!(dns::txt_reason(&["x".repeat(600)]).len(), 500);
}

// ---- reply details ----

#[test]
fn dsn_split_and_fix_follow_postfix() {
    assert_eq!(dsn_split("5.7.0 go away"), (Some("5.7.0"), "go away"));
    assert_eq!(dsn_split("go away"), (None, "go away"));
    assert_eq!(dsn_fix(450, "5.7.1", "Client host"), "4.7.1");
    assert_eq!(dsn_fix(554, "5.1.1", "Client host"), "5.0.0");
    assert_eq!(dsn_fix(554, "5.1.1", "Sender address"), "5.1.7");
    assert_eq!(dsn_fix(554, "5.1.2", "Sender address"), "5.1.8");
    assert_eq!(dsn_fix(554, "5.1.7", "Recipient address"), "5.1.3");
    assert_eq!(dsn_fix(554, "5.1.8", "Recipient address"), "5.1.2");
    assert_eq!(dsn_fix(450, "4.1.8", "Sender address"), "4.1.8");
}

// ---- configuration hook ----

#[test]
fn configuration_errors_name_file_line_and_element() {
    let e = Config::from_toml(
        "[restrictions]\nclient = [\n  \"permit_mynetworks\",\n  \"reject_unknwn_client_hostname\",\n]\n",
        "postern.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "postern.toml:4: key `restrictions.client`: bad value \"reject_unknwn_client_hostname\": \
         unknown restriction (did you mean \"reject_unknown_client_hostname\"?)"
    );
    let e = Config::from_toml(
        "[restrictions]\nsender = [\"inline:nothere\"]\n",
        "postern.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("postern.toml:2: key `restrictions.sender`"),
        "{e}"
    );
    assert!(e.contains("no table [maps.nothere]"), "{e}");
    // [maps] may come after the list.
    Config::from_toml(
        "[restrictions]\nsender = [\"inline:later\"]\n[maps.later]\n\"a\" = \"OK\"\n",
        "postern.toml",
    )
    .unwrap();
    let e = Config::from_toml(
        "[restrictions]\nrelay = [\"permit_mynetworks\"]\n",
        "postern.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("postern.toml:2: key `restrictions.relay`"),
        "{e}"
    );
    assert!(e.contains("open relay"), "{e}");
}
