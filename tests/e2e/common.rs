//! Test harness: a real postern (`postern start --foreground`) on
//! 127.0.0.1 with a temporary queue, run directory and mailboxes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postern");

pub struct Postern {
    /// Run the supervisor as this user (through setpriv) instead of as us.
    pub run_as: Option<u32>,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub user: String,
}

/// The user tests deliver to: the one running them.
pub fn me() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Postern {
    /// Start with the test defaults plus `extra` TOML (appended inside the
    /// tables given there; keys must not repeat the defaults below).
    pub fn start(extra: &str) -> Postern {
        Postern::start_with(extra, &[])
    }

    /// `smtpd_extra` goes into the [smtpd] table, the rest as whole tables.
    pub fn start_with(tables: &str, smtpd_extra: &[&str]) -> Postern {
        Postern::start_full(tables, smtpd_extra, None)
    }

    /// As `start_with`, with the supervisor run as the user `run_as` (a uid
    /// whose group has the same number, e.g. nobody) when given.
    pub fn start_full(tables: &str, smtpd_extra: &[&str], run_as: Option<u32>) -> Postern {
        let mut p = Postern::configure(tables, smtpd_extra, run_as);
        p.launch();
        p
    }

    /// Write the configuration and directories, start nothing.
    pub fn configure(tables: &str, smtpd_extra: &[&str], run_as: Option<u32>) -> Postern {
        let dir = tempfile::Builder::new()
            .prefix("postern-test")
            .tempdir()
            .unwrap();
        // The roles run as the postern user when we are root: let them in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(uid) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        // The alias file the configuration names (tests that need
        // aliases write it): a configured file that is missing defers.
        std::fs::write(dir.path().join("aliases"), "").unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let d = dir.path().display();
        let mut smtpd = vec!["listen = [\"127.0.0.1:0\"]".to_string()];
        smtpd.extend(smtpd_extra.iter().map(|s| s.to_string()));
        let has = |t: &str| tables.contains(&format!("[{t}]"));
        let mut text = String::new();
        if !has("server") {
            text += &format!(
                "[server]\nhostname = \"mail.test.example\"\nrun_directory = \"{d}/run\"\n\n"
            );
        }
        if !has("queue") {
            text += &format!(
                "[queue]\ndirectory = \"{d}/queue\"\nminimal_backoff = \"1s\"\nmaximal_backoff = \"2s\"\nrun_delay = \"1s\"\n\n"
            );
        }
        if !has("local") {
            // The test's own alias file (absent unless a test writes it):
            // the machine's /etc/aliases must not change what tests see.
            text += &format!(
                "[local]\nmailbox = \"{d}/mail/$user/Maildir/\"\ndomains = [\"$hostname\", \"localhost\"]\nalias_files = [\"{d}/aliases\"]\n\n"
            );
        }
        if !has("relay") {
            // Mail for remote.example is deferred at once (nothing listens
            // on port 1), as the queue tests need.
            text += "[relay]\ntransport = { \"remote.example\" = \"smtp:[127.0.0.1]:1\" }\n\n";
        }
        if !has("dns") {
            // No test asks the machine's resolver: a DNS server that is not
            // there answers nothing, at once.
            text += "[dns]\nservers = [\"127.0.0.1:1\"]\n\n";
        }
        text += &format!("[smtpd]\n{}\n\n", smtpd.join("\n"));
        // Tables given by the test may say {dir} for the test directory.
        text += &tables.replace("{dir}", &d.to_string());
        let config = dir.path().join("postern.toml");
        std::fs::write(&config, text).unwrap();
        Postern {
            run_as,
            dir,
            child: None,
            addr: "127.0.0.1:1".parse().unwrap(),
            config,
            user: run_as
                .and_then(|u| nix::unistd::User::from_uid(u.into()).ok().flatten())
                .map(|u| u.name)
                .unwrap_or_else(me),
        }
    }

    /// Listen on exactly `listen` (instead of a port the kernel picks) —
    /// for tests that restart postern and need the same address again.
    pub fn set_listen(&self, listen: &[String]) {
        let quoted: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
        self.edit_config(
            "listen = [\"127.0.0.1:0\"]",
            &format!("listen = [{}]", quoted.join(", ")),
        );
    }

    /// Rewrite the configuration file: `from` (which must be there) becomes
    /// `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from:?} not in the configuration");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postern.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Start the supervisor and wait until it listens.
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let start_len = log.metadata().unwrap().len() as usize;
        let mut cmd = command_as(self.run_as, BIN);
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .args(["start", "--foreground"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.log();
            if let Some(pos) = text[start_len.min(text.len())..].find("listening on ") {
                let rest = &text[start_len + pos + "listening on ".len()..];
                let addr = rest.split_whitespace().next().unwrap();
                self.addr = addr.parse().unwrap();
                // The status file appears once every role was started.
                if self.run_dir().join("status.json").exists() {
                    break;
                }
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postern exited at start ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postern did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Files in `user`'s Maildir/new.
    pub fn delivered(&self, user: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir(user).join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Wait until `user` has at least `n` messages; returns them.
    pub fn wait_delivered(&self, user: &str, n: usize, secs: u64) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d = self.delivered(user);
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages delivered; log:\n{}",
                d.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the log contains `needle` (at least `count` times).
    pub fn wait_log(&self, needle: &str, count: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?} x{count}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Role pids from the supervisor's status file (0 while a role is down).
    pub fn role_pid(&self, role: &str) -> i32 {
        let text = std::fs::read_to_string(self.run_dir().join("status.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v[role].as_i64().unwrap_or(0) as i32
    }

    /// `postern --config … ARGS` as `uid`.
    pub fn postern_as(&self, uid: u32, args: &[&str]) -> std::process::Output {
        command_as(Some(uid), BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn postern(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr, None)
    }

    pub fn client_from(&self, source: &str) -> Client {
        Client::connect(self.addr, Some(source))
    }
}

impl Drop for Postern {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("POSTERN_KEEP_TEST_DIR").is_some() {
            let p = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", p.keep().display());
        }
    }
}

/// One message as a test client sends it over SMTP: `EHLO helo`,
/// `MAIL FROM:<from>`, `RCPT TO:<to>` and `rcpt_params` for each recipient
/// (each must be accepted), DATA, the content and the dot, QUIT. Start
/// from [`MAIL`]: `Mail { to: &[&rcpt], ..MAIL }`.
#[derive(Clone, Copy)]
pub struct Mail<'a> {
    pub helo: &'a str,
    pub from: &'a str,
    pub to: &'a [&'a str],
    /// After each `RCPT TO:<…>`, e.g. ` NOTIFY=NEVER`.
    pub rcpt_params: &'a str,
}

/// The usual client: `c.example`, from `s@example.org`.
pub const MAIL: Mail<'static> = Mail {
    helo: "c.example",
    from: "s@example.org",
    to: &[],
    rcpt_params: "",
};

impl Mail<'_> {
    /// Send `data` (CRLF line ends, no final dot); the reply to the end
    /// of the data.
    pub fn reply(&self, p: &Postern, data: &str) -> String {
        let mut c = p.client();
        c.cmd(&format!("EHLO {}", self.helo));
        assert_eq!(c.cmd(&format!("MAIL FROM:<{}>", self.from)), "250 2.1.0 Ok");
        for to in self.to {
            let rcpt = format!("RCPT TO:<{to}>{}", self.rcpt_params);
            assert_eq!(c.cmd(&rcpt), "250 2.1.5 Ok", "{rcpt}");
        }
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!("{data}\r\n."));
        c.cmd("QUIT");
        r
    }

    /// Send `data`, which must be queued; its queue ID.
    pub fn queued(&self, p: &Postern, data: &str) -> String {
        queue_id(&self.reply(p, data))
    }
}

/// Queue one message from `from` to `to` over SMTP ([`MAIL`]'s client);
/// its queue ID.
pub fn send(p: &Postern, from: &str, to: &[&str], data: &str) -> String {
    Mail { from, to, ..MAIL }.queued(p, data)
}

/// The ID of a `250 2.0.0 Ok: queued as ID` reply (which it must be).
pub fn queue_id(reply: &str) -> String {
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    reply.rsplit(' ').next().unwrap_or_default().to_string()
}

/// A raw SMTP client over a real socket.
pub struct Client {
    pub stream: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr, source: Option<&str>) -> Client {
        let stream = match source {
            None => TcpStream::connect(addr).unwrap(),
            Some(src) => socket2_connect(addr, src.parse().unwrap()),
        };
        let (c, greeting) = Client::greeted(stream);
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    /// A client on `stream` (30 s read timeout), and the greeting read.
    pub fn greeted(stream: TcpStream) -> (Client, String) {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Client {
            stream: BufReader::new(stream),
        };
        let greeting = c.reply();
        (c, greeting)
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream.get_mut().write_all(data).unwrap();
    }

    /// One whole (possibly multi-line) reply, lines joined with "\n".
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.stream.read_line(&mut line) {
                Ok(0) => return all + "<EOF>",
                Ok(_) => {}
                // A timeout is not an end of file: say which it was.
                Err(e) => return format!("{all}<read error: {e}>"),
            }
            let done = line.as_bytes().get(3) == Some(&b' ');
            all.push_str(line.trim_end_matches(['\r', '\n']));
            if done {
                return all;
            }
            all.push('\n');
        }
    }

    /// EHLO, `MAIL FROM:<s@example.org>`, `RCPT TO:<rcpt>` and DATA, each
    /// answered as it should be: the message may follow.
    pub fn open_data(&mut self, rcpt: &str) {
        assert!(self.cmd("EHLO c.example").starts_with("250-"));
        assert_eq!(self.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
        assert_eq!(self.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
        assert!(self.cmd("DATA").starts_with("354 "));
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True when the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

/// Connect from a chosen loopback source address.
pub fn socket2_connect(addr: SocketAddr, src: std::net::IpAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let std::net::IpAddr::V4(v4) = src else {
        panic!("IPv4 only")
    };
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(v4, 0)),
    )
    .unwrap();
    let SocketAddr::V4(dst) = addr else {
        panic!("IPv4 only")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(dst)).unwrap();
    TcpStream::from(fd)
}

/// The content of a delivered file after the headers local and smtpd
/// added (Return-Path, Delivered-To, Received with its continuation lines).
pub fn body_after_added_headers(file: &Path) -> Vec<u8> {
    let data = std::fs::read(file).unwrap();
    let mut rest: &[u8] = &data;
    for prefix in [&b"Return-Path: "[..], b"Delivered-To: ", b"Received: "] {
        assert!(
            rest.starts_with(prefix),
            "missing {:?} in {:?}",
            String::from_utf8_lossy(prefix),
            String::from_utf8_lossy(&data[..data.len().min(400)])
        );
        let mut end = rest.iter().position(|b| *b == b'\n').unwrap() + 1;
        while rest.get(end).is_some_and(|b| *b == b'\t' || *b == b' ') {
            end += rest[end..].iter().position(|b| *b == b'\n').unwrap() + 1;
        }
        rest = &rest[end..];
    }
    rest.to_vec()
}

/// CRLF → LF, as the message is stored.
pub fn lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

pub fn write_file(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}

/// Send one message with Python's smtplib.
pub fn python_smtplib(
    port: u16,
    from: &str,
    to: &str,
    msg_path: &std::path::Path,
) -> std::process::Output {
    let script = format!(
        r#"
import smtplib, sys
data = open({path:?}, 'rb').read()
with smtplib.SMTP('127.0.0.1', {port}) as s:
    s.ehlo('client.example')
    s.sendmail({from:?}, [{to:?}], data)
"#,
        path = msg_path.display().to_string(),
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap()
}

/// `program`, run as `uid` (and the group of the same number) through
/// setpriv when given.
pub fn command_as(uid: Option<u32>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match uid {
        None => Command::new(program),
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
            c.arg(program);
            c
        }
    }
}

/// Run `cmd` with `input` on its stdin; its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A DSN's report parts, after checking its MIME structure
/// (multipart/report of delivery-status, the second part
/// message/delivery-status): how many parts, the first part's text and
/// the delivery-status part's, as written.
pub fn report_parts(data: &[u8]) -> (usize, String, String) {
    use mail_parser::{MessageParser, MimeHeaders};
    let msg = MessageParser::default()
        .parse(data)
        .expect("a MIME message");
    let ct = msg.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let parts = msg.root_part().sub_parts().expect("parts");
    assert!(parts.len() >= 2, "a report has at least two parts");
    let text = msg.part(parts[0]).expect("part 1");
    let status = msg.part(parts[1]).expect("part 2");
    let sct = status.content_type().expect("part 2 type");
    assert_eq!(
        (sct.ctype(), sct.subtype()),
        ("message", Some("delivery-status"))
    );
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        parts.len(),
        lossy(text.contents()),
        lossy(status.contents()),
    )
}

