//! Logs where administrators look (issue 15, item 7): a postern started
//! in the background without a journal logs to syslog (`/dev/log`,
//! facility mail) in the lines rsyslog's `mail.log`, pflogsumm and
//! fail2ban read; `server.log_file` is opened again on `postern reload`,
//! as logrotate's `postrotate` needs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn issue_15_a_detached_postern_logs_to_syslog_with_facility_mail() {
    let mut p = Postern::configure("", &[], None);
    let syslogd = FakeSyslogd::start(&p.dir.path().join("devlog"));
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&p.config)
        .arg("start")
        .env("POSTERN_SYSLOG_SOCKET", &syslogd.path)
        .output()
        .unwrap();
    let _stop = StopOnDrop(p.config.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "postern: started; log in syslog ({}, facility mail)\n",
            syslogd.path.display()
        )
    );
    let listening =
        syslogd.wait(|l| l.contains(" postern/master[") && l.contains("]: listening on "));
    p.addr = listening
        .rsplit("listening on ")
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let mut c = p.client();
    assert!(c.cmd("EHLO client.example").starts_with("250-"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert!(
        c.cmd("RCPT TO:<nobody-such-user@localhost>")
            .starts_with("550 5.1.1 ")
    );
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354 "));
    let reply = c.cmd("Subject: syslog\r\n\r\nhello\r\n.");
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    // 127.0.0.5's reverse name (localhost, RFC 6761) does not lead back
    // to it: Postfix's warning, at warning level.
    let mut c = p.client_from("127.0.0.5");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    syslogd.wait(|l| l.ends_with(&format!(": {id}: removed")));

    // Each line: <PRI>Mmm dd HH:MM:SS postern/ROLE[PID]: text, facility mail
    // (PRI / 8 = 2), severity 6 (info) unless the text says otherwise.
    let lines = syslogd.lines();
    let mut pids = std::collections::HashMap::new();
    for line in &lines {
        let (pri, rest) = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .unwrap_or_else(|| panic!("no priority: {line:?}"));
        let pri: u8 = pri.parse().unwrap();
        assert_eq!(pri / 8, 2, "not facility mail: {line}");
        let (stamp, rest) = rest.split_at(15);
        assert!(
            chrono::NaiveTime::parse_from_str(&stamp[7..], "%H:%M:%S").is_ok()
                && stamp.as_bytes()[3] == b' '
                && stamp[4..6].trim().parse::<u8>().is_ok(),
            "{line}"
        );
        let (tag, text) = rest[1..].split_once(": ").unwrap();
        let (role, pid) = tag
            .strip_prefix("postern/")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.split_once('['))
            .unwrap_or_else(|| panic!("tag: {line}"));
        pid.parse::<u32>().unwrap();
        pids.insert(role.to_string(), pid.to_string());
        let severity = match text {
            t if t.starts_with("warning: ") => 4,
            t if t.starts_with("error: ") => 3,
            t if t.starts_with("debug: ") => 7,
            _ => 6,
        };
        assert_eq!(pri % 8, severity, "{line}");
    }
    for role in ["master", "smtpd", "qmgr", "local", "smtp"] {
        assert!(pids.contains_key(role), "nothing from {role}: {lines:#?}");
    }
    let said = |role: &str, text: &str| {
        let pri_tag = format!(" postern/{role}[{}]: {text}", pids[role]);
        lines
            .iter()
            .any(|l| l.ends_with(&pri_tag) && l.starts_with('<'))
    };
    let client = "localhost[127.0.0.1]";
    assert!(
        said("smtpd", &format!("connect from {client}")),
        "{lines:#?}"
    );
    assert!(
        said("smtpd", &format!("{id}: client={client}")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<22>")
            && l.contains(&format!(
                " postern/smtpd[{}]: NOQUEUE: reject: RCPT from {client}: 550 5.1.1 <nobody-such-user@localhost>: ",
                pids["smtpd"]
            ))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<20>")
            && l.ends_with("]: warning: hostname localhost does not resolve to address 127.0.0.5")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<22>")
            && l.contains(&format!(
                " postern/local[{}]: {id}: to=<{rcpt}>, relay=local, delay=",
                pids["local"]
            ))
            && l.ends_with(", dsn=2.0.0, status=sent (delivered to maildir)")),
        "{lines:#?}"
    );
    assert!(said("qmgr", &format!("{id}: removed")), "{lines:#?}");

    let out = p.postern(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    // Nothing went to the detached postern's stderr instead.
    let stderr = std::fs::read_to_string(p.run_dir().join("postern.log")).unwrap_or_default();
    assert!(
        !stderr.contains("postern/"),
        "log lines on stderr:\n{stderr}"
    );
}

#[test]
fn issue_15_the_log_file_is_opened_again_on_reload() {
    let mut p = Postern::configure(
        "[server]\nhostname = \"mail.test.example\"\nrun_directory = \"{dir}/run\"\n\
         log_file = \"{dir}/log/maillog\"\n",
        &[],
        None,
    );
    // The log in a directory of its own, as /var/log.
    let log_dir = p.dir.path().join("log");
    std::fs::create_dir(&log_dir).unwrap();
    std::fs::set_permissions(&log_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let maillog = log_dir.join("maillog");
    let rotated = log_dir.join("maillog.1");
    let stderr = std::fs::File::create(p.log_path()).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&p.config)
        .args(["start", "--foreground"])
        .stdin(Stdio::null())
        .stdout(stderr.try_clone().unwrap())
        .stderr(stderr)
        .spawn()
        .unwrap();
    p.child = Some(child);
    let text = wait_file(&maillog, |t| t.contains("listening on "), &p);
    p.addr = text
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    while !p.run_dir().join("status.json").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }

    let user = p.user.clone();
    let send = |n: usize| -> String {
        let mut c = p.client();
        c.open_data(&format!("{user}@localhost"));
        let reply = c.cmd(&format!("Subject: {n}\r\n\r\nmessage {n}\r\n."));
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        p.wait_delivered(&user, n, 20);
        reply
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .unwrap_or_else(|| panic!("{reply}"))
            .to_string()
    };
    let first = send(1);
    wait_file(&maillog, |t| t.contains(&format!("{first}: removed")), &p);
    // logrotate: rename, then postrotate. Lines written meanwhile go on
    // to the renamed file.
    std::fs::rename(&maillog, &rotated).unwrap();
    let second = send(2);
    wait_file(&rotated, |t| t.contains(&format!("{second}: removed")), &p);
    let out = p.postern(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    // Every role says it reloaded, in the new file: each opened it.
    let reloaded = wait_file(
        &maillog,
        |t| t.matches("reloaded the configuration").count() >= 4,
        &p,
    );
    for role in ["master", "smtpd", "qmgr", "local", "smtp"] {
        assert!(
            reloaded.contains(&format!(" postern/{role}[")),
            "{role} did not log to the new file:\n{reloaded}"
        );
    }
    let third = send(3);
    let new = wait_file(&maillog, |t| t.contains(&format!("{third}: removed")), &p);
    let old = std::fs::read_to_string(&rotated).unwrap();

    // Each message's life is whole, in the file that was in place.
    let life = [
        ": client=localhost[127.0.0.1]",
        ", nrcpt=1 (queue active)",
        ", status=sent (delivered to maildir)",
        ": removed",
    ];
    for (id, file, other) in [
        (&first, &old, &new),
        (&second, &old, &new),
        (&third, &new, &old),
    ] {
        for what in life {
            assert!(
                file.lines()
                    .any(|l| l.contains(&format!("]: {id}")) && l.contains(what)),
                "{id}{what} missing:\n{file}"
            );
        }
        assert!(
            !other.contains(id.as_str()),
            "{id} in the other file:\n{other}"
        );
    }
    // The supervisor made the new file the roles' (it runs as root here).
    if is_root() {
        let postern = nix::unistd::User::from_name("postern").unwrap().unwrap();
        let owner = std::fs::metadata(&maillog).unwrap().uid();
        assert_eq!(owner, postern.uid.as_raw());
    }
}

/// `postern stop` for a postern started in the background, whatever the
/// test's outcome.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("--config")
            .arg(&self.0)
            .arg("stop")
            .output();
    }
}

/// `path`'s text once `ready` accepts it (20 s at most).
fn wait_file(path: &Path, ready: impl Fn(&str) -> bool, p: &Postern) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got there:\n{text}\nstderr:\n{}",
            path.display(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A datagram socket standing in for `/dev/log`, read by a thread.
struct FakeSyslogd {
    path: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeSyslogd {
    fn start(path: &Path) -> FakeSyslogd {
        let sock = UnixDatagram::bind(path).unwrap();
        // The roles that run as the postern user connect too.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    l.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        FakeSyslogd {
            path: path.to_path_buf(),
            lines,
            stop,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line `pred` accepts, waiting up to 20 s.
    fn wait(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no such syslog line; got:\n{:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeSyslogd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
