//! `sendmail` (also `postern sendmail …`): the interface cron, mailx,
//! git send-email and PHP use to hand mail to the local mail system,
//! flag-compatible with Postfix's sendmail(1).
//!
//! No set-uid or set-gid: the message goes over SMTP to smtpd on the
//! world-connectable `submit.sock`; smtpd learns the submitting user from
//! the socket's peer credentials. Missing `From:`, `Date:` and
//! `Message-ID:` headers are added here (Postfix's cleanup does it for
//! local mail); `-t` takes the recipients from `To:`, `Cc:` and `Bcc:` and
//! removes `Bcc:`.
//!
//! When nothing answers on `submit.sock` (no socket, connection refused,
//! closed or `421` before the greeting: the mail system is stopped), the
//! message is left in the drop directory `<queue>/maildrop` instead
//! ([`crate::maildrop`]: mode 3733, a file of the user's own, 0640, group
//! postern by the directory's set-group-id bit) and smtpd takes it in
//! when it starts, with the same checks; `sendmail` exits 0, as Postfix's
//! does. What smtpd would refuse at once is refused here first, with the
//! same words: `smtpd.authorized_submit_users`,
//! `smtpd.sender_override_users`, `smtpd.recipient_limit`,
//! `smtpd.message_size_limit`, `queue.minfree`. A refusal by a running
//! smtpd is never turned into a drop.
//!
//! Exit codes are sysexits (what cron and mailx act on): 0 queued (or
//! kept in the drop directory), 64 usage, 65 data error (a 5xx refusal),
//! 67 unknown local user, 69 unavailable, 77 not allowed
//! (`smtpd.authorized_submit_users`, `smtpd.sender_override_users`), 75
//! temporary failure, or the mail system unreachable and the drop
//! directory unusable (mailx and cron keep the message). Any refusal
//! before the final `250` leaves nothing in the queue.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::config::Config;

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub recipients: Vec<String>,
    pub extract: bool,
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender (`""` for `<>`).
    pub sender: Option<String>,
    pub full_name: Option<String>,
    pub notify: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub verbose: bool,
    pub config: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (default): deliver a message.
    #[default]
    Deliver,
    /// `-bp`: list the queue (mailq).
    List,
    /// `-bs`: SMTP on stdin and stdout.
    Smtp,
    /// `-bi`, `-I`: rebuild the aliases (newaliases).
    Aliases,
    /// `-q`: try the queue now.
    Flush,
}

/// sysexits(3).
pub(crate) const EX_USAGE: u8 = 64;
pub(crate) const EX_DATAERR: u8 = 65;
pub(crate) const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
pub(crate) const EX_NOPERM: u8 = 77;
pub const EX_TEMPFAIL: u8 = 75;

/// A failure with its exit code and the one line for stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// Nothing answered on submit.sock (nothing was said, nothing
    /// queued): the message may go to the drop directory.
    pub unanswered: bool,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
        unanswered: false,
    }
}

fn unanswered(message: String) -> Failure {
    Failure {
        unanswered: true,
        ..fail(EX_TEMPFAIL, message)
    }
}

