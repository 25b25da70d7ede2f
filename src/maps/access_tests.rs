use super::*;
use crate::maps::{Data, Kind};

fn hash(text: &str) -> Table {
    let (data, diags) = Data::parse(Kind::Hash, "t", text);
    assert!(diags.iter().all(|d| !d.error), "{diags:?}");
    Table::fixed("hash:t", Kind::Hash, data)
}

fn pcre(text: &str) -> Table {
    let (data, diags) = Data::parse(Kind::Pcre, "t", text);
    assert!(diags.is_empty(), "{diags:?}");
    Table::fixed("pcre:t", Kind::Pcre, data)
}

fn key(found: Result<Found, MapError>) -> Option<String> {
    found.unwrap().map(|(k, _)| k)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Which keys are tried, in order: a table holding every candidate key
/// answers with the first; removing it shows the next.
fn order(all: &[&str], lookup: impl Fn(&Table) -> Option<String>) -> Vec<String> {
    let mut left: Vec<&str> = all.to_vec();
    let mut seen = Vec::new();
    loop {
        let text: String = left.iter().map(|k| format!("{k} OK\n")).collect();
        match lookup(&hash(&text)) {
            Some(k) => {
                left.retain(|x| !x.eq_ignore_ascii_case(&k));
                seen.push(k);
            }
            None => return seen,
        }
    }
}

#[test]
fn client_order_name_parents_address_prefixes() {
    let all = [
        "1",
        "1.2",
        "1.2.3",
        "1.2.3.4",
        "com",
        ".com",
        "example.com",
        ".example.com",
        "mail.example.com",
        "other.example.com",
    ];
    let seen = order(&all, |t| {
        key(client(t, ip("1.2.3.4"), Some("mail.example.com")))
    });
    assert_eq!(
        seen,
        [
            "mail.example.com",
            "example.com",
            ".example.com",
            "com",
            ".com",
            "1.2.3.4",
            "1.2.3",
            "1.2",
            "1"
        ]
    );
    // No name: the literal "unknown" is looked up first.
    let t = hash("unknown REJECT\n1.2.3.4 OK\n");
    assert_eq!(
        key(client(&t, ip("1.2.3.4"), None)).as_deref(),
        Some("unknown")
    );
}

#[test]
fn client_ipv6_and_mapped() {
    let seen = order(
        &["2001:db8::1", "2001:db8:", "2001:db8", "2001", "2001:db8::"],
        |t| key(client(t, ip("2001:db8::1"), None)),
    );
    assert_eq!(seen, ["2001:db8::1", "2001:db8:", "2001:db8", "2001"]);
    let t = hash("192.0.2 REJECT\n");
    assert_eq!(
        key(client(&t, ip("::ffff:192.0.2.9"), None)).as_deref(),
        Some("192.0.2")
    );
}

#[test]
fn client_dunno_for_the_name_still_looks_up_the_address() {
    let t = hash("example.com DUNNO\n10.1 REJECT\n");
    let found = client(&t, ip("10.1.2.3"), Some("h.example.com")).unwrap();
    assert_eq!(found, Some(("10.1".into(), "REJECT".into())));
    let found = client(&t, ip("10.9.2.3"), Some("h.example.com")).unwrap();
    assert_eq!(found, Some(("example.com".into(), "DUNNO".into())));
}

#[test]
fn classic_badclient_table() {
    let t = hash(
        "# classic style\nspammer.example REJECT\n192.0.2.66 REJECT no thanks\nfriend.example OK\n192.0.2 REJECT whole net\n",
    );
    let get = |ip_: &str, name: Option<&str>| {
        client(&t, ip(ip_), name)
            .unwrap()
            .map(|(_, v)| parse_action(&v))
    };
    assert_eq!(
        get("198.51.100.1", Some("mx.spammer.example")),
        Some(Action::Reject(None))
    );
    assert_eq!(
        get("192.0.2.66", None),
        Some(Action::Reject(Some("no thanks".into())))
    );
    // The name wins over the address: a friend inside a listed network.
    assert_eq!(get("192.0.2.7", Some("Friend.Example")), Some(Action::Ok));
    assert_eq!(
        get("192.0.2.7", None),
        Some(Action::Reject(Some("whole net".into())))
    );
    assert_eq!(get("203.0.113.1", Some("elsewhere.example")), None);
}

#[test]
fn address_order() {
    let all = [
        "user+ext@sub.example.com",
        "user@sub.example.com",
        "sub.example.com",
        "example.com",
        ".example.com",
        "com",
        ".com",
        "user+ext@",
        "user@",
    ];
    let seen = order(&all, |t| key(address(t, "user+ext@sub.example.com", "+")));
    assert_eq!(
        seen,
        [
            "user+ext@sub.example.com",
            "user@sub.example.com",
            "sub.example.com",
            "example.com",
            ".example.com",
            "com",
            ".com",
            "user+ext@",
            "user@"
        ]
    );
    // Without a delimiter there is no extension to strip.
    let seen = order(&all, |t| key(address(t, "user+ext@sub.example.com", "")));
    assert!(!seen.contains(&"user@sub.example.com".to_string()));
    assert!(!seen.contains(&"user@".to_string()));
    // Several delimiter characters, as Postfix 2.11+.
    let t = hash("user@example.com OK\n");
    assert!(key(address(&t, "user-list@example.com", "+-")).is_some());
    // Keys are case-insensitive.
    assert!(key(address(&t, "User@EXAMPLE.com", "")).is_some());
}

#[test]
fn null_sender() {
    let t = hash("<> REJECT no bounces here\n");
    assert_eq!(key(address(&t, "", "+")).as_deref(), Some("<>"));
    assert_eq!(key(address(&t, "<>", "+")).as_deref(), Some("<>"));
    let t = pcre("/^<>$/ REJECT\n");
    assert_eq!(key(address(&t, "", "+")).as_deref(), Some("<>"));
}

#[test]
fn pattern_tables_get_the_whole_string_once() {
    let t = pcre("/^user@/ REJECT\n/^example\\.com$/ REJECT domain\n");
    assert_eq!(
        key(address(&t, "user@a.example", "+")).as_deref(),
        Some("user@a.example")
    );
    // No domain search with pattern tables.
    assert_eq!(key(address(&t, "x@example.com", "+")), None);
    let t = pcre("/^192\\.0\\.2\\./ REJECT\n/\\.example$/ OK\n");
    assert_eq!(
        key(client(&t, ip("192.0.2.1"), Some("h.other"))).as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        key(client(&t, ip("192.0.2.1"), Some("h.example"))).as_deref(),
        Some("h.example")
    );
}

#[test]
fn helo_domain_walk() {
    let t = hash("localhost REJECT\n.example.org REJECT\n");
    assert!(key(domain(&t, "localhost")).is_some());
    assert_eq!(
        key(domain(&t, "a.b.example.org.")).as_deref(),
        Some(".example.org")
    );
    assert_eq!(key(domain(&t, "example.org")), None);
    // Address literals have no parents.
    let t = hash("0.0.1 REJECT\n");
    assert_eq!(key(domain(&t, "10.0.0.1")), None);
}

#[test]
fn actions() {
    use Action::*;
    assert_eq!(parse_action("ok"), Ok);
    assert_eq!(parse_action("RELAY"), Ok);
    assert_eq!(parse_action("1712345678"), Ok);
    assert_eq!(parse_action("550"), Ok);
    assert_eq!(parse_action(""), Ok);
    assert_eq!(parse_action("dunno"), Dunno);
    assert_eq!(parse_action("REJECT"), Reject(None));
    assert_eq!(
        parse_action("reject  go  away "),
        Reject(Some("go  away".into()))
    );
    assert_eq!(
        parse_action("DEFER_IF_PERMIT x"),
        DeferIfPermit(Some("x".into()))
    );
    assert_eq!(parse_action("defer_if_reject"), DeferIfReject(None));
    assert_eq!(parse_action("DEFER later"), Defer(Some("later".into())));
    assert_eq!(
        parse_action("550 5.7.0 go away"),
        Code {
            code: 550,
            dsn: Some("5.7.0".into()),
            text: "go away".into()
        }
    );
    assert_eq!(
        parse_action("421 closing"),
        Code {
            code: 421,
            dsn: None,
            text: "closing".into()
        }
    );
    assert_eq!(parse_action("DISCARD"), Discard(None));
    assert_eq!(parse_action("hold spam?"), Hold(Some("spam?".into())));
    assert_eq!(parse_action("WARN"), Warn(None));
    assert_eq!(
        parse_action("PREPEND X-Spam: yes"),
        Prepend("X-Spam: yes".into())
    );
    assert_eq!(parse_action("REDIRECT a@b"), Redirect("a@b".into()));
    assert_eq!(parse_action("IGNORE"), Ignore);
    assert_eq!(
        parse_action("REPLACE Subject: x"),
        Replace("Subject: x".into())
    );
    assert_eq!(
        parse_action("reject_unauth_destination"),
        Restriction("reject_unauth_destination".into())
    );
    assert_eq!(
        parse_action("permit_mynetworks, reject"),
        Restriction("permit_mynetworks, reject".into())
    );
    assert_eq!(parse_action("650 nope"), Restriction("650 nope".into()));
}

fn cidr(text: &str) -> Table {
    let (data, diags) = Data::parse(Kind::Cidr, "t", text);
    assert!(diags.is_empty(), "{diags:?}");
    Table::fixed("cidr:t", Kind::Cidr, data)
}

/// Issue 21: `cidr:` tables, Postfix's client access by network: the
/// first network that holds the address wins; names are not looked up.
#[test]
fn cidr_tables_match_client_addresses_by_network_first_match_wins() {
    let t = cidr(
        "# comment\n192.0.2.7 OK\n192.0.2.0/24 REJECT bad net\n\
         0.0.0.0/0 DUNNO\n[2001:db8::]/32 REJECT v6\n",
    );
    let value = |addr: &str| {
        client(&t, ip(addr), Some("host.example"))
            .unwrap()
            .map(|(_, v)| v)
    };
    assert_eq!(value("192.0.2.7").as_deref(), Some("OK"));
    assert_eq!(value("192.0.2.8").as_deref(), Some("REJECT bad net"));
    assert_eq!(value("198.51.100.1").as_deref(), Some("DUNNO"));
    assert_eq!(value("2001:db8::1").as_deref(), Some("REJECT v6"));
    // An IPv4-mapped client is its IPv4 address.
    assert_eq!(value("::ffff:192.0.2.9").as_deref(), Some("REJECT bad net"));
    assert_eq!(t.get("host.example").unwrap(), None);
}

#[test]
fn cidr_table_errors_name_the_line_and_the_fix() {
    let (_, diags) = Data::parse(
        Kind::Cidr,
        "/etc/postern/clients.cidr",
        "192.0.2.1/24 REJECT\n10.0.0.0/33 OK\nmail.example OK\n!10.0.0.0/8 OK\n",
    );
    let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert!(text[0].contains(":1:"), "{text:?}");
    assert!(
        text[0].contains("perhaps you should use \"192.0.2.0/24\" instead"),
        "{text:?}"
    );
    assert!(
        text[1].contains(":2:") && text[1].contains("bad prefix length (0 to 32)"),
        "{text:?}"
    );
    assert!(text[2].contains("not an address or network"), "{text:?}");
    assert!(
        text[3].contains("negated patterns are not supported"),
        "{text:?}"
    );
}
