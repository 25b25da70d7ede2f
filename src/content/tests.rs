use super::*;
use crate::maps::{Data, Kind};

fn pcre(text: &str) -> Table {
    let (data, diags) = Data::parse(Kind::Pcre, "t", text);
    assert!(diags.is_empty(), "{diags:?}");
    Table::fixed("pcre:t", Kind::Pcre, data)
}

fn ctx() -> Context {
    Context {
        queue_id: "4BXY2".into(),
        origin: "unknown[192.0.2.9]".into(),
        sender: "a@x".into(),
        recipient: Some("b@y".into()),
        proto: Some("ESMTP".into()),
        helo: Some("h".into()),
    }
}

struct Run {
    out: Vec<u8>,
    log: Vec<String>,
    verdict: Verdict,
}

/// Runs the message through, fed in pieces of `chunk` bytes.
fn run_chunked(checks: ContentChecks, message: &[u8], chunk: usize) -> Run {
    let mut i = Inspector::new(checks, ctx());
    let mut out = Vec::new();
    let mut log = Vec::new();
    for piece in message.chunks(chunk) {
        i.feed(piece, &mut |b| out.extend_from_slice(b));
        log.extend(i.take_log());
    }
    i.finish(&mut |b| out.extend_from_slice(b));
    log.extend(i.take_log());
    Run {
        out,
        log: log
            .into_iter()
            .map(|l| format!("{}{}", if l.warn { "warning: " } else { "" }, l.text))
            .collect(),
        verdict: i.verdict().clone(),
    }
}

/// Runs it whole and byte by byte: both must agree.
fn run(checks: ContentChecks, message: &str) -> Run {
    let whole = run_chunked(checks.clone(), message.as_bytes(), usize::MAX);
    let bytes = run_chunked(checks, message.as_bytes(), 1);
    assert_eq!(whole.out, bytes.out);
    assert_eq!(whole.log, bytes.log);
    assert_eq!(whole.verdict, bytes.verdict);
    whole
}

fn header(t: &str) -> ContentChecks {
    ContentChecks::new(vec![pcre(t)], vec![pcre(t)], vec![])
}

fn body(t: &str) -> ContentChecks {
    ContentChecks::new(vec![], vec![], vec![pcre(t)])
}

#[test]
fn folded_header_is_one_logical_line() {
    let checks = header("/^Subject: .*\\bmoney\\b/ REJECT\n");
    let r = run(
        checks.clone(),
        "From: a@x\nSubject: make\n money fast\n\nbody\n",
    );
    assert_eq!(
        r.verdict.reject.as_ref().map(|r| r.to_string()).as_deref(),
        Some("550 5.7.1 message content rejected")
    );
    assert_eq!(
        r.log,
        [
            "4BXY2: reject: header Subject: make? money fast from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>: 5.7.1 message content rejected"
        ]
    );
    let r = run(checks, "Subject: moneyless\n\tstuff\n\nmoney\n");
    assert_eq!(r.verdict, Verdict::default());
    assert!(r.log.is_empty());
}

#[test]
fn content_passes_unchanged_when_nothing_matches() {
    let checks = ContentChecks::new(
        vec![pcre("/^X-Never:/ REJECT\n")],
        vec![],
        vec![pcre("/^never$/ REJECT\n")],
    );
    let long_line = "x".repeat(5000);
    let long_header = format!(
        "X-Long: {}\n {}",
        "y".repeat(HEADER_LIMIT),
        "z".repeat(3000)
    );
    for msg in [
        "Subject: a\n\tfolded\n\nbody\n".to_string(),
        format!("Subject: b\n{long_header}\n\n{long_line}\n{long_line}"),
        "no headers at all\n\nbody".to_string(),
        "Subject: c\n".to_string(),
        String::new(),
        "\n\n".to_string(),
    ] {
        let r = run(checks.clone(), &msg);
        assert_eq!(String::from_utf8(r.out).unwrap(), msg);
        assert!(r.log.is_empty());
    }
}

#[test]
fn reject_texts() {
    let r = run(header("/^Subject: a/ REJECT go away\n"), "Subject: a\n\n");
    assert_eq!(r.verdict.reject.unwrap().to_string(), "550 5.7.1 go away");
    let r = run(
        header("/^Subject: a/ REJECT 5.7.0 Spam\n"),
        "Subject: a\n\n",
    );
    assert_eq!(r.verdict.reject.unwrap().to_string(), "550 5.7.0 Spam");
    let r = run(
        header("/^Subject: a/ REJECT 4.7.1 later\n"),
        "Subject: a\n\n",
    );
    assert_eq!(r.verdict.reject.unwrap().to_string(), "451 4.7.1 later");
}