/// Parse Postfix sendmail's flags (argv without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<Options, Failure> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut o = Options::default();
    let mut i = 0;
    // An option's value: the rest of this argument, or the next one.
    let value = |i: &mut usize, rest: &str, flag: &str| -> Result<String, Failure> {
        if !rest.is_empty() {
            return Ok(rest.to_string());
        }
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| fail(EX_USAGE, format!("option requires an argument -- {flag}")))
    };
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            o.recipients.extend(args[i + 1..].iter().cloned());
            break;
        }
        if a == "--config" {
            i += 1;
            o.config = args.get(i).cloned();
            i += 1;
            continue;
        }
        if !a.starts_with('-') || a == "-" {
            o.recipients.push(a.clone());
            i += 1;
            continue;
        }
        let flag = &a[1..2.min(a.len())];
        let rest = a.get(2..).unwrap_or("");
        match flag {
            "t" => o.extract = true,
            "i" => o.ignore_dots = true,
            "v" => o.verbose = true,
            "q" => o.mode = Mode::Flush,
            "I" => o.mode = Mode::Aliases,
            "f" | "r" => {
                let s = value(&mut i, rest, flag)?;
                o.sender = Some(s.trim_start_matches('<').trim_end_matches('>').to_string());
            }
            "F" => o.full_name = Some(value(&mut i, rest, flag)?),
            "N" => o.notify = Some(value(&mut i, rest, flag)?.to_ascii_uppercase()),
            "R" => o.ret = Some(value(&mut i, rest, flag)?.to_ascii_uppercase()),
            "V" => o.envid = Some(value(&mut i, rest, flag)?),
            "B" | "C" | "L" | "X" | "h" => {
                value(&mut i, rest, flag)?;
            }
            "b" => match rest {
                "m" | "" => o.mode = Mode::Deliver,
                "p" => o.mode = Mode::List,
                "s" => o.mode = Mode::Smtp,
                "i" => o.mode = Mode::Aliases,
                other => return Err(fail(EX_USAGE, format!("-b{other} is not supported"))),
            },
            // -oi; -oA, -odb, -odi, -oem, -oep, -om, -o7, -o8 …: accepted
            // and ignored, as Postfix does.
            "o" => {
                if rest == "i" {
                    o.ignore_dots = true;
                }
            }
            "n" | "U" | "G" | "m" | "s" | "d" | "e" => {}
            other => return Err(fail(EX_USAGE, format!("invalid option -- {other}"))),
        }
        i += 1;
    }
    Ok(o)
}

/// The message as read from stdin: LF line ends; without `-i`, a line
/// with a single `.` ends it.
pub(crate) fn read_message(
    input: &mut impl BufRead,
    ignore_dots: bool,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        if !ignore_dots && line == b"." {
            break;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    Ok(out)
}

/// The header block and the body: `(headers, body)` split at the first
/// empty line; `headers` is empty when the message does not start with a
/// header line.
fn split_headers(msg: &[u8]) -> (Vec<String>, &[u8]) {
    let text_end = msg.len();
    let mut headers: Vec<String> = Vec::new();
    let mut pos = 0;
    while pos < text_end {
        let end = msg[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text_end, |e| pos + e);
        let line = String::from_utf8_lossy(&msg[pos..end]).into_owned();
        let next = (end + 1).min(text_end);
        if line.is_empty() {
            return (headers, &msg[next..]);
        }
        if line.starts_with([' ', '\t']) && !headers.is_empty() {
            if let Some(last) = headers.last_mut() {
                last.push('\n');
                last.push_str(&line);
            }
        } else if crate::wire::header::is_tight_header(line.as_bytes()) {
            headers.push(line);
        } else if headers.is_empty() {
            return (Vec::new(), msg);
        } else {
            // Not a header: the body starts here (no empty line between).
            return (headers, &msg[pos..]);
        }
        pos = next;
    }
    (headers, &msg[text_end..])
}

fn header_name(h: &str) -> &str {
    h.split_once(':').map_or("", |(n, _)| n.trim())
}

/// Addresses in an address-list header value (`a@b, "X" <c@d>`).
pub(crate) fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut item) = (0, false, String::new());
    for c in value.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            ',' if !quoted && depth == 0 => {
                let a = match (item.find('<'), item.rfind('>')) {
                    (Some(s), Some(e)) if s < e => item[s + 1..e].trim().to_string(),
                    _ => item.trim().to_string(),
                };
                // A group's name ("undisclosed-recipients:;") holds none.
                let a = a
                    .rsplit(':')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(';')
                    .trim()
                    .to_string();
                if !a.is_empty() && !a.contains(char::is_whitespace) {
                    out.push(a);
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        // Outside comments; a comment's closing parenthesis is dropped.
        if depth == 0 && c != ')' {
            item.push(c);
        }
    }
    out
}

