//! Issue 16: the NixOS VM test's path — a null client sends with
//! `sendmail`, the server delivers to a Maildir — with the client on an
//! `/etc` laid out as NixOS lays it out, outside a VM.
//!
//! The client runs in a mount namespace of its own where `/etc` is a
//! NixOS-shaped tree: `/etc/static` a symlink into `/nix/store`, the
//! configuration, the alias file, `/etc/hosts`, `/etc/resolv.conf`, the
//! CA bundle symlinks through it into store paths (only `passwd`, `group`
//! and the like real files, as NixOS writes them), every other entry a
//! symlink to the machine's real `/etc`. `/etc/resolv.conf` names no
//! nameserver (as in a NixOS test VM): `server` must resolve from
//! `/etc/hosts`. The store is the test's own directory bound onto
//! `/nix/store` inside the namespace (the machine's `/nix/store` is made,
//! empty, when missing). A NixOS switch (a new store tree, `/etc/static`
//! pointed at it) is followed by a reload that must read the new file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Entries NixOS writes into /etc as real files, not symlinks.
const REAL_FILES: &[&str] = &["passwd", "group", "shadow", "gshadow", "subuid", "subgid"];

/// The client's root: a store, an /etc built from it, and the place the
/// machine's own /etc is bound to inside the namespace.
struct NixRoot {
    /// Bound onto /nix/store in the namespace.
    store: tempfile::TempDir,
    /// Bound onto /etc in the namespace.
    etc: PathBuf,
    /// Where the machine's /etc is bound to in the namespace.
    real_etc: PathBuf,
}

impl NixRoot {
    fn new(dir: &Path) -> NixRoot {
        let store = tempfile::Builder::new()
            .prefix("postern-nix-store")
            .tempdir_in("/var/lib")
            .unwrap();
        let root = NixRoot {
            store,
            etc: dir.join("nix-etc"),
            real_etc: dir.join("real-etc"),
        };
        std::fs::create_dir(&root.etc).unwrap();
        std::fs::create_dir(&root.real_etc).unwrap();
        for name in REAL_FILES {
            let from = Path::new("/etc").join(name);
            if from.exists() {
                std::fs::copy(&from, root.etc.join(name)).unwrap();
            }
        }
        // Everything NixOS would not write itself: the machine's own.
        for e in std::fs::read_dir("/etc").unwrap().flatten() {
            let name = e.file_name();
            let link = root.etc.join(&name);
            if link.symlink_metadata().is_err() {
                symlink(root.real_etc.join(&name), &link);
            }
        }
        root
    }

