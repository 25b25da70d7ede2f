use std::sync::Arc;

use super::*;
use crate::maps::MapError;

/// A configuration with local domain `here.example`, origin
/// `here.example`, delimiter `+`.
fn config() -> Config {
    let mut c = Config::builtin();
    c.local.domains = vec!["here.example".into()];
    c.server.origin = "here.example".into();
    c.local.recipient_delimiter = "+".into();
    c
}

fn rewriter(c: Config) -> Rewriter {
    let r = Rewriter::new(Arc::new(c));
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    r
}

fn with_aliases(spec: &str) -> Rewriter {
    let mut c = config();
    c.r#virtual.alias_maps = vec![spec.into()];
    rewriter(c)
}

#[test]
fn expansion_is_recursive_and_stops_at_an_address_mapped_to_itself() {
    let r = with_aliases(
        "inline:{ a@v.example=b@v.example, {b@v.example = c@elsewhere.example, b@v.example}, \
         v.example=anything }",
    );
    // The first address of a value takes the place of the one expanded
    // (Postfix's order).
    assert_eq!(
        r.recipient("a@v.example").unwrap(),
        vec!["c@elsewhere.example", "b@v.example"]
    );
}

#[test]
fn duplicates_are_removed() {
    let r = with_aliases(
        "inline:{ {a@v.example = b@v.example, c@v.example}, b@v.example=c@v.example }",
    );
    assert_eq!(r.recipient("a@v.example").unwrap(), vec!["c@v.example"]);
}

#[test]
fn a_loop_passes_the_nesting_limit() {
    let r = with_aliases("inline:{ a@v.example=b@v.example, b@v.example=a@v.example }");
    let e = r.recipient("a@v.example").unwrap_err();
    assert!(
        matches!(&e, Failure::Limit(t) if t.contains("nesting")),
        "{e}"
    );
}

#[test]
fn limits_as_postfix_counts_them() {
    // a → a1 … a5: five lookups that find, then the one that does not
    // (Postfix counts it against the limit too).
    let mut lookup = |a: &str| -> Result<Option<Vec<String>>, MapError> {
        let n: usize = a.trim_start_matches('a').parse().unwrap_or(0);
        Ok((n < 5).then(|| vec![format!("a{}", n + 1)]))
    };
    assert_eq!(
        virtual_alias::expand_with("a", 6, 10, &mut lookup).unwrap(),
        vec!["a5"]
    );
    assert!(matches!(
        virtual_alias::expand_with("a", 5, 10, &mut lookup),
        Err(Failure::Limit(_))
    ));
    // One address to 20: past an expansion limit of 10.
    let mut wide = |a: &str| -> Result<Option<Vec<String>>, MapError> {
        Ok((a == "list").then(|| (0..20).map(|i| format!("m{i}")).collect()))
    };
    assert!(matches!(
        virtual_alias::expand_with("list", 100, 10, &mut wide),
        Err(Failure::Limit(t)) if t.contains("expansion size")
    ));
    assert_eq!(
        virtual_alias::expand_with("list", 100, 20, &mut wide)
            .unwrap()
            .len(),
        20
    );
}

#[test]
fn a_failing_table_is_a_lookup_failure() {
    let mut failing = |_: &str| -> Result<Option<Vec<String>>, MapError> {
        Err(MapError::Unavailable("x".into()))
    };
    assert!(matches!(
        virtual_alias::expand_with("a", 10, 10, &mut failing),
        Err(Failure::Lookup(_))
    ));
}

#[test]
fn extensions_propagate_from_the_key_without_them() {
    let r = with_aliases(
        "inline:{ bob@v.example=robert@elsewhere.example, @v.example=catch@here.example, \
         kim+tag@v.example=exact@here.example }",
    );
    assert_eq!(
        r.recipient("bob+lists@v.example").unwrap(),
        vec!["robert+lists@elsewhere.example"]
    );
    // The exact key wins and propagates nothing.
    assert_eq!(
        r.recipient("kim+tag@v.example").unwrap(),
        vec!["exact@here.example"]
    );
    // The catch-all: Postfix's mail_addr_find gives no extension there.
    assert_eq!(
        r.recipient("anyone+x@v.example").unwrap(),
        vec!["catch@here.example"]
    );
}

#[test]
fn local_domains_also_look_up_the_local_part() {
    let r = with_aliases("inline:{ sales=ann@elsewhere.example, ann@v.example=ann }");
    assert_eq!(
        r.recipient("sales+q@here.example").unwrap(),
        vec!["ann+q@elsewhere.example"]
    );
    // Not for other domains; a result without a domain gets the origin's.
    assert_eq!(
        r.recipient("sales@v.example").unwrap(),
        vec!["sales@v.example"]
    );
    assert_eq!(
        r.recipient("ann@v.example").unwrap(),
        vec!["ann@here.example"]
    );
}

#[test]
fn classes_local_alias_relay_default() {
    let mut c = config();
    c.r#virtual.alias_maps = vec!["inline:{ v.example=x, a@v.example=b@here.example }".into()];
    c.relay.domains = vec![
        "relay.example".into(),
        ".sub.example".into(),
        "!no.relay2.example".into(),
        "relay2.example".into(),
    ];
    let r = rewriter(c);
    let class = |d: &str| r.class(d).unwrap();
    assert_eq!(class("here.example"), Class::Local);
    assert_eq!(class("HERE.example."), Class::Local);
    assert_eq!(class("v.example"), Class::VirtualAlias);
    // alias_domains is not in parent_domain_matches_subdomains.
    assert_eq!(class("x.v.example"), Class::Default);
    assert_eq!(class("relay.example"), Class::Relay);
    // relay_domains is: its subdomains too.
    assert_eq!(class("mx.relay.example"), Class::Relay);
    assert_eq!(class("sub.example"), Class::Default);
    assert_eq!(class("a.sub.example"), Class::Relay);
    assert_eq!(class("no.relay2.example"), Class::Default);
    assert_eq!(class("yes.relay2.example"), Class::Relay);
    assert_eq!(class("other.example"), Class::Default);
}