/// What the local user's message becomes: recipients (with `-t`), Bcc
/// removed, missing From/Date/Message-ID added.
pub(crate) struct Prepared {
    pub recipients: Vec<String>,
    pub content: Vec<u8>,
}

pub(crate) fn prepare(msg: &[u8], opts: &Options, from_header: &str, hostname: &str) -> Prepared {
    let (mut headers, body) = split_headers(msg);
    let mut recipients = opts
        .recipients
        .iter()
        .flat_map(|r| addresses(r))
        .collect::<Vec<_>>();
    if opts.extract {
        for h in &headers {
            let name = header_name(h).to_ascii_lowercase();
            if matches!(name.as_str(), "to" | "cc" | "bcc") {
                let value = h.split_once(':').map_or("", |(_, v)| v);
                recipients.extend(addresses(&value.replace('\n', " ")));
            }
        }
    }
    headers.retain(|h| !header_name(h).eq_ignore_ascii_case("bcc"));
    let has = |n: &str| {
        headers
            .iter()
            .any(|h| header_name(h).eq_ignore_ascii_case(n))
    };
    let mut added = Vec::new();
    if !has("from") {
        added.push(format!("From: {from_header}"));
    }
    if !has("date") {
        added.push(format!("Date: {}", crate::wire::date::local_now()));
    }
    if !has("message-id") {
        let stamp = crate::wire::date::message_id_stamp(std::time::SystemTime::now());
        let n = crate::queue::now_micros() % 1_000_000;
        added.push(format!(
            "Message-ID: <{stamp}.{}.{n:06}@{hostname}>",
            std::process::id()
        ));
    }
    headers.extend(added);
    let mut content = Vec::with_capacity(msg.len() + 200);
    for h in &headers {
        content.extend_from_slice(h.as_bytes());
        content.push(b'\n');
    }
    content.push(b'\n');
    content.extend_from_slice(body);
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    Prepared {
        recipients,
        content,
    }
}

/// The envelope of a local submission: what `sendmail` says in MAIL and
/// RCPT on submit.sock, and what it writes in the drop directory when
/// nothing answers there (`size` is the drop file's to fill in).
fn envelope(sender: &str, prepared: &Prepared, opts: &Options) -> crate::maildrop::Envelope {
    crate::maildrop::Envelope {
        size: 0,
        sender: sender.to_string(),
        recipients: prepared.recipients.clone(),
        notify: opts.notify.clone(),
        ret: opts.ret.clone(),
        envid: opts.envid.as_deref().map(crate::wire::xtext::encode),
        body: (!prepared.content.is_ascii()).then(|| "8BITMIME".to_string()),
    }
}

