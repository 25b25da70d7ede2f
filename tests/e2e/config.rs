//! The configuration as the administrator meets it: check, start, show.

use std::process::Command;

use crate::common::*;

#[test]
fn misspelled_key_fails_check_and_start() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(&conf, "[smtpd]\nmesage_size_limit = 5\n").unwrap();
    let check = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let err = String::from_utf8_lossy(&check.stderr).to_string();
    assert!(err.contains(&format!("{}:2", conf.display())), "{err}");
    assert!(err.contains("mesage_size_limit"), "{err}");
    assert!(err.contains("message_size_limit"), "{err}");
    let start = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["start", "--foreground"])
        .output()
        .unwrap();
    assert!(!start.status.success());
    let err2 = String::from_utf8_lossy(&start.stderr).to_string();
    assert!(
        err2.contains(err.trim().trim_start_matches("postern: ")),
        "{err2}"
    );
    let good = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .arg("check")
        .output()
        .unwrap();
    assert!(!good.status.success());
    std::fs::write(&conf, "[smtpd]\nmessage_size_limit = 5\n").unwrap();
    let good = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
}

#[test]
fn config_show_prints_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(&conf, "[server]\nhostname = \"mx.foo.example\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["config", "show", "--non-default"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("hostname = \"mx.foo.example\""), "{text}");
    assert!(!text.contains("message_size_limit"), "{text}");
    // As postconf -n: the keys the file sets, as written — `$name` forms
    // kept, a key set to its default value kept, [maps] tables too.
    std::fs::write(
        &conf,
        "[server]\nhostname = \"mx.foo.example\"\norigin = \"$domain\"  # short\n\
         [local]\ndomains = [\"$hostname\", \"localhost.$domain\"]\n\
         [smtpd]\nmessage_size_limit = 10240000\n[maps.ok]\n\"10.0.0.0/8\" = \"OK\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["config", "show", "--non-default"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[server]\nhostname = \"mx.foo.example\"\norigin = \"$domain\"\n\n\
         [local]\ndomains = [\"$hostname\", \"localhost.$domain\"]\n\n\
         [smtpd]\nmessage_size_limit = 10240000\n\n[maps.ok]\n\"10.0.0.0/8\" = \"OK\"\n"
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["config", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("message_size_limit = 10240000"), "{text}");
    assert!(text.contains("\"mx.foo.example\""), "{text}");
}

/// `postern check` also looks at the system, as `postfix check` does.
#[test]
fn check_reports_the_queue_directory_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    std::fs::create_dir(&queue).unwrap();
    std::fs::set_permissions(&queue, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "staff root\n").unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(
        &conf,
        format!(
            "[queue]\ndirectory = \"{}\"\n[local]\nalias_files = [\"{}\"]\n",
            queue.display(),
            aliases.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "postern: error: {}: mode 777, should be 711",
            queue.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("postern: error: {}:1:", aliases.display())),
        "{err}"
    );
}

/// Issue 15, item 8: a command whose reader goes away ends quietly (as
/// `cat` does), without a panic.
#[test]
fn issue_15_a_closed_pipe_ends_config_show_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(crate::common::BIN)
        .args(["config", "show"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

/// Issue 15, item 8: `postern --help` names the sendmail interface, and
/// `sendmail --help` prints its usage.
#[test]
fn issue_15_help_shows_the_sendmail_interface() {
    let out = std::process::Command::new(crate::common::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("postern sendmail ARGS"), "{text}");
    let out = std::process::Command::new(crate::common::BIN)
        .args(["sendmail", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: sendmail"), "{text}");
    assert!(text.contains("-t"), "{text}");
}

/// Issue 15, item 6: `check` says which file it checked, or that it
/// checked the built-in defaults; a missing `--config` file is one clear
/// error.
#[test]
fn issue_15_check_names_what_it_checked() {
    let p = Postern::configure("", &[], None);
    let out = p.postern(&["check"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("postern: checking {}", p.config.display())),
        "{text}"
    );
    let missing = p.dir.path().join("missing.toml");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&missing)
        .arg("check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "postern: {}: cannot read: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

/// `[::]:P` beside an IPv4 address on port P is bound IPv6-only (as
/// Postfix with inet_protocols = all): both listen, and a client of each
/// family is served.
#[test]
fn issue_14_ipv4_and_ipv6_wildcards_listen_side_by_side() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 on this machine");
        return;
    }
    let port = free_port();
    let mut p = Postern::configure("", &[], None);
    p.set_listen(&[format!("127.0.0.1:{port}"), format!("[::]:{port}")]);
    p.launch();
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut c = Client::connect(addr.parse().unwrap(), None);
        assert!(c.cmd("EHLO t").starts_with("250"), "{addr}");
    }
}

/// Issue 21: `postern config` as `postconf`: keys by name (postern's or
/// Postfix's), the built-in defaults, and `check --offline`.
#[test]
fn issue_21_config_show_keys_defaults_and_check_offline() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(
        &conf,
        "[relay]\nnetworks = [\"192.0.2.0/24\"]\n\n[milters]\nsmtpd = [\"inet:localhost:11332\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&conf)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = run(&["config", "show", "relay.networks", "smtpd_milters"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text,
        "relay.networks = [\"192.0.2.0/24\"]\nmilters.smtpd = [\"inet:127.0.0.1:11332\"]\n"
    );
    let (_, text) = run(&["config", "show", "--defaults", "mynetworks"]);
    assert_eq!(text, "relay.networks = [\"127.0.0.0/8\", \"::1/128\"]\n");
    let (code, text) = run(&["config", "show", "relay.netwroks"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("unknown configuration key: relay.netwroks"),
        "{text}"
    );
    let (code, text) = run(&["check", "--offline"]);
    assert_eq!(code, Some(0), "{text}");
}

/// Issue 21: the JSON Schema (`postern generate schema`, shipped in the
/// package) accepts the shipped example and `config show`'s outputs and
/// refuses a misspelled key, by an independent validator (Debian's
/// python3-jsonschema; TOML read by Python's tomllib).
#[test]
fn issue_21_the_json_schema_validates_with_python_jsonschema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["generate", "schema"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema = dir.path().join("postern.schema.json");
    let root = env!("CARGO_MANIFEST_DIR");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[relay]\nnetworkz = [\"192.0.2.0/24\"]\n").unwrap();
    let files = [
        format!("{root}/packaging/postern.toml"),
        format!("{root}/tests/e2e/golden/config-show-empty.toml"),
        format!("{root}/tests/e2e/golden/config-show-several.toml"),
        bad.display().to_string(),
    ];
    let text = jsonschema_verdicts(&schema, &files);
    for file in &files[..3] {
        assert!(text.contains(&format!("{file} ok")), "{text}");
    }
    assert!(text.contains(&format!("{} invalid:", files[3])), "{text}");
    assert!(text.contains("networkz"), "{text}");
}
