//! Header and body checks over SMTP (Postfix's header_checks and
//! body_checks), and `postern map build | query`.

use std::time::Duration;

use crate::common::*;

/// A postern whose checks are `tables` (TOML for `[checks]`), with files
/// written into the test directory first (`{dir}` in their names and in
/// `tables`).
fn with_checks(tables: &str, files: &[(&str, &str)]) -> Postern {
    let mut p = Postern::configure(&format!("[checks]\n{tables}\n"), &[], None);
    for (name, text) in files {
        write_file(&p.dir.path().join(name), text.as_bytes());
    }
    p.launch();
    p
}

/// The client of these tests, whose HELO and sender the reject lines show.
const CHECKED: Mail = Mail {
    helo: "client.example",
    from: "a@sender.example",
    ..MAIL
};

const MONEY: &str = "/^Subject: .*\\bmoney\\b/ REJECT\n";

#[test]
fn pcre_header_check_rejects_money_but_not_moneyless() {
    let p = with_checks(
        "header = [\"pcre:{dir}/header_checks\"]",
        &[("header_checks", MONEY)],
    );
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let r = Mail {
        to: &[&rcpt],
        ..CHECKED
    }
    .reply(&p, "Subject: make money fast\r\n\r\nbody");
    assert_eq!(r, "550 5.7.1 message content rejected");
    let r = Mail {
        to: &[&rcpt],
        ..CHECKED
    }
    .reply(&p, "Subject: moneyless\r\n\r\nbody");
    queue_id(&r);
    // A folded Subject is one logical header.
    let r = Mail {
        to: &[&rcpt],
        ..CHECKED
    }
    .reply(&p, "Subject: make\r\n money fast\r\n\r\nbody");
    assert_eq!(r, "550 5.7.1 message content rejected");
    let files = p.wait_delivered(&user, 1, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.delivered(&user).len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: moneyless"), "{text}");

    // The log line in Postfix's shape, as fail2ban's postfix filter reads it.
    p.wait_log(": reject: header Subject: ", 2, 5);
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("reject: header Subject: make money fast"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!(
            " from localhost[127.0.0.1]; from=<a@sender.example> to=<{rcpt}> proto=ESMTP helo=<client.example>: 5.7.1 message content rejected"
        )),
        "{line}"
    );
    assert!(line.contains("postern/smtpd["), "{line}");
    // fail2ban's postfix filter (mode "more") reads it with the program
    // name changed.
    let fail2ban =
        regex::Regex::new(r"postern/smtpd\[\d+\]: \w+: reject: header .* from \S+\[([\d.]+)\]")
            .unwrap();
    let host = fail2ban
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str());
    assert_eq!(host, Some("127.0.0.1"), "{line}");
    assert!(
        log.contains("Subject: make? money fast from localhost[127.0.0.1]"),
        "{log}"
    );
}

#[test]
fn body_check_discard_answers_250_and_delivers_nothing() {
    let p = with_checks(
        "body = [\"regexp:{dir}/body_checks\"]",
        &[("body_checks", "/^buy now$/ DISCARD\n/^keep$/ OK\n")],
    );
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let id = queue_id(
        &Mail {
            to: &[&rcpt],
            ..CHECKED
        }
        .reply(&p, "Subject: a\r\n\r\nhello\r\nbuy now\r\n"),
    );
    p.wait_log(
        &format!("{id}: discard: body buy now from localhost[127.0.0.1];"),
        1,
        5,
    );
    let kept = queue_id(
        &Mail {
            to: &[&rcpt],
            ..CHECKED
        }
        .reply(&p, "Subject: b\r\n\r\nkeep\r\n"),
    );
    p.wait_delivered(&user, 1, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.delivered(&user).len(), 1);
    let log = p.log();
    assert!(log.contains(&format!("{kept}: to=<{rcpt}>")), "{log}");
    assert!(!log.contains(&format!("{id}: to=")), "{log}");
}

#[test]
fn body_check_hold_keeps_the_message_until_released() {
    let mut p = with_checks(
        "body = [\"pcre:{dir}/body_checks\"]",
        &[("body_checks", "/suspicious/ HOLD\n")],
    );
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let id = queue_id(
        &Mail {
            to: &[&rcpt],
            ..CHECKED
        }
        .reply(&p, "Subject: a\r\n\r\nsomething suspicious\r\n"),
    );
    p.wait_log(
        &format!("{id}: hold: body something suspicious from localhost[127.0.0.1];"),
        1,
        5,
    );
    p.wait_log(&format!("{id}: on hold"), 1, 10);
    let out = p.postern(&["queue", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listing.contains(&format!("{id}!")), "{listing}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.delivered(&user).is_empty());
    // Still held after a restart (the envelope says so).
    p.stop();
    p.launch();
    p.wait_log(&format!("{id}: on hold"), 2, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.delivered(&user).is_empty());

    let out = p.postern(&["queue", "release", &id]);
    assert!(out.status.success(), "{out:?}");
    let files = p.wait_delivered(&user, 1, 10);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("something suspicious"), "{text}");
}

#[test]
fn header_actions_change_what_is_delivered() {
    let p = with_checks(
        "header = [\"pcre:{dir}/header_checks\"]",
        &[(
            "header_checks",
            "/^X-Secret:/ IGNORE\n/^Subject: (.*)/ REPLACE Subject: [checked] $1\n/^From:/ PREPEND X-Seen: yes\n/^X-Bulk:/ WARN bulk mail\n",
        )],
    );
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    let id = queue_id(&Mail { to: &[&rcpt], ..CHECKED }.reply(&p, "From: a@sender.example\r\nX-Secret: 42\r\n continued\r\nX-Bulk: yes\r\nSubject: hi\r\n\r\nbody"));
    let files = p.wait_delivered(&user, 1, 10);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("X-Seen: yes\nFrom: a@sender.example\n"),
        "{text}"
    );
    assert!(text.contains("Subject: [checked] hi\n"), "{text}");
    assert!(
        !text.contains("X-Secret") && !text.contains("continued"),
        "{text}"
    );
    p.wait_log(
        &format!("{id}: warning: header X-Bulk: yes from localhost[127.0.0.1];"),
        1,
        5,
    );
    assert!(p.log().contains(": bulk mail"));
}

