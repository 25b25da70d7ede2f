//! Tests of the whole loader: defaults, expansion, error messages, printing
//! and round trips. Most run on a made-up system so that the host's name
//! does not matter.

use std::path::PathBuf;
use std::time::Duration;

use super::defaults::{self, System};
use super::{BareNewline, Config, ConfigError, DEFAULT_PATH, load, show};

pub(super) const FILE: &str = "/etc/postern/postern.toml";

pub(super) fn system() -> System {
    System {
        hostname: "box".into(),
        root: true,
        state_dir: "/home/u/.local/state/postern".into(),
        etc_aliases: true,
    }
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    load::parse(text, FILE, &system())
}

pub(super) fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

pub(super) fn err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("{text:?} parsed: {config:?}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn to_toml(config: &Config, non_default: bool) -> String {
    show::to_toml(config, non_default, &system())
}

const README: &str = r#"[server]
hostname = "mail.foo.example"
domain = "foo.example"
[local]
domains = ["$hostname", "localhost.$domain", "$domain"]
mailbox = "Maildir/"
[relay]
networks = ["127.0.0.0/8", "10.0.250.0/24"]
[smtpd]
listen = ["0.0.0.0:25"]
"#;

// ---- defaults ----

#[test]
fn builtin_follows_postfix_defaults() {
    let c = defaults::builtin(&system());
    assert_eq!(c.server.hostname, "box.localdomain");
    assert_eq!(c.server.domain, "localdomain");
    assert_eq!(c.server.origin, "box.localdomain");
    assert_eq!(c.server.user, "postern");
    assert_eq!(c.server.run_directory, PathBuf::from("/run/postern"));
    assert_eq!(
        c.local.domains,
        ["box.localdomain", "localhost.localdomain", "localhost"]
    );
    assert_eq!(c.local.mailbox, "Maildir/");
    assert_eq!(c.local.worker_idle, Duration::from_secs(60));
    let networks: Vec<String> = c.relay.networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(networks, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(c.queue.directory, PathBuf::from("/var/spool/postern"));
    assert_eq!(c.queue.large_message_threshold, 1 << 20);
    assert_eq!(c.queue.minimal_backoff, Duration::from_secs(300));
    assert_eq!(c.queue.maximal_backoff, Duration::from_secs(4000));
    assert_eq!(c.queue.run_delay, Duration::from_secs(300));
    assert_eq!(c.queue.maximal_lifetime, Duration::from_secs(5 * 86400));
    assert_eq!(c.queue.move_deferred_after, Duration::from_secs(3600));
    assert_eq!(c.smtpd.listen, ["127.0.0.1:2525".parse().unwrap()]);
    assert_eq!(c.smtpd.banner, "box.localdomain ESMTP postern");
    assert_eq!(c.smtpd.message_size_limit, 10_240_000);
    assert_eq!(c.smtpd.recipient_limit, 1000);
    assert_eq!(c.smtpd.line_length_limit, 2048);
    assert_eq!(c.smtpd.timeout, Duration::from_secs(300));
    assert_eq!(c.smtpd.hard_error_limit, 20);
    assert_eq!(c.smtpd.junk_command_limit, 100);
    assert_eq!(c.smtpd.session_time_limit, Duration::from_secs(3600));
    assert_eq!(c.smtpd.max_connections, 2000);
    assert_eq!(c.smtpd.max_connections_per_client, 50);
    assert_eq!(c.queue.minfree, 0);
    assert!(!c.smtpd.vrfy);
    assert_eq!(c.smtpd.forbid_bare_newline, BareNewline::Normalize);
    assert!(c.smtpd.forbid_unauth_pipelining);
}

#[test]
fn builtin_on_a_host_with_a_domain_and_without_root() {
    let sys = System {
        hostname: "MX.Example.org".into(),
        root: false,
        state_dir: "/home/u/.local/state/postern".into(),
        etc_aliases: true,
    };
    let c = defaults::builtin(&sys);
    assert_eq!(c.server.hostname, "MX.Example.org");
    assert_eq!(c.server.domain, "Example.org");
    assert_eq!(
        c.local.domains,
        ["mx.example.org", "localhost.example.org", "localhost"]
    );
    assert_eq!(
        c.queue.directory,
        PathBuf::from("/home/u/.local/state/postern/queue")
    );
    assert_eq!(
        c.server.run_directory,
        PathBuf::from("/home/u/.local/state/postern/run")
    );
    assert_eq!(load::parse("", FILE, &sys).unwrap(), c);
}

#[test]
fn empty_file_gives_builtin() {
    assert_eq!(ok(""), defaults::builtin(&system()));
    assert_eq!(
        ok("# nothing\n\n[server]\n[smtpd]\n"),
        defaults::builtin(&system())
    );
    assert_eq!(Config::from_toml("", "x").unwrap(), Config::builtin());
}

#[test]
fn readme_minimal_configuration() {
    let c = ok(README);
    assert_eq!(c.server.hostname, "mail.foo.example");
    assert_eq!(c.server.domain, "foo.example");
    assert_eq!(c.server.origin, "mail.foo.example");
    assert_eq!(
        c.local.domains,
        ["mail.foo.example", "localhost.foo.example", "foo.example"]
    );
    assert_eq!(c.local.mailbox, "Maildir/");
    let networks: Vec<String> = c.relay.networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(networks, ["127.0.0.0/8", "10.0.250.0/24"]);
    assert_eq!(c.smtpd.listen, ["0.0.0.0:25".parse().unwrap()]);
    assert_eq!(c.smtpd.banner, "mail.foo.example ESMTP postern");
}

#[test]
fn every_key_is_read() {
    let c = ok(r#"
        [server]
        hostname = "mx.a.example"
        domain = "a.example"
        origin = "a.example"
        user = "mailer"
        run_directory = "/run/x"
        [local]
        domains = ["A.example"]
        mailbox = "/var/mail/$user"
        worker_idle = "2m"
        [relay]
        networks = ["192.0.2.1", "[2001:db8::]/32"]
        sasl_password_files = ["/etc/postern/sasl_passwd", "hash:/etc/postern/more", "inline:{ a=b:c }"]
        sasl_plaintext = true
        [queue]
        directory = "/srv/q"
        large_message_threshold = 0
        minimal_backoff = 60
        maximal_backoff = "1h"
        run_delay = "30s"
        maximal_lifetime = "2w"
        move_deferred_after = 0
        minfree = 50000000
        [smtpd]
        listen = ["[::1]:25", "127.0.0.1:587"]
        banner = "hi"
        message_size_limit = 0
        recipient_limit = 1
        line_length_limit = 512
        timeout = "1m"
        hard_error_limit = 3
        junk_command_limit = 0
        session_time_limit = "10m"
        max_connections = 7
        max_connections_per_client = 0
        vrfy = true
        forbid_bare_newline = "reject"
        forbid_unauth_pipelining = false
        [dkim]
        keys = ["Example.org:Sel1:/var/lib/postern/dkim/example.org.sel1.key", "example.org:ed:/k/ed.pem"]
        headers = ["From", "Subject"]
        canonicalization = "simple"
        sign = ["authenticated", "local"]
    "#);
    assert_eq!(c.server.user, "mailer");
    assert_eq!(c.server.run_directory, PathBuf::from("/run/x"));
    assert_eq!(c.local.domains, ["a.example"]);
    assert_eq!(c.local.mailbox, "/var/mail/$user");
    assert_eq!(c.local.worker_idle, Duration::from_secs(120));
    assert_eq!(c.relay.networks[0].to_string(), "192.0.2.1/32");
    assert_eq!(c.relay.networks[1].to_string(), "2001:db8::/32");
    // A bare path is a texthash: table.
    assert_eq!(
        c.relay.sasl_password_files,
        [
            "texthash:/etc/postern/sasl_passwd",
            "hash:/etc/postern/more",
            "inline:{ a=b:c }"
        ]
    );
    assert!(c.relay.sasl_plaintext);
    assert_eq!(c.queue.directory, PathBuf::from("/srv/q"));
    assert_eq!(c.queue.large_message_threshold, 0);
    assert_eq!(c.queue.maximal_lifetime, Duration::from_secs(14 * 86400));
    assert_eq!(c.queue.move_deferred_after, Duration::ZERO);
    assert_eq!(c.smtpd.listen[0].to_string(), "[::1]:25");
    assert_eq!(c.smtpd.banner, "hi");
    assert_eq!(c.smtpd.hard_error_limit, 3);
    assert_eq!(c.smtpd.junk_command_limit, 0);
    assert_eq!(c.smtpd.session_time_limit, Duration::from_secs(600));
    assert_eq!(c.queue.minfree, 50_000_000);
    assert!(c.smtpd.vrfy);
    assert_eq!(c.smtpd.forbid_bare_newline, BareNewline::Reject);
    assert!(!c.smtpd.forbid_unauth_pipelining);
    assert_eq!(
        c.dkim.keys[0].to_string(),
        "example.org:sel1:/var/lib/postern/dkim/example.org.sel1.key"
    );
    assert_eq!(c.dkim.keys[1].path, PathBuf::from("/k/ed.pem"));
    assert_eq!(c.dkim.headers, ["From", "Subject"]);
    // A single word is c='s: the body's is simple.
    assert_eq!(
        c.dkim.canonicalization,
        crate::config::DkimCanonicalization::SimpleSimple
    );
    assert_eq!(
        c.dkim.sign,
        [
            crate::config::DkimSign::Authenticated,
            crate::config::DkimSign::Local
        ]
    );
    assert_round_trip(&c);
}

#[test]
fn dotted_keys_and_inline_tables_are_tables_too() {
    let c = ok("smtpd.vrfy = true\nrelay = { networks = [\"10.0.0.0/8\"] }\n");
    assert!(c.smtpd.vrfy);
    assert_eq!(c.relay.networks[0].to_string(), "10.0.0.0/8");
    assert_eq!(
        err("smtpd.vrfy = true\nsmtpd.vrfi = true\n"),
        format!("{FILE}:2: unknown key `smtpd.vrfi`; did you mean `vrfy`?")
    );
    assert_eq!(
        err("relay = { netwroks = [] }"),
        format!("{FILE}:1: unknown key `relay.netwroks`; did you mean `networks`?")
    );
}

// ---- expansion ----

#[test]
fn expansion_forms_and_escapes() {
    let c = ok(r#"
        [server]
        hostname = "mail.foo.example"
        [smtpd]
        banner = "${hostname} $(domain) $myhostname $$5 $${hostname} $user"
    "#);
    assert_eq!(
        c.smtpd.banner,
        "mail.foo.example foo.example mail.foo.example $5 ${hostname} postern"
    );
    assert_round_trip(&c);
}

#[test]
fn expansion_is_recursive() {
    let c = ok(r#"
        [server]
        domain = "foo.example"
        hostname = "mx.$domain"
        origin = "$mydomain"
        [queue]
        directory = "/srv/$origin/queue"
    "#);
    assert_eq!(c.server.hostname, "mx.foo.example");
    assert_eq!(c.server.origin, "foo.example");
    assert_eq!(c.queue.directory, PathBuf::from("/srv/foo.example/queue"));
    assert_eq!(
        c.local.domains,
        ["mx.foo.example", "localhost.foo.example", "localhost"]
    );
}

#[test]
fn defaults_depend_on_the_file() {
    // Postfix: myhostname = gethostname() + "." + $mydomain when it has no dot.
    let c = ok("[server]\ndomain = \"Foo.Example\"\n");
    assert_eq!(c.server.hostname, "box.Foo.Example");
    assert_eq!(
        c.local.domains,
        ["box.foo.example", "localhost.foo.example", "localhost"]
    );
    // mydomain defaults to $myhostname minus its first label.
    let c = ok("[server]\nhostname = \"a.b.example\"\n");
    assert_eq!(c.server.domain, "b.example");
    assert_eq!(c.server.origin, "a.b.example");
    assert_eq!(c.smtpd.banner, "a.b.example ESMTP postern");
    // Deliveries to one user in parallel: 8 for Maildir, Postfix's 2 for
    // mbox (its lock), whatever is written wins.
    assert_eq!(ok("").local.concurrency_per_user, 8);
    let mbox = ok("[local]\nmailbox = \"/var/mail/$user\"\n");
    assert_eq!(mbox.local.concurrency_per_user, 2);
    assert!(!to_toml(&mbox, true).contains("concurrency_per_user"));
    let set = ok("[local]\nmailbox = \"mbox\"\nconcurrency_per_user = 5\n");
    assert_eq!(set.local.concurrency_per_user, 5);
    assert!(to_toml(&set, true).contains("concurrency_per_user = 5"));
    // One delivery child serves them all, a thread each.
    assert_eq!(
        ok("[local]\nconcurrency_per_user = 64\n")
            .local
            .concurrency_per_user,
        64
    );
    assert_eq!(
        err("[local]\nconcurrency_per_user = 65\n"),
        format!("{FILE}:2: key `local.concurrency_per_user`: bad value 65: must be at most 64")
    );
}

#[test]
fn expansion_errors() {
    assert_eq!(
        err("[server]\nhostname = \"$origin\"\norigin = \"$hostname\"\n"),
        format!(
            "{FILE}:3: key `server.origin`: bad value \"$hostname\": reference cycle: \
             $hostname -> $origin -> $hostname"
        )
    );
    assert_eq!(
        err("[server]\n\nhostname = \"mx.$domain\"\n"),
        format!(
            "{FILE}:3: key `server.hostname`: bad value \"mx.$domain\": reference cycle: \
             $hostname -> $domain -> $hostname"
        )
    );
    assert_eq!(
        err("[smtpd]\nbanner = \"$hostnam ESMTP\"\n"),
        format!(
            "{FILE}:2: key `smtpd.banner`: bad value \"$hostnam ESMTP\": unknown variable `$hostnam`; did you mean `$hostname`?"
        )
    );
    assert_eq!(
        err("[smtpd]\nbanner = \"$xyz\"\n"),
        format!(
            "{FILE}:2: key `smtpd.banner`: bad value \"$xyz\": unknown variable `$xyz` (known: $hostname, $domain, $origin, $user)"
        )
    );
    assert_eq!(
        err("[smtpd]\nbanner = \"costs 5$\"\n"),
        format!(
            "{FILE}:2: key `smtpd.banner`: bad value \"costs 5$\": lone `$`; write `$$` for a literal `$`"
        )
    );
    assert!(
        err("[smtpd]\nbanner = \"${hostname\"\n")
            .ends_with("unterminated `${`; write `$$` for a literal `$`")
    );
    assert!(
        err("[smtpd]\nbanner = \"${hostname:x}\"\n").contains("bad variable name `hostname:x`")
    );
    assert!(err("[smtpd]\nbanner = \"${}\"\n").contains("bad variable name ``"));
    // The error is at the string that holds the bad reference, even when it
    // is reached through another.
    assert_eq!(
        err("[server]\norigin = \"$foo\"\n[smtpd]\nbanner = \"$origin\"\n"),
        format!(
            "{FILE}:2: key `server.origin`: bad value \"$foo\": unknown variable `$foo` (known: $hostname, $domain, $origin, $user)"
        )
    );
}

#[test]
fn mailbox_is_not_expanded() {
    for mailbox in [
        "Maildir/",
        "$home/Mail/",
        "/var/mail/${user}",
        "/m/$user/$home",
    ] {
        assert_eq!(
            ok(&format!("[local]\nmailbox = {mailbox:?}\n"))
                .local
                .mailbox,
            mailbox
        );
    }
    assert_eq!(
        err("[local]\nmailbox = \"/var/mail/$hostname\"\n"),
        format!(
            "{FILE}:2: key `local.mailbox`: bad value \"/var/mail/$hostname\": unknown variable \
             `$hostname`; only $user and $home are expanded in the mailbox"
        )
    );
    assert!(
        err("[local]\nmailbox = \"$(user)\"\n").contains("only $user, ${user}, $home and ${home}")
    );
    assert!(err("[local]\nmailbox = \"a$$b\"\n").contains("`$$` is not supported in the mailbox"));
    assert!(err("[local]\nmailbox = \"\"\n").contains("empty mailbox"));
}

#[test]
fn load_reads_files_and_names_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    let e = Config::load(Some(&path)).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", path.display())),
        "{e}"
    );
    std::fs::write(&path, "[smtpd]\nvrfy = true\n").unwrap();
    assert!(Config::load(Some(&path)).unwrap().smtpd.vrfy);
    std::fs::write(&path, "[smtpd]\nvrfi = true\n").unwrap();
    assert_eq!(
        Config::load(Some(&path)).unwrap_err().to_string(),
        format!(
            "{}:2: unknown key `smtpd.vrfi`; did you mean `vrfy`?",
            path.display()
        )
    );
    std::fs::write(&path, b"\xfe").unwrap();
    assert!(
        Config::load(Some(&path))
            .unwrap_err()
            .to_string()
            .ends_with(":1:1: syntax error: invalid UTF-8")
    );
    if !std::path::Path::new(DEFAULT_PATH).exists() {
        assert_eq!(Config::load(None).unwrap(), Config::builtin());
    }
}

// ---- printing ----

pub(super) fn assert_round_trip(config: &Config) {
    for non_default in [false, true] {
        let text = to_toml(config, non_default);
        match parse(&text) {
            Ok(reread) => assert_eq!(&reread, config, "non_default={non_default}:\n{text}"),
            Err(e) => panic!("non_default={non_default}: {e}\n{text}"),
        }
    }
}

#[test]
fn show_prints_every_key_in_order() {
    let keys: Vec<String> = super::keys::KEYS.iter().map(|k| k.dotted()).collect();
    // `maps` (named tables, printed as tables of their own) aside.
    let entries: Vec<String> = show::entries(&ok(""))
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "maps")
        .collect();
    assert_eq!(entries, keys);
    let text = to_toml(&ok(""), false);
    assert!(
        text.starts_with("[server]\nhostname = \"box.localdomain\"\n"),
        "{text}"
    );
    assert!(
        text.contains("\n[queue]\ndirectory = \"/var/spool/postern\"\n"),
        "{text}"
    );
    assert!(text.contains("maximal_lifetime = \"5d\"\n"), "{text}");
    assert!(text.contains("minimal_backoff = \"5m\"\n"), "{text}");
    assert!(
        text.contains("networks = [\"127.0.0.0/8\", \"::1/128\"]\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" = ")).count(),
        keys.len()
    );
}

#[test]
fn show_round_trips() {
    assert_round_trip(&ok(""));
    assert_round_trip(&ok(README));
    assert_eq!(to_toml(&ok(""), true), "");
    assert_round_trip(&ok("[smtpd]\nbanner = \"$$ and $${x} $hostname\"\n"));
    assert_round_trip(&ok("[queue]\ndirectory = \"/srv/$$q\"\n"));
    assert_round_trip(&ok("[local]\nmailbox = \"/var/mail/$user\"\n"));
}

#[test]
fn show_non_default_prints_what_defaults_cannot_give() {
    assert_eq!(
        to_toml(&ok("[smtpd]\nvrfy = true\n[relay]\nnetworks = []\n"), true),
        "[relay]\nnetworks = []\n\n[smtpd]\nvrfy = true\n"
    );
    // domain, origin, local.domains and the banner follow the hostname.
    assert_eq!(
        to_toml(&ok("[server]\nhostname = \"mx.a.example\"\n"), true),
        "[server]\nhostname = \"mx.a.example\"\n"
    );
    // A domain equal to the old default no longer is the default once the
    // hostname changes, so it must be printed.
    let c = ok("[server]\nhostname = \"mx.a.example\"\ndomain = \"localdomain\"\n");
    assert_eq!(c.server.domain, "localdomain");
    assert_eq!(
        to_toml(&c, true),
        "[server]\nhostname = \"mx.a.example\"\ndomain = \"localdomain\"\n"
    );
    assert_round_trip(&c);
    // And the other way round: the default hostname depends on the domain.
    let c = ok("[server]\nhostname = \"box.localdomain\"\ndomain = \"b.example\"\n");
    assert_round_trip(&c);
    assert!(to_toml(&c, true).contains("hostname = \"box.localdomain\""));
}

mod errors;
mod props;

#[test]
fn aliases_keys() {
    let c = Config::from_toml(
        "[local]\naliases = { Postmaster = \"root\", root = \"admin, |/usr/bin/x\" }\nalias_files = [\"/etc/aliases\", \"/etc/postern/aliases\"]\nrecipient_delimiter = \"+\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        c.local.aliases.get("postmaster").map(String::as_str),
        Some("root")
    );
    assert_eq!(
        c.local.aliases.get("root").map(String::as_str),
        Some("admin, |/usr/bin/x")
    );
    assert_eq!(c.local.alias_files.len(), 2);
    assert_eq!(c.local.recipient_delimiter, "+");
    let again = Config::from_toml(&c.to_toml(true), "show").unwrap();
    assert_eq!(again, c);
    let e = Config::from_toml("[local]\naliases = { \"a@b\" = \"x\" }\n", "t.toml").unwrap_err();
    assert!(e.to_string().contains("t.toml:2"), "{e}");
    let e = Config::from_toml("[local]\nalias_files = [\"aliases\"]\n", "t.toml").unwrap_err();
    assert!(e.to_string().contains("must be an absolute path"), "{e}");
    let e = Config::from_toml("[local]\naliases = { a = 1 }\n", "t.toml").unwrap_err();
    assert!(e.to_string().contains("local.aliases"), "{e}");
}

/// Issue 15, item 1: /etc/postern/postern.toml is the system's: its
/// directories are the system's whoever reads it, so that every user's
/// sendmail and mailq find the running system.
#[test]
fn issue_15_the_system_file_has_the_system_directories_for_everyone() {
    let system = System::for_file(std::path::Path::new(super::DEFAULT_PATH));
    assert!(system.root);
    let c = super::defaults::builtin(&system);
    assert_eq!(c.server.run_directory, std::path::Path::new("/run/postern"));
    assert_eq!(
        c.queue.directory,
        std::path::Path::new("/var/spool/postern")
    );
    let other = System::for_file(std::path::Path::new("/home/u/my.toml"));
    assert_eq!(other.root, System::current().root);
}

/// Issue 17: `postern config show` names each key's Postfix parameter and
/// default above it, from the one definition of the key, and still reads
/// back into the same configuration.
#[test]
fn issue_17_annotated_show_names_postfix_and_defaults_and_reads_back() {
    for text in [
        "",
        "[smtpd]\nvrfy = true\n[server]\nhostname = \"mx.a.example\"\n",
    ] {
        let config = ok(text);
        let shown = show::annotated(&config, &system());
        assert_eq!(parse(&shown).unwrap(), config, "{shown}");
    }
    let shown = show::annotated(&ok(""), &system());
    assert!(
        shown.contains(
            "\n# Deadline for each command. Postfix: smtpd_timeout. Default: 300s.\ntimeout = \"5m\"\n"
        ),
        "{shown}"
    );
    // A key without a Postfix equivalent, and one whose default is not in
    // its documentation (the default value stands in).
    assert!(
        shown.contains(
            "\n# How long a per-user delivery child waits for more work. Default: 60s.\n"
        )
    );
    assert!(
        shown.contains("\"pass\".\ndns_failure = \"pass\"\n"),
        "{shown}"
    );
}
