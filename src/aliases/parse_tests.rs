use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::aliases::{Source, Table, load};

fn file() -> &'static Path {
    Path::new("/etc/aliases")
}

/// The table's entries as `name -> [targets]`, and the diagnostics as text.
fn parsed(text: &str) -> (Vec<(String, Vec<Target>)>, Vec<String>) {
    let (table, diagnostics) = parse(text, file());
    let entries = table
        .iter()
        .map(|(n, e)| (n.to_string(), e.targets.clone()))
        .collect();
    (
        entries,
        diagnostics.iter().map(ToString::to_string).collect(),
    )
}

fn addr(s: &str) -> Target {
    Target::Address(s.to_string())
}

#[test]
fn every_value_form() {
    let text = r#"
# The classic forms.
root: admin
list: a, b@example.com,
  "|/usr/bin/prog -x, y", /var/log/mail.log,
	/home/ann/Maildir/, :include:/etc/mail/list, \ann
owner-list: ann
"#;
    let (entries, diagnostics) = parsed(text);
    assert_eq!(diagnostics, Vec::<String>::new());
    assert_eq!(
        entries,
        [
            (
                "list".to_string(),
                vec![
                    addr("a"),
                    addr("b@example.com"),
                    Target::Command("/usr/bin/prog -x, y".into()),
                    Target::File("/var/log/mail.log".into()),
                    Target::File("/home/ann/Maildir/".into()),
                    Target::Include("/etc/mail/list".into()),
                    Target::NoExpand("ann".into()),
                ]
            ),
            ("owner-list".to_string(), vec![addr("ann")]),
            ("root".to_string(), vec![addr("admin")]),
        ]
    );
    let (table, _) = parse(text, file());
    let list = &table.get("list").unwrap().targets;
    assert!(list[4].is_maildir() && !list[3].is_maildir());
    assert_eq!(table.owner("list").unwrap().targets, [addr("ann")]);
    assert_eq!(
        table.get("LIST").unwrap().source,
        Source::File {
            path: file().to_path_buf(),
            line: 4
        }
    );
}

#[test]
fn quoted_names_comments_and_case() {
    let text = "\
\"First Last\": fl
\"a:b\" : x
\"a@b\": y
Mixed: z (a comment)
\"Jo\\\"e\": w
";
    let (entries, diagnostics) = parsed(text);
    assert_eq!(diagnostics, Vec::<String>::new());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a:b", "a@b", "first last", "jo\"e", "mixed"]);
    assert_eq!(entries[4].1, [addr("z")]);
}

#[test]
fn unquoted_commands_run_to_the_comma() {
    let (entries, diagnostics) = parsed("x: |/bin/prog -a  b, c\ny: | prog\n");
    assert_eq!(diagnostics, Vec::<String>::new());
    assert_eq!(
        entries[0].1,
        [Target::Command("/bin/prog -a b".into()), addr("c")]
    );
    assert_eq!(entries[1].1, [Target::Command(" prog".into())]);
}

#[test]
fn diagnostics_name_file_and_line() {
    let text = "\
root: admin
  , extra
no colon here
user@example.com: x
%hack: x
empty:
also: ,
two words: x
a, b: c
bad: \"unterminated
root: again
relative: :include:etc/list
home: ~/mail, ok
notes: a,,b
vals: a b
weird: <a@b>
";
    let (entries, diagnostics) = parsed(text);
    let expected = [
        "/etc/aliases:3: error: need name:value pair",
        "/etc/aliases:4: error: name must be local and have no domain",
        "/etc/aliases:5: error: name must be local and have no domain",
        "/etc/aliases:6: error: need name:value pair",
        "/etc/aliases:7: error: need name:value pair",
        "/etc/aliases:8: error: a name with spaces must be quoted (\"first last\": ...)",
        "/etc/aliases:9: error: need name:value pair",
        "/etc/aliases:10: error: unterminated quoted string",
        "/etc/aliases:10: error: no usable value: mail to this name is deferred",
        "/etc/aliases:11: warning: duplicate entry: \"root\" (first at line 1); \
         this one is ignored",
        "/etc/aliases:12: error: \":include:etc/list\": the :include: path must be absolute",
        "/etc/aliases:12: error: no usable value: mail to this name is deferred",
        "/etc/aliases:13: error: \"~/mail\": ~/path is only valid in a .forward file",
        "/etc/aliases:14: warning: empty value ignored",
        "/etc/aliases:15: error: \"a b\": values must be separated by commas \
         (quote a value with spaces)",
        "/etc/aliases:15: error: no usable value: mail to this name is deferred",
        "/etc/aliases:16: error: unexpected '<' (quote a value that contains it; \
         write addresses bare)",
        "/etc/aliases:16: error: no usable value: mail to this name is deferred",
    ];
    assert_eq!(diagnostics, expected);
    // Tolerant: the good entries and values are kept; a name whose values
    // are all bad stays, without targets, so its mail defers.
    let get = |n: &str| entries.iter().find(|(k, _)| k == n).map(|(_, t)| t.clone());
    assert_eq!(get("root"), Some(vec![addr("admin"), addr("extra")]));
    assert_eq!(get("home"), Some(vec![addr("ok")]));
    assert_eq!(get("notes"), Some(vec![addr("a"), addr("b")]));
    assert_eq!(get("bad"), Some(vec![]));
    assert_eq!(get("relative"), Some(vec![]));
    assert_eq!(get("empty"), None);
    assert_eq!(get("user@example.com"), None);
}