#[test]
fn reject_stops_the_inspection() {
    let checks = ContentChecks::new(
        vec![pcre("/^Subject:/ REJECT\n/^From:/ WARN\n")],
        vec![],
        vec![pcre("/./ WARN\n")],
    );
    let r = run(checks, "Subject: x\nFrom: y\n\nbody\n");
    assert_eq!(r.log.len(), 1, "{:?}", r.log);
}

#[test]
fn warn_info_discard_hold() {
    let checks = ContentChecks::new(
        vec![pcre(
            "/^X-Mailer: bulk/ WARN bulk mailer\n/^X-Info:/ INFO\n",
        )],
        vec![],
        vec![pcre(
            "/hold me/ HOLD\n/hold again/ HOLD\n/discard me/ DISCARD spam\n",
        )],
    );
    let r = run(
        checks,
        "X-Mailer: bulk 1.0\nX-Info: 1\n\nplease hold me\nhold again\ndiscard me\n",
    );
    assert_eq!(
        r.log,
        [
            "4BXY2: warning: header X-Mailer: bulk 1.0 from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>: bulk mailer",
            "4BXY2: info: header X-Info: 1 from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>",
            "4BXY2: hold: body please hold me from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>",
            "4BXY2: discard: body discard me from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>: spam",
        ]
    );
    assert!(r.verdict.hold);
    assert!(r.verdict.discard);
    assert_eq!(r.verdict.reject, None);
}

#[test]
fn ignore_prepend_replace_change_the_content() {
    let checks = header(
        "/^X-Secret:/ IGNORE\n/^Subject: (.*)/ REPLACE Subject: [checked] $1\n/^From:/ PREPEND X-Seen: yes\n/^To:/ PREPEND not a header\n",
    );
    let r = run(
        checks,
        "X-Secret: a\n b\nSubject: hi\n\tthere\nFrom: x\nTo: y\n\nbody\n",
    );
    assert_eq!(
        String::from_utf8(r.out).unwrap(),
        "Subject: [checked] hi\n\tthere\nX-Seen: yes\nFrom: x\nTo: y\n\nbody\n"
    );
    assert!(
        r.log[0].starts_with(
            "4BXY2: replace: header Subject: hi?\tthere"
                .replace('\t', "?")
                .as_str()
        )
    );
    assert!(r.log[1].starts_with("4BXY2: prepend: header From: x from"));
    assert_eq!(
        r.log[2],
        "warning: bad PREPEND header text \"not a header\" in header_checks map -- need \"headername: headervalue\""
    );
    // Body lines: IGNORE drops, REPLACE replaces, PREPEND adds a line.
    let checks = body("/^drop/ IGNORE\n/^old/ REPLACE new\n/^mark/ PREPEND --\n");
    let r = run(checks, "S: x\n\ndrop me\nold line\nmark\nkeep\n");
    assert_eq!(
        String::from_utf8(r.out).unwrap(),
        "S: x\n\nnew\n--\nmark\nkeep\n"
    );
}

#[test]
fn redirect_dunno_ok_unknown() {
    let checks = header(
        "/^To:/ REDIRECT abuse@example.com\n/^X-A:/ DUNNO\n/^X-B:/ OK\n/^X-C:/ FROB it\n/^X-D:/ REDIRECT nobody\n",
    );
    let r = run(checks.clone(), "X-A: 1\nX-B: 2\nX-C: 3\nX-D: 4\nTo: x\n\n");
    assert_eq!(r.verdict.redirect.as_deref(), Some("abuse@example.com"));
    assert_eq!(
        r.log,
        [
            "warning: unknown command in header_checks map: FROB it",
            "warning: bad REDIRECT target \"nobody\" in header_checks map -- need user@domain",
            "4BXY2: redirect: header To: x from unknown[192.0.2.9]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>: abuse@example.com",
        ]
    );
}

