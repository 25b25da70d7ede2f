//! The files under packaging/: the default configuration loads and passes
//! `postern check`, and `postern generate` writes the manual pages and
//! shell completions the packages install.

use std::path::{Path, PathBuf};
use std::process::Command;

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(file)
}

fn postern() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
    cmd.env_remove("POSTERN_CONFIG");
    cmd
}

#[test]
fn default_configuration_loads() {
    let config = postern::config::Config::load(Some(&packaging("postern.toml")))
        .unwrap_or_else(|e| panic!("packaging/postern.toml: {e}"));
    assert_eq!(config.server.user, "postern");
    assert_eq!(config.local.mailbox, "Maildir/");
    assert_eq!(config.queue.directory, Path::new("/var/spool/postern"));
    assert!(config.is_local_domain("localhost"));
    assert!(
        config.smtpd.listen.iter().all(|a| a.ip().is_loopback()),
        "the packaged default must not listen on the network: {:?}",
        config.smtpd.listen
    );
}

#[test]
fn default_configuration_passes_check() {
    let out = postern()
        .arg("check")
        .arg("--config")
        .arg(packaging("postern.toml"))
        .output()
        .expect("run postern check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The file loads (a load failure is one line without a level), and
    // nothing wrong is in it. What the system lacks (the postern user, the
    // queue directory, /etc/aliases) depends on the machine: a warning
    // here, an error as root without the user; not the file's fault.
    for line in stderr.lines() {
        if line.starts_with("postern: checking ") {
            continue;
        }
        assert!(
            line.starts_with("postern: warning: ") || line.starts_with("postern: error: "),
            "packaging/postern.toml does not load: {stderr}"
        );
        assert!(!line.contains("postern.toml"), "{stderr}");
    }
    if stderr.is_empty() || !stderr.contains("error: ") {
        assert!(out.status.success(), "{stderr}");
    }
}

/// `postern generate man` into a new directory.
fn generated_man() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = postern()
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .expect("run postern generate man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn generate_man_writes_every_page() {
    let dir = generated_man();
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let postern8 = read("postern.8");
    assert!(postern8.contains(".TH POSTERN 8"), "{postern8}");
    assert!(postern8.contains("\\-\\-config"), "{postern8}");
    assert!(postern8.contains("postern\\-start(8)") || postern8.contains("postern-start(8)"));
    assert!(
        !postern8.contains("generate"),
        "the hidden subcommand is documented"
    );
    assert!(read("postern-start.8").contains(".TH POSTERN-START 8"));
    assert!(read("postern-queue-list.8").contains("\\-\\-json"));
    assert!(!dir.path().join("postern-generate.8").exists());

    let sendmail = read("sendmail.1");
    assert!(sendmail.contains(".TH SENDMAIL 1"));
    for flag in [
        "\\-t",
        "\\-i",
        "\\-f",
        "\\-bs",
        "\\-\\-config",
        "EXIT STATUS",
    ] {
        assert!(sendmail.contains(flag), "sendmail.1 lacks {flag}");
    }
    let mailq = read("mailq.1");
    assert!(mailq.contains(".TH MAILQ 1") && mailq.contains("\\-\\-json"));
    assert!(read("newaliases.1").contains(".TH NEWALIASES 1"));
    assert!(read("postern.toml.5").contains(".TH POSTERN.TOML 5"));
}

/// postern.toml(5) as `postern generate man` writes it (its KEYS section
/// made from the key table): every key `postern config show` prints is
/// documented there, and the page renders without a warning.
#[test]
fn postern_toml_5_documents_every_key() {
    let dir = generated_man();
    let page_path = dir.path().join("postern.toml.5");
    let page = std::fs::read_to_string(&page_path).expect("postern.toml.5");
    if let Ok(out) = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page_path)
        .output()
    {
        assert!(
            out.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = postern()
        .args(["config", "show"])
        .output()
        .expect("run postern config show");
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    let mut table = String::new();
    let mut keys = 0;
    for line in shown.lines().filter(|l| !l.starts_with('#')) {
        if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = t.to_string();
            assert!(page.contains(&format!(".SS \"[{table}]\"")), "[{table}]");
        } else if let Some((key, _)) = line.split_once(" = ") {
            let dotted = format!("{table}.{key}");
            assert!(
                page.contains(&format!(".B {dotted}\n")),
                "postern.toml.5 does not document {dotted}"
            );
            keys += 1;
        }
    }
    assert!(keys > 50, "config show printed {keys} keys");
    assert!(page.contains(".SS \"[maps]\""));
}

#[test]
fn generate_completions_bash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = postern()
        .args(["generate", "completions", "bash"])
        .arg(dir.path())
        .output()
        .expect("run postern generate completions");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = std::fs::read_to_string(dir.path().join("postern.bash")).expect("postern.bash");
    assert!(script.contains("complete -F _postern"), "{script}");
    assert!(script.contains("--config"));
    assert!(script.contains("start") && script.contains("queue"));
}

