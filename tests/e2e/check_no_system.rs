//! `postern check --no-system` (issue 16): the check a build runs (NixOS
//! checks the rendered postern.toml as its build user, in a sandbox with
//! no postern user, no queue and no run directory). It needs none of the
//! system, yet refuses what the files alone show to be wrong: unknown
//! keys, alias files with bad lines, tables that do not compile.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{BIN, command_as, is_root};

/// A directory an ordinary user can read, with a postern.toml whose
/// user, queue and run directory do not exist, and the files it names.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(extra: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("postern-nosystem")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let site = Site { dir };
        site.write(
            "aliases",
            "postmaster: root\nroot: alice, bob@example.net\n",
        );
        site.write("access", "192.0.2.0/24 REJECT\nspam.example REJECT\n");
        site.write("header_checks", "/^Subject: .*money/ REJECT\n");
        site.write("body_checks", "/^buy now$/ DISCARD\n");
        site.write("transport", "example.net smtp:[relay.example.net]\n");
        let d = site.dir.path().display();
        let text = format!(
            "[server]\n\
             hostname = \"mail.example.org\"\n\
             user = \"postern-no-such-user\"\n\
             run_directory = \"{d}/missing/run\"\n\
             [queue]\n\
             directory = \"{d}/missing/queue\"\n\
             [local]\n\
             alias_files = [\"{d}/aliases\"]\n\
             aliases = {{ abuse = \"root\" }}\n\
             [relay]\n\
             transport_files = [\"{d}/transport\"]\n\
             [restrictions]\n\
             client = [\"hash:{d}/access\"]\n\
             [checks]\n\
             header = [\"regexp:{d}/header_checks\"]\n\
             body = [\"pcre:{d}/body_checks\"]\n\
             {}",
            extra.replace("{dir}", &d.to_string())
        );
        site.write("postern.toml", &text);
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// `postern check [--no-system]` as an ordinary user (nobody, when the
    /// tests run as root), with a home of its own that is empty: exit
    /// status and stderr.
    fn check(&self, no_system: bool) -> (bool, String) {
        let uid = is_root().then_some(65534);
        let mut cmd = command_as(uid, BIN);
        cmd.arg("--config")
            .arg(self.path("postern.toml"))
            .arg("check");
        if no_system {
            cmd.arg("--no-system");
        }
        // No per-user state directory either (the defaults of an ordinary
        // user are under it).
        cmd.env("HOME", self.path("missing/home"))
            .env("XDG_STATE_HOME", self.path("missing/state"))
            .env_remove("POSTERN_CONFIG");
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => (true, text),
            Some(1) => (false, text),
            other => panic!("exit status {other:?}, not 0 or 1: {text}"),
        }
    }
}

impl Site {
    /// `postern check --no-system` must fail, saying each of `wanted`.
    fn refused(&self, wanted: &[String]) {
        let (ok, text) = self.check(true);
        assert!(!ok, "{text}");
        for w in wanted {
            assert!(text.contains(w.as_str()), "{w:?} not in:\n{text}");
        }
    }
}

fn assert_missing(p: &Path) {
    assert!(!p.exists(), "{} exists", p.display());
}

#[test]
fn issue_16_no_system_passes_a_good_file_without_user_queue_or_run_directory() {
    let site = Site::new("");
    let (ok, text) = site.check(true);
    assert!(ok, "{text}");
    assert!(
        text.contains("(the file and the files it names, not the system)"),
        "{text}"
    );
    assert!(!text.contains("error"), "{text}");
    // Nothing was made on the way.
    assert_missing(&site.path("missing"));
    if is_root() {
        // The full check, run as root, does look at the system: the
        // configured user does not exist.
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(site.path("postern.toml"))
            .arg("check")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("the user \"postern-no-such-user\" (server.user) does not exist"),
            "{text}"
        );
    }
}

#[test]
fn issue_16_no_system_names_the_bad_line_of_an_alias_file() {
    let site = Site::new("");
    site.write(
        "aliases",
        "postmaster: root\nthis line has no colon\nroot: <<bad\n",
    );
    let f = site.path("aliases");
    let f = f.display();
    site.refused(&[
        format!("postern: error: {f}:2: error: need name:value pair"),
        format!("postern: error: {f}:3: error: "),
    ]);
}