#[test]
fn mime_part_headers_go_to_mime_header_checks() {
    let msg = "\
Subject: s
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"b1\"

--b1
Content-Type: application/x-msdownload; name=\"a.exe\"

TVqQ
--b1
Content-Type: message/rfc822

Subject: nested money

inner
--b1--
";
    let checks = ContentChecks::new(
        vec![pcre("/^Subject:/ WARN top\n")],
        vec![pcre(
            "/name=\"[^\"]*\\.exe\"/ REJECT no executables\n/^MIME-Version:/ WARN mime\n",
        )],
        vec![pcre("/^inner$/ WARN body\n/^--b1/ WARN boundary\n")],
    );
    let r = run(checks, msg);
    let actions: Vec<&str> = r
        .log
        .iter()
        .map(|l| l.split(" from ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "4BXY2: warning: header Subject: s",
            "4BXY2: warning: header MIME-Version: 1.0",
            "4BXY2: warning: body --b1",
            "4BXY2: reject: header Content-Type: application/x-msdownload; name=\"a.exe\"",
        ]
    );
    assert_eq!(
        r.verdict.reject.unwrap().to_string(),
        "550 5.7.1 no executables"
    );
    // Without mime_header tables, part headers go to the header tables;
    // the headers of an attached message go to them too.
    let mut config = Config::builtin();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("h");
    std::fs::write(&f, "/^Subject: nested/ WARN nested\n/exe/ WARN exe\n").unwrap();
    config.checks.header = vec![format!("pcre:{}", f.display())];
    let r = run(ContentChecks::open(&config).unwrap(), msg);
    let actions: Vec<&str> = r
        .log
        .iter()
        .map(|l| l.split(" from ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "4BXY2: warning: header Content-Type: application/x-msdownload; name=\"a.exe\"",
            "4BXY2: warning: header Subject: nested money",
        ]
    );
}

#[test]
fn body_checks_see_only_the_start_of_each_part() {
    let filler = "x\n".repeat(30_000);
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nspam\n{filler}spam late\n--b\n\nspam\n--b--\n"
    );
    let r = run(body("/spam/ WARN\n"), &msg);
    let hits: Vec<&str> = r
        .log
        .iter()
        .map(|l| l.split(" from ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        hits,
        ["4BXY2: warning: body spam", "4BXY2: warning: body spam"]
    );
}

#[test]
fn long_lines_are_matched_in_pieces_and_long_headers_truncated() {
    let piece = "a".repeat(LINE_LIMIT);
    let msg = format!("S: x\n\n{piece}MONEY\n");
    let r = run(body("/^MONEY$/ WARN\n"), &msg);
    assert_eq!(r.log.len(), 1);
    // A header beyond HEADER_LIMIT: matched on its start, dropped whole.
    let msg = format!(
        "X-Big: {}\n {}\nSubject: next\n\n",
        "b".repeat(HEADER_LIMIT),
        "c".repeat(5000)
    );
    let r = run(header("/^X-Big:/ IGNORE\n/^Subject: next/ WARN\n"), &msg);
    assert_eq!(String::from_utf8(r.out).unwrap(), "Subject: next\n\n");
    assert_eq!(r.log.len(), 1);
}

#[test]
fn pathological_patterns_do_not_stall() {
    let line = format!("{}b", "a".repeat(2000));
    let msg = format!("S: x\n\n{}\n", vec![line; 10].join("\n"));
    let started = std::time::Instant::now();
    let r = run_chunked(body("/^(a+)+$/ REJECT\n"), msg.as_bytes(), 4096);
    assert_eq!(r.verdict, Verdict::default());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn header_names() {
    assert!(is_header(b"Subject: x"));
    assert!(is_header(b"Subject : x"));
    assert!(is_header(b"X-Y:"));
    assert!(!is_header(b" folded: x"));
    assert!(!is_header(b"no colon"));
    assert!(!is_header(b": empty name"));
    assert!(!is_header(b"two words: x"));
    assert!(is_mime_header(b"content-type: text/plain"));
    assert!(!is_mime_header(b"Subject: content-type:"));
}

#[test]
fn lookup_failure_defers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gone");
    std::fs::write(&f, "/x/ WARN\n").unwrap();
    let t = Table::open(&format!("pcre:{}", f.display()), &Config::builtin()).unwrap();
    std::fs::remove_file(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = run_chunked(
        ContentChecks::new(vec![t], vec![], vec![]),
        b"Subject: x\n\n",
        64,
    );
    assert_eq!(
        r.verdict.reject.unwrap().to_string(),
        "451 4.3.0 Error: queue file write error"
    );
    assert!(r.log[0].contains("map lookup problem -- message not accepted, try again later"));
}
