use super::*;

fn table(engine: Engine, text: &str) -> PatternTable {
    let (t, diags) = PatternTable::parse(engine, "t", text);
    assert!(diags.is_empty(), "{diags:?}");
    t
}

fn errors(engine: Engine, text: &str) -> Vec<String> {
    PatternTable::parse(engine, "/etc/postern/t", text)
        .1
        .iter()
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn pcre_word_boundary() {
    let t = table(Engine::Pcre, "/^Subject: .*\\bmoney\\b/ REJECT no spam\n");
    assert_eq!(
        t.lookup(b"Subject: make money fast").as_deref(),
        Some("REJECT no spam")
    );
    assert_eq!(t.lookup(b"Subject: moneyless"), None);
    // Case-insensitive by default; `.` crosses the newline of a folded header.
    assert!(t.lookup(b"SUBJECT: make\n MONEY fast").is_some());
}

#[test]
fn regexp_word_boundary_and_flags() {
    let t = table(Engine::Regexp, "/^Subject: .*\\bmoney\\b/ REJECT\n");
    assert!(t.lookup(b"subject: MONEY").is_some());
    assert!(t.lookup(b"Subject: moneyless").is_none());
    assert!(t.lookup(b"Subject: make\n\tmoney").is_some());
    // `i` toggles case-insensitivity off.
    let t = table(Engine::Regexp, "/^Subject: Money/i OK\n");
    assert!(t.lookup(b"Subject: Money").is_some());
    assert!(t.lookup(b"Subject: money").is_none());
    // `m` (REG_NEWLINE): `^` at line starts, `.` not across lines.
    let t = table(Engine::Regexp, "/^ money/m OK\n");
    assert!(t.lookup(b"Subject: x\n money").is_some());
    let t = table(Engine::Regexp, "/^ money/ OK\n");
    assert!(t.lookup(b"Subject: x\n money").is_none());
}

#[test]
fn negation_legacy_and_substitution() {
    let t = table(
        Engine::Pcre,
        "!/@example\\.com$/ REJECT not ours\n/^(.*)@(.*)$/ FILTER $2:[$1] $$ ${1}$(2)\n",
    );
    assert_eq!(t.lookup(b"a@x.org").as_deref(), Some("REJECT not ours"));
    assert_eq!(
        t.lookup(b"bob@example.com").as_deref(),
        Some("FILTER example.com:[bob] $ bobexample.com")
    );
    let t = table(Engine::Regexp, "/^a/!/^ab/ first\n/^a/ second\n");
    assert_eq!(t.lookup(b"ac").as_deref(), Some("first"));
    assert_eq!(t.lookup(b"abc").as_deref(), Some("second"));
}

#[test]
fn if_endif_nesting() {
    let text = "\
if /^Subject:/
if !/urgent/
/money/ REJECT money
endif
/./ WARN subject
endif
/money/ DUNNO other header
";
    for engine in [Engine::Regexp, Engine::Pcre] {
        let t = table(engine, text);
        assert_eq!(t.lookup(b"Subject: money").as_deref(), Some("REJECT money"));
        assert_eq!(
            t.lookup(b"Subject: urgent money").as_deref(),
            Some("WARN subject")
        );
        assert_eq!(
            t.lookup(b"From: money").as_deref(),
            Some("DUNNO other header")
        );
        assert_eq!(t.lookup(b"From: x"), None);
    }
}

#[test]
fn other_delimiters_and_escapes() {
    // (`#` cannot be the delimiter: such a line is a comment.)
    let t = table(Engine::Pcre, "|a/b\\|c| OK\n#a# comment\n");
    assert!(t.lookup(b"xa/b|c").is_some());
    assert!(t.lookup(b"a").is_none());
    let t = table(Engine::Regexp, "/a\\/b/ OK\n");
    assert!(t.lookup(b"a/b").is_some());
}

#[test]
fn parse_errors_carry_the_line() {
    let text = "\
# comment
/ok/ OK
/unclosed REJECT
/(a/ REJECT
/x/q REJECT

/y/
/(z)/ REJECT $2
endif
if /a/
/b/ OK
";
    assert_eq!(
        errors(Engine::Regexp, text),
        vec![
            "/etc/postern/t:3: error: missing closing delimiter '/'",
            "/etc/postern/t:4: error: bad regular expression: regex parse error: (a ^ error: unclosed group",
            "/etc/postern/t:5: error: unknown regexp flag 'q'",
            "/etc/postern/t:7: error: no result after the pattern",
            "/etc/postern/t:8: error: $2 in the result, but the pattern has 1 group(s)",
            "/etc/postern/t:9: error: endif without a matching if",
            "/etc/postern/t:10: error: if has no matching endif",
        ]
    );
    let e = errors(Engine::Pcre, "/(?<=a+)b/ OK\n!/(x)/ REJECT $1\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("/etc/postern/t:1: error: bad pcre pattern"));
    assert_eq!(
        e[1],
        "/etc/postern/t:2: error: $number in the result of a !/pattern/ rule"
    );
}

#[test]
fn pcre_match_limit_counts_as_no_match() {
    let t = table(Engine::Pcre, "/^(a+)+$/ REJECT\n/./ OK\n");
    let subject = "a".repeat(64) + "b";
    let started = std::time::Instant::now();
    assert_eq!(t.lookup(subject.as_bytes()).as_deref(), Some("OK"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn pcre_flags() {
    let t = table(
        Engine::Pcre,
        "/b/A first\n/B/i second\n/^x$/m third\n/a.b/s fourth\n",
    );
    assert_eq!(t.lookup(b"ab").as_deref(), None);
    assert_eq!(t.lookup(b"bc").as_deref(), Some("first"));
    assert_eq!(t.lookup(b"xB").as_deref(), Some("second"));
    assert_eq!(t.lookup(b"y\nx\nz").as_deref(), Some("third"));
    assert_eq!(t.lookup(b"a\nb"), None);
    assert!(errors(Engine::Pcre, "/a/E OK\n")[0].contains("not supported"));
}
