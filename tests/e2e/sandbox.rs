//! The sandbox is real: each role, started as the daemon starts
//! (`postern daemon ROLE --probe …` applies exactly the daemon's sandbox and
//! then tries accesses), cannot write or read outside its rooms nor connect
//! out where it must not; the running daemons' capability sets, read from
//! /proc, are empty (smtpd, qmgr, the delivery children) or exactly what
//! local needs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A directory outside every role's rooms, open to everyone by mode, so
/// that only the sandbox can stop an access: a file to read, room to write.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::Builder::new()
            .prefix("postern-outside")
            .tempdir_in("/var/lib")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "not for the mail system\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        Outside { dir }
    }

    fn secret(&self) -> String {
        self.dir.path().join("secret").display().to_string()
    }

    fn new_file(&self) -> String {
        self.dir.path().join("written").display().to_string()
    }
}

/// A TCP listener nobody may reach from a sandboxed smtpd or qmgr.
fn listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

/// Run the probes as `postern daemon ROLE`; (probe, ok) per line.
fn probe(config: &Path, role: &str, env: &[(&str, String)], probes: &[String]) -> Vec<bool> {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(config).args(["daemon", role]);
    for p in probes {
        cmd.arg("--probe").arg(p);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{role} probes failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), probes.len(), "{stdout}");
    for r in &results {
        println!("{role}: {r}");
    }
    results.iter().map(|r| r["ok"].as_bool().unwrap()).collect()
}

/// The queue and run directories as `postern start` makes them.
fn prepare(p: &Postern) {
    let postern = nix::unistd::User::from_name("postern").unwrap().unwrap();
    let q = p.queue_dir();
    let mut dirs = vec![q.clone(), p.run_dir()];
    dirs.extend(postern::queue::SUBDIRS.iter().map(|d| q.join(d)));
    for d in dirs {
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(postern.uid.as_raw()), Some(postern.gid.as_raw()))
            .unwrap();
    }
}

#[test]
fn smtpd_qmgr_and_smtp_stay_in_their_rooms() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let p = Postern::configure("[sandbox]\nrequire = true\n", &[], None);
    prepare(&p);
    let outside = Outside::new();
    let (_l, addr) = listener();
    let q = p.queue_dir();
    let probes = |own: &Path, foreign: &Path| {
        vec![
            format!("write:{}", own.join("probe").display()),
            format!("write:{}", foreign.join("probe").display()),
            format!("write:{}", outside.new_file()),
            format!("write:/etc/postern-probe"),
            format!("read:{}", outside.secret()),
            "read:/etc/passwd".to_string(),
            format!("connect:{addr}"),
        ]
    };
    // smtpd writes only queue/incoming.
    let got = probe(
        &p.config,
        "smtpd",
        &[],
        &probes(&q.join("incoming"), &q.join("state")),
    );
    assert_eq!(got, [true, false, false, false, false, true, false]);
    // qmgr writes the queue, nothing else.
    let got = probe(
        &p.config,
        "qmgr",
        &[],
        &probes(&q.join("deferred"), &p.run_dir()),
    );
    assert_eq!(got, [true, false, false, false, false, true, false]);
    // smtp writes nothing at all, reads the queue, and may connect out.
    let got = probe(
        &p.config,
        "smtp",
        &[],
        &[
            format!("write:{}", q.join("deferred").join("probe").display()),
            format!("write:{}", outside.new_file()),
            format!("read:{}", outside.secret()),
            format!("list:{}", q.join("incoming").display()),
            format!("connect:{addr}"),
        ],
    );
    assert_eq!(got, [false, false, false, true, true]);
    // And the TCP connection really is possible without the sandbox.
    assert!(std::net::TcpStream::connect(&addr).is_ok());
}

/// Issue 23: the metrics role reads nothing of the system but its
/// configuration: not the queue, not /etc (shadow, passwd), no TCP out,
/// no writes.
#[test]
fn metrics_reads_neither_the_queue_nor_etc() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let p = Postern::configure(
        "[sandbox]\nrequire = true\n[metrics]\nlisten = [\"127.0.0.1:9154\"]\n",
        &[],
        None,
    );
    prepare(&p);
    let outside = Outside::new();
    let (_l, addr) = listener();
    let q = p.queue_dir();
    let message = q.join("deferred").join("A0000000000001");
    std::fs::write(&message, "a message").unwrap();
    let postern = nix::unistd::User::from_name("postern").unwrap().unwrap();
    std::os::unix::fs::chown(&message, Some(postern.uid.as_raw()), None).unwrap();
    // The configuration in a directory of its own (the role reads the
    // directory its file is in; here the test's holds the queue too).
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = etc.path().join("postern.toml");
    std::fs::copy(&p.config, &config).unwrap();
    let got = probe(
        &config,
        "metrics",
        &[],
        &[
            format!("read:{}", config.display()),
            format!("read:{}", message.display()),
            format!("list:{}", q.join("incoming").display()),
            "read:/etc/shadow".to_string(),
            "read:/etc/passwd".to_string(),
            format!("read:{}", outside.secret()),
            format!("write:{}", p.run_dir().join("probe").display()),
            format!("connect:{addr}"),
        ],
    );
    assert_eq!(got, [true, false, false, false, false, false, false, false]);
}

