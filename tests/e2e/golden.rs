//! Golden files: what an administrator or a client sees, byte for byte,
//! compared with `tests/e2e/golden/*` (Postfix's `.in`/`.ref` habit). They
//! guard refactorings that must not change behaviour: a difference fails
//! with both texts; `POSTERN_BLESS=1` writes the new text instead, for a
//! change that is meant (review the diff of the golden file then).
//!
//! What differs from machine to machine or run to run (the host name, the
//! user running the tests, queue IDs) is replaced by `{placeholders}`
//! before the comparison.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/e2e/golden/{name}"))
}

/// Compare `actual` with the golden file `name` (or write it when blessing).
fn check_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("POSTERN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (POSTERN_BLESS=1 writes it)", path.display()));
    if want != actual {
        panic!(
            "{} differs (POSTERN_BLESS=1 rewrites it)\n--- want\n{want}\n--- got\n{actual}",
            path.display()
        );
    }
}

/// `postern config show [ARGS]` of a file with `text`.
fn config_show(text: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(&conf, text).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["config", "show"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The defaults derived from the machine's name (`server.hostname` is
/// gethostname, `server.domain` what follows its first dot) as
/// placeholders, so the golden file holds on any machine whose name has a
/// domain part.
fn machine_neutral(text: &str) -> String {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_default()
            .to_string()
    };
    let (hostname, domain) = (value("hostname"), value("domain"));
    // Values only: the comments (each key's documentation) are the same
    // on every machine.
    let neutral = |line: &str| {
        let mut line = line.to_string();
        if line.starts_with('#') {
            return line;
        }
        if !hostname.is_empty() {
            line = line.replace(&hostname, "{hostname}");
        }
        if !domain.is_empty() {
            line = line.replace(&domain, "{domain}");
        }
        line
    };
    text.split_inclusive('\n').map(neutral).collect()
}

#[test]
fn golden_config_show_of_an_empty_file() {
    let text = config_show("", &[]);
    check_golden("config-show-empty.toml", &machine_neutral(&text));
    let text = config_show("", &["--non-default"]);
    check_golden("config-show-empty-non-default.toml", &text);
}

/// Keys of several sections and kinds (strings, lists, tables, sizes,
/// durations, booleans, `$name` expansion) set away from their defaults.
const NON_DEFAULT: &str = r#"
[server]
hostname = "mx.foo.example"
domain = "foo.example"
origin = "$domain"

[local]
domains = ["$hostname", "localhost.$domain", "$domain"]
mailbox = "Mail/"
aliases = { postmaster = "root", root = "admin" }
alias_files = []
recipient_delimiter = "+"
worker_idle = "30s"

[relay]
networks = ["10.0.250.0/24", "127.0.0.0/8"]
host = "[mail.foo.example]"
transport = { "lists.foo.example" = "smtp:[10.0.250.7]:2525" }

[queue]
directory = "/var/spool/postern-test"
maximal_lifetime = "3d"
delay_warning_time = "4h"
minfree = 20000000

[smtpd]
listen = ["0.0.0.0:25", "[::]:25"]
banner = "$hostname ESMTP"
message_size_limit = 52428800
vrfy = true

[restrictions]
client = ["rbl:zen.example.org"]
sender = ["reject_non_fqdn_sender"]

[smtp]
destination_concurrency_limit = 5

[tls]
outbound = "none"

[dns]
servers = ["192.0.2.53:53"]
"#;

#[test]
fn golden_config_show_of_non_default_keys() {
    check_golden("config-show-several.toml", &config_show(NON_DEFAULT, &[]));
    check_golden(
        "config-show-several-non-default.toml",
        &config_show(NON_DEFAULT, &["--non-default"]),
    );
}

/// A scripted SMTP session against the real smtpd, every reply recorded:
/// the transcript is `C: ` lines sent and `S: ` lines received.
struct Transcript {
    client: Client,
    text: String,
}

impl Transcript {
    fn reply(&mut self) {
        let reply = self.client.reply();
        for line in reply.lines() {
            self.text += &format!("S: {line}\n");
        }
    }

    /// Send `lines` in one write (pipelining when more than one), then
    /// read one reply for each.
    fn send(&mut self, lines: &[&str]) {
        let mut data = Vec::new();
        for line in lines {
            self.text += &format!("C: {line}\n");
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        self.client.stream.get_mut().write_all(&data).unwrap();
        for _ in lines {
            self.reply();
        }
    }

    /// `BDAT n` and its chunk, `lines` each ended by CRLF, in one write;
    /// its one reply.
    fn bdat(&mut self, lines: &[&str]) {
        let chunk: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
        let cmd = format!("BDAT {}", chunk.len());
        self.text += &format!("C: {cmd}\n");
        for line in lines {
            self.text += &format!("C: {line}\n");
        }
        self.client.send(format!("{cmd}\r\n{chunk}").as_bytes());
        self.reply();
    }

    /// Send message lines after DATA's 354: no reply comes before the
    /// final dot (which [`Transcript::send`] sends).
    fn content(&mut self, lines: &[&str]) {
        for line in lines {
            self.text += &format!("C: {line}\n");
            self.client.send(format!("{line}\r\n").as_bytes());
        }
    }
}

#[test]
fn golden_smtpd_replies_to_a_scripted_session() {
    // 127.0.0.1 is no trusted network here, so relaying is refused.
    let p = Postern::start(
        "[relay]\nnetworks = [\"10.9.9.0/24\"]\n\
         transport = { \"remote.example\" = \"smtp:[127.0.0.1]:1\" }\n",
    );
    let stream = std::net::TcpStream::connect(p.addr).unwrap();
    let (client, greeting) = Client::greeted(stream);
    let mut t = Transcript {
        client,
        text: format!("S: {greeting}\n"),
    };
    let me = format!("RCPT TO:<{}@localhost>", p.user);
    t.send(&["NOOP"]);
    t.send(&["MAIL FROM:<a@example.org>"]);
    t.send(&["EHLO client.example"]);
    t.send(&["HELO again.example"]);
    t.send(&["EHLO client.example"]);
    t.send(&["RCPT TO:<early@localhost>"]);
    t.send(&["MAIL FROM:<a@example.org> SIZE=1000"]);
    t.send(&["MAIL FROM:<b@example.org>"]);
    t.send(&[me.as_str()]);
    t.send(&["RCPT TO:<nosuchuser@localhost>"]);
    t.send(&["RCPT TO:<x@elsewhere.example>"]);
    t.send(&["RCPT TO:<bad address>"]);
    t.send(&["DATA"]);
    t.content(&["Subject: golden", "", "one line", ".."]);
    t.send(&["."]);
    t.send(&["RSET"]);
    t.send(&["NOOP"]);
    t.send(&["VRFY root"]);
    t.send(&["EXPN root"]);
    t.send(&["FROB nicate"]);
    t.send(&["DATA"]);
    // BDAT without a transaction: refused, and its octets read past, not
    // taken for a command.
    t.bdat(&["chunk!"]);
    t.send(&["MAIL FROM:<a@example.org> BODY=9BIT"]);
    // Pipelining (advertised): the whole transaction in one write.
    t.send(&["MAIL FROM:<a@example.org>", me.as_str(), "DATA"]);
    t.content(&["Subject: pipelined", "", "x"]);
    t.send(&["."]);
    t.send(&["RSET", "MAIL FROM:<>", "RSET", "NOOP"]);
    // CHUNKING (advertised): two chunks (the end-of-data line inside the
    // first is content), DATA refused between them, LAST with no octets.
    t.send(&["MAIL FROM:<a@example.org>", me.as_str()]);
    t.bdat(&["Subject: chunks", "", "a", "."]);
    t.send(&["DATA"]);
    t.send(&["BDAT 0 LAST"]);
    t.send(&["QUIT"]);
    assert!(t.client.closed(), "the connection stays open after QUIT");

    // RFC 2920: NOOP may only end a group; a command after it in the same
    // write is refused and the connection closed (forbid_unauth_pipelining).
    let stream = std::net::TcpStream::connect(p.addr).unwrap();
    let (client, greeting) = Client::greeted(stream);
    t.client = client;
    t.text += &format!("-- a second connection\nS: {greeting}\n");
    t.send(&["EHLO client.example"]);
    t.send(&["NOOP", "HELP"]);

    let mut text = t
        .text
        .replace(&format!("{}@localhost", p.user), "{user}@localhost");
    // Queue IDs: `queued as ID`.
    text = text
        .lines()
        .map(|l| match l.split_once("queued as ") {
            Some((head, _)) => format!("{head}queued as {{queue-id}}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    check_golden("smtpd-session.txt", &text);
}
