//! Where the log goes: the journal with a message's fields (a fake
//! journald in a private mount namespace), and the log file that pflogsumm
//! reads.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn journal_entries_carry_the_message_fields() {
    if !is_root() {
        eprintln!("skipped: the fake journald needs root (a private mount namespace)");
        return;
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: unshare --mount is not available here");
        return;
    }
    let mut p = Postern::configure("", &[], None);
    let journald = FakeJournald::start(p.dir.path());

    // stderr is a socket, as systemd's journal stream is; JOURNAL_STREAM
    // names it for the supervisor. The daemons it starts do not inherit
    // the variable and choose the journal by the other rule (no variable,
    // stderr a socket, journald answering).
    let (stderr_ours, stderr_theirs) = UnixStream::pair().unwrap();
    let st = nix::sys::stat::fstat(stderr_theirs.as_raw_fd()).unwrap();
    let stderr_text = read_all_in_background(stderr_ours);
    let stdout: OwnedFd = stderr_theirs.try_clone().unwrap().into();
    let stderr: OwnedFd = stderr_theirs.into();
    // In the namespace, /run/systemd (or /run) is our directory, holding
    // journal/socket, the socket the test reads.
    let script = "set -e\n\
        if [ -d /run/systemd ]; then mount --bind \"$1/systemd\" /run/systemd;\n\
        else mount --bind \"$1\" /run; fi\n\
        shift\n\
        exec \"$@\"\n";
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&journald.root)
        .arg(BIN)
        .arg("--config")
        .arg(&p.config)
        .args(["start", "--foreground"])
        .env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    p.child = Some(child);
    let listening = journald.wait(
        |e| {
            e.get("SYSLOG_IDENTIFIER") == Some("postern/master")
                && e.message().starts_with("listening on ")
        },
        20,
    );
    p.addr = listening.message()["listening on ".len()..]
        .parse()
        .unwrap();
    wait_ready(&p);

    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let mut c = p.client();
    c.cmd("EHLO client.example");
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert!(
        c.cmd("RCPT TO:<nobody-such-user@localhost>")
            .starts_with("550 5.1.1 ")
    );
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354 "));
    let reply = c.cmd("Subject: journal\r\nMessage-ID: <j1@example.org>\r\n\r\nhello\r\n.");
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");

    // The delivery line: local's, with the queue ID of the 250 reply.
    let sent = journald.wait(|e| e.get("STATUS") == Some("sent"), 20);
    assert_eq!(
        sent.get("SYSLOG_IDENTIFIER"),
        Some("postern/local"),
        "{sent:?}"
    );
    assert_eq!(sent.get("QUEUE_ID"), Some(id.as_str()), "{sent:?}");
    assert_eq!(sent.get("RECIPIENT"), Some(rcpt.as_str()), "{sent:?}");
    assert_eq!(sent.get("SYSLOG_FACILITY"), Some("2"), "{sent:?}");
    assert_eq!(sent.get("PRIORITY"), Some("5"), "{sent:?}");
    assert!(sent.get("SYSLOG_PID").is_some(), "{sent:?}");
    let text = sent.message();
    assert!(
        text.starts_with(&format!("{id}: to=<{rcpt}>, relay=local, delay="))
            && text.ends_with(", dsn=2.0.0, status=sent (delivered to maildir)"),
        "{text}"
    );
    journald.wait(
        |e| e.get("QUEUE_ID") == Some(id.as_str()) && e.message().ends_with(": removed"),
        20,
    );

    // journalctl QUEUE_ID=… : the message's whole life, from every role.
    let life: Vec<Entry> = journald
        .entries()
        .into_iter()
        .filter(|e| e.get("QUEUE_ID") == Some(id.as_str()))
        .collect();
    let said = |tag: &str, text: &str| {
        life.iter().any(|e| {
            e.get("SYSLOG_IDENTIFIER") == Some(tag) && e.message() == format!("{id}: {text}")
        })
    };
    let client = "localhost[127.0.0.1]";
    assert!(
        said("postern/smtpd", &format!("client={client}")),
        "{life:#?}"
    );
    assert!(
        said("postern/smtpd", "message-id=<j1@example.org>"),
        "{life:#?}"
    );
    assert!(said("postern/qmgr", "removed"), "{life:#?}");
    assert!(
        life.iter()
            .any(|e| e.get("SYSLOG_IDENTIFIER") == Some("postern/qmgr")
                && e.message().ends_with(", nrcpt=1 (queue active)")),
        "{life:#?}"
    );
    let client_line = life
        .iter()
        .find(|e| e.message().contains(": client="))
        .unwrap();
    assert_eq!(client_line.get("CLIENT"), Some(client));

    // The reject: its fields, and no QUEUE_ID (NOQUEUE).
    let reject = journald.wait(|e| e.get("STATUS") == Some("reject"), 5);
    assert_eq!(reject.get("SYSLOG_IDENTIFIER"), Some("postern/smtpd"));
    assert_eq!(
        reject.get("RECIPIENT"),
        Some("nobody-such-user@localhost"),
        "{reject:?}"
    );
    assert_eq!(reject.get("CLIENT"), Some(client), "{reject:?}");
    assert_eq!(reject.get("QUEUE_ID"), None, "{reject:?}");
    assert!(
        reject
            .message()
            .starts_with("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 "),
        "{reject:?}"
    );
    let connect = journald.wait(|e| e.message() == format!("connect from {client}"), 5);
    assert_eq!(connect.get("CLIENT"), Some(client));

    p.stop();
    // Nothing went to stderr instead.
    std::thread::sleep(Duration::from_millis(100));
    let text = stderr_text.lock().unwrap().clone();
    assert!(!text.contains("postern/"), "log lines on stderr:\n{text}");
    journald.stop();
}

