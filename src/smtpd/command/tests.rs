//! Tests of the command parser.

use super::*;
use proptest::prelude::*;

pub(super) fn ok(line: &str) -> Command {
    parse_command(line.as_bytes(), true).unwrap_or_else(|e| panic!("{line}: {e}"))
}

pub(super) fn err(line: &str) -> CommandError {
    match parse_command(line.as_bytes(), true) {
        Err(e) => e,
        Ok(c) => panic!("{line}: {c:?}"),
    }
}

pub(super) fn reply(line: &str) -> String {
    err(line).reply().to_string()
}

fn mbox(s: &str) -> Address {
    Address::parse(s, true).unwrap()
}

#[test]
fn simple_verbs_any_case() {
    for (line, cmd) in [
        ("DATA", Command::Data),
        ("data", Command::Data),
        ("RsEt", Command::Rset),
        ("NOOP", Command::Noop),
        ("NOOP anything at all", Command::Noop),
        ("QUIT", Command::Quit),
        ("quit now", Command::Quit),
        ("HELP", Command::Help),
        ("HELP MAIL", Command::Help),
        ("STARTTLS", Command::StartTls),
        ("  QUIT  ", Command::Quit),
    ] {
        assert_eq!(ok(line), cmd, "{line}");
    }
}

#[test]
fn helo_and_ehlo() {
    assert_eq!(
        ok("HELO client.example"),
        Command::Helo("client.example".into())
    );
    assert_eq!(ok("ehlo  [192.0.2.1]"), Command::Ehlo("[192.0.2.1]".into()));
    assert_eq!(ok("EHLO a  b"), Command::Ehlo("a b".into()));
    assert_eq!(reply("HELO"), "501 Syntax: HELO hostname");
    assert_eq!(reply("EHLO   "), "501 Syntax: EHLO hostname");
}

/// Issue 14: a NUL is refused in EHLO and HELO as in MAIL and RCPT.
#[test]
fn nul_is_refused_in_names_and_addresses() {
    assert_eq!(
        reply("EHLO client\0.example"),
        "501 5.5.2 <client?.example>: Helo command rejected: Invalid name"
    );
    assert_eq!(err("EHLO a\0").verb_name(), "ehlo");
    assert_eq!(err("HELO \0").verb_name(), "helo");
    assert_eq!(
        reply("MAIL FROM:<a\0b@example.org>"),
        "501 5.1.7 Bad sender address syntax"
    );
    assert_eq!(
        reply("RCPT TO:<a\0b@example.org>"),
        "501 5.1.3 Bad recipient address syntax"
    );
    assert_eq!(reply("VRFY a\0b"), "501 5.5.4 Syntax: VRFY address");
    // Other control characters in a name are stored as `?` later.
    assert_eq!(ok("EHLO a\x01b"), Command::Ehlo("a\x01b".into()));
}