#[test]
fn relay_domain_tables_are_asked_with_parent_domains() {
    let mut c = config();
    c.relay.domains = vec!["inline:{ relay.example=OK }".into()];
    c.relay.recipient_maps = vec!["inline:{ ann@relay.example=x, @mx.relay.example=x }".into()];
    let r = rewriter(c);
    assert_eq!(r.class("a.b.relay.example").unwrap(), Class::Relay);
    assert_eq!(r.class("example").unwrap(), Class::Default);
    assert!(r.relay_recipient("ann@relay.example").unwrap());
    assert!(r.relay_recipient("ann+x@relay.example").unwrap());
    assert!(!r.relay_recipient("bob@relay.example").unwrap());
    assert!(r.relay_recipient("anyone@mx.relay.example").unwrap());
}

#[test]
fn the_default_alias_domains_need_the_bare_domain_key() {
    let r = with_aliases("inline:{ a@v.example=b@here.example }");
    assert_eq!(r.class("v.example").unwrap(), Class::Default);
    let mut c = config();
    c.r#virtual.alias_domains = vec!["v.example".into()];
    c.r#virtual.alias_maps = vec!["inline:{ a@v.example=b@here.example }".into()];
    assert_eq!(rewriter(c).class("v.example").unwrap(), Class::VirtualAlias);
}

#[test]
fn a_domain_in_two_classes_is_a_conflict() {
    let mut c = config();
    c.r#virtual.alias_maps = vec!["inline:{ here.example=x }".into()];
    let problems = rewriter(c).class_conflicts();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("local.domains") && problems[0].contains("virtual.alias_domains"));
}

#[test]
fn masquerading_cuts_hosts_down_to_the_domain() {
    let d = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let m = |a: &str, doms: &[&str], ex: &[&str]| canonical::masquerade(a, &d(doms), &d(ex));
    assert_eq!(
        m("u@host.example.com", &["example.com"], &[]),
        "u@example.com"
    );
    assert_eq!(
        m("u@a.b.example.com", &["example.com"], &[]),
        "u@example.com"
    );
    assert_eq!(m("u@example.com", &["example.com"], &[]), "u@example.com");
    assert_eq!(
        m("u@notexample.com", &["example.com"], &[]),
        "u@notexample.com"
    );
    assert_eq!(
        m(
            "u@h.eng.example.com",
            &["!eng.example.com", "example.com"],
            &[]
        ),
        "u@h.eng.example.com"
    );
    assert_eq!(
        m(
            "u@h.eng.example.com",
            &["eng.example.com", "example.com"],
            &[]
        ),
        "u@eng.example.com"
    );
    assert_eq!(
        m("root@host.example.com", &["example.com"], &["root"]),
        "root@host.example.com"
    );
}

#[test]
fn the_sender_is_canonicalised_then_masqueraded() {
    let mut c = config();
    c.rewrite.sender_canonical_maps =
        vec!["inline:{ joe@here.example=joseph@host.example.com }".into()];
    c.rewrite.canonical_maps =
        vec!["inline:{ joseph@host.example.com=j.smith@host.example.com }".into()];
    c.rewrite.masquerade_domains = vec!["example.com".into()];
    let r = rewriter(c);
    assert_eq!(r.sender("joe@here.example").unwrap(), "j.smith@example.com");
    assert_eq!(r.sender("").unwrap(), "");
    // Recipients are not masqueraded (Postfix's masquerade_classes).
    assert_eq!(
        r.recipient("x@host.example.com").unwrap(),
        vec!["x@host.example.com"]
    );
}

#[test]
fn recipient_canonical_comes_before_virtual_aliases() {
    let mut c = config();
    c.rewrite.recipient_canonical_maps = vec!["inline:{ old@v.example=new@v.example }".into()];
    c.r#virtual.alias_maps = vec!["inline:{ new@v.example=box@here.example }".into()];
    let r = rewriter(c);
    assert_eq!(
        r.recipient("old@v.example").unwrap(),
        vec!["box@here.example"]
    );
}

#[test]
fn the_envelope_keeps_the_original_recipient() {
    let r = with_aliases(
        "inline:{ {team@v.example = ann@here.example, bob@here.example}, bob@v.example=bob@here.example }",
    );
    let rcpt = |a: &str| Recipient {
        address: a.into(),
        orcpt: None,
        notify: Some("NEVER".into()),
        original: None,
    };
    let mut sender = "s@x.example".to_string();
    let mut rcpts = vec![
        rcpt("team@v.example"),
        rcpt("bob@v.example"),
        rcpt("ann@here.example"),
    ];
    r.envelope(&mut sender, &mut rcpts).unwrap();
    let got: Vec<(&str, Option<&str>)> = rcpts
        .iter()
        .map(|r| (r.address.as_str(), r.original.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann@here.example", Some("team@v.example")),
            ("bob@here.example", Some("team@v.example")),
        ]
    );
    assert_eq!(rcpts[0].notify.as_deref(), Some("NEVER"));
}