#[test]
fn local_and_its_mailbox_children_stay_in_their_rooms() {
    if !is_root() {
        eprintln!("skipped: needs root (delivery children switch users)");
        return;
    }
    let outside = Outside::new();
    // Without commands and files, local itself may write only where
    // mailboxes live.
    let p = Postern::configure("[sandbox]\nrequire = true\n", &[], None);
    p.edit_config(
        "[local]\n",
        "[local]\nallow_mail_to_commands = []\nallow_mail_to_files = []\n",
    );
    prepare(&p);
    let got = probe(
        &p.config,
        "local",
        &[],
        &[
            format!("write:{}", outside.new_file()),
            "write:/etc/postern-probe".to_string(),
            "write:/root/.postern-probe".to_string(),
            "read:/etc/passwd".to_string(),
        ],
    );
    assert_eq!(got, [false, false, true, true]);

    // A mailbox child of nobody: its home and its spool, nothing else.
    let home = tempfile::Builder::new()
        .prefix("postern-home")
        .tempdir_in("/var/lib")
        .unwrap();
    let spool = tempfile::Builder::new()
        .prefix("postern-spool")
        .tempdir_in("/var/lib")
        .unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    for d in [home.path(), spool.path()] {
        std::os::unix::fs::chown(d, Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw())).unwrap();
    }
    let identity = serde_json::json!({
        "user": "nobody", "uid": nobody.uid.as_raw(), "gid": nobody.gid.as_raw(),
        "groups": [nobody.gid.as_raw()], "home": home.path(),
    });
    let room = serde_json::json!({ "home": home.path(), "write": [spool.path()] });
    let (_l, addr) = listener();
    let env = [
        ("POSTERN_LOCAL_WORKER_IDENTITY", identity.to_string()),
        ("POSTERN_LOCAL_WORKER_ROOM", room.to_string()),
    ];
    let got = probe(
        &p.config,
        "local-worker",
        &env,
        &[
            format!("write:{}", home.path().join("Maildir-probe").display()),
            format!("write:{}", spool.path().join("nobody").display()),
            format!("write:{}", outside.new_file()),
            format!("read:{}", outside.secret()),
            "read:/etc/passwd".to_string(),
            format!("connect:{addr}"),
        ],
    );
    assert_eq!(got, [true, true, false, false, true, false]);
}

/// Capability sets and no_new_privs of a running process.
fn caps(pid: i32) -> Vec<(String, String)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs") || l.starts_with("Uid"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(caps: &'a [(String, String)], name: &str) -> &'a str {
    caps.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn hex(mask: u64) -> String {
    format!("{mask:016x}")
}

#[test]
fn running_daemons_hold_no_capabilities_but_what_local_needs() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    let postern_uid = nix::unistd::User::from_name("postern")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    // Each role logs this once it has dropped its privileges.
    for role in ["smtpd", "qmgr", "smtp", "local"] {
        p.wait_log(&format!("{role}: sandboxed"), 1, 10);
    }
    for role in ["smtpd", "qmgr", "smtp"] {
        let c = caps(p.role_pid(role));
        println!("{role}: {c:?}");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(&c, set), hex(0), "{role} {set}");
        }
        assert_eq!(field(&c, "NoNewPrivs"), "1", "{role}");
        assert!(
            field(&c, "Uid")
                .split_whitespace()
                .all(|u| u == postern_uid.to_string()),
            "{role} runs as postern: {c:?}"
        );
    }
    let keeps = postern::sandbox::privileges::LOCAL_KEEPS
        .iter()
        .fold(0u64, |m, c| m | c.bitmask());
    let c = caps(p.role_pid("local"));
    println!("local: {c:?}");
    for (set, want) in [
        ("CapInh", 0),
        ("CapPrm", keeps),
        ("CapEff", keeps),
        ("CapBnd", keeps),
        ("CapAmb", 0),
    ] {
        assert_eq!(field(&c, set), hex(want), "local {set}");
    }
    assert_eq!(field(&c, "NoNewPrivs"), "1");

    // A delivery makes a child that stays a while: it has nothing.
    let mut client = p.client();
    client.cmd("EHLO probe.example");
    client.cmd("MAIL FROM:<a@example.org>");
    client.cmd("RCPT TO:<nobody@localhost>");
    client.cmd("DATA");
    assert!(
        client
            .cmd("Subject: x\r\n\r\nhello\r\n.")
            .starts_with("250")
    );
    p.wait_delivered("nobody", 1, 20);
    let local = p.role_pid("local");
    let worker = children(local)
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("local-worker"))
        })
        .expect("a delivery child of local");
    let c = caps(worker);
    println!("local-worker: {c:?}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&c, set), hex(0), "worker {set}");
    }
    assert_eq!(field(&c, "NoNewPrivs"), "1");
    // Its lanes are threads started after the switch: the same, each.
    let mut lanes = 0;
    for task in std::fs::read_dir(format!("/proc/{worker}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap();
        if !comm.starts_with("lane ") {
            continue;
        }
        lanes += 1;
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let t: Vec<(String, String)> = status
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(&t, set), hex(0), "{} {set}", comm.trim());
        }
        assert_eq!(field(&t, "NoNewPrivs"), "1");
        assert_eq!(field(&t, "Uid"), field(&c, "Uid"), "{}", comm.trim());
    }
    assert!(lanes > 0, "the worker serves lanes");
}