#[test]
fn issue_16_no_system_names_a_bad_inline_alias_by_its_key() {
    let site = Site::new("");
    let config = site.path("postern.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    site.write(
        "postern.toml",
        &text.replace("abuse = \"root\"", "abuse = \"|\""),
    );
    site.refused(&[format!(
        "{} [local.aliases]: error: local.aliases.abuse: empty command after \"|\"",
        config.display()
    )]);
}

#[test]
fn issue_16_no_system_names_a_table_that_does_not_compile() {
    let site = Site::new("");
    site.write(
        "header_checks",
        "/^Subject: .*money/ REJECT\n/^From: (unclosed/ REJECT\n",
    );
    site.write("access", "192.0.2.0/24 REJECT\nno-value-here\n");
    let h = site.path("header_checks");
    let a = site.path("access");
    site.refused(&[
        format!(
            "postern: error: checks.header: {}:2: error: bad regular expression",
            h.display()
        ),
        format!(
            "postern: error: restrictions.client: hash:{a}: {a}:2: error: ",
            a = a.display()
        ),
    ]);
}

#[test]
fn issue_16_no_system_refuses_an_unknown_key() {
    let site = Site::new("[smtpd]\nlisen = [\"[::]:25\"]\n");
    site.refused(&[format!(
        "{}:18: unknown key `smtpd.lisen`; did you mean `listen`?",
        site.path("postern.toml").display()
    )]);
}

#[test]
fn issue_16_no_system_refuses_a_missing_alias_file_as_check_does() {
    let site = Site::new("");
    std::fs::remove_file(site.path("aliases")).unwrap();
    site.refused(&[format!(
        "{} (local.alias_files): No such file or directory",
        site.path("aliases").display()
    )]);
}

#[test]
fn issue_16_no_system_reads_the_ca_file_the_smtp_client_would_trust() {
    // The NixOS module sets tls.ca_file to security.pki.caBundle.
    let site = Site::new("[tls]\noutbound = \"verify\"\nca_file = \"{dir}/aliases\"\n");
    site.refused(&[format!(
        "postern: error: tls.ca_file {}: no certificates in it",
        site.path("aliases").display()
    )]);
}

/// Issue 18: a build never reads secrets: `--no-system` passes a
/// submission server whose key and password file are not there (on NixOS
/// they live outside the store the build sees), while the full check, as
/// smtpd's user, refuses a key or password file it cannot read.
#[test]
fn issue_18_no_system_reads_no_key_and_the_full_check_does() {
    let site = Site::new(
        "[submission]\nlisten = [\"127.0.0.1:587\"]\n\
         [tls]\nchain_files = [\"{dir}/secret/key.pem\", \"{dir}/secret/fullchain.pem\"]\n\
         [sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/secret/passwd\"\n",
    );
    let (ok, text) = site.check(true);
    assert!(ok, "{text}");
    assert!(!text.contains("error"), "{text}");
    // The full check (as nobody when root): both named, by key.
    let secret = site.path("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    site.write("secret/key.pem", "not a key\n");
    site.write(
        "secret/passwd",
        "alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n",
    );
    let (ok, text) = site.check(false);
    assert!(!ok, "{text}");
    if is_root() {
        // nobody cannot enter the directory.
        for key in [
            "(tls.chain_files): the nobody user cannot enter",
            "(sasl.password_file): the nobody user cannot enter",
        ] {
            assert!(text.contains(key), "{key:?} not in:\n{text}");
        }
    }
    assert!(
        text.contains("smtpd, which runs as") || !is_root(),
        "{text}"
    );
    // Readable, but not a key: named as smtpd would refuse it.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, text) = site.check(false);
    assert!(!ok, "{text}");
    assert!(text.contains("tls.chain_files: "), "{text}");
    assert!(
        text.contains("/secret/fullchain.pem") || text.contains("/secret/key.pem"),
        "{text}"
    );
}
