//! Issue 20: smtpd's milter client against the milters mail systems run,
//! Debian's packages started by each test with a configuration of its own
//! in a temporary directory: rspamd's proxy worker in milter mode (no
//! system configuration, no Redis, no module that asks DNS or the
//! network) and OpenDKIM, whose signature dkimpy verifies. And
//! `milters.non_smtpd`: mail from `sendmail` meets those milters, not
//! `milters.smtpd`'s.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::*;
use crate::milter::TestMilter;
use crate::outbound::dns::{DnsServer, Zone};
use crate::outbound::real_server::AioSmtpd;
use crate::outbound::submit;

const RSPAMD: &str = "/usr/bin/rspamd";
const OPENDKIM: &str = "/usr/sbin/opendkim";
const OPENDKIM_GENKEY: &str = "/usr/sbin/opendkim-genkey";

/// A milter program listening on 127.0.0.1:PORT, its files in `dir`;
/// stopped with `stop` (SIGKILL after 10 s) when dropped.
struct Daemon {
    child: Child,
    stop: Signal,
    port: u16,
    dir: tempfile::TempDir,
    /// The file in `dir` it logs to, shown when it fails.
    log: &'static str,
}

impl Daemon {
    /// Run `cmd` (its output goes to `log` too) and wait until it
    /// accepts connections on `port`.
    fn start(
        mut cmd: Command,
        stop: Signal,
        port: u16,
        dir: tempfile::TempDir,
        log: &'static str,
    ) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join(log))
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut d = Daemon {
            child,
            stop,
            port,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!("{cmd:?} exited ({st}):\n{}", d.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} does not listen on 127.0.0.1:{port}:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn address(&self) -> String {
        format!("inet:127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, self.stop);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// rspamd's configuration: nothing from /etc/rspamd. Only the
/// `milter_headers` module is configured (rspamd leaves every module
/// without a section unloaded), with routines that add headers to ham as
/// well, also for mail from loopback (`skip_local`); the C modules are
/// off (`filters`); the URL suffix list is a short one of our own (the
/// Debian one takes rspamd tens of seconds to compile); DNS goes to the
/// test's server. GTUBE is rspamd's own, always a reject.
fn rspamd_config(dir: &Path, port: u16, dns: &DnsServer) -> String {
    let d = dir.display();
    format!(
        r#"options {{
  filters = "";
  url_tld = "{d}/tld.dat";
  dbdir = "{d}";
  hs_cache_dir = "{d}";
  tempdir = "{d}";
  pidfile = "{d}/rspamd.pid";
  control_socket = "{d}/rspamd.sock mode=0600";
  dns {{ nameserver = ["{dns}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{d}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; }}
modules {{ path = "/usr/share/rspamd/plugins"; }}
milter_headers {{
  use = ["x-spamd-result", "x-spam-status"];
  skip_local = false;
  skip_authenticated = false;
}}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  count = 1;
  upstream "local" {{ default = yes; self_scan = yes; }}
}}
"#,
        dns = dns.addr
    )
}

/// rspamd in the foreground as its own user when we are root (it refuses
/// to run workers as root without `--insecure`); `None` (the test skips)
/// when it is not installed.
fn start_rspamd(dns: &DnsServer) -> Option<Daemon> {
    if !Path::new(RSPAMD).exists() {
        eprintln!("skipped: {RSPAMD} is not installed (apt-get install rspamd; .ci/run does)");
        return None;
    }
    let dir = tempfile::Builder::new().prefix("rspamd").tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("rspamd.conf");
    std::fs::write(&conf, rspamd_config(dir.path(), port, dns)).unwrap();
    std::fs::write(dir.path().join("tld.dat"), "org\nnet\ncom\nexample\n").unwrap();
    let mut cmd = Command::new(RSPAMD);
    cmd.arg("-f").arg("-c").arg(&conf);
    if is_root() {
        match nix::unistd::User::from_name("_rspamd").ok().flatten() {
            Some(u) => {
                std::os::unix::fs::chown(dir.path(), Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                    .unwrap();
                cmd.args(["-u", "_rspamd", "-g", "_rspamd"]);
            }
            None => {
                cmd.arg("--insecure");
            }
        }
    }
    // SIGTERM: the main process stops its workers.
    Some(Daemon::start(cmd, Signal::SIGTERM, port, dir, "rspamd.log"))
}

/// The DNS server rspamd asks (it holds nothing), rspamd, and postern
/// with rspamd as its smtpd milter; `None` (skip) without rspamd.
fn with_rspamd() -> Option<(DnsServer, Daemon, Postern)> {
    let dns = DnsServer::start(Zone::new());
    let rspamd = start_rspamd(&dns)?;
    let p = Postern::start(&format!("[milters]\nsmtpd = [\"{}\"]\n", rspamd.address()));
    Some((dns, rspamd, p))
}

/// A message from a@example.org to `to`, without the final CRLF (as
/// [`Mail::reply`] takes it).
fn message(to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: a@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\n{body}"
    )
}

/// GTUBE, the test pattern every spam filter rejects.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn issue_20_rspamd_rejects_gtube_with_its_own_reply() {
    let Some((dns, rspamd, p)) = with_rspamd() else {
        return;
    };
    let to = format!("{}@mail.test.example", me());
    let mail = Mail {
        helo: "client.example",
        from: "a@example.org",
        to: &[&to],
        ..MAIL
    };
    let reply = mail.reply(&p, &message(&to, "spam", GTUBE));
    assert_eq!(reply, "554 5.7.1 Gtube pattern", "{}", rspamd.log_text());
    let log = p.log();
    assert!(
        log.contains(&format!(
            "milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Gtube pattern; \
             from=<a@example.org> to=<{to}> proto=ESMTP helo=<client.example>"
        )),
        "{log}"
    );
    assert_eq!(dns.queries(), [], "rspamd asked DNS");
}

#[test]
fn issue_20_rspamd_adds_its_headers_to_a_clean_message() {
    let Some((dns, rspamd, p)) = with_rspamd() else {
        return;
    };
    let to = format!("{}@mail.test.example", me());
    let id = send(
        &p,
        "a@example.org",
        &[&to],
        &message(&to, "ham", "A plain message."),
    );
    let file = &p.wait_delivered(&me(), 1, 20)[0];
    let text = std::fs::read_to_string(file).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    assert_eq!(body, "A plain message.\n");
    // Added below the client's fields (in the order rspamd sends them,
    // which its hash table decides): no rule fires (none is loaded), so
    // the score is 0 of the reject threshold.
    let lines: Vec<&str> = head.lines().collect();
    let (client, added) = lines.split_at(lines.len() - 2);
    assert_eq!(
        client.last(),
        Some(&"Message-ID: <ham@example.org>"),
        "{text}"
    );
    let mut added = added.to_vec();
    added.sort();
    assert_eq!(
        added,
        [
            "X-Spam-Status: No, score=0.00",
            "X-Spamd-Result: default: False [0.00 / 15.00]"
        ],
        "{text}\n{}",
        rspamd.log_text()
    );
    let log = p.log();
    assert!(
        log.contains(&format!(
            "{id}: milter {}: header X-Spamd-Result: default: False [0.00 / 15.00] added",
            rspamd.address()
        )),
        "{log}"
    );
    assert_eq!(dns.queries(), [], "rspamd asked DNS");
}

/// OpenDKIM in the foreground with a fresh key (`opendkim-genkey`) of
/// example.org, selector `milter`: it signs mail from 127.0.0.1
/// (`InternalHosts`) whose From is at example.org, simple/simple. Root
/// may run it (no `UserID`); the key sits under /tmp, which the key's
/// safety check refuses, hence `RequireSafeKeys false`. Also the DNS
/// server that publishes the key, for dkimpy.
fn start_opendkim() -> (Daemon, DnsServer) {
    assert!(
        Path::new(OPENDKIM).exists() && Path::new(OPENDKIM_GENKEY).exists(),
        "OpenDKIM is not installed (apt-get install opendkim opendkim-tools; .ci/run does)"
    );
    let dir = tempfile::Builder::new()
        .prefix("opendkim")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let out = Command::new(OPENDKIM_GENKEY)
        .args(["-d", "example.org", "-s", "milter", "-D"])
        .arg(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "opendkim-genkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `milter._domainkey IN TXT ( "v=DKIM1; …" "p=…" "…" )  ; comment`
    let record = std::fs::read_to_string(d.join("milter.txt")).unwrap();
    let strings: Vec<&str> = record.split('"').skip(1).step_by(2).collect();
    let txt = strings.concat();
    assert!(txt.starts_with("v=DKIM1;"), "{record}");
    let dns = DnsServer::start(Zone::new().txt("milter._domainkey.example.org", &txt));
    let port = free_port();
    let conf = d.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Domain example.org\nSelector milter\nKeyFile {k}\nRequireSafeKeys false\n\
             Mode sv\nCanonicalization simple/simple\nInternalHosts 127.0.0.1\n\
             Socket inet:{port}@127.0.0.1\nSyslog no\nPidFile {p}\n",
            k = d.join("milter.private").display(),
            p = d.join("opendkim.pid").display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(OPENDKIM);
    cmd.arg("-f").arg("-x").arg(&conf);
    // SIGKILL: libmilter notices SIGTERM only at its next 5 s poll, and
    // there is nothing to save.
    let d = Daemon::start(cmd, Signal::SIGKILL, port, dir, "opendkim.log");
    (d, dns)
}

#[test]
fn issue_20_opendkim_signs_relayed_mail_and_dkimpy_verifies_it() {
    let (opendkim, dns) = start_opendkim();
    let out = tempfile::tempdir().unwrap();
    let server = AioSmtpd::start(&out.path().join("out"));
    let p = Postern::start(&format!(
        "[milters]\nsmtpd = [\"{}\"]\n\n[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{}\" }}\n",
        opendkim.address(),
        server.port
    ));
    let message =
        b"From: a@example.org\r\nTo: rcpt@example.test\r\nSubject: signed by OpenDKIM\r\n\
        Date: Mon, 7 Dec 2026 12:00:00 +0000\r\nMessage-ID: <opendkim@example.org>\r\n\r\n\
        first line\r\n.a line with a leading dot\r\n\r\ntrailing blanks   \r\nlast line\r\n";
    let id = submit(&p, "a@example.org", &["rcpt@example.test"], message);
    let m = server.wait_messages(1, 20, || p.log());
    let got = &m[0].1;
    let text = String::from_utf8_lossy(got);
    // Our Received stays on top; OpenDKIM's field is the first of the
    // client's part, as it inserts it.
    assert!(text.starts_with("Received: from "), "{text}");
    let at = text.find("\r\nDKIM-Signature: ").unwrap_or_else(|| {
        panic!("not signed:\n{text}\n{}", opendkim.log_text());
    });
    assert!(
        !text[..at].contains("\r\nFrom: "),
        "DKIM-Signature below the client's fields:\n{text}"
    );
    assert!(text[at..].contains(" d=example.org;"), "{text}");
    assert_eq!(
        crate::dkim::verify(got, &dns),
        ["pass a=rsa-sha256 d=example.org s=milter"]
    );
    let mut bad = got.clone();
    bad.extend_from_slice(b"appended\r\n");
    assert_eq!(
        crate::dkim::verify(&bad, &dns),
        ["fail a=rsa-sha256 d=example.org s=milter"]
    );
    // The log names the milter and the field (its value cut short).
    let log = p.log();
    let needle = format!(
        "{id}: milter {}: header DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; \
         d=example.org; s=milter; ",
        opendkim.address()
    );
    let line = log.lines().find(|l| l.contains(&needle));
    assert!(line.is_some_and(|l| l.ends_with(" inserted at 0")), "{log}");
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 1, 10);
    let st = crate::outbound::status(&p, &id, "rcpt@example.test");
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
}

/// `milters.non_smtpd` for mail from `sendmail`, `milters.smtpd` for mail
/// over SMTP, never the other list: two test milters, each adding
/// `X-Added` (Subject `addheader`), told apart by the log's milter names.
#[test]
fn issue_20_sendmail_mail_meets_the_non_smtpd_milters_only() {
    let local = TestMilter::start();
    let network = TestMilter::start();
    let p = Postern::start(&format!(
        "[milters]\nsmtpd = [\"{}\"]\nnon_smtpd = [\"{}\"]\n",
        network.address(),
        local.address()
    ));
    let me = me();
    let out = crate::sendmail::sendmail(
        &p,
        &[&format!("{me}@localhost")],
        b"Subject: addheader\n\nfrom sendmail\n",
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = &p.wait_delivered(&me, 1, 20)[0];
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(
        text.matches("\nX-Added: added value\n").count(),
        1,
        "{text}"
    );
    assert!(text.ends_with("\n\nfrom sendmail\n"), "{text}");
    let header =
        |m: &TestMilter| format!("milter {}: header X-Added: added value added", m.address());
    let log = p.log();
    assert_eq!(log.matches(&header(&local)).count(), 1, "{log}");
    assert!(!log.contains(&header(&network)), "{log}");
    // Over SMTP: the smtpd milter, not the non_smtpd one.
    send(
        &p,
        "a@example.org",
        &[&format!("{me}@mail.test.example")],
        "From: a@example.org\r\nSubject: addheader\r\n\r\nfrom the network",
    );
    p.wait_delivered(&me, 2, 20);
    let log = p.log();
    assert_eq!(log.matches(&header(&network)).count(), 1, "{log}");
    assert_eq!(log.matches(&header(&local)).count(), 1, "{log}");
}