/// The SMTP dialogue with smtpd on `submit.sock`.
pub(crate) fn submit(
    socket: &Path,
    sender: &str,
    prepared: &Prepared,
    opts: &Options,
) -> Result<(), Failure> {
    let envelope = envelope(sender, prepared, opts);
    let unreachable = |why: String| {
        unanswered(format!(
            "cannot reach the mail system at {}: {why} (is postern running?)",
            socket.display()
        ))
    };
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            unreachable(e.to_string())
        }
        _ => fail(
            EX_TEMPFAIL,
            format!("cannot reach the mail system at {}: {e}", socket.display()),
        ),
    })?;
    let mut w = stream
        .try_clone()
        .map_err(|e| fail(EX_TEMPFAIL, format!("submit socket: {e}")))?;
    let mut r = BufReader::new(stream);
    let verbose = opts.verbose;
    let expect = |r: &mut BufReader<UnixStream>, what: &str, ok: u16| -> Result<(), Failure> {
        let reply = read_reply(r).map_err(|e| {
            fail(
                EX_TEMPFAIL,
                format!("lost connection with the mail system: {e}"),
            )
        })?;
        if verbose {
            eprintln!("<<< {reply}");
        }
        let code: u16 = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if code == ok || (ok == 250 && (200..300).contains(&code)) {
            return Ok(());
        }
        Err(refusal(what, &reply))
    };
    let send = |w: &mut UnixStream, line: &str| -> Result<(), Failure> {
        if verbose {
            eprintln!(">>> {line}");
        }
        w.write_all(format!("{line}\r\n").as_bytes()).map_err(|e| {
            fail(
                EX_TEMPFAIL,
                format!("lost connection with the mail system: {e}"),
            )
        })
    };
    // Closed, or 421 (shutting down), before a greeting: nobody
    // answered; nothing was said.
    match read_reply(&mut r) {
        Ok(reply) if reply.starts_with("220") => {
            if verbose {
                eprintln!("<<< {reply}");
            }
        }
        Ok(reply) if reply.starts_with("421") => return Err(unreachable(reply)),
        Ok(reply) => return Err(refusal("greeting", &reply)),
        Err(e) => return Err(unreachable(format!("closed before the greeting: {e}"))),
    }
    send(&mut w, "EHLO localhost")?;
    expect(&mut r, "EHLO", 250)?;
    let result = (|| {
        send(&mut w, &envelope.mail_command(None))?;
        expect(&mut r, "sender", 250)?;
        for rcpt in &envelope.recipients {
            send(&mut w, &envelope.rcpt_command(rcpt))?;
            expect(&mut r, &format!("recipient <{rcpt}>"), 250)?;
        }
        send(&mut w, "DATA")?;
        expect(&mut r, "DATA", 354)?;
        let mut data = Vec::with_capacity(prepared.content.len() + 1024);
        let mut writer = crate::wire::data::DataWriter::new();
        writer.write(&prepared.content, &mut data);
        writer.finish(&mut data);
        w.write_all(&data).map_err(|e| {
            fail(
                EX_TEMPFAIL,
                format!("lost connection with the mail system: {e}"),
            )
        })?;
        expect(&mut r, "message", 250)
    })();
    if result.is_err() {
        let _ = w.write_all(b"RSET\r\n");
    }
    let _ = w.write_all(b"QUIT\r\n");
    result
}

/// The failure a reply (not 2xx/3xx) means, for `what`.
fn refusal(what: &str, reply: &str) -> Failure {
    let code: u16 = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    let text = reply.replace('\n', " ");
    match code {
        550 if reply.contains("5.1.1") => fail(EX_NOUSER, format!("{what}: {text}")),
        550 | 553 if reply.contains("5.7.1") => fail(EX_NOPERM, format!("{what}: {text}")),
        500..=599 => fail(EX_DATAERR, format!("{what}: {text}")),
        _ => fail(EX_TEMPFAIL, format!("{what}: {text}")),
    }
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let done = line.as_bytes().get(3) != Some(&b'-');
        all.push_str(line.trim_end());
        if done {
            return Ok(all);
        }
        all.push('\n');
    }
}

