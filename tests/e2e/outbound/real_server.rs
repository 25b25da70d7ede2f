//! Delivery to an SMTP server from outside the project: Python's aiosmtpd
//! (Debian package python3-aiosmtpd), started by the test on 127.0.0.1
//! with a handler that writes each message and its envelope to files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// The server: it listens on a port it chose and prints; each message
/// becomes `msg-N.json` (envelope, TLS, login) and then `msg-N.eml` (the
/// content as received, dot-unstuffed, line ends untouched). It exits
/// when its standard input closes, so it never outlives the test.
///
/// argv: the output directory; then, for a server that wants a login
/// before MAIL (`auth_required`), the certificate and key (`-`: no
/// STARTTLS), the user and password it takes, `1` to offer AUTH only
/// after STARTTLS, and the mechanisms it does not offer (`-`: none).
/// Every AUTH is then recorded in `auth.jsonl` (mechanism, login, whether
/// it was right, over TLS).
const SERVER: &str = r#"
import asyncio, json, logging, os, socket, ssl, sys, warnings
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

outdir = sys.argv[1]
# Requiring AUTH without TLS is what some tests are about: no warnings.
warnings.simplefilter("ignore")
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

class Handler:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        base = os.path.join(outdir, "msg-%d" % Handler.count)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from,
                       "mail_options": envelope.mail_options,
                       "rcpt_tos": envelope.rcpt_tos,
                       "helo": session.host_name,
                       "authenticated": bool(session.authenticated),
                       "tls": session.ssl is not None}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 Message accepted for delivery"

def options():
    if len(sys.argv) == 2:
        return {}
    cert, key, user, password, require_tls, exclude = sys.argv[2:8]
    def authenticator(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword)
              and data.login == user.encode() and data.password == password.encode())
        with open(os.path.join(outdir, "auth.jsonl"), "a") as f:
            f.write(json.dumps({"mechanism": mechanism, "login": data.login.decode(),
                                "ok": ok, "tls": session.ssl is not None}) + "\n")
        return AuthResult(success=ok, handled=False)
    context = None
    if cert != "-":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    return {"tls_context": context, "authenticator": authenticator,
            "auth_required": True, "auth_require_tls": require_tls == "1",
            "auth_exclude_mechanism": [] if exclude == "-" else exclude.split(",")}

async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A port the test chose (AIOSMTPD_PORT), perhaps just left by another
    # listener: SO_REUSEADDR, for its connections in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("AIOSMTPD_PORT", "0"))))
    sock.listen(16)
    loop = asyncio.get_running_loop()
    kwargs = options()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="aiosmtpd.test", **kwargs), sock=sock)
    print(sock.getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()

asyncio.run(main())
"#;

pub struct AioSmtpd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// A Python that has aiosmtpd: Debian's (the package installs there,
/// whatever `python3` on PATH is), else the one on PATH.
fn python() -> &'static str {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return p;
        }
    }
    panic!("aiosmtpd is not installed (apt-get install python3-aiosmtpd; .ci/run does)");
}

impl AioSmtpd {
    /// Start it, writing messages into `dir`.
    pub fn start(dir: &Path) -> AioSmtpd {
        AioSmtpd::start_with(dir, &[])
    }

    /// Start it on 127.0.0.1:`port`, writing messages into `dir`.
    pub fn start_on(dir: &Path, port: u16) -> AioSmtpd {
        AioSmtpd::spawn(dir, &[], port)
    }

    /// Start it with `args` after `dir` (a server that wants a login: see
    /// [`SERVER`]).
    pub fn start_with(dir: &Path, args: &[&str]) -> AioSmtpd {
        AioSmtpd::spawn(dir, args, 0)
    }

    /// `port` 0: one the kernel picks.
    fn spawn(dir: &Path, args: &[&str], port: u16) -> AioSmtpd {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(python())
            .env("AIOSMTPD_PORT", port.to_string())
            .arg("-c")
            .arg(SERVER)
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("aiosmtpd did not start: {line:?}"));
        AioSmtpd {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The messages so far, in order: (envelope, content).
    pub fn messages(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.join(format!("msg-{n}"));
            let Ok(content) = std::fs::read(base.with_extension("eml")) else {
                break;
            };
            let env = std::fs::read_to_string(base.with_extension("json")).unwrap();
            out.push((serde_json::from_str(&env).unwrap(), content));
        }
        out
    }

    pub fn wait_messages(
        &self,
        n: usize,
        secs: u64,
        log: impl Fn() -> String,
    ) -> Vec<(serde_json::Value, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd got {} of {n} messages; log:\n{}",
                m.len(),
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AioSmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness itself: aiosmtpd keeps CRLF and removes the stuffed dots,
/// so a byte comparison of what postern sends it means something.
#[test]
fn aiosmtpd_records_the_content_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = AioSmtpd::start(&dir.path().join("out"));
    let mut c = Client::connect(format!("127.0.0.1:{}", server.port).parse().unwrap(), None);
    assert!(
        c.cmd("EHLO client.example")
            .starts_with("250-aiosmtpd.test")
    );
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 OK");
    assert_eq!(c.cmd("RCPT TO:<r@example.test>"), "250 OK");
    assert!(c.cmd("DATA").starts_with("354"));
    let mut data = dot_stuff(MESSAGE);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    assert_eq!(c.reply(), "250 Message accepted for delivery");
    c.cmd("QUIT");
    let m = server.wait_messages(1, 10, String::new);
    assert_eq!(m[0].0["mail_from"], "s@example.org");
    assert_eq!(m[0].0["rcpt_tos"], serde_json::json!(["r@example.test"]));
    assert_eq!(m[0].0["helo"], "client.example");
    assert_eq!(
        String::from_utf8_lossy(&m[0].1),
        String::from_utf8_lossy(MESSAGE)
    );
}

#[test]
fn postern_delivers_to_aiosmtpd_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = AioSmtpd::start(&dir.path().join("out"));
    let p = Postern::start(&format!(
        "[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{}\" }}\n",
        server.port
    ));
    let sender = format!("{}@localhost", p.user);
    let id = submit(&p, &sender, &["rcpt@example.test"], MESSAGE);
    let m = server.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(m[0].0["mail_from"], sender.as_str());
    assert_eq!(m[0].0["rcpt_tos"], serde_json::json!(["rcpt@example.test"]));
    assert_eq!(m[0].0["helo"], "mail.test.example");
    assert_eq!(
        String::from_utf8_lossy(after_received(&m[0].1)),
        String::from_utf8_lossy(MESSAGE),
        "CRLF line ends, dots unstuffed, nothing else changed"
    );
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, format!("127.0.0.1[127.0.0.1]:{}", server.port));
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    assert_eq!(st.text, "250 Message accepted for delivery");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.messages().len(), 1, "exactly once");
}
