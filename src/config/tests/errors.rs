//! Every error path: the message names file, line, key and what is wrong.

use super::{FILE, err, parse};
use crate::config::{ConfigError, load};

#[test]
fn unknown_key_names_file_line_key_and_suggestion() {
    let text =
        "# postern\n\n[smtpd]\nlisten = [\"0.0.0.0:25\"]\nvrfy = false\n\nmesage_size_limit = 1\n";
    assert_eq!(
        err(text),
        "/etc/postern/postern.toml:7: unknown key `smtpd.mesage_size_limit`; did you mean `message_size_limit`?"
    );
    let e = parse(text).unwrap_err();
    assert_eq!(e.line(), Some(7));
    match e {
        ConfigError::Unknown {
            key, suggestion, ..
        } => {
            assert_eq!(key, "smtpd.mesage_size_limit");
            assert_eq!(suggestion.as_deref(), Some("message_size_limit"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_key_suggestions() {
    let cases = [
        ("[smtpd]\nzzz = 1", 2, "unknown key `smtpd.zzz`"),
        (
            "[smptd]\nvrfy = true",
            1,
            "unknown table `smptd`; did you mean `smtpd`?",
        ),
        ("\n[webmail]", 2, "unknown table `webmail`"),
        (
            "[[smtpd]]\nvrfy = true",
            1,
            "key `smtpd`: expected a table, found an array of tables",
        ),
        (
            "smtpd = 5",
            1,
            "key `smtpd`: expected a table, found an integer",
        ),
        (
            "hostname = \"x\"",
            1,
            "unknown key `hostname`; did you mean `server.hostname`?",
        ),
        (
            "myhostname = \"x\"",
            1,
            "unknown key `myhostname`; did you mean `server.hostname`?",
        ),
        (
            "[server]\nmyhostname = \"x\"",
            2,
            "unknown key `server.myhostname`; did you mean `hostname`?",
        ),
        (
            "[server]\nmynetworks = []",
            2,
            "unknown key `server.mynetworks`; did you mean `relay.networks`?",
        ),
        (
            "[server]\nlisten = []",
            2,
            "unknown key `server.listen`; did you mean `smtpd.listen`?",
        ),
        (
            "[smtpd]\nsmtpd_banner = \"x\"",
            2,
            "unknown key `smtpd.smtpd_banner`; did you mean `banner`?",
        ),
        (
            "[smtpd]\ndisable_vrfy_command = true",
            2,
            "unknown key `smtpd.disable_vrfy_command`; did you mean `vrfy`?",
        ),
        (
            "[smtpd]\n[smtpd.tls]\ncert = \"x\"",
            2,
            "unknown table `smtpd.tls`; did you mean `submission.tls`?",
        ),
        (
            "[queue]\nmax_backoff = 1",
            2,
            "unknown key `queue.max_backoff`; did you mean `maximal_backoff`?",
        ),
        (
            "[local]\nDomains = []",
            2,
            "unknown key `local.Domains`; did you mean `domains`?",
        ),
        ("[local]\n\"a\\nb\" = 1", 2, "unknown key `local.a\\nb`"),
    ];
    for (text, line, message) in cases {
        assert_eq!(err(text), format!("{FILE}:{line}: {message}"), "{text:?}");
    }
}

#[test]
fn wrong_types() {
    let cases = [
        (
            "[smtpd]\nmessage_size_limit = \"10M\"",
            2,
            "key `smtpd.message_size_limit`: expected an integer, found a string",
        ),
        (
            "[smtpd]\nvrfy = \"no\"",
            2,
            "key `smtpd.vrfy`: expected a boolean (true or false), found a string",
        ),
        (
            "[server]\nhostname = 5",
            2,
            "key `server.hostname`: expected a string, found an integer",
        ),
        (
            "[smtpd]\nlisten = \"0.0.0.0:25\"",
            2,
            "key `smtpd.listen`: expected an array of strings, found a string",
        ),
        (
            "[smtpd]\nlisten = [\n  \"0.0.0.0:25\",\n  25,\n]",
            4,
            "key `smtpd.listen`: expected an array of strings, found an array holding an integer",
        ),
        (
            "[smtpd]\ntimeout = 1.5",
            2,
            "key `smtpd.timeout`: expected a duration (seconds, or a string like \"300s\" or \"5d\"), found a float",
        ),
        (
            "[queue]\nrun_delay = 1979-05-27",
            2,
            "key `queue.run_delay`: expected a duration (seconds, or a string like \"300s\" or \"5d\"), found a date-time",
        ),
        (
            "[local]\nmailbox = { a = 1 }",
            2,
            "key `local.mailbox`: expected a string, found a table",
        ),
        (
            "[local]\n[local.mailbox]",
            2,
            "key `local.mailbox`: expected a string, found a table",
        ),
    ];
    for (text, line, message) in cases {
        assert_eq!(err(text), format!("{FILE}:{line}: {message}"), "{text:?}");
    }
}

#[test]
fn bad_values() {
    let cases = [
        (
            "[smtpd]\ntimeout = \"5 minutes\"",
            2,
            "key `smtpd.timeout`: bad value \"5 minutes\": expected a number of seconds or a number with a unit s, m, h, d or w (\"300s\", \"5d\")",
        ),
        (
            "[smtpd]\ntimeout = \"5y\"",
            2,
            "key `smtpd.timeout`: bad value \"5y\": unknown time unit `y`; expected a number of seconds or a number with a unit s, m, h, d or w (\"300s\", \"5d\")",
        ),
        (
            "[smtpd]\ntimeout = -5",
            2,
            "key `smtpd.timeout`: bad value -5: must not be negative",
        ),
        (
            "[smtpd]\ntimeout = 0",
            2,
            "key `smtpd.timeout`: bad value 0: must be positive",
        ),
        (
            "[relay]\nnetworks = [\n  \"127.0.0.0/8\",\n  \"10.0.0.1/8\",\n]",
            4,
            "key `relay.networks`: bad value \"10.0.0.1/8\": host bits are set; did you mean `10.0.0.0/8`?",
        ),
        (
            "[relay]\nnetworks = [\"10.0.0.0/40\"]",
            2,
            "key `relay.networks`: bad value \"10.0.0.0/40\": prefix length 40 is above 32",
        ),
        (
            "[relay]\nnetworks = [\"localhost\"]",
            2,
            "key `relay.networks`: bad value \"localhost\": `localhost` is not an IP address",
        ),
        (
            "[smtpd]\nlisten = [\"localhost:25\"]",
            2,
            "key `smtpd.listen`: bad value \"localhost:25\": expected ip:port, e.g. \"0.0.0.0:25\" or \"[::1]:25\"",
        ),
        (
            "[server]\nhostname = \"mail_.exa mple\"",
            2,
            "key `server.hostname`: bad value \"mail_.exa mple\": character ' ' is not allowed in a host name",
        ),
        (
            "[server]\nhostname = \"mail.example.\"",
            2,
            "key `server.hostname`: bad value \"mail.example.\": empty label (leading, trailing or double dot)",
        ),
        (
            "[server]\ndomain = \"-x\"",
            2,
            "key `server.domain`: bad value \"-x\": label `-x` starts or ends with `-`",
        ),
        (
            "[server]\nuser = \"ro ot\"",
            2,
            "key `server.user`: bad value \"ro ot\": character ' ' is not allowed in a user name",
        ),
        (
            "[local]\ndomains = [\"a.example\",\n \"\"]",
            3,
            "key `local.domains`: bad value \"\": empty domain",
        ),
        (
            "[local]\ndomains = [\"$hostname x\"]",
            2,
            "key `local.domains`: bad value \"$hostname x\" (expands to \"box.localdomain x\"): character ' ' is not allowed in a host name",
        ),
        (
            "[smtpd]\nforbid_bare_newline = \"yes\"",
            2,
            "key `smtpd.forbid_bare_newline`: bad value \"yes\": expected \"normalize\" or \"reject\"",
        ),
        (
            "[smtpd]\nline_length_limit = 100",
            2,
            "key `smtpd.line_length_limit`: bad value 100: must be at least 512",
        ),
        (
            "[smtpd]\nrecipient_limit = 0",
            2,
            "key `smtpd.recipient_limit`: bad value 0: must be at least 1",
        ),
        (
            "[smtpd]\nmessage_size_limit = -1",
            2,
            "key `smtpd.message_size_limit`: bad value -1: must be at least 0",
        ),
        (
            "[smtpd]\nhard_error_limit = 5000000000",
            2,
            "key `smtpd.hard_error_limit`: bad value 5000000000: too large",
        ),
        (
            "[smtpd]\nbanner = \"x\\r\\n250 y\"",
            2,
            "key `smtpd.banner`: bad value \"x\\r\\n250 y\": control characters (line breaks) are not allowed",
        ),
        (
            "[queue]\ndirectory = \"spool\"",
            2,
            "key `queue.directory`: bad value \"spool\": must be an absolute path",
        ),
        (
            "[server]\nrun_directory = \"$hostname\"",
            2,
            "key `server.run_directory`: bad value \"$hostname\" (expands to \"box.localdomain\"): must be an absolute path",
        ),
        (
            "[queue]\nmaximal_backoff = \"1m\"",
            2,
            "key `queue.maximal_backoff`: bad value \"1m\": below queue.minimal_backoff (5m)",
        ),
        (
            "[queue]\nminimal_backoff = \"2h\"",
            2,
            "key `queue.minimal_backoff`: bad value \"2h\": above queue.maximal_backoff (4000s)",
        ),
        (
            "[relay]\nsasl_password_files = [\n  \"hash:/etc/postern/sasl_passwd\",\n  \"hash:sasl_passwd\",\n]",
            4,
            "key `relay.sasl_password_files`: bad value \"hash:sasl_passwd\": the file must be an absolute path",
        ),
        (
            "[relay]\nsasl_password_files = [\"mysql:/etc/postern/sasl.cf\"]",
            2,
            "key `relay.sasl_password_files`: bad value \"mysql:/etc/postern/sasl.cf\": unsupported table type \"mysql\" (hash, texthash, regexp, pcre, inline, static)",
        ),
        (
            "[dkim]\nkeys = [\n  \"example.org:a:/k/a.pem\",\n  \"example.org:/k/b.pem\",\n]",
            4,
            "key `dkim.keys`: bad value \"example.org:/k/b.pem\": expected domain:selector:/path/to/key.pem",
        ),
        (
            "[dkim]\nkeys = [\n  \"example.org:a:/k/a.pem\",\n  \"Example.org:A:/k/b.pem\",\n]",
            4,
            "key `dkim.keys`: bad value \"Example.org:A:/k/b.pem\": selector a of example.org is given twice (first: /k/a.pem)",
        ),
        (
            "[dkim]\nheaders = [\"Subject\", \"To\"]",
            2,
            "key `dkim.headers`: bad value [\"Subject\", \"To\"]: must hold \"From\" (RFC 6376 section 5.4: From is always signed)",
        ),
        (
            "[dkim]\nheaders = [\"From\", \"X Y\"]",
            2,
            "key `dkim.headers`: bad value \"X Y\": not a header field name (printable ASCII, no `:` or blank)",
        ),
        (
            "[dkim]\nsign = [\"mynetworks\", \"everyone\"]",
            2,
            "key `dkim.sign`: bad value \"everyone\": must be one of \"mynetworks\", \"authenticated\" or \"local\"",
        ),
        (
            "[dkim]\ncanonicalization = \"relaxed/nofws\"",
            2,
            "key `dkim.canonicalization`: bad value \"relaxed/nofws\": expected \"relaxed/relaxed\", \"relaxed/simple\", \"simple/relaxed\" or \"simple/simple\"",
        ),
        (
            "[relay]\nsasl_password_files = [\"sasl_passwd\"]",
            2,
            "key `relay.sasl_password_files`: bad value \"sasl_passwd\": expected type:name (\"hash:/etc/postern/sasl_passwd\") or an absolute path",
        ),
    ];
    for (text, line, message) in cases {
        assert_eq!(err(text), format!("{FILE}:{line}: {message}"), "{text:?}");
    }
}

#[test]
fn syntax_errors_name_file_and_line() {
    let e = err("[smtpd]\nvrfy = true\nbanner = \"unterminated\n");
    assert!(e.starts_with(&format!("{FILE}:3:")), "{e}");
    assert!(e.contains("syntax error"), "{e}");
    let e = err("[smtpd]\nvrfy = true\nvrfy = false\n");
    assert!(e.starts_with(&format!("{FILE}:3:")), "{e}");
    assert!(e.contains("duplicate key `vrfy`"), "{e}");
    let e = err("[server]\n[server]\n");
    assert!(e.starts_with(&format!("{FILE}:2:")), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = load::utf8(b"[server]\nhostname = \"a\xff\"\n", FILE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FILE}:2:14: syntax error: invalid UTF-8")
    );
}

#[test]
fn issue_14_a_listener_named_twice_is_refused() {
    assert_eq!(
        err("[smtpd]\nlisten = [\"127.0.0.1:25\", \"127.0.0.1:25\"]\n"),
        "/etc/postern/postern.toml:2: key `smtpd.listen`: bad value \"127.0.0.1:25\": 127.0.0.1:25 is named twice"
    );
    assert_eq!(
        err("[smtpd]\nlisten = [\"[::1]:25\", \"[::]:25\"]\n"),
        "/etc/postern/postern.toml:2: key `smtpd.listen`: bad value \"[::]:25\": [::]:25 already listens on [::1]:25: the two cannot both be bound"
    );
    for fine in [
        "[\"0.0.0.0:25\", \"[::]:25\"]",
        "[\"127.0.0.1:25\", \"[::]:25\"]",
        "[\"127.0.0.1:25\", \"127.0.0.1:587\"]",
        "[\"127.0.0.1:0\", \"127.0.0.1:0\"]",
        "[\"0.0.0.0:25\", \"[::1]:25\"]",
        "[\"127.0.0.1:25\", \"[::1]:25\"]",
    ] {
        parse(&format!("[smtpd]\nlisten = {fine}\n")).unwrap();
    }
}

#[test]
fn issue_21_mailbox_transport_takes_only_an_lmtp_server() {
    let key = |value: &str| format!("[local]\nmailbox_transport = \"{value}\"\n");
    let bad = |value: &str| {
        format!(
            "/etc/postern/postern.toml:2: key `local.mailbox_transport`: bad value \"{value}\": "
        )
    };
    assert_eq!(
        err(&key("lmtp:unix:private/dovecot-lmtp")),
        bad("lmtp:unix:private/dovecot-lmtp")
            + "the socket must be an absolute path: give the LMTP server's socket as \
               lmtp:unix:/path (Postfix's \"private/dovecot-lmtp\" is relative to its queue \
               directory, e.g. /var/spool/postfix/private/dovecot-lmtp; Dovecot's own is \
               /run/dovecot/lmtp)"
    );
    let forms = "lmtp:unix:/run/dovecot/lmtp, lmtp:inet:host:port or lmtp:[host]:port";
    for other in ["dovecot", "smtp:[10.0.0.1]:25", "local:", "cyrus"] {
        assert_eq!(
            err(&key(other)),
            bad(other) + "only an LMTP server can take the mailbox deliveries: " + forms
        );
    }
    for ambiguous in ["lmtp:dovecot.example:24", "lmtp:127.0.0.1"] {
        assert_eq!(
            err(&key(ambiguous)),
            bad(ambiguous) + "write the LMTP server as " + forms
        );
    }
    assert_eq!(
        err(&key("lmtp:inet:h:0")),
        bad("lmtp:inet:h:0") + "\"h:0\": bad port \"0\""
    );
    assert_eq!(
        err(&key("lmtp:unix:")),
        bad("lmtp:unix:")
            + "\"unix:\": the socket must be an absolute path (unix:/run/dovecot/lmtp)"
    );
    // The forms it takes, printed back as written.
    for (good, shown) in [
        ("lmtp:unix:/run/dovecot/lmtp", "lmtp:unix:/run/dovecot/lmtp"),
        ("lmtp:inet:127.0.0.1:2424", "lmtp:[127.0.0.1]:2424"),
        ("LMTP:inet:Dovecot.Example", "lmtp:[dovecot.example]:24"),
        ("lmtp:[10.0.0.1]:24", "lmtp:[10.0.0.1]:24"),
    ] {
        let c = super::ok(&key(good));
        let t = c.local.mailbox_transport.as_ref().map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some(shown), "{good}");
    }
    assert_eq!(super::ok(&key("")).local.mailbox_transport, None);
    assert_eq!(super::ok("").local.mailbox_transport, None);
}