#[test]
fn a_continuation_without_a_line_before() {
    let (entries, diagnostics) = parsed("# c\n  orphan: x\n\tmore\nok: y\n");
    assert_eq!(
        diagnostics,
        [
            "/etc/aliases:2: error: logical line must not start with whitespace",
            "/etc/aliases:3: error: logical line must not start with whitespace",
        ]
    );
    assert_eq!(entries, [("ok".to_string(), vec![addr("y")])]);
}

#[test]
fn comments_inside_continuations_and_crlf() {
    let text = "list: a,\r\n# between\r\n\r\n  b\r\nnext: c\r\n";
    let (entries, diagnostics) = parsed(text);
    assert_eq!(diagnostics, Vec::<String>::new());
    assert_eq!(entries[0], ("list".to_string(), vec![addr("a"), addr("b")]));
    assert_eq!(entries[1], ("next".to_string(), vec![addr("c")]));
}

#[test]
fn values_parse_on_their_own() {
    let (targets, problems) = parse_value(":INCLUDE:/x, \"\\\\weird user\", \"a b\"@example.com");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        targets,
        [
            Target::Include("/x".into()),
            Target::NoExpand("weird user".into()),
            addr("a b@example.com"),
        ]
    );
    assert_eq!(parse_value("@x").1[0].1, "\"@x\": invalid address");
    assert_eq!(
        parse_value("\\").1[0].1,
        "\"\\\": \\ must be followed by a local user name"
    );
    assert_eq!(parse_value("\"|  \"").1[0].1, "empty command after \"|\"");
}

#[test]
fn include_files_have_no_continuations() {
    let text = "a, b\n  # comment\n\n  c\n|/bin/x\nbad\"\n";
    let (targets, diagnostics) = parse_include(text, Path::new("/etc/list"));
    assert_eq!(
        targets,
        [
            (1, addr("a")),
            (1, addr("b")),
            (4, addr("c")),
            (5, Target::Command("/bin/x".into()))
        ]
    );
    let diagnostics: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        diagnostics,
        ["/etc/list:6: error: unterminated quoted string"]
    );
}

#[test]
fn display_quotes_as_needed() {
    let shown = |t: Target| t.to_string();
    assert_eq!(shown(addr("a@example.com")), "a@example.com");
    assert_eq!(shown(addr("a b@example.com")), "\"a b@example.com\"");
    assert_eq!(
        shown(Target::Command("/bin/x -y, z".into())),
        "\"|/bin/x -y, z\""
    );
    assert_eq!(shown(Target::Command("/bin/x".into())), "|/bin/x");
    assert_eq!(shown(Target::File("/m/".into())), "/m/");
    assert_eq!(shown(Target::Include("/a b".into())), "\":include:/a b\"");
    assert_eq!(shown(Target::NoExpand("ann".into())), "\\ann");
    assert_eq!(shown(Target::NoExpand("a\"b".into())), "\"\\\\a\\\"b\"");
    let (table, _) = parse("\"a:b\": \"|x y\", c\n\"#x\": d\n", file());
    assert_eq!(table.render(), "\"#x\": d\n\"a:b\": \"|x y\", c\n");
}

#[test]
fn inline_aliases() {
    let (table, diagnostics) = parse_inline(
        [
            ("Postmaster", "root"),
            ("root", "admin, |/usr/bin/x"),
            ("a@b", "c"),
            ("empty", " "),
            ("bad", "\"x"),
            ("ROOT", "other"),
        ],
        Path::new("/etc/postern/postern.toml"),
    );
    let diagnostics: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        diagnostics,
        [
            "/etc/postern/postern.toml: error: local.aliases.a@b: name must be local and have \
             no domain",
            "/etc/postern/postern.toml: error: local.aliases.empty: empty value",
            "/etc/postern/postern.toml: error: local.aliases.bad: unterminated quoted string",
            "/etc/postern/postern.toml: error: local.aliases.bad: no usable value: mail to \
             this name is deferred",
            "/etc/postern/postern.toml: warning: local.aliases.ROOT: duplicate entry: \"root\"; \
             this one is ignored",
        ]
    );
    assert_eq!(
        table.get("root").unwrap().targets,
        [addr("admin"), Target::Command("/usr/bin/x".into())]
    );
    assert_eq!(table.get("postmaster").unwrap().source, Source::Inline);
}

