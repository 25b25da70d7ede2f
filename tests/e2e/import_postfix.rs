//! Issue 21: `postern config import-postfix` on real Postfix
//! configurations (tests/data/postfix-import/NAME/: main.cf, master.cf,
//! the files they name under `root/`, SOURCE with the credit). Each
//! sample's output and report are compared with `expected.toml` and
//! `expected.report` (`POSTERN_BLESS=1` rewrites them); each output must
//! pass `postern check --offline` (with its paths moved under the
//! sample's `root/`, where the files it names are) and validate against
//! the JSON Schema with python3-jsonschema.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const SAMPLES: &[&str] = &[
    "debian-internet-site",
    "debian-local-only",
    "minimal",
    "null-client",
    "nixos",
    "docker-mailserver",
    "mailcow",
    "iredmail",
];

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/postfix-import")
}

/// `postern config import-postfix . --root root --hostname
/// mail.example.org` in the sample's directory: (exit code, stdout, stderr).
fn import(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["config", "import-postfix", ".", "--root", "root"])
        .args(["--hostname", "mail.example.org"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Compares `actual` with the file, or writes it when blessing.
fn golden(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("POSTERN_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    (want != actual).then(|| {
        format!(
            "{} differs (POSTERN_BLESS=1 rewrites it)\n--- want\n{want}\n--- got\n{actual}",
            path.display()
        )
    })
}

/// The output with its absolute paths under `root` (TOML lines only):
/// `"/path"` and `type:/path`, not `fe80::/64`.
fn rooted(toml: &str, root: &Path) -> String {
    let root = root.display().to_string();
    let mut out = String::new();
    for line in toml.lines() {
        if line.starts_with('#') {
            out.push_str(line);
        } else {
            let mut previous = ' ';
            let chars: Vec<char> = line.chars().collect();
            for (i, &c) in chars.iter().enumerate() {
                out.push(c);
                let path_follows = chars.get(i + 1) == Some(&'/');
                if path_follows && (c == '"' || (c == ':' && previous.is_ascii_lowercase())) {
                    out.push_str(&root);
                }
                previous = c;
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn issue_21_import_postfix_samples_match_their_goldens_and_pass_check() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut outputs = Vec::new();
    for name in SAMPLES {
        let dir = samples().join(name);
        assert!(dir.join("SOURCE").exists(), "{name}: no SOURCE");
        let (code, toml, report) = import(&dir, &[]);
        let incomplete = report.contains("\nIncomplete: ") || report.starts_with("Incomplete: ");
        assert_eq!(
            code,
            Some(if incomplete { 2 } else { 0 }),
            "{name}: {report}"
        );
        failures.extend(golden(&dir.join("expected.toml"), &toml));
        failures.extend(golden(&dir.join("expected.report"), &report));
        let file = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&file, rooted(&toml, &dir.join("root"))).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&file)
            .args(["check", "--offline"])
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{name}: postern check --offline fails:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let plain = tmp.path().join(format!("{name}.plain.toml"));
        std::fs::write(&plain, &toml).unwrap();
        outputs.push(plain);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    validate_against_schema(tmp.path(), &outputs);
}

/// As `issue_21_the_json_schema_validates_with_python_jsonschema`.
fn validate_against_schema(dir: &Path, files: &[PathBuf]) {
    let out = Command::new(BIN)
        .args(["generate", "schema"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let text = jsonschema_verdicts(&dir.join("postern.schema.json"), &names);
    for file in files {
        assert!(text.contains(&format!("{} ok", file.display())), "{text}");
    }
}

#[test]
fn issue_21_import_postfix_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // No main.cf: exit 1, naming it.
    let (code, out, err) = import(tmp.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("./main.cf: cannot read: No such file"),
        "{err}"
    );
    // A line without `=`: its file and line.
    std::fs::write(
        tmp.path().join("main.cf"),
        "myhostname = a.example\nbroken\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("master.cf"), "").unwrap();
    let (code, _, err) = import(tmp.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("./main.cf:2: missing '=' after attribute name"),
        "{err}"
    );
    // A directory that does not exist.
    let out = Command::new(BIN)
        .args(["config", "import-postfix", "/nonexistent/postfix"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/postfix/main.cf: cannot read"),
        "{err}"
    );
}

#[test]
fn issue_21_import_postfix_writes_a_file_only_when_asked_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = samples().join("minimal");
    let target = tmp.path().join("postern.toml");
    std::fs::write(&target, "# mine\n").unwrap();
    let target_arg = target.display().to_string();
    let (code, out, err) = import(&dir, &["-o", &target_arg]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--force overwrites it"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "# mine\n");
    let (code, _, err) = import(&dir, &["-o", &target_arg, "--force"]);
    assert_eq!(code, Some(0), "{err}");
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(
        written.contains("hostname = \"mail.example.com\"  # myhostname"),
        "{written}"
    );
    // --check on a result whose files exist: exit 0 and the verdict.
    let tiny = tmp.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    std::fs::write(
        tiny.join("main.cf"),
        "myhostname = mx.example.com\nalias_maps =\ncompatibility_level = 3.6\n",
    )
    .unwrap();
    std::fs::write(tiny.join("master.cf"), "smtp inet n - y - - smtpd\n").unwrap();
    let (code, out, err) = import(&tiny, &["--check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("passes postern check --offline"), "{err}");
    assert!(
        out.contains("listen = [\"0.0.0.0:25\", \"[::]:25\"]"),
        "{out}"
    );
}

/// `mailbox_transport` becomes `local.mailbox_transport`: Postfix's
/// relative `lmtp:unix:private/dovecot-lmtp` is resolved against
/// `queue_directory` (the report says so), `lmtp:host:port` is written
/// with `inet:`, and a master.cf pipe service (`dovecot`) is left out,
/// saying why.
#[test]
fn issue_21_import_postfix_translates_mailbox_transport() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("master.cf"), "smtp inet n - y - - smtpd\n").unwrap();
    let run = |value: &str| {
        std::fs::write(
            tmp.path().join("main.cf"),
            format!(
                "myhostname = mx.example.com\nalias_maps =\ncompatibility_level = 3.6\n\
                 mailbox_transport = {value}\n"
            ),
        )
        .unwrap();
        let (code, out, err) = import(tmp.path(), &[]);
        (code, out, err)
    };
    let (code, out, err) = run("lmtp:unix:private/dovecot-lmtp");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "mailbox_transport = \"lmtp:unix:/var/spool/postfix/private/dovecot-lmtp\"  # mailbox_transport"
        ),
        "{out}"
    );
    assert!(
        err.contains(
            "lmtp:unix:private/dovecot-lmtp: Postfix's socket path is relative to queue_directory; written as \"lmtp:unix:/var/spool/postfix/private/dovecot-lmtp\""
        ),
        "{err}"
    );
    let (code, out, err) = run("lmtp:unix:/run/dovecot/lmtp");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("mailbox_transport = \"lmtp:unix:/run/dovecot/lmtp\"  # mailbox_transport"),
        "{out}"
    );
    let (code, out, err) = run("lmtp:127.0.0.1:24");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("mailbox_transport = \"lmtp:inet:127.0.0.1:24\"  # mailbox_transport"),
        "{out}"
    );
    let (code, out, err) = run("dovecot");
    assert_eq!(code, Some(2), "{err}");
    assert!(!out.contains("mailbox_transport ="), "{out}");
    assert!(
        err.contains(
            "mailbox_transport: local.mailbox_transport: dovecot: only an LMTP server can take the mailbox deliveries"
        ),
        "{err}"
    );
}