/// `-bs`: copy stdin to smtpd and its replies to stdout.
pub fn smtp_on_stdio(socket: &Path) -> Result<(), Failure> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| fail(EX_TEMPFAIL, format!("cannot reach the mail system: {e}")))?;
    let mut to_server = stream
        .try_clone()
        .map_err(|e| fail(EX_TEMPFAIL, e.to_string()))?;
    let copier = std::thread::spawn(move || {
        relay(&mut std::io::stdin().lock(), &mut to_server);
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let mut from_server = stream;
    relay(&mut from_server, &mut std::io::stdout().lock());
    drop(copier);
    Ok(())
}

/// Copy `from` to `to` until the end, each piece passed on as soon as it
/// is read. Not `std::io::copy`: on Linux it splices between a pipe and a
/// socket, and a client that waits for each reply before its next command
/// then saw a command (or a reply) held back until the next one came.
fn relay(from: &mut impl std::io::Read, to: &mut impl Write) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Deliver mode: read stdin, prepare, submit.
pub fn deliver(config: &Config, opts: &Options) -> Result<(), Failure> {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .ok_or_else(|| {
            fail(
                EX_NOUSER,
                "cannot find the current user in the password database",
            )
        })?;
    let origin = &config.server.origin;
    let mut input = BufReader::new(std::io::stdin().lock());
    let msg = read_message(&mut input, opts.ignore_dots)
        .map_err(|e| fail(EX_DATAERR, format!("cannot read the message: {e}")))?;
    let full_name = opts.full_name.clone().unwrap_or_else(|| {
        me.gecos
            .to_string_lossy()
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    });
    let address = format!("{}@{origin}", me.name);
    let from_header = if full_name.is_empty() {
        address.clone()
    } else {
        format!("{} <{address}>", quote_phrase(&full_name))
    };
    let prepared = prepare(&msg, opts, &from_header, &config.server.hostname);
    if prepared.recipients.is_empty() {
        return Err(fail(EX_USAGE, "no recipient addresses found"));
    }
    let sender = opts
        .sender
        .as_deref()
        .map_or(address, |s| qualify(s, origin));
    let socket = config
        .server
        .run_directory
        .join(crate::ipc::names::SUBMIT_SOCKET);
    match submit(&socket, &sender, &prepared, opts) {
        Err(f) if f.unanswered => keep(config, me.uid.as_raw(), &sender, &prepared, opts, f),
        done => done,
    }
}

/// Nothing answered on submit.sock: leave the message in the drop
/// directory for smtpd to take in when it starts. What smtpd would refuse
/// at once is refused now, with its words; `unreachable` is the reason
/// given when the message cannot be kept either (exit 75 as before).
fn keep(
    config: &Config,
    uid: u32,
    sender: &str,
    prepared: &Prepared,
    opts: &Options,
    unreachable: Failure,
) -> Result<(), Failure> {
    use crate::queue::space;
    let dir = config.queue.directory.join(crate::maildrop::DIR);
    crate::policy::submitter::check(config, uid, sender)
        .map_err(|r| refusal("sender", &r.to_string()))?;
    let limits = &config.smtpd;
    if prepared.recipients.len() > limits.recipient_limit {
        return Err(fail(
            EX_TEMPFAIL,
            format!(
                "{} recipients, more than smtpd.recipient_limit ({})",
                prepared.recipients.len(),
                limits.recipient_limit
            ),
        ));
    }
    // smtpd's count: each line its length + 2.
    let content = &prepared.content;
    let wire = content.len() as u64 + content.iter().filter(|b| **b == b'\n').count() as u64;
    if limits.message_size_limit > 0 && wire > limits.message_size_limit {
        let r = crate::reply::Reply::message_too_big();
        return Err(refusal("message", &r.to_string()));
    }
    let minfree = space::effective_minfree(config.queue.minfree, limits.message_size_limit);
    if let Ok(free) = space::free_space(&config.queue.directory)
        && !space::room_for(free, minfree, wire)
    {
        return Err(fail(
            EX_TEMPFAIL,
            format!(
                "{}; and not enough free space to keep the message in {} ({free} bytes free, queue.minfree {minfree})",
                unreachable.message,
                dir.display()
            ),
        ));
    }
    let envelope = envelope(sender, prepared, opts);
    match crate::maildrop::deposit(&dir, &envelope, content) {
        Ok(path) => {
            if opts.verbose {
                eprintln!(
                    "sendmail: {}; the message is kept as {} and delivered when postern starts",
                    unreachable.message,
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(fail(
            EX_DATAERR,
            format!("the message cannot be kept in {}: {e}", dir.display()),
        )),
        Err(e) => Err(fail(
            EX_TEMPFAIL,
            format!(
                "{}; and the message cannot be kept in {}: {e}",
                unreachable.message,
                dir.display()
            ),
        )),
    }
}

/// A bare `-f` name gets `@origin`, as Postfix's `append_at_myorigin`
/// does (`-f root` → `root@example.org`); `<>` stays empty.
fn qualify(sender: &str, origin: &str) -> String {
    if sender.is_empty() || sender.contains('@') {
        sender.to_string()
    } else {
        format!("{sender}@{origin}")
    }
}

/// A display name, quoted when it has specials.
fn quote_phrase(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '-')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Read everything from `r` (for tests).
#[cfg(test)]
fn all(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn issue_15_a_bare_sender_gets_the_origin() {
        assert_eq!(qualify("root", "example.org"), "root@example.org");
        assert_eq!(qualify("a@b.example", "example.org"), "a@b.example");
        assert_eq!(qualify("", "example.org"), "");
    }

    #[test]
    fn flags() {
        let o = parse_args(&args(&[
            "-oi", "-t", "-f", "me@x", "-Fname", "-odb", "a@b", "c",
        ]))
        .unwrap();
        assert!(o.ignore_dots && o.extract);
        assert_eq!(o.sender.as_deref(), Some("me@x"));
        assert_eq!(o.full_name.as_deref(), Some("name"));
        assert_eq!(o.recipients, vec!["a@b", "c"]);
        assert_eq!(parse_args(&args(&["-bp"])).unwrap().mode, Mode::List);
        assert_eq!(parse_args(&args(&["-I"])).unwrap().mode, Mode::Aliases);
        assert_eq!(
            parse_args(&args(&["-f<>", "x"])).unwrap().sender.as_deref(),
            Some("")
        );
        assert_eq!(parse_args(&args(&["-Z"])).unwrap_err().code, EX_USAGE);
        assert_eq!(parse_args(&args(&["-f"])).unwrap_err().code, EX_USAGE);
        assert_eq!(
            parse_args(&args(&["--", "-weird"])).unwrap().recipients,
            vec!["-weird"]
        );
    }

    #[test]
    fn dot_ends_input_unless_i() {
        let text = b"a\r\n.\nb\n";
        assert_eq!(read_message(&mut &text[..], false).unwrap(), b"a\n");
        assert_eq!(read_message(&mut &text[..], true).unwrap(), b"a\n.\nb\n");
        assert_eq!(all(&mut &b"x"[..]), b"x");
    }

    #[test]
    fn extract_and_add_headers() {
        let o = parse_args(&args(&["-t", "extra@x"])).unwrap();
        let msg = b"To: A <a@x>, b@x\nCc: \"C, Jr\" <c@x>\nBcc: d@x,\n e@x\nSubject: s\n\nbody\n";
        let p = prepare(msg, &o, "Me <me@x>", "host");
        assert_eq!(
            p.recipients,
            vec!["extra@x", "a@x", "b@x", "c@x", "d@x", "e@x"]
        );
        let text = String::from_utf8(p.content).unwrap();
        assert!(!text.contains("Bcc"), "{text}");
        assert!(text.contains("From: Me <me@x>\nDate: "), "{text}");
        assert!(text.contains("\nMessage-ID: <"), "{text}");
        assert!(text.ends_with("\n\nbody\n"), "{text}");
        // Existing headers are kept; a headerless message gets them.
        let p = prepare(
            b"just a body\n",
            &parse_args(&args(&["a@x"])).unwrap(),
            "m@x",
            "h",
        );
        let text = String::from_utf8(p.content).unwrap();
        assert!(text.starts_with("From: m@x\nDate: "), "{text}");
        assert!(text.ends_with("\n\njust a body\n"), "{text}");
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            addresses("a@x, \"B, b\" <b@x> (comment, c), undisclosed-recipients:;"),
            vec!["a@x", "b@x"]
        );
    }
}