    /// A new generation of the etc tree (`/nix/store/N-etc/etc`) holding
    /// `files` (path under /etc, text), each in a store path of its own
    /// as NixOS's environment.etc makes them, and /etc/static pointed at
    /// it. Returns the generation's etc path as seen in the namespace.
    fn switch(&self, generation: &str, files: &[(&str, String)]) -> String {
        let store = self.store.path();
        let tree = format!("{generation}-etc/etc");
        for (i, (rel, text)) in files.iter().enumerate() {
            let name = Path::new(rel).file_name().unwrap().to_string_lossy();
            let own = format!("{generation}{i}-{name}");
            std::fs::create_dir_all(store.join(&own)).unwrap();
            std::fs::write(store.join(&own).join(&*name), text).unwrap();
            let link = store.join(&tree).join(rel);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            symlink(Path::new("/nix/store").join(&own).join(&*name), &link);
            // /etc/NAME -> /etc/static/NAME, relative, with real
            // directories on the way (as NixOS's setup-etc makes them).
            // The machine's entry of that name, if any, gives way.
            let mut prefix = self.etc.clone();
            for part in Path::new(rel).components() {
                prefix.push(part);
                if std::fs::read_link(&prefix).is_ok_and(|t| t.starts_with(&self.real_etc)) {
                    std::fs::remove_file(&prefix).unwrap();
                }
            }
            let in_etc = self.etc.join(rel);
            std::fs::create_dir_all(in_etc.parent().unwrap()).unwrap();
            if in_etc.symlink_metadata().is_err() {
                let up = "../".repeat(Path::new(rel).components().count() - 1);
                symlink(format!("{up}static/{rel}"), &in_etc);
            }
        }
        for e in walk(store) {
            let mode = if e.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // Atomically, as NixOS does: a new link renamed over the old one.
        let tmp = self.etc.join(".static.tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(Path::new("/nix/store").join(&tree), &tmp);
        std::fs::rename(&tmp, self.etc.join("static")).unwrap();
        format!("/nix/store/{tree}")
    }
}

/// `postern start --foreground` of the client inside its namespace.
struct Client {
    child: Child,
    log: PathBuf,
}

impl Client {
    fn start(root: &NixRoot, log: PathBuf) -> Client {
        std::fs::create_dir_all("/nix/store").unwrap();
        let script = format!(
            "set -e; mount --bind /etc '{real}'; mount --bind '{store}' /nix/store; \
             mount --bind '{etc}' /etc; exec '{bin}' start --foreground",
            real = root.real_etc.display(),
            store = root.store.path().display(),
            etc = root.etc.display(),
            bin = BIN,
        );
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Client { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the client's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `args` inside the client's namespace (its /etc).
    fn run(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.child.id()))
            .arg("--mount")
            .arg("--")
            .args(args);
        run_with_input(&mut cmd, input)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

#[test]
fn issue_16_null_client_on_a_nixos_etc_reaches_the_server_by_etc_hosts() {
    if !is_root() {
        eprintln!("skipped: needs root (mount namespaces)");
        return;
    }
    // The server, as the VM test's: mail for `server` to Maildirs.
    let server =
        Postern::start("[server]\nhostname = \"server\"\nrun_directory = \"{dir}/run\"\n\n");
    let port = server.addr.port();

    let dir = tempfile::Builder::new()
        .prefix("postern-nixos")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path().display();
    let root = NixRoot::new(dir.path());
    let config = |hold: &str| {
        format!(
            "[server]\nhostname = \"client\"\nrun_directory = \"{d}/run\"\n\n\
             [queue]\ndirectory = \"{d}/queue\"\nminimal_backoff = \"1s\"\nmaximal_backoff = \"2s\"\n\
             run_delay = \"1s\"\n{hold}\n\
             [local]\ndomains = []\nalias_files = [\"/etc/aliases\"]\n\n\
             [relay]\nhost = \"[server]:{port}\"\n\
             transport = {{ \"elsewhere.example\" = \"smtp:[nowhere]:{port}\" }}\n\n\
             [smtpd]\nlisten = []\n\n\
             [tls]\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n\n\
             [sandbox]\nrequire = true\n"
        )
    };
    let mut files = vec![
        ("postern/postern.toml", config("")),
        ("aliases", "postmaster: root\n".to_string()),
        (
            "hosts",
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 server\n".to_string(),
        ),
        // A NixOS test VM's: no nameserver at all.
        (
            "resolv.conf",
            "# no nameserver\noptions edns0\n".to_string(),
        ),
        (
            "ssl/certs/ca-certificates.crt",
            std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap(),
        ),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files dns\n".to_string(),
        ),
    ];
    root.switch("aaa", &files);
    let client = Client::start(&root, dir.path().join("client.log"));
    let status = dir.path().join("run/status.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status.exists() {
        assert!(
            Instant::now() < deadline,
            "client did not start:\n{}",
            client.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for role in ["smtpd", "qmgr", "smtp", "local"] {
        client.wait_log(&format!("{role}: sandboxed"), 10);
    }

    // As the VM test: sendmail -t on the client, with the system's
    // configuration path (a symlink through /etc/static).
    let out = client.run(
        &[BIN, "sendmail", "-t"],
        b"From: root@client\nTo: nobody@server\nSubject: postern nixos layout\n\nhello from the client\n",
    );
    assert!(
        out.status.success(),
        "sendmail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = server.wait_delivered("nobody", 1, 30);
    assert_eq!(got.len(), 1);
    let text = std::fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("Subject: postern nixos layout"), "{text}");
    assert!(text.contains("\nhello from the client\n"), "{text}");
    client.wait_log(
        "names no nameserver: host names resolve from /etc/hosts alone",
        5,
    );

    // A host that is in neither: deferred, saying where to look.
    let out = client.run(
        &[BIN, "sendmail", "someone@elsewhere.example"],
        b"Subject: nowhere\n\nx\n",
    );
    assert!(out.status.success());
    client.wait_log(
        "Name service error for name=nowhere type=A: not in /etc/hosts, and /etc/resolv.conf names no nameserver to ask",
        20,
    );
    let log = client.log();
    assert!(log.contains("dsn=4.4.3"), "{log}");

    // A NixOS switch: a new generation of /etc/static (every file in new
    // store paths); the reload reads the configuration through the new
    // links (`postern start` hands the roles its effective copy; under
    // systemd they read /etc/postern/postern.toml themselves, which the
    // sandbox test proves they can).
    files[0].1 = files[0]
        .1
        .replace("run_delay = \"1s\"", "run_delay = \"2s\"");
    root.switch("bbb", &files);
    let out = client.run(&[BIN, "reload"], b"");
    assert!(
        out.status.success(),
        "reload: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .log()
        .matches("reloaded the configuration from ")
        .count()
        < 4
    {
        assert!(
            Instant::now() < deadline,
            "not every daemon reloaded:\n{}",
            client.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = client.log();
    assert!(!log.contains("reload refused"), "{log}");
    assert!(!log.contains("Permission denied"), "{log}");
    // Exactly once at the server, nothing else arrived.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.delivered("nobody").len(), 1);
}