#[test]
fn map_query_and_build() {
    let p = Postern::configure("[maps.friends]\n\"friend.example\" = \"OK\"\n", &[], None);
    let dir = p.dir.path();
    write_file(
        &dir.join("access"),
        b"# classic access table\nspammer.example REJECT go away\n192.0.2 REJECT\n",
    );
    write_file(&dir.join("checks.pcre"), MONEY.as_bytes());
    let hash = format!("hash:{}", dir.join("access").display());
    let out = p.postern(&["map", "query", &hash, "Spammer.Example"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "REJECT go away\n");
    let out = p.postern(&["map", "query", &hash, "other.example"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let pcre = format!("pcre:{}", dir.join("checks.pcre").display());
    let out = p.postern(&["map", "query", &pcre, "Subject: make money fast"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "REJECT\n");
    let out = p.postern(&["map", "query", &pcre, "Subject: moneyless"]);
    assert_eq!(out.status.code(), Some(1));
    let out = p.postern(&["map", "query", "inline:friends", "friend.example"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");

    let out = p.postern(&["map", "build", &pcre]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty());
    let bad = dir.join("bad.regexp");
    write_file(&bad, b"/ok/ OK\n# comment\n/(unclosed/ REJECT\n");
    let out = p.postern(&["map", "build", "-t", "regexp", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.starts_with(&format!(
            "{}:3: error: bad regular expression",
            bad.display()
        )),
        "{err}"
    );
}

/// A message above `queue.large_message_threshold` goes to a file of its
/// own as it arrives; the checks see it all the same, and what they pass
/// arrives intact.
#[test]
fn large_messages_are_checked_too() {
    let p = with_checks(
        "header = [\"pcre:{dir}/checks\"]\nbody = [\"pcre:{dir}/checks\"]",
        &[(
            "checks",
            "/^X-Reject-Me:/ REJECT header found\n/^reject me$/ REJECT body found\n",
        )],
    );
    let user = p.user.clone();
    let rcpt = format!("{user}@localhost");
    // Body checks look at the start of each part: the line comes early,
    // the bulk after it.
    let bulk = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
        .repeat(30_000);
    let r = Mail {
        to: &[&rcpt],
        ..CHECKED
    }
    .reply(&p, &format!("Subject: big\r\n\r\nreject me\r\n{bulk}"));
    assert_eq!(r, "550 5.7.1 body found");
    let long_header = format!("X-Reject-Me: {}\r\n", "h".repeat(200_000));
    let r = Mail {
        to: &[&rcpt],
        ..CHECKED
    }
    .reply(&p, &format!("{long_header}Subject: big\r\n\r\n{bulk}"));
    assert_eq!(r, "550 5.7.1 header found");
    // Nothing of them is left in the queue.
    let left: Vec<_> = std::fs::read_dir(p.queue_dir().join("incoming"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".msg"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // (`send` ends the data with CRLF "." itself.)
    let message = format!("Subject: big\r\n\r\n{bulk}end");
    queue_id(
        &Mail {
            to: &[&rcpt],
            ..CHECKED
        }
        .reply(&p, &message),
    );
    let files = p.wait_delivered(&user, 1, 30);
    let got = body_after_added_headers(&files[0]);
    let want = lf(format!("{message}\r\n").as_bytes());
    assert!(
        got == want,
        "{} bytes delivered, {} sent",
        got.len(),
        want.len()
    );
}

/// `postern policy test --message FILE` runs the same header and body
/// checks, without sending anything, and says why a message would be
/// refused. (A DNS server that answers, if only NXDOMAIN: the tracer
/// runs DKIM, SPF and DMARC on the message too, which would wait for a
/// server that is not there.)
#[test]
fn the_policy_tracer_runs_the_checks_on_a_message() {
    let dns = crate::outbound::dns::DnsServer::start(crate::outbound::dns::Zone::new());
    let p = Postern::configure(
        &format!(
            "{}\n[checks]\nheader = [\"pcre:{{dir}}/header_checks\"]\n",
            dns.config_table()
        ),
        &[],
        None,
    );
    write_file(&p.dir.path().join("header_checks"), MONEY.as_bytes());
    let money = p.dir.path().join("money.eml");
    write_file(
        &money,
        b"From: a@sender.example\r\nSubject: make\r\n money fast\r\n\r\nhello\r\n",
    );
    let fine = p.dir.path().join("fine.eml");
    write_file(&fine, b"Subject: moneyless\r\n\r\nhello\r\n");
    let args = |m: &std::path::Path| {
        vec![
            "policy".to_string(),
            "test".to_string(),
            "--client".to_string(),
            "127.0.0.1".to_string(),
            "--client-name".to_string(),
            "localhost".to_string(),
            "--from".to_string(),
            "a@sender.example".to_string(),
            "--to".to_string(),
            format!("{}@localhost", p.user),
            "--message".to_string(),
            m.display().to_string(),
        ]
    };
    let run = |m: &std::path::Path| {
        let a = args(m);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        p.postern(&a)
    };
    let out = run(&money);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("reject: header Subject: make"), "{text}");
    assert!(
        text.contains("DATA: 550 5.7.1 message content rejected"),
        "{text}"
    );
    let out = run(&fine);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("DATA: 250 accepted"), "{text}");
}
