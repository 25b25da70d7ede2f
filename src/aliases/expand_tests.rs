use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::*;
use crate::aliases::{Table, parse};

fn table(text: &str) -> Table {
    let (table, diagnostics) = parse(text, Path::new("/etc/aliases"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Table::layered([table])
}

fn files(list: &[(&str, &str)]) -> impl FnMut(&Path) -> io::Result<String> + use<> {
    let map: HashMap<PathBuf, String> = list
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    move |p: &Path| {
        map.get(p)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

fn no_files() -> impl FnMut(&Path) -> io::Result<String> {
    files(&[])
}

/// The deliveries as `target <- chain`, and the failures as
/// `status text <- chain`.
fn summary(expansion: &Expansion) -> (Vec<String>, Vec<String>) {
    let deliveries = expansion
        .deliveries
        .iter()
        .map(|d| format!("{} <- {}", d.target, d.chain.join(",")))
        .collect();
    let failures = expansion
        .failures
        .iter()
        .map(|f| format!("{} {} <- {}", f.error.status(), f.error, f.chain.join(",")))
        .collect();
    (deliveries, failures)
}

fn run(text: &str, rcpt: &str) -> (Vec<String>, Vec<String>) {
    summary(&expand(
        &table(text),
        rcpt,
        &ExpandOptions::default(),
        no_files(),
    ))
}

#[test]
fn not_an_alias() {
    let expansion = expand(&table("a: b\n"), "c", &ExpandOptions::default(), no_files());
    assert_eq!(expansion, Expansion::default());
}

#[test]
fn every_final_kind_with_its_chain() {
    let text = "\
team: ann, Bob@Example.COM, |/bin/log, /var/log/team, /srv/team/, \\Carl, staff
staff: dave, eve@remote.example
";
    let (deliveries, failures) = run(text, "Team");
    assert_eq!(
        deliveries,
        [
            "ann <- team",
            "Bob@Example.COM <- team",
            "|/bin/log <- team",
            "/var/log/team <- team",
            "/srv/team/ <- team",
            "\\carl <- team",
            "dave <- team,staff",
            "eve@remote.example <- team,staff",
        ]
    );
    assert!(failures.is_empty());
    let expansion = expand(&table(text), "team", &ExpandOptions::default(), no_files());
    assert_eq!(expansion.matched.as_deref(), Some("team"));
    let dave = &expansion.deliveries[6];
    assert_eq!(dave.context, Context::Alias);
    assert_eq!(
        dave.source,
        Source::File {
            path: "/etc/aliases".into(),
            line: 2
        }
    );
}

#[test]
fn defaults_lead_to_root() {
    let (deliveries, failures) = run("root: admin\n", "MAILER-DAEMON");
    assert_eq!(deliveries, ["admin <- mailer-daemon,postmaster,root"]);
    assert!(failures.is_empty());
}

#[test]
fn an_alias_naming_itself_means_the_mailbox() {
    let (deliveries, failures) = run("ann: ann, ann@elsewhere.example\n", "ann");
    assert_eq!(deliveries, ["ann <- ann", "ann@elsewhere.example <- ann"]);
    assert!(failures.is_empty());
}

#[test]
fn a_two_cycle_ends_with_a_loop_error() {
    let (deliveries, failures) = run("a: b, x\nb: a, y\n", "a");
    assert_eq!(deliveries, ["y <- a,b", "x <- a"]);
    assert_eq!(failures, ["5.4.6 alias database loop for a <- a,b"]);
}

#[test]
fn a_chain_over_100_levels_is_a_loop() {
    let text: String = (0..150).map(|i| format!("a{i}: a{}\n", i + 1)).collect();
    let (deliveries, failures) = run(&text, "a0");
    assert!(deliveries.is_empty());
    assert_eq!(failures.len(), 1);
    assert!(failures[0].starts_with("5.4.6 alias database loop for a100 <- a0,a1,"));
    let expansion = expand(&table(&text), "a0", &ExpandOptions::default(), no_files());
    assert_eq!(expansion.failures[0].chain.len(), 100);

    // 100 levels are allowed.
    let text: String = (0..99).map(|i| format!("a{i}: a{}\n", i + 1)).collect();
    let (deliveries, failures) = run(&format!("{text}a99: end\n"), "a0");
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(deliveries.len(), 1);
}

#[test]
fn duplicates_are_suppressed() {
    let text = "\
all: ann, Ann, dev, ops, ann@example.org, ann@EXAMPLE.ORG, |x, \"|x\"
dev: ann, bob
ops: bob, dev
";
    let (deliveries, failures) = run(text, "all");
    assert_eq!(
        deliveries,
        [
            "ann <- all",
            "bob <- all,dev",
            "ann@example.org <- all",
            "|x <- all"
        ]
    );
    assert!(failures.is_empty());
}

#[test]
fn exponential_fan_out_is_cheap() {
    // Each level lists the next one twice: 2^60 paths, 60 expansions.
    let text: String = (0..60)
        .map(|i| format!("l{i}: l{0}, l{0}, u{i}\n", i + 1))
        .collect();
    let (deliveries, failures) = run(&format!("{text}l60: end\n"), "l0");
    assert_eq!(deliveries.len(), 61);
    assert!(failures.is_empty());
}

#[test]
fn local_domains_are_expanded() {
    let options = ExpandOptions {
        local_domains: vec!["example.com".into(), "other.example.".into()],
        ..ExpandOptions::default()
    };
    let text = "a: b@Example.COM, c@other.example, d@remote.example\nb: final\nc: c@example.com\n";
    let expansion = expand(&table(text), "a", &options, no_files());
    let (deliveries, failures) = summary(&expansion);
    assert_eq!(
        deliveries,
        ["final <- a,b", "c <- a,c", "d@remote.example <- a"]
    );
    assert!(failures.is_empty());
}

#[test]
fn delimiter_lookup_and_self_reference_with_extensions() {
    let options = ExpandOptions {
        delimiter: Some("+".into()),
        ..ExpandOptions::default()
    };
    let text = "user: user+box\nuser+ext: special\nlist: User+Tag\n";
    let t = table(text);
    let get = |rcpt: &str| summary(&expand(&t, rcpt, &options, no_files()));
    assert_eq!(get("user+ext").0, ["special <- user+ext"]);
    // `user+other` falls back to `user`, whose value names itself with an
    // extension: the user's mailbox, extension kept.
    assert_eq!(get("user+other").0, ["user+box <- user"]);
    assert_eq!(get("list").0, ["user+box <- list,user"]);
}

#[test]
fn include_files_and_their_restrictions() {
    let text = "list: :include:/etc/list, owner\n";
    let include = "\
# members
ann, bob
|/bin/cmd
/var/log/list
:include:/etc/sub
staff
";
    let read = files(&[
        ("/etc/list", include),
        ("/etc/sub", "carl, :include:/etc/list\n"),
    ]);
    let text = format!("{text}staff: |/bin/staff\n");
    let expansion = expand(&table(&text), "list", &ExpandOptions::default(), read);
    let (deliveries, failures) = summary(&expansion);
    assert_eq!(
        deliveries,
        [
            "ann <- list",
            "bob <- list",
            "carl <- list",
            "|/bin/staff <- list,staff",
            "owner <- list",
        ]
    );
    assert_eq!(
        failures,
        [
            "5.7.1 mail to command is restricted <- list",
            "5.7.1 mail to file is restricted <- list",
        ]
    );
    let ann = &expansion.deliveries[0];
    assert_eq!(
        ann.context,
        Context::Include {
            path: "/etc/list".into(),
            line: 2
        }
    );
    assert_eq!(expansion.deliveries[3].context, Context::Alias);
    assert_eq!(
        expansion.failures[1].context,
        Context::Include {
            path: "/etc/list".into(),
            line: 4
        }
    );
    // Allowed when the options say so.
    let options = ExpandOptions {
        allow_commands: Allow {
            include: true,
            ..Allow::POSTFIX
        },
        allow_files: Allow {
            include: true,
            ..Allow::POSTFIX
        },
        ..ExpandOptions::default()
    };
    let read = files(&[("/etc/list", include), ("/etc/sub", "")]);
    let expansion = expand(&table(&text), "list", &options, read);
    assert!(expansion.failures.is_empty());
    assert_eq!(expansion.deliveries.len(), 6);
}

#[test]
fn commands_and_files_in_aliases_can_be_refused() {
    let options = ExpandOptions {
        allow_commands: Allow {
            alias: false,
            ..Allow::POSTFIX
        },
        ..ExpandOptions::default()
    };
    let expansion = expand(&table("a: |x, /f\n"), "a", &options, no_files());
    let (deliveries, failures) = summary(&expansion);
    assert_eq!(deliveries, ["/f <- a"]);
    assert_eq!(failures, ["5.7.1 mail to command is restricted <- a"]);
}

#[test]
fn include_problems() {
    let text = "a: :include:/missing, x\nb: :include:/bad\nc: :include:/self\n";
    let t = table(text);
    let read = |p: &Path| match p.to_str() {
        Some("/bad") => Ok("ok\n\"open\n".to_string()),
        Some("/self") => Ok(":include:/self, me\n".to_string()),
        _ => Err(io::Error::from(io::ErrorKind::NotFound)),
    };
    let a = expand(&t, "a", &ExpandOptions::default(), read);
    let (deliveries, failures) = summary(&a);
    assert_eq!(deliveries, ["x <- a"]);
    assert_eq!(failures, ["5.3.5 mail system configuration error <- a"]);
    assert_eq!(
        a.failures[0].error.log_message(),
        "cannot open include file /missing: entity not found"
    );
    let b = expand(&t, "b", &ExpandOptions::default(), read);
    assert_eq!(summary(&b).0, ["ok <- b"]);
    assert_eq!(
        b.warnings[0].to_string(),
        "/bad:2: error: unterminated quoted string"
    );
    // An include file that includes itself is read once.
    let c = expand(&t, "c", &ExpandOptions::default(), read);
    assert_eq!(summary(&c), (vec!["me <- c".to_string()], vec![]));
    // A transient read error defers.
    let eio = |_: &Path| Err(io::Error::other("I/O error"));
    let a = expand(&t, "a", &ExpandOptions::default(), eio);
    assert_eq!(a.failures[0].error.status(), "4.3.5");
    assert!(a.failures[0].error.is_transient());
}

#[test]
fn include_nesting_limit() {
    let read = |p: &Path| {
        let n: usize = p.to_str().and_then(|s| s[2..].parse().ok()).unwrap_or(0);
        Ok(format!(":include:/i{}\n", n + 1))
    };
    let expansion = expand(
        &table("a: :include:/i0\n"),
        "a",
        &ExpandOptions::default(),
        read,
    );
    let (deliveries, failures) = summary(&expansion);
    assert!(deliveries.is_empty());
    assert_eq!(failures, ["5.4.6 :include: nesting limit exceeded <- a"]);
    assert_eq!(
        expansion.failures[0].error.log_message(),
        ":include: nesting limit exceeded for /i99"
    );
}

#[test]
fn an_alias_without_usable_values_defers() {
    let (t, _) = parse("a: :include:relative\nb: a, c\n", Path::new("/etc/aliases"));
    let t = Table::layered([t]);
    let (deliveries, failures) = summary(&expand(&t, "b", &ExpandOptions::default(), no_files()));
    assert_eq!(deliveries, ["c <- b"]);
    assert_eq!(failures, ["4.3.0 alias database unavailable <- b,a"]);
}
