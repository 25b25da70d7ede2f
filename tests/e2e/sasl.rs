//! Issue 18's SASL backends against the real Dovecot from Debian
//! (dovecot-core): postern's client for Dovecot's authentication socket,
//! and postern's password file, whose hashes Dovecot must verify and whose
//! reader must verify Dovecot's. (smtpd's AUTH command comes with
//! submission; these are the parts it will call.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postern::sasl::dovecot::{Dovecot, Peer};
use postern::sasl::passwd::PasswordFile;
use postern::sasl::{Credentials, Verdict};

use crate::common::*;

pub(crate) fn have_dovecot() -> bool {
    Path::new("/usr/sbin/dovecot").exists() && Path::new("/usr/bin/doveadm").exists()
}

/// A Dovecot with only its auth service, on a socket in `dir`, users
/// from `users` (a passwd-file).
pub(crate) struct Auth {
    child: Child,
    pub(crate) socket: PathBuf,
}

impl Auth {
    pub(crate) fn start(dir: &Path, users: &Path) -> Auth {
        let d = dir.display();
        let conf = dir.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
                 protocols =\nlisten = 127.0.0.1\nssl = no\n\
                 auth_mechanisms = plain login\nauth_failure_delay = 0\n\
                 passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n\
                 service auth {{\n  unix_listener {d}/auth {{\n    mode = 0666\n  }}\n}}\n",
                users = users.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = dir.join("auth");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Auth { child, socket }
    }

    fn client(&self) -> Dovecot {
        Dovecot {
            socket: self.socket.clone(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Drop for Auth {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn creds(login: &str, password: &str) -> Credentials {
    Credentials {
        authzid: String::new(),
        login: login.into(),
        password: password.into(),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `doveadm pw -s SCHEME -p PASSWORD`.
fn doveadm_pw(scheme: &str, password: &str) -> String {
    let out = Command::new("/usr/bin/doveadm")
        .args(["pw", "-s", scheme, "-p", password])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn issue_18_dovecot_auth_socket_answers_postern() {
    if !is_root() || !have_dovecot() {
        eprintln!("skipped: needs root and dovecot-core");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        format!("alice:{}\n", doveadm_pw("SHA512-CRYPT", "secret")),
    )
    .unwrap();
    let auth = Auth::start(dir.path(), &users);
    let dovecot = auth.client();
    let peer = Peer {
        local: Some("127.0.0.1".parse().unwrap()),
        remote: Some("127.0.0.3".parse().unwrap()),
        secured: true,
    };
    assert_eq!(
        block_on(dovecot.authenticate(&creds("alice", "secret"), &peer)),
        Verdict::Ok {
            login: "alice".into()
        }
    );
    for (login, password) in [("alice", "Secret"), ("mallory", "secret")] {
        let v = block_on(dovecot.authenticate(&creds(login, password), &peer));
        assert!(matches!(v, Verdict::Fail { .. }), "{login}: {v:?}");
    }
    // Dovecot saw the connection's addresses (its log names rip).
    let log = std::fs::read_to_string(dir.path().join("dovecot.log")).unwrap_or_default();
    println!("{log}");
    // Nothing listening: unavailable (454), never a success.
    let gone = Dovecot {
        socket: dir.path().join("no-such-socket"),
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(
        block_on(gone.authenticate(&creds("alice", "secret"), &peer)),
        Verdict::Unavailable { .. }
    ));
}

/// `postern passwd` writes argon2id hashes Dovecot verifies, 0640 root:postern;
/// postern's reader verifies the SHA-512-crypt hashes `doveadm pw` writes.
#[test]
fn issue_18_password_file_hashes_are_dovecots_too() {
    if !is_root() || !have_dovecot() {
        eprintln!("skipped: needs root and dovecot-core");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    for (login, password) in [("alice", "correct horse"), ("bob", "battery staple")] {
        let out = run_with_input(
            Command::new(BIN)
                .args(["passwd", "--file"])
                .arg(&file)
                .arg(login),
            format!("{password}\n").as_bytes(),
        );
        assert!(out.status.success(), "{out:?}");
    }
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.uid(), 0);
    let postern_gid = nix::unistd::Group::from_name("postern")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert_eq!(meta.gid(), postern_gid);

    // Dovecot reads the same hashes (with its scheme prefix).
    let text = std::fs::read_to_string(&file).unwrap();
    let dovecot_users = dir.path().join("users");
    std::fs::write(
        &dovecot_users,
        text.lines()
            .map(|l| {
                let (login, hash) = l.split_once(':').unwrap();
                format!("{login}:{{ARGON2ID}}{hash}\n")
            })
            .collect::<String>(),
    )
    .unwrap();
    let auth = Auth::start(dir.path(), &dovecot_users);
    let peer = Peer::default();
    assert_eq!(
        block_on(
            auth.client()
                .authenticate(&creds("bob", "battery staple"), &peer)
        ),
        Verdict::Ok {
            login: "bob".into()
        }
    );

    // And postern reads Dovecot's SHA-512-crypt, its prefix and trailing
    // passwd-file fields included.
    let mixed = dir.path().join("mixed");
    std::fs::write(
        &mixed,
        format!(
            "{text}carol:{}:1000:1000::/home/carol::\n",
            doveadm_pw("SHA512-CRYPT", "tr0ub4dor")
        ),
    )
    .unwrap();
    let f = PasswordFile::load(&mixed).unwrap();
    assert_eq!(f.len(), 3);
    assert_eq!(
        f.verify("carol", "tr0ub4dor"),
        Verdict::Ok {
            login: "carol".into()
        }
    );
    assert_eq!(
        f.verify("alice", "correct horse"),
        Verdict::Ok {
            login: "alice".into()
        }
    );
    assert!(matches!(
        f.verify("alice", "tr0ub4dor"),
        Verdict::Fail { .. }
    ));
}