fn children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: the comm may hold spaces; split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// NixOS's shape of `/etc`, built in `dir/etc` from a "store" outside every
/// room: `etc/static` is a symlink to the store's etc tree, the
/// configuration and the alias file are symlinks through it (relative, as
/// NixOS writes them), each real file one more link away in a store path
/// of its own, and the CA bundle a symlink straight into the store.
struct NixShape {
    store: tempfile::TempDir,
    etc: std::path::PathBuf,
}

impl NixShape {
    fn new(p: &Postern) -> NixShape {
        let store = tempfile::Builder::new()
            .prefix("postern-store")
            .tempdir_in("/var/lib")
            .unwrap();
        let s = store.path();
        let put = |rel: &str, text: &str| {
            let f = s.join(rel);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, text).unwrap();
        };
        let d = p.dir.path().display().to_string();
        let etc = p.dir.path().join("etc");
        let config = std::fs::read_to_string(&p.config).unwrap().replace(
            &format!("alias_files = [\"{d}/aliases\"]"),
            &format!("alias_files = [\"{d}/etc/aliases\"]"),
        ) + &format!("\n[tls]\nca_file = \"{d}/etc/ssl/certs/ca-certificates.crt\"\n");
        put("aaa-postern.toml/postern.toml", &config);
        put("bbb-aliases/aliases", "postmaster: root\n");
        put(
            "ccc-ca/ca-bundle.crt",
            &std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap(),
        );
        put("ddd-other/secret", "not for the mail system\n");
        let tree = s.join("eee-etc/etc");
        std::fs::create_dir_all(tree.join("postern")).unwrap();
        symlink(
            s.join("aaa-postern.toml/postern.toml"),
            tree.join("postern/postern.toml"),
        );
        symlink(s.join("bbb-aliases/aliases"), tree.join("aliases"));
        std::fs::create_dir_all(etc.join("postern")).unwrap();
        std::fs::create_dir_all(etc.join("ssl/certs")).unwrap();
        symlink(&tree, etc.join("static"));
        symlink(
            Path::new("../static/postern/postern.toml"),
            etc.join("postern/postern.toml"),
        );
        symlink(Path::new("static/aliases"), etc.join("aliases"));
        symlink(
            s.join("ccc-ca/ca-bundle.crt"),
            etc.join("ssl/certs/ca-certificates.crt"),
        );
        // A link from a room into the store to a file nobody configured.
        symlink(s.join("ddd-other/secret"), etc.join("unlisted"));
        // Everyone may read the store, as /nix/store: only the sandbox
        // stands between a role and a file there.
        for e in walk(s) {
            let mode = if e.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        NixShape { store, etc }
    }

    fn config(&self) -> std::path::PathBuf {
        self.etc.join("postern/postern.toml")
    }

    fn path(&self, rel: &str) -> String {
        self.etc.join(rel).display().to_string()
    }

    fn stored(&self, rel: &str) -> String {
        self.store.path().join(rel).display().to_string()
    }
}

