//! sd_notify and reload in place: a daemon started the way systemd starts
//! it (socket activation by `systemd-socket-activate`, NOTIFY_SOCKET a
//! datagram socket of the test's) says READY=1, RELOADING=1 with
//! MONOTONIC_USEC and READY=1 again around a reload on SIGHUP, STATUS=
//! lines, STOPPING=1; a reload applies to new sessions without cutting
//! the open ones, and a broken file is refused. The supervisor does the
//! same for `postern start --foreground` and reloads its roles in place.

use std::io::BufReader;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;

/// The test's end of NOTIFY_SOCKET, and every datagram seen so far.
struct Notifications {
    socket: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(dir: &Path) -> Notifications {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notifications {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram, after the first `from` seen, that has the line
    /// `line`; its index in `seen`.
    fn wait(&mut self, from: usize, line: &str, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(i) = self.seen[from.min(self.seen.len())..]
                .iter()
                .position(|m| m.lines().any(|l| l == line))
            {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {line:?} after datagram {from}; seen: {:?}",
                self.seen
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Waits for RELOADING=1 (with MONOTONIC_USEC=, in the same datagram)
    /// and then READY=1, after datagram `from`; the index after them.
    fn wait_reload(&mut self, from: usize) -> usize {
        let reloading = self.wait(from, "RELOADING=1", 20);
        let message = &self.seen[reloading];
        assert!(
            message.lines().any(|l| l
                .strip_prefix("MONOTONIC_USEC=")
                .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0))),
            "RELOADING=1 without MONOTONIC_USEC: {message:?}"
        );
        self.wait(reloading + 1, "READY=1", 20) + 1
    }
}

/// A daemon as systemd runs it: `systemd-socket-activate` holds the
/// listener (named as the role expects) and execs the daemon, with
/// NOTIFY_SOCKET, at the first connection; the daemon's pid is the
/// child's.
struct Activated {
    dir: tempfile::TempDir,
    config: PathBuf,
    listen: Listen,
    child: Child,
    notifications: Notifications,
}

/// Where the listener is: a TCP port on 127.0.0.1 for smtpd, else a Unix
/// socket.
enum Listen {
    Port(u16),
    Unix(PathBuf),
}

/// The configuration the daemons run with here, in the test's directory
/// (`{dir}`): as the current user, or as postern when the test runs as
/// root (smtpd and qmgr never run as root; they switch to server.user).
fn config_text(banner: &str) -> String {
    let me = if is_root() {
        "postern".to_string()
    } else {
        me()
    };
    format!(
        "[server]\nhostname = \"mail.test.example\"\nrun_directory = \"{{dir}}/run\"\n\
         user = \"{me}\"\n\n[queue]\ndirectory = \"{{dir}}/queue\"\n\n\
         [local]\ndomains = [\"$hostname\", \"localhost\"]\n\
         alias_files = [\"{{dir}}/aliases\"]\n\n[smtpd]\nbanner = \"{banner}\"\n"
    )
}

impl Activated {
    /// `role` on a listener named `fdname`: TCP for smtpd, a Unix socket
    /// in the run directory otherwise.
    fn start(role: &str, fdname: &str, config_text: &str) -> Activated {
        let dir = tempfile::Builder::new()
            .prefix("postern-notify")
            .tempdir()
            .unwrap();
        let queue = dir.path().join("queue");
        for sub in postern::queue::SUBDIRS {
            std::fs::create_dir_all(queue.join(sub)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let notifications = Notifications::bind(dir.path());
        if is_root() {
            // The daemons become postern: their queue is postern's, and
            // NOTIFY_SOCKET is reachable by them, as systemd's is.
            use std::os::unix::fs::PermissionsExt;
            let postern = nix::unistd::User::from_name("postern").unwrap().unwrap();
            for d in ["queue", "run"] {
                chown_tree(
                    &dir.path().join(d),
                    postern.uid.as_raw(),
                    postern.gid.as_raw(),
                );
            }
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&notifications.path, std::fs::Permissions::from_mode(0o666))
                .unwrap();
        }
        let (listen, address) = if role == "smtpd" {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            (Listen::Port(port), format!("127.0.0.1:{port}"))
        } else {
            let path = dir.path().join("run").join(format!("{fdname}.sock"));
            let address = path.display().to_string();
            (Listen::Unix(path), address)
        };
        let config = dir.path().join("postern.toml");
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new("systemd-socket-activate")
            .arg(format!("--listen={address}"))
            .arg(format!("--fdname={fdname}"))
            .arg(format!(
                "--setenv=NOTIFY_SOCKET={}",
                notifications.path.display()
            ))
            .arg(BIN)
            .arg("--config")
            .arg(&config)
            .args(["daemon", role])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("systemd-socket-activate (package systemd) is needed for this test");
        let d = Activated {
            dir,
            config,
            listen,
            child,
            notifications,
        };
        d.write_config(config_text);
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The configuration file, `{dir}` replaced.
    fn write_config(&self, text: &str) {
        let text = text.replace("{dir}", &self.dir.path().display().to_string());
        std::fs::write(&self.config, text).unwrap()
    }

    /// Waits until the log says `needle`.
    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `connect`, tried until the listener is there.
    fn retry<T>(&mut self, connect: impl Fn(&Listen) -> std::io::Result<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match connect(&self.listen) {
                Ok(s) => return s,
                Err(e) => {
                    if let Some(st) = self.child.try_wait().unwrap() {
                        panic!("systemd-socket-activate ended ({st}):\n{}", self.log());
                    }
                    assert!(Instant::now() < deadline, "cannot connect: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// An SMTP session; the first one also makes systemd-socket-activate
    /// start the daemon. Returns the client and its greeting.
    fn connect(&mut self) -> (Client, String) {
        let stream = self.retry(|listen| match listen {
            Listen::Port(port) => TcpStream::connect(("127.0.0.1", *port)),
            Listen::Unix(_) => unreachable!("smtpd listens on TCP here"),
        });
        Client::greeted(stream)
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// SIGTERM: STOPPING=1 after datagram `from`, and the daemon ends well.
    fn stop(&mut self, from: usize) {
        self.signal(Signal::SIGTERM);
        self.notifications.wait(from, "STOPPING=1", 20);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}:\n{}", self.log());
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message through an open session.
fn send_mail(c: &mut Client, rcpt: &str) {
    assert!(c.cmd("MAIL FROM:<sender@example.org>").starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: across a reload\r\n\r\nstill here\r\n.");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
}

#[test]
fn smtpd_notifies_and_reloads_in_place() {
    let rcpt = format!("{}@localhost", me());
    let mut d = Activated::start("smtpd", "smtp", &config_text("first.example ESMTP"));

    // The first connection starts the daemon; it is served once READY=1.
    let (mut open, greeting) = d.connect();
    assert_eq!(greeting, "220 first.example ESMTP", "{}", d.log());
    let ready = d.notifications.wait(0, "READY=1", 20);
    assert!(open.cmd("EHLO client.example").starts_with("250-"));
    d.notifications.wait(0, "STATUS=smtpd: 1 session", 10);

    // A valid change: RELOADING=1 then READY=1; new sessions see it, the
    // open one goes on.
    d.write_config(&config_text("second.example ESMTP"));
    d.signal(Signal::SIGHUP);
    let after = d.notifications.wait_reload(ready + 1);
    d.wait_log("reloaded the configuration from ");
    let (mut c, greeting) = d.connect();
    assert_eq!(greeting, "220 second.example ESMTP", "{}", d.log());
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    send_mail(&mut open, &rcpt);

    // A typo: refused, the running configuration kept, READY=1 anyway.
    d.write_config(&config_text("third.example ESMTP").replace("banner =", "bannr ="));
    d.signal(Signal::SIGHUP);
    let after = d.notifications.wait_reload(after);
    d.wait_log("reload refused, the running configuration is kept: ");
    assert!(d.log().contains("unknown key `smtpd.bannr`"), "{}", d.log());
    let (mut c, greeting) = d.connect();
    assert_eq!(greeting, "220 second.example ESMTP");
    send_mail(&mut c, &rcpt);
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    assert!(open.cmd("NOOP").starts_with("250"));
    assert_eq!(open.cmd("QUIT"), "221 2.0.0 Bye");

    d.stop(after);
}

#[test]
fn qmgr_and_local_notify_and_reload() {
    for (role, status) in [
        (
            "qmgr",
            "STATUS=active 0, deferred 0, hold 0, 0 msg/min in, 0 out",
        ),
        ("local", "STATUS=local: 0 deliveries in progress"),
    ] {
        let mut d = Activated::start(role, role, &config_text("x ESMTP"));
        // The first connection starts the daemon.
        let _first = d.retry(|listen| match listen {
            Listen::Unix(path) => std::os::unix::net::UnixStream::connect(path),
            Listen::Port(_) => unreachable!("{role} listens on a Unix socket"),
        });
        let ready = d.notifications.wait(0, "READY=1", 20);
        d.notifications.wait(0, status, 10);

        d.write_config(
            &config_text("y ESMTP").replace("[queue]\n", "[queue]\nrun_delay = \"7s\"\n"),
        );
        d.signal(Signal::SIGHUP);
        let after = d.notifications.wait_reload(ready + 1);
        d.wait_log("reloaded the configuration from ");

        d.write_config("[qmgr]\n");
        d.signal(Signal::SIGHUP);
        let after = d.notifications.wait_reload(after);
        d.wait_log("reload refused, the running configuration is kept: ");
        d.stop(after);
    }
}

#[test]
fn supervisor_notifies_and_reload_keeps_sessions() {
    let mut p = Postern::configure("", &[], None);
    let mut n = Notifications::bind(p.dir.path());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.log_path())
        .unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&p.config)
        .args(["start", "--foreground"])
        .env("NOTIFY_SOCKET", &n.path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    p.child = Some(child);
    let ready = n.wait(0, "READY=1", 20);
    let text = p.log();
    let addr = text
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listener in the log:\n{text}"));
    p.addr = addr.parse().unwrap();
    let smtpd = p.role_pid("smtpd");

    let mut open = p.client();
    assert!(open.cmd("EHLO client.example").starts_with("250-"));
    p.edit_config(
        "[smtpd]\n",
        "[smtpd]\nbanner = \"reloaded.example ESMTP\"\n",
    );
    let out = p.postern(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = n.wait_reload(ready + 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(p.addr).unwrap();
        let mut greeting = String::new();
        std::io::BufRead::read_line(&mut BufReader::new(&mut s), &mut greeting).unwrap();
        if greeting == "220 reloaded.example ESMTP\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {greeting:?}:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reloaded in place: the same smtpd, and the session opened before
    // the reload carries a message through to the mailbox.
    assert_eq!(p.role_pid("smtpd"), smtpd);
    send_mail(&mut open, &format!("{}@localhost", p.user));
    assert_eq!(open.cmd("QUIT"), "221 2.0.0 Bye");
    p.wait_delivered(&p.user, 1, 30);

    // What the supervisor set up stays as it is, with a warning; the rest
    // of the file is taken, in place as well.
    let text = std::fs::read_to_string(&p.config).unwrap();
    let moved = text.replace("/queue\"", "/elsewhere\"");
    assert_ne!(moved, text);
    std::fs::write(&p.config, moved).unwrap();
    assert!(p.postern(&["reload"]).status.success());
    let after = n.wait_reload(after);
    p.wait_log(
        "reload: queue.directory change only with postern stop and postern start; \
         the running values are kept",
        1,
        10,
    );
    let effective = std::fs::read_to_string(p.run_dir().join("postern.toml")).unwrap();
    assert!(
        effective.contains(&format!("{}\"", p.queue_dir().display())),
        "{effective}"
    );
    assert_eq!(p.role_pid("smtpd"), smtpd);

    // The roles are not the main PID: no NOTIFY_SOCKET for them (each
    // has long run its own program by now).
    for role in ["smtpd", "qmgr", "local"] {
        let pid = p.role_pid(role);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.ends_with(format!("daemon\0{role}\0").as_bytes()));
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(
            !environ
                .split(|b| *b == 0)
                .any(|v| v.starts_with(b"NOTIFY_SOCKET=")),
            "{role} got NOTIFY_SOCKET"
        );
    }

    p.stop();
    n.wait(after, "STOPPING=1", 10);
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}
