//! The null client: a postern whose only local domain is its own host
//! name and that hands everything else to its relay host, here a second
//! postern (`server.example` is local there), from 127.0.0.2, the one
//! address the server lets relay.

use std::time::Duration;

use super::*;

/// The site's mail server: server.example is local, only 127.0.0.2 may
/// relay.
fn server() -> Postern {
    Postern::start(&format!(
        "{}[relay]\nnetworks = [\"127.0.0.2/32\"]\n",
        local_table(&["$hostname", "localhost", "server.example"])
    ))
}

/// The workstation: client.test.example, everything to `server`, sent
/// from 127.0.0.2.
fn null_client(server: &Postern) -> Postern {
    Postern::start(&format!(
        "[server]\nhostname = \"client.test.example\"\nrun_directory = \"{{dir}}/run\"\n\n{}[relay]\nhost = \"[127.0.0.1]:{}\"\n\n[smtp]\nbind_address = \"127.0.0.2\"\n",
        local_table(&["$hostname"]),
        server.addr.port()
    ))
}

/// The queue ID the client's sendmail got, from `ID: uid=N from=<…>`.
fn submitted_id(p: &Postern, from: &str) -> String {
    let needle = format!(" from=<{from}>");
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains(": uid=") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no submission of {from}:\n{log}"));
    let before = &line[..line.find(": uid=").unwrap()];
    before.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn sendmail_on_the_null_client_reaches_a_maildir_on_the_server() {
    let server = server();
    let client = null_client(&server);
    let u = me();
    let link = client.dir.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    // As cron sends it: LF line ends; -i so the lone dot is content.
    let msg = format!(
        "From: Cron Daemon <{u}@client.test.example>\nTo: {u}@server.example\nSubject: nightly report\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <nightly-1@client.test.example>\n\nline one\n.\n..two dots\n.leading dot\n\nlast line\n"
    );
    let out = run_with_input(
        std::process::Command::new(&link)
            .arg("--config")
            .arg(&client.config)
            .args(["-i", &format!("{u}@server.example")]),
        msg.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cid = submitted_id(&client, &format!("{u}@client.test.example"));

    // It arrives on the server, exactly once, as sent.
    let files = server.wait_delivered(&u, 1, 30);
    client.wait_log(&format!("{cid}: removed"), 1, 20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.delivered(&u).len(), 1, "delivered exactly once");
    let data = std::fs::read(&files[0]).unwrap();
    let text = String::from_utf8_lossy(&data);
    assert!(
        text.starts_with(&format!(
            "Return-Path: <{u}@client.test.example>\nDelivered-To: {u}@server.example\n"
        )),
        "{text}"
    );
    let (_, rest) = split_header(&data, "Return-Path");
    let (_, rest) = split_header(rest, "Delivered-To");
    let (theirs, rest) = split_header(rest, "Received");
    let theirs = String::from_utf8_lossy(theirs);
    assert!(
        theirs.starts_with("Received: from client.test.example (unknown [127.0.0.2])\n"),
        "the client said EHLO with its name, from its bind address: {theirs}"
    );
    assert!(
        theirs.contains("by mail.test.example (postern) with ESMTP id "),
        "{theirs}"
    );
    let (ours, rest) = split_header(rest, "Received");
    let uid = nix::unistd::getuid().as_raw();
    assert!(
        String::from_utf8_lossy(ours).starts_with(&format!(
            "Received: by client.test.example (postern, from userid {uid})\n"
        )),
        "{}",
        String::from_utf8_lossy(ours)
    );
    assert_eq!(String::from_utf8_lossy(rest), msg, "content byte for byte");

    // The logs tell the same story on both ends.
    let slog = server.log();
    assert!(slog.contains("connect from unknown[127.0.0.2]"), "{slog}");
    let sid_line = slog
        .lines()
        .find(|l| l.contains(": client=unknown[127.0.0.2]"))
        .unwrap_or_else(|| panic!("{slog}"));
    let sid = sid_line[..sid_line.find(": client=").unwrap()]
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let st = status(&client, &cid, &format!("{u}@server.example"));
    assert_eq!(
        st.relay,
        format!("127.0.0.1[127.0.0.1]:{}", server.addr.port())
    );
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    assert_eq!(st.text, format!("250 2.0.0 Ok: queued as {sid}"));
    assert!(
        server
            .log()
            .contains(&format!("{sid}: to=<{u}@server.example>, relay=local, ")),
        "{}",
        server.log()
    );
}

/// The server half of the pair (runs without the agent): an outsider
/// may not relay, the null client's address may; local mail is accepted
/// from anyone.
#[test]
fn the_server_refuses_to_relay_for_an_outsider() {
    let server = server();
    let u = me();
    let mut out = server.client_from("127.0.0.3");
    assert!(out.cmd("EHLO outsider.example").starts_with("250-"));
    assert_eq!(out.cmd("MAIL FROM:<s@outsider.example>"), "250 2.1.0 Ok");
    assert_eq!(
        out.cmd("RCPT TO:<u@elsewhere.example>"),
        "554 5.7.1 <u@elsewhere.example>: Relay access denied"
    );
    assert_eq!(
        out.cmd(&format!("RCPT TO:<{u}@server.example>")),
        "250 2.1.5 Ok"
    );
    server.wait_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1 <u@elsewhere.example>: Relay access denied; from=<s@outsider.example> to=<u@elsewhere.example> proto=ESMTP helo=<outsider.example>",
        1,
        10,
    );
    // 127.0.0.1 is not in relay.networks either (the default 127.0.0.0/8
    // is replaced, not extended).
    let mut local = server.client();
    local.cmd("EHLO other.example");
    local.cmd("MAIL FROM:<s@other.example>");
    assert_eq!(
        local.cmd("RCPT TO:<u@elsewhere.example>"),
        "554 5.7.1 <u@elsewhere.example>: Relay access denied"
    );
    let mut inside = server.client_from("127.0.0.2");
    inside.cmd("EHLO client.test.example");
    assert_eq!(
        inside.cmd("MAIL FROM:<s@client.test.example>"),
        "250 2.1.0 Ok"
    );
    assert_eq!(inside.cmd("RCPT TO:<u@elsewhere.example>"), "250 2.1.5 Ok");
}