#[test]
fn pflogsumm_counts_the_log_file() {
    if Command::new("pflogsumm").arg("--version").output().is_err() {
        panic!("pflogsumm is not installed (apt-get install pflogsumm; .ci/run does)");
    }
    let day = chrono::Local::now().date_naive();
    let mut p = Postern::configure(
        "[server]\nhostname = \"mail.test.example\"\nrun_directory = \"{dir}/run\"\n\
         log_file = \"{dir}/maillog\"\n\n\
         [relay]\nnetworks = [\"127.0.0.1/32\"]\n",
        &[],
        None,
    );
    let maillog = p.dir.path().join("maillog");
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
    let deadline = Instant::now() + Duration::from_secs(20);
    p.addr = loop {
        let text = std::fs::read_to_string(&maillog).unwrap_or_default();
        if let Some(addr) = listening_on(&text) {
            break addr;
        }
        assert!(
            Instant::now() < deadline,
            "postern did not start; maillog:\n{text}\nstderr:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_ready(&p);

    const DELIVERED: usize = 3;
    let user = p.user.clone();
    let mut c = p.client();
    c.cmd("EHLO client.example");
    for i in 0..DELIVERED {
        assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{user}@localhost>")),
            "250 2.1.5 Ok"
        );
        assert!(c.cmd("DATA").starts_with("354 "));
        let reply = c.cmd(&format!("Subject: {i}\r\n\r\nmessage {i}\r\n."));
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    }
    // Rejected: an unknown local user, and relaying for an outsider.
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert!(
        c.cmd("RCPT TO:<nobody-such-user@localhost>")
            .starts_with("550 5.1.1 ")
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let mut out = p.client_from("127.0.0.3");
    out.cmd("EHLO outsider.example");
    assert_eq!(out.cmd("MAIL FROM:<s@outsider.example>"), "250 2.1.0 Ok");
    assert!(
        out.cmd("RCPT TO:<u@elsewhere.example>")
            .starts_with("554 5.7.1 ")
    );
    assert_eq!(out.cmd("QUIT"), "221 2.0.0 Bye");
    const REJECTED: usize = 2;

    p.wait_delivered(&user, DELIVERED, 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&maillog)
        .unwrap_or_default()
        .matches(": removed\n")
        .count()
        < DELIVERED
    {
        assert!(Instant::now() < deadline, "messages never removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.stop();

    let text = std::fs::read_to_string(&maillog).unwrap();
    // Postfix's syslog shape, every line: "Mon dd HH:MM:SS host tag[pid]: ".
    for line in text.lines() {
        let (stamp, rest) = line.split_at(15);
        assert!(
            chrono::NaiveTime::parse_from_str(&stamp[7..], "%H:%M:%S").is_ok(),
            "{line}"
        );
        let (host, rest) = rest[1..].split_once(' ').unwrap();
        assert!(!host.contains('.'), "{line}");
        assert!(rest.starts_with("postern/"), "{line}");
    }
    let mode = std::fs::metadata(&maillog).unwrap().permissions().mode();
    assert_eq!(mode & 0o137, 0, "log file mode {mode:o}");
    assert!(
        !p.log().contains("postern/"),
        "log lines on stderr:\n{}",
        p.log()
    );

    // `-d today` checks the date format too (day padded as syslog's);
    // a test that crossed midnight reads the whole file instead.
    let mut cmd = Command::new("pflogsumm");
    cmd.args(["--syslog-name=postern", "--detail", "0"]);
    if chrono::Local::now().date_naive() == day {
        cmd.args(["-d", "today"]);
    }
    let out = cmd.arg(&maillog).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    let totals = grand_totals(&report);
    let count = |what: &str| {
        *totals
            .get(what)
            .unwrap_or_else(|| panic!("no {what:?} in:\n{report}\nlog:\n{text}"))
    };
    assert_eq!(count("received"), DELIVERED, "{report}\nlog:\n{text}");
    assert_eq!(count("delivered"), DELIVERED, "{report}\nlog:\n{text}");
    assert_eq!(count("rejected"), REJECTED, "{report}\nlog:\n{text}");
    assert_eq!(count("deferred"), 0, "{report}");
    assert_eq!(count("bounced"), 0, "{report}");
    assert_eq!(count("forwarded"), 0, "{report}");
}

/// The numbers of pflogsumm's "Grand Totals" messages section, by the word
/// after them (`received`, `delivered`, `rejected (40%)` → `rejected`).
fn grand_totals(report: &str) -> HashMap<String, usize> {
    let mut totals = HashMap::new();
    let Some(start) = report.find("Grand Totals") else {
        return totals;
    };
    for line in report[start..].lines().skip(1) {
        let mut words = line.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        if what == "bytes" {
            break;
        }
        if let Ok(n) = n.parse() {
            totals.insert(what.to_string(), n);
        }
    }
    totals
}

fn listening_on(log: &str) -> Option<SocketAddr> {
    let pos = log.find("listening on ")?;
    log[pos + "listening on ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The supervisor writes its status file once every role was started.
fn wait_ready(p: &Postern) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.run_dir().join("status.json").exists() {
        assert!(Instant::now() < deadline, "postern never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all_in_background(mut s: UnixStream) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// One journal entry: its fields in the order sent.
#[derive(Clone, Debug)]
struct Entry(Vec<(String, String)>);

impl Entry {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn message(&self) -> &str {
        self.get("MESSAGE").unwrap_or("")
    }

    /// The native protocol: `KEY=value\n`, or `KEY\n` + 64-bit LE length +
    /// value + `\n` for values that may hold newlines.
    fn parse(mut data: &[u8]) -> Entry {
        let mut fields = Vec::new();
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let line = &data[..nl];
            data = &data[nl + 1..];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                fields.push((
                    String::from_utf8_lossy(&line[..eq]).into_owned(),
                    String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
                ));
            } else {
                let len = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
                let value = &data[8..8 + len];
                assert_eq!(data[8 + len], b'\n', "bad binary field");
                fields.push((
                    String::from_utf8_lossy(line).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
                data = &data[8 + len + 1..];
            }
        }
        assert!(data.is_empty(), "trailing bytes in a journal entry");
        Entry(fields)
    }
}

/// A datagram socket at `ROOT/systemd/journal/socket`, read by a thread.
struct FakeJournald {
    root: std::path::PathBuf,
    entries: Arc<Mutex<Vec<Entry>>>,
    stop: Arc<AtomicBool>,
}

impl FakeJournald {
    fn start(dir: &Path) -> FakeJournald {
        let root = dir.join("fake-run");
        let journal = root.join("systemd/journal");
        std::fs::create_dir_all(&journal).unwrap();
        for d in [&root, &root.join("systemd"), &journal] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = journal.join("socket");
        let sock = UnixDatagram::bind(&path).unwrap();
        // smtpd and qmgr run as the postern user.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let entries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (entries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 17];
            while !s.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    // journal loggers probe with an empty datagram.
                    Ok(0) => {}
                    Ok(n) => e.lock().unwrap().push(Entry::parse(&buf[..n])),
                    Err(_) => {}
                }
            }
        });
        FakeJournald {
            root,
            entries,
            stop,
        }
    }

    fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// The first entry `pred` accepts, waiting up to `secs`.
    fn wait(&self, pred: impl Fn(&Entry) -> bool, secs: u64) -> Entry {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.entries().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no such journal entry; got:\n{:#?}",
                self.entries()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for FakeJournald {
    fn drop(&mut self) {
        self.stop();
    }
}