#[test]
fn inline_wins_over_files_and_files_in_order_then_defaults() {
    let files = [PathBuf::from("/etc/aliases"), PathBuf::from("/etc/more")];
    let read = |p: &Path| {
        Ok(match p.to_str() {
            Some("/etc/aliases") => "root: from-file\nann: first\n".to_string(),
            _ => "ann: second\nbob: more\n".to_string(),
        })
    };
    let (table, diagnostics) = load([("root", "inline")], Path::new("p.toml"), &files, read)
        .expect("the reader does not fail");
    assert!(diagnostics.is_empty());
    let first = |n: &str| table.get(n).unwrap().targets[0].clone();
    assert_eq!(first("root"), addr("inline"));
    assert_eq!(first("ann"), addr("first"));
    assert_eq!(first("bob"), addr("more"));
    assert_eq!(first("postmaster"), addr("root"));
    assert_eq!(first("mailer-daemon"), addr("postmaster"));
    assert_eq!(table.get("mailer-daemon").unwrap().source, Source::Default);

    let overridden = Table::layered([parse("postmaster: ann\n", file()).0]);
    assert_eq!(overridden.get("postmaster").unwrap().targets, [addr("ann")]);

    let failing = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    let error = load([], Path::new("p.toml"), &files, failing).unwrap_err();
    assert_eq!(
        error.to_string(),
        "alias file /etc/aliases: cannot read: entity not found"
    );
}

#[test]
fn lookup_with_a_delimiter() {
    let (table, _) = parse("user: a\nuser+ext: b\nother: c\n", file());
    let found = |local: &str, d: Option<&str>| table.lookup(local, d).map(|(n, _)| n.to_string());
    assert_eq!(found("user+ext", Some("+")), Some("user+ext".into()));
    assert_eq!(found("User+Other", Some("+")), Some("user".into()));
    assert_eq!(found("user+other", None), None);
    assert_eq!(found("user+other", Some("")), None);
    assert_eq!(found("other-x+y", Some("+-")), Some("other".into()));
    assert_eq!(found("+other", Some("+")), None);
    assert_eq!(found("nobody", Some("+")), None);
}

// Generated tables: names and targets of every kind, with the characters
// that need quoting.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9._+-]{0,10}",
        "[a-z]{1,3}[ :@%#,\"\\\\()<>;.]{1,2}[a-z]{0,3}",
        "#[a-z]{1,4}",
        "[a-zé]{1,5}",
    ]
}

fn plain() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+=!$&*'-]{1,8}"
}

fn odd() -> impl Strategy<Value = String> {
    "[a-z]{1,3}[ ,:\"\\\\()<>;#@%\t]{0,2}[a-z]{1,3}"
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        plain().prop_map(Target::Address),
        (plain(), "[a-z]{1,5}(\\.[a-z]{2,3})?")
            .prop_map(|(l, d)| Target::Address(format!("{l}@{d}"))),
        (odd(), "[a-z]{1,5}").prop_map(|(l, d)| Target::Address(format!("{l}@{d}"))),
        ("(/[a-z ,]{1,5}){1,3}/?").prop_map(|p| Target::File(p.into())),
        ("[a-z/ ,\"\\\\-]{0,12}[a-z]").prop_map(Target::Command),
        ("(/[a-z ,]{1,5}){1,3}").prop_map(|p| Target::Include(p.into())),
        prop_oneof![plain(), odd()]
            .prop_filter("a user name", |u| !u.contains('@'))
            .prop_map(Target::NoExpand),
    ]
}

fn table() -> impl Strategy<Value = Vec<(String, Vec<Target>)>> {
    proptest::collection::btree_map(name(), proptest::collection::vec(target(), 1..5), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC*") {
        let _ = parse(&text, file());
        let _ = parse_include(&text, file());
    }

    #[test]
    fn parse_never_panics_on_alias_like_text(
        text in "([a-z\"\\\\ :,@#|/()<>\t]{0,12}\n?){0,8}"
    ) {
        let _ = parse(&text, file());
    }

    #[test]
    fn render_parse_round_trips(entries in table()) {
        let mut table = Table::new();
        for (name, targets) in &entries {
            let entry = crate::aliases::Entry { targets: targets.clone(), source: Source::Inline };
            table.insert(name.clone(), entry);
        }
        let text = table.render();
        let (entries_back, diagnostics) = parsed(&text);
        prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        prop_assert_eq!(entries_back, entries, "{}", text);
    }
}