/// Issue 15: the licence is stated once and the same everywhere: Cargo,
/// both texts at the root, debian/copyright (DEP-5), the Nix package.
#[test]
fn issue_15_the_licence_is_mit_or_apache_everywhere() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read =
        |f: &str| std::fs::read_to_string(top.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT OR Apache-2.0");
    assert!(read("LICENSE-MIT").starts_with("MIT License"));
    assert!(read("LICENSE-APACHE").contains("Apache License"));
    let copyright = read("debian/copyright");
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        )
    );
    assert!(
        copyright.contains("\nLicense: MIT or Apache-2.0\n"),
        "{copyright}"
    );
    assert!(copyright.contains("\nLicense: MIT\n"));
    assert!(copyright.contains("\nLicense: Apache-2.0\n"));
    assert!(read("nix/package.nix").contains("license = with lib.licenses; [ mit asl20 ];"));
}

/// Issue 15: the packaged default listens on loopback under systemd too:
/// the generator turns packaging/postern.toml into exactly that listener.
#[test]
fn issue_15_the_packaged_default_listens_on_loopback_under_systemd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = postern()
        .arg("--config")
        .arg(packaging("postern.toml"))
        .args(["generate", "systemd"])
        .arg(dir.path())
        .output()
        .expect("run postern generate systemd");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
    let dropin = std::fs::read_to_string(
        dir.path()
            .join("postern-smtpd.socket.d/50-postern-listen.conf"),
    )
    .expect("the drop-in");
    let listen: Vec<&str> = dropin
        .lines()
        .filter(|l| l.starts_with("ListenStream="))
        .collect();
    assert_eq!(
        listen,
        ["ListenStream=", "ListenStream=127.0.0.1:25"],
        "{dropin}"
    );
    assert!(!dir.path().join("postern-smtpd.socket").exists());
    // Issue 18: and nothing on 587 or 465: the submission units are
    // masked, silently (stderr is empty above).
    for unit in ["postern-submission.socket", "postern-submissions.socket"] {
        assert_eq!(
            std::fs::read_link(dir.path().join(unit)).ok().as_deref(),
            Some(Path::new("/dev/null")),
            "{unit}"
        );
    }
}

/// Issue 15: the Debian package installs the generator, which runs
/// `postern generate systemd` on the packaged configuration; issue 18:
/// the submission socket units are installed (debian/rules takes every
/// unit of systemd/), stopped on removal and checked by verify-deb.sh.
#[test]
fn issue_15_the_package_installs_the_generator() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read =
        |f: &str| std::fs::read_to_string(top.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert!(
        read("debian/rules").contains(
            "install -D -m 0755 systemd/postern-generator $(DESTDIR)/usr/lib/systemd/system-generators/postern-generator"
        )
    );
    let wrapper = read("systemd/postern-generator");
    assert!(
        wrapper.lines().any(|l| l
            == "exec /usr/sbin/postern --config /etc/postern/postern.toml generate systemd \"$@\""),
        "{wrapper}"
    );
    assert!(
        read("packaging/verify-deb.sh")
            .contains("/usr/lib/systemd/system-generators/postern-generator")
    );
    assert!(
        read("debian/rules")
            .contains("UNITS = $(wildcard systemd/*.service systemd/*.socket systemd/*.target)")
    );
    let prerm = read("debian/postern.prerm");
    let verify = read("packaging/verify-deb.sh");
    for unit in ["postern-submission.socket", "postern-submissions.socket"] {
        assert!(top.join("systemd").join(unit).is_file(), "{unit}");
        assert!(
            prerm.contains(unit),
            "debian/postern.prerm does not stop {unit}"
        );
        assert!(
            verify.contains(&format!("/usr/lib/systemd/system/{unit}")),
            "verify-deb.sh does not look for {unit}"
        );
    }
}