#[test]
fn mail_forms() {
    let plain = Command::Mail {
        from: Path::Mailbox(mbox("a@example.com")),
        params: MailParams::default(),
    };
    assert_eq!(ok("MAIL FROM:<a@example.com>"), plain);
    assert_eq!(ok("mail from: <a@example.com>"), plain);
    assert_eq!(ok("MAIL FROM:a@example.com"), plain);
    assert_eq!(ok("MAIL\tFROM:\t<a@example.com>\r"), plain);
    assert_eq!(
        ok("MAIL FROM:<>"),
        Command::Mail {
            from: Path::Null,
            params: MailParams::default()
        }
    );
    let Command::Mail { from, .. } = ok(r#"MAIL FROM:<"a b"@example.com> SIZE=1"#) else {
        panic!()
    };
    assert_eq!(from.to_string(), r#""a b"@example.com"#);
}

#[test]
fn mail_errors() {
    for line in [
        "MAIL",
        "MAIL FROM:",
        "MAIL FROM",
        "MAIL TO:<a@b>",
        "MAIL FROM :<a@b>",
        "MAIL <a@b>",
    ] {
        assert_eq!(
            reply(line),
            "501 5.5.4 Syntax: MAIL FROM:<address>",
            "{line}"
        );
        assert_eq!(err(line).verb_name(), "mail");
    }
    for line in [
        "MAIL FROM:<a@b",
        "MAIL FROM:<a b@c>",
        "MAIL FROM:<a>@b>",
        "MAIL FROM:<<>>",
    ] {
        assert_eq!(reply(line), "501 5.1.7 Bad sender address syntax", "{line}");
    }
    // The address is checked before the parameters, as in Postfix.
    assert_eq!(
        reply("MAIL FROM:<a@> BOGUS"),
        "501 5.1.7 Bad sender address syntax"
    );
}

#[test]
fn bad_utf8() {
    let line = b"HELO \xff\xfe";
    assert_eq!(
        parse_command(line, true).unwrap_err().reply().to_string(),
        "500 5.5.2 Error: bad UTF-8 syntax"
    );
    assert_eq!(
        parse_command(line, false),
        Ok(Command::Helo("\u{fffd}\u{fffd}".into()))
    );
}

#[test]
fn rcpt_forms_and_errors() {
    assert_eq!(
        ok("RCPT TO:<u@example.com>"),
        Command::Rcpt {
            to: mbox("u@example.com"),
            params: RcptParams::default()
        }
    );
    assert_eq!(
        ok("rcpt to: <postmaster>"),
        Command::Rcpt {
            to: mbox("postmaster"),
            params: RcptParams::default()
        }
    );
    for line in ["RCPT", "RCPT TO:", "RCPT FROM:<a@b>", "RCPT TO <a@b>"] {
        assert_eq!(reply(line), "501 5.5.4 Syntax: RCPT TO:<address>", "{line}");
    }
    for line in ["RCPT TO:<>", "RCPT TO:<a@b@c>", "RCPT TO:<a@b"] {
        assert_eq!(
            reply(line),
            "501 5.1.3 Bad recipient address syntax",
            "{line}"
        );
        assert_eq!(err(line).verb_name(), "rcpt");
    }
}

#[test]
fn other_commands() {
    assert_eq!(ok("VRFY  john  smith"), Command::Vrfy("john smith".into()));
    assert_eq!(reply("VRFY"), "501 5.5.4 Syntax: VRFY address");
    assert_eq!(ok("EXPN list"), Command::Expn("list".into()));
    assert_eq!(ok("EXPN"), Command::Expn(String::new()));
    assert_eq!(ok("ETRN example.com"), Command::Etrn("example.com".into()));
    assert_eq!(reply("ETRN"), "500 Syntax: ETRN domain");
    assert_eq!(reply("ETRN a b"), "500 Syntax: ETRN domain");
    assert_eq!(reply("DATA x"), "501 5.5.4 Syntax: DATA");
    assert_eq!(reply("RSET x"), "501 5.5.4 Syntax: RSET");
    assert_eq!(reply("STARTTLS x"), "501 5.5.4 Syntax: STARTTLS");
    assert_eq!(
        ok("AUTH PLAIN dGVzdA=="),
        Command::Auth {
            mechanism: "PLAIN".into(),
            initial_response: Some("dGVzdA==".into())
        }
    );
    assert_eq!(reply("AUTH"), "501 5.5.4 Syntax: AUTH mechanism");
    assert_eq!(
        ok("BDAT 1000"),
        Command::Bdat {
            size: 1000,
            last: false
        }
    );
    assert_eq!(
        ok("bdat 0 last"),
        Command::Bdat {
            size: 0,
            last: true
        }
    );
    for line in [
        "BDAT",
        "BDAT x",
        "BDAT 1 FIRST",
        "BDAT 1 LAST x",
        "BDAT 99999999999999999999999",
    ] {
        let e = err(line);
        assert_eq!(
            e.reply().to_string(),
            "521 5.5.4 Syntax: BDAT count [LAST]",
            "{line}"
        );
        assert!(e.disconnects());
    }
}

#[test]
fn unknown_and_empty() {
    assert_eq!(reply("XYZZY"), "502 5.5.2 Error: command not recognized");
    assert_eq!(
        reply("XCLIENT NAME=x"),
        "502 5.5.2 Error: command not recognized"
    );
    assert_eq!(reply(""), "500 5.5.2 Error: bad syntax");
    assert_eq!(reply(" \t "), "500 5.5.2 Error: bad syntax");
    assert!(!err("XYZZY").disconnects());
    assert_eq!(err("XYZZY").verb_name(), "unknown");
}

#[test]
fn forbidden_commands_disconnect() {
    for line in [
        "GET / HTTP/1.1",
        "post /x HTTP/1.0",
        "CONNECT mx.example:25 HTTP/1.1",
        "Subject: hello",
        "To: someone",
        "From:someone",
        "X-Header:",
        "123 go",
        "<script>",
        "ÄHLO x",
    ] {
        let e = err(line);
        assert_eq!(e, CommandError::Forbidden, "{line}");
        assert_eq!(
            e.reply().to_string(),
            "221 2.7.0 Error: I can break rules, too. Goodbye."
        );
        assert!(e.disconnects());
        assert_eq!(e.verb_name(), "unknown");
    }
    // MAIL FROM: looks like a header but is a known command.
    assert!(matches!(ok("MAIL FROM: <a@b>"), Command::Mail { .. }));
}

#[test]
fn verb_names() {
    for (line, name) in [
        ("HELO x", "helo"),
        ("EHLO x", "ehlo"),
        ("MAIL FROM:<>", "mail"),
        ("RCPT TO:<a@b>", "rcpt"),
        ("DATA", "data"),
        ("BDAT 1", "bdat"),
        ("RSET", "rset"),
        ("NOOP", "noop"),
        ("QUIT", "quit"),
        ("HELP", "help"),
        ("VRFY a", "vrfy"),
        ("EXPN a", "expn"),
        ("ETRN a", "etrn"),
        ("STARTTLS", "starttls"),
        ("AUTH LOGIN", "auth"),
    ] {
        assert_eq!(ok(line).verb_name(), name);
    }
    assert_eq!(
        not_implemented().to_string(),
        "502 5.5.1 Error: command not implemented"
    );
}

#[test]
fn tokenizer_keeps_brackets_and_quotes_together() {
    let words: Vec<&str> = tokenize(r#"MAIL FROM:<"a >b"@c <x>> SIZE=1 "q q"x"#)
        .iter()
        .map(|w| w.text)
        .collect();
    assert_eq!(
        words,
        ["MAIL", "FROM:", r#"<"a >b"@c <x>>"#, "SIZE=1", r#""q q"x"#]
    );
    assert!(!tokenize("MAIL FROM:<a b")[2].complete);
    assert!(!tokenize("x \"a\\")[1].complete);
}

proptest! {
    #[test]
    fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..200), utf8 in any::<bool>()) {
        if let Err(e) = parse_command(&line, utf8) {
            let _ = e.reply();
        }
    }

    #[test]
    fn never_panics_on_smtpish_lines(line in "(MAIL FROM:|RCPT TO:|EHLO |BDAT |AUTH |[A-Z]{1,5}:? ?)[<>\"\\\\ @a-zé:,;=+.\\[\\]0-9A-F{}x]{0,40}", utf8 in any::<bool>()) {
        let _ = parse_command(line.as_bytes(), utf8);
    }
}