/// Issue 16: Landlock checks the file a symlink leads to, not the link.
/// With the configuration, the alias file and the CA bundle symlinks into
/// another tree (NixOS: `/etc/postern/postern.toml -> /etc/static/… ->
/// /nix/store/…`), each role reads them where they really are — and still
/// nothing else of that tree, even through a link from one of its rooms.
#[test]
fn issue_16_symlinked_configuration_aliases_and_ca_bundle_are_read_where_they_are() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let p = Postern::configure("[sandbox]\nrequire = true\n", &[], None);
    prepare(&p);
    let nix = NixShape::new(&p);
    let outside = Outside::new();
    let config = nix.config();
    let common = [
        format!("read:{}", config.display()),
        format!("read:{}", nix.stored("ddd-other/secret")),
        format!("read:{}", nix.path("unlisted")),
        format!("read:{}", outside.secret()),
    ];
    let with = |extra: &[String]| -> Vec<String> { common.iter().chain(extra).cloned().collect() };
    let got = probe(
        &config,
        "smtpd",
        &[],
        &with(&[format!("read:{}", nix.path("aliases"))]),
    );
    assert_eq!(got, [true, false, false, false, true]);
    let got = probe(&config, "qmgr", &[], &with(&[]));
    assert_eq!(got, [true, false, false, false]);
    let ca = format!("read:{}", nix.path("ssl/certs/ca-certificates.crt"));
    let got = probe(&config, "smtp", &[], &with(&[ca]));
    assert_eq!(got, [true, false, false, false, true]);
}

/// Issue 19: the DKIM private key is read by smtp's room and by no other
/// daemon's: smtpd (which parses the Internet's input) and qmgr cannot
/// open it, though its mode lets everyone (only the sandbox stops them).
#[test]
fn issue_19_only_smtp_can_read_the_dkim_keys() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let keys = tempfile::Builder::new()
        .prefix("postern-dkim")
        .tempdir_in("/var/lib")
        .unwrap();
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = keys.path().join("example.org.sel.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = Postern::configure(
        &format!(
            "[sandbox]\nrequire = true\n\n[dkim]\nkeys = [\"example.org:sel:{}\"]\n",
            key.display()
        ),
        &[],
        None,
    );
    prepare(&p);
    let read = [format!("read:{}", key.display())];
    assert_eq!(probe(&p.config, "smtp", &[], &read), [true]);
    assert_eq!(probe(&p.config, "smtpd", &[], &read), [false]);
    assert_eq!(probe(&p.config, "qmgr", &[], &read), [false]);
}

/// Issue 20: smtpd's room lets it reach its milters (the TCP port of
/// `milters.smtpd`) and no other port.
#[test]
fn smtpd_reaches_its_milters_and_nothing_else() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let (_milter, milter) = listener();
    let (_other, other) = listener();
    let p = Postern::configure(
        &format!("[sandbox]\nrequire = true\n\n[milters]\nsmtpd = [\"inet:{milter}\"]\n"),
        &[],
        None,
    );
    prepare(&p);
    let got = probe(
        &p.config,
        "smtpd",
        &[],
        &[format!("connect:{milter}"), format!("connect:{other}")],
    );
    assert_eq!(got, [true, false]);
}

/// Issue 21: smtp's room lets it connect to the Unix sockets of its LMTP
/// next hops (`virtual.transport`, the transport table) and to no other
/// socket.
#[test]
fn smtp_reaches_its_lmtp_sockets_and_no_other() {
    if !is_root() {
        eprintln!("skipped: needs root (the roles switch to postern)");
        return;
    }
    let sockets = tempfile::tempdir().unwrap();
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut listeners = Vec::new();
    let mut paths = Vec::new();
    for dir in ["dovecot", "inline", "other"] {
        let d = sockets.path().join(dir);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = d.join("lmtp");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        listeners.push(l);
        paths.push(path.display().to_string());
    }
    let p = Postern::configure(
        &format!(
            "[sandbox]\nrequire = true\n\n[relay]\ntransport = {{ \"i.example\" = \"lmtp:unix:{}\" }}\n\n\
             [virtual]\nmailbox_domains = [\"v.example\"]\ntransport = \"lmtp:unix:{}\"\n",
            paths[1], paths[0]
        ),
        &[],
        None,
    );
    prepare(&p);
    let probes: Vec<String> = paths.iter().map(|p| format!("unix:{p}")).collect();
    let smtp = probe(&p.config, "smtp", &[], &probes);
    assert_eq!(smtp[..2], [true, true]);
    // Connecting to a Unix socket is a Landlock right from ABI 9 on;
    // before it, every socket is reachable and only the doors are tested.
    let abi = landlock_abi(&p.config);
    if abi < 9 {
        eprintln!(
            "note: this kernel's Landlock ABI {abi} does not scope Unix sockets (ABI 9 does):              the refusal of an unconfigured socket is not tested here"
        );
        return;
    }
    assert_eq!(smtp, [true, true, false]);
    // The other roles reach none of them.
    assert_eq!(
        probe(&p.config, "qmgr", &[], &probes),
        [false, false, false]
    );
}

/// The Landlock ABI the kernel enforces, as the smtp role reports it.
fn landlock_abi(config: &Path) -> u32 {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["daemon", "smtp", "--probe", "read:/etc/hostname"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .split("Landlock ABI ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
