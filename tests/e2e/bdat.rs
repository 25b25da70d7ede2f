//! CHUNKING / BDAT (RFC 3030, issue 18 item 7): chunks read by their
//! count whatever they hold, the message stored as DATA stores it, and
//! Postfix's replies and limits.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::common::*;

/// `BDAT n` (`LAST` when `last`) and its chunk, in one write.
fn bdat(chunk: &[u8], last: bool) -> Vec<u8> {
    let mut out = format!(
        "BDAT {}{}\r\n",
        chunk.len(),
        if last { " LAST" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(chunk);
    out
}

/// A client with a transaction open: EHLO (which offers CHUNKING), then
/// [`open`].
fn transaction(p: &Postern, rcpt: &str) -> Client {
    let mut c = p.client();
    let ehlo = c.cmd("EHLO c.example");
    assert!(ehlo.ends_with("\n250 CHUNKING"), "{ehlo}");
    open(&mut c, rcpt);
    c
}

/// A new transaction on `c`: MAIL from s@example.org, RCPT to `rcpt`.
fn open(c: &mut Client, rcpt: &str) {
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
}

/// The content of the first `n` messages delivered to `user`, after the
/// headers smtpd and local add.
fn bodies(p: &Postern, user: &str, n: usize) -> Vec<Vec<u8>> {
    let files = p.wait_delivered(user, n, 20);
    files.iter().map(|f| body_after_added_headers(f)).collect()
}

/// `.msg` spill files left in `queue/incoming`.
fn spill_files(p: &Postern) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(p.queue_dir().join("incoming"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .collect()
}

/// Chunks cut anywhere by the network (the command and part of its
/// chunk in one packet, the rest later; a CRLF split between two chunks;
/// the next command in the packet of the last chunk) arrive as one
/// message; the end-of-data line inside a chunk is content, delivered
/// byte for byte, and what follows it is never a command.
#[test]
fn issue_18_chunks_split_across_packets_arrive_byte_for_byte() {
    let p = Postern::start("");
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    let first = format!(
        "Subject: chunked\r\nMessage-ID: <bdat1@example.org>\r\n\r\nline one\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<{user}@localhost>\r\nDATA\r\n.leading dot\r"
    );
    let wire = bdat(first.as_bytes(), false);
    let (a, b) = wire.split_at(20);
    c.send(a);
    std::thread::sleep(Duration::from_millis(200));
    c.send(b);
    assert_eq!(c.reply(), format!("250 2.0.0 Ok: {} bytes", first.len()));
    let second = "\nlast line\r\n.\r\n";
    let mut wire = bdat(second.as_bytes(), true);
    wire.extend_from_slice(b"QUIT\r\n");
    c.send(&wire);
    let total = first.len() + second.len();
    let r = c.reply();
    let prefix = format!("250 2.0.0 Ok: {total} bytes queued as ");
    assert!(r.starts_with(&prefix), "{r}");
    assert_eq!(c.reply(), "221 2.0.0 Bye");
    let files = p.wait_delivered(&user, 1, 20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.delivered(&user).len(), 1, "the chunk smuggled a message");
    let sent = format!("{first}{second}");
    assert_eq!(body_after_added_headers(&files[0]), lf(sent.as_bytes()));
    p.wait_log(": removed", 1, 10);
    let log = p.log();
    assert_eq!(log.matches(": client=").count(), 1, "{log}");
    for needle in [
        ": message-id=<bdat1@example.org>",
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 bdat=2 quit=1 commands=6",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

/// The same message sent with DATA and with BDAT is stored the same: the
/// dot-stuffed lines, the header block's end (a first line that is no
/// header), the line ends; an open last line gets its end, as DATA's
/// final CRLF gives it.
#[test]
fn issue_18_bdat_stores_what_data_stores() {
    let p = Postern::start("");
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let content =
        "This first line has no colon\r\nSubject: x\r\n\r\n..two dots\r\n.\r\nbare\rcr\r\nlast";
    let mut stuffed = String::new();
    for line in content.split_inclusive('\n') {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
    }
    queue_id(
        &Mail {
            to: &[&rcpt],
            ..MAIL
        }
        .reply(&p, &stuffed),
    );
    let mut c = transaction(&p, &rcpt);
    let (a, b) = content.as_bytes().split_at(17);
    c.send(&bdat(a, false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 17 bytes");
    c.send(&bdat(b, true));
    assert!(c.reply().starts_with("250 2.0.0 Ok: "));
    let files = p.wait_delivered(&user, 2, 20);
    let (over_data, over_bdat) = (
        body_after_added_headers(&files[0]),
        body_after_added_headers(&files[1]),
    );
    assert_eq!(over_data, over_bdat);
    assert_eq!(
        String::from_utf8_lossy(&over_bdat),
        "\nThis first line has no colon\nSubject: x\n\n..two dots\n.\nbare\rcr\nlast\n"
    );
}

/// `BDAT 0 LAST` ends a message after chunks, and alone is an empty
/// message, as DATA with only its final dot.
#[test]
fn issue_18_bdat_0_last_ends_a_message() {
    let p = Postern::start("");
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    c.send(&bdat(b"Subject: zero\r\n\r\nbody\r\n", false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 23 bytes");
    let r = c.cmd("BDAT 0 LAST");
    assert!(r.starts_with("250 2.0.0 Ok: 23 bytes queued as "), "{r}");
    open(&mut c, &format!("{user}@localhost"));
    let r = c.cmd("BDAT 0 LAST");
    assert!(r.starts_with("250 2.0.0 Ok: 0 bytes queued as "), "{r}");
    // An empty chunk that ends nothing is refused (Postfix).
    assert_eq!(c.cmd("BDAT 0"), "551 5.7.1 Null BDAT request");
    let bodies = bodies(&p, &user, 2);
    assert!(
        bodies.contains(&b"Subject: zero\n\nbody\n".to_vec()),
        "{bodies:?}"
    );
    assert!(bodies.contains(&Vec::new()), "{bodies:?}");
}

/// A transaction begun with BDAT takes no DATA, MAIL or RCPT until LAST
/// (Postfix's replies), and its message is the chunks alone.
#[test]
fn issue_18_bdat_and_data_do_not_mix() {
    let p = Postern::start("");
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    c.send(&bdat(b"Subject: mixed\r\n\r\n", false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 18 bytes");
    assert_eq!(c.cmd("DATA"), "503 5.5.1 Error: DATA after BDAT");
    assert_eq!(
        c.cmd("MAIL FROM:<t@example.org>"),
        "503 5.5.1 Error: MAIL after BDAT"
    );
    assert_eq!(
        c.cmd("RCPT TO:<postmaster@localhost>"),
        "503 5.5.1 Error: RCPT after BDAT"
    );
    c.send(&bdat(b"chunks only\r\n", true));
    assert!(c.reply().starts_with("250 2.0.0 Ok: 31 bytes queued as "));
    // A new transaction may use DATA again.
    open(&mut c, &format!("{user}@localhost"));
    assert!(c.cmd("DATA").starts_with("354 "));
    queue_id(&c.cmd("Subject: data again\r\n\r\nx\r\n."));
    let bodies = bodies(&p, &user, 2);
    assert!(
        bodies.contains(&b"Subject: mixed\n\nchunks only\n".to_vec()),
        "{bodies:?}"
    );
}

/// BDAT with no transaction to go to is refused as DATA is, and its chunk
/// is read past, never taken for commands: the session stays in step.
/// After a chunk refused for want of valid recipients, every chunk up to
/// LAST gets the same reply; then the transaction is over.
#[test]
fn issue_18_bdat_before_rcpt_is_refused_and_read_past() {
    let p = Postern::start("");
    let mut c = p.client();
    c.cmd("EHLO c.example");
    let mut wire = bdat(b"RSET\r\nQUIT\r\n", false);
    wire.extend_from_slice(b"NOOP\r\n");
    c.send(&wire);
    assert_eq!(c.reply(), "503 5.5.1 Error: need RCPT command");
    assert_eq!(c.reply(), "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert!(
        c.cmd("RCPT TO:<no-such-user-x@localhost>")
            .starts_with("550 ")
    );
    c.send(&bdat(b"QUIT\r\n", false));
    assert_eq!(c.reply(), "554 5.5.1 Error: no valid recipients");
    c.send(&bdat(b"QUIT\r\n", true));
    assert_eq!(c.reply(), "554 5.5.1 Error: no valid recipients");
    // LAST ended the transaction.
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    p.wait_log(
        "disconnect from localhost[127.0.0.1] ehlo=1 bdat=0/3 noop=1 mail=2 rcpt=0/1 quit=1 commands=5/9",
        1,
        5,
    );
}

/// `smtpd.message_size_limit` counts the chunks as it counts DATA: the
/// chunk that passes it gets `552 5.3.4 Error: message file too big`,
/// and so does every chunk after it up to LAST, read and thrown away; the
/// session goes on and nothing is queued or left in the queue.
#[test]
fn issue_18_bdat_over_the_size_limit() {
    let p = Postern::start_full(
        "[queue]\ndirectory = \"{dir}/queue\"\nlarge_message_threshold = 1000\n",
        &["message_size_limit = 10000"],
        None,
    );
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    let line = "012345678901234567890123456789012345678901234567\r\n";
    let chunk = line.repeat(120);
    c.send(&bdat(chunk.as_bytes(), false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 6000 bytes");
    // Past the threshold: the message is in a file of its own already.
    assert_eq!(spill_files(&p).len(), 1);
    c.send(&bdat(chunk.as_bytes(), false));
    assert_eq!(c.reply(), "552 5.3.4 Error: message file too big");
    assert!(spill_files(&p).is_empty());
    c.send(&bdat(b"more\r\n", false));
    assert_eq!(c.reply(), "552 5.3.4 Error: message file too big");
    c.send(&bdat(b"end\r\n", true));
    assert_eq!(c.reply(), "552 5.3.4 Error: message file too big");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    // A single chunk over the limit, LAST: refused at its end, as DATA.
    open(&mut c, &format!("{user}@localhost"));
    c.send(&bdat(line.repeat(300).as_bytes(), true));
    assert_eq!(c.reply(), "552 5.3.4 Error: message file too big");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    p.wait_log(
        "reject: BDAT from localhost[127.0.0.1]: 552 5.3.4 Error: message file too big; from=<s@example.org> proto=ESMTP helo=<c.example>",
        1,
        5,
    );
    p.wait_log(
        "reject: END-OF-MESSAGE from localhost[127.0.0.1]: 552 5.3.4",
        1,
        5,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.delivered(&user).is_empty());
    assert!(!p.log().contains("(queue active)"));
    assert!(spill_files(&p).is_empty());
}

/// A transaction given up between chunks (RSET) leaves no spill file.
#[test]
fn issue_18_a_message_given_up_between_chunks_leaves_nothing() {
    let p =
        Postern::start("[queue]\ndirectory = \"{dir}/queue\"\nlarge_message_threshold = 1000\n");
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    c.send(&bdat("x".repeat(5000).as_bytes(), false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 5000 bytes");
    assert_eq!(spill_files(&p).len(), 1);
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert!(spill_files(&p).is_empty());
    // And one left by a client that went away.
    let mut c = transaction(&p, &format!("{user}@localhost"));
    c.send(&bdat("x".repeat(5000).as_bytes(), false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 5000 bytes");
    c.send(b"BDAT 100\r\nonly part");
    drop(c);
    p.wait_log(
        "lost connection after BDAT (5009 bytes) from localhost[127.0.0.1]",
        1,
        5,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !spill_files(&p).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            spill_files(&p)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With `smtpd.forbid_bare_newline = reject` a bare LF in a chunk is
/// refused at LAST, as in DATA; CRLF split between chunks is no bare LF.
#[test]
fn issue_18_bdat_bare_lf_reject_mode() {
    let p = Postern::start_with("", &["forbid_bare_newline = \"reject\""]);
    let user = p.user.clone();
    let mut c = transaction(&p, &format!("{user}@localhost"));
    c.send(&bdat(b"Subject: x\r\n\r\nbare\nline\r\n", true));
    assert_eq!(
        c.reply(),
        "550 5.5.2 mail.test.example Error: bare <LF> received"
    );
    open(&mut c, &format!("{user}@localhost"));
    c.send(&bdat(b"Subject: y\r\n\r\nsplit\r", false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 20 bytes");
    c.send(&bdat(b"\n", true));
    assert!(c.reply().starts_with("250 2.0.0 Ok: 21 bytes queued as "));
    let files = p.wait_delivered(&user, 1, 20);
    assert_eq!(
        body_after_added_headers(&files[0]),
        b"Subject: y\n\nsplit\n"
    );
}

/// A header check's REJECT answers LAST as it answers DATA's end.
#[test]
fn issue_18_bdat_content_is_checked() {
    let mut p = Postern::configure(
        "[checks]\nheader = [\"pcre:{dir}/header_checks\"]\n",
        &[],
        None,
    );
    write_file(
        &p.dir.path().join("header_checks"),
        b"/^Subject: .*money/ REJECT\n",
    );
    p.launch();
    let mut c = transaction(&p, &format!("{}@localhost", p.user));
    c.send(&bdat(b"Subject: make ", false));
    assert_eq!(c.reply(), "250 2.0.0 Ok: 14 bytes");
    c.send(&bdat(b"money fast\r\n\r\nbody\r\n", true));
    assert_eq!(c.reply(), "550 5.7.1 message content rejected");
}

/// A chunk must progress: `smtpd.timeout` while its octets are read.
/// A malformed BDAT ends the session: its chunk cannot be found.
#[test]
fn issue_18_bdat_timeout_and_syntax() {
    let p = Postern::start_with("", &["timeout = \"2s\""]);
    let mut c = transaction(&p, &format!("{}@localhost", p.user));
    c.send(b"BDAT 100\r\nten octets");
    let t0 = std::time::Instant::now();
    assert_eq!(
        c.reply(),
        "421 4.4.2 mail.test.example Error: timeout exceeded"
    );
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    p.wait_log("timeout after BDAT from localhost[127.0.0.1]", 1, 5);
    let mut c = p.client();
    c.cmd("EHLO c.example");
    assert_eq!(c.cmd("BDAT ten"), "521 5.5.4 Syntax: BDAT count [LAST]");
    assert!(c.closed());
    p.wait_log(
        "NOQUEUE: malformed BDAT command syntax from localhost[127.0.0.1]: BDAT ten",
        1,
        5,
    );
}

/// The local submit socket (`sendmail -bs`) offers CHUNKING too: the same
/// session, the local Received header.
#[test]
fn issue_18_bdat_on_the_submit_socket() {
    let p = Postern::start("");
    let user = p.user.clone();
    let stream = UnixStream::connect(p.run_dir().join("submit.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "EOF after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(reply().starts_with("220 "));
    w.write_all(b"EHLO localhost\r\n").unwrap();
    assert!(reply().ends_with("250 CHUNKING\r\n"));
    let mut wire =
        format!("MAIL FROM:<{user}@localhost>\r\nRCPT TO:<{user}@localhost>\r\n").into_bytes();
    wire.extend_from_slice(&bdat(b"Subject: local\r\n\r\nvia the socket\r\n", true));
    w.write_all(&wire).unwrap();
    assert!(reply().starts_with("250 2.1.0"));
    assert!(reply().starts_with("250 2.1.5"));
    assert!(reply().starts_with("250 2.0.0 Ok: 34 bytes queued as "));
    let files = p.wait_delivered(&user, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("(postern, from userid "), "{text}");
    assert!(
        text.ends_with("Subject: local\n\nvia the socket\n"),
        "{text}"
    );
}

/// An outside client: Exim's smtp transport sends with BDAT to a server
/// that offers CHUNKING (`hosts_try_chunking`, on by default). Exim runs
/// as a one-shot client with its own configuration and spool in the test
/// directory, delivering at once (`-odi`).
#[test]
fn issue_18_exim_sends_with_bdat() {
    if std::process::Command::new("exim4")
        .arg("-bV")
        .output()
        .is_err()
    {
        // Exim and Postfix are Debian's alternative MTAs: on a machine
        // that keeps Postfix for the benchmark, Exim cannot be installed.
        if std::path::Path::new("/usr/sbin/postfix").exists() {
            eprintln!("exim4 is not installed (Postfix is, for the benchmark): skipped");
            return;
        }
        panic!("exim4 is not installed (apt-get install exim4-daemon-light; .ci/run does)");
    }
    let p = Postern::start("");
    let user = p.user.clone();
    let dir = p.dir.path().join("exim");
    // Exim creates its files as its own user (Debian-exim) when run as
    // root: its directories are open to it.
    for sub in ["spool", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let config = dir.join("exim.conf");
    let d = dir.display();
    let port = p.addr.port();
    write_file(
        &config,
        format!(
            "primary_hostname = exim.test.example\n\
             spool_directory = {d}/spool\n\
             log_file_path = {d}/log/%slog\n\
             begin routers\n\
             postern:\n  driver = manualroute\n  route_list = * 127.0.0.1\n  transport = to_postern\n  self = send\n\
             begin transports\n\
             to_postern:\n  driver = smtp\n  port = {port}\n  allow_localhost\n  hosts_try_chunking = *\n\
             begin retry\n\
             * * F,1m,1m\n"
        )
        .as_bytes(),
    );
    let message = b"Subject: from exim\r\nMessage-ID: <exim1@example.org>\r\n\r\nsent with BDAT\r\n.\r\nstill the body\r\n";
    let out = run_with_input(
        std::process::Command::new("exim4")
            .arg("-C")
            .arg(&config)
            .args(["-odi", "-oi", "-f", "s@example.org"])
            .arg(format!("{user}@localhost")),
        message,
    );
    let logs = || std::fs::read_to_string(dir.join("log/mainlog")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let files = p.wait_delivered(&user, 1, 20);
    let body = body_after_added_headers(&files[0]);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.ends_with("\n\nsent with BDAT\n.\nstill the body\n"),
        "{body}"
    );
    p.wait_log(" bdat=1 quit=1 commands=5", 1, 10);
    // Exim's own word for it: `K`, the message went with CHUNKING.
    let log = logs();
    assert!(log.contains(" K C=\"250 2.0.0 Ok: "), "{log}");
}