/// The delivery-status part of a DSN file in a Maildir (three parts: the
/// original message or its headers is returned).
pub fn delivery_status(file: &std::path::Path) -> String {
    let (parts, _, status) = report_parts(&std::fs::read(file).unwrap());
    assert_eq!(parts, 3);
    status
}

/// A TCP port free on 127.0.0.1 now (another program may take it later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP port on 127.0.0.1 that refuses connections for as long as the
/// value lives: a socket bound to it but not listening, so no other test's
/// server can be given the port meanwhile (a freed port can be, and a
/// connection to a server that never answers hangs instead of failing).
pub struct RefusedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

pub fn refused_port() -> RefusedPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    RefusedPort {
        _socket: socket,
        port,
    }
}

/// A symlink at `link` to `target`.
pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// `dir`, its directories and regular files, depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// python3-jsonschema's verdict on each TOML file against the JSON Schema
/// `schema` (`postern generate schema`): one `PATH ok` or `PATH invalid:
/// MESSAGE` line each; the schema itself is checked first.
pub fn jsonschema_verdicts(schema: &Path, files: &[String]) -> String {
    const CHECK: &str = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(tomllib.load(open(path, "rb"))))
    print(path, "ok" if not errors else "invalid: " + errors[0].message)
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(CHECK)
        .arg(schema)
        .args(files)
        .output()
        .expect("python3-jsonschema (apt-get install python3-jsonschema; .ci/run does)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
