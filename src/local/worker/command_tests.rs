//! The verdict on a command's end (sysexits, signals, time limit, status
//! codes in the output), its output and environment, and real runs of
//! `/bin/sh` (as whoever runs the tests).

use std::io::Cursor;
use std::time::Instant;

use super::*;
use DeliveryStatus::*;

fn v(ending: Ending, output: &str) -> (DeliveryStatus, String, String) {
    verdict("/usr/bin/x -y", ending, output.as_bytes(), None)
}

#[test]
fn exit_statuses_map_as_postfix_does() {
    assert_eq!(
        v(Ending::Exited(0), "chatter"),
        (
            Sent,
            "2.0.0".into(),
            "delivered to command: /usr/bin/x -y".into()
        )
    );
    assert_eq!(
        v(Ending::Exited(75), ""),
        (Deferred, "4.3.0".into(), "temporary failure".into())
    );
    assert_eq!(
        v(Ending::Exited(75), "try later\n"),
        (
            Deferred,
            "4.3.0".into(),
            "temporary failure. Command output: try later".into()
        )
    );
    assert_eq!(
        v(Ending::Exited(67), "no such user"),
        (
            Bounced,
            "5.1.1".into(),
            "user unknown. Command output: no such user".into()
        )
    );
    assert_eq!(
        v(Ending::Exited(69), ""),
        (Bounced, "5.3.0".into(), "service unavailable".into())
    );
    assert_eq!(
        v(Ending::Exited(71), "").0,
        Deferred,
        "EX_OSERR is soft in Postfix"
    );
    assert_eq!(
        v(Ending::Exited(1), "oops\nsecond line\n"),
        (
            Bounced,
            "5.3.0".into(),
            "Command died with status 1: \"/usr/bin/x -y\". Command output: oops second line"
                .into()
        )
    );
    assert_eq!(
        v(Ending::Exited(100), ""),
        (
            Bounced,
            "5.3.0".into(),
            "Command died with status 100: \"/usr/bin/x -y\"".into()
        )
    );
    assert_eq!(
        v(Ending::Signaled(9), "x"),
        (
            Deferred,
            "4.3.0".into(),
            "Command died with signal 9: \"/usr/bin/x -y\". Command output: x".into()
        )
    );
    assert_eq!(
        v(Ending::TimedOut, ""),
        (
            Deferred,
            "4.3.0".into(),
            "Command time limit exceeded: \"/usr/bin/x -y\"".into()
        )
    );
    for code in 64..=78 {
        assert!(sysexits(code).is_some());
    }
    assert_eq!(sysexits(63), None);
    assert_eq!(sysexits(79), None);
}

#[test]
fn a_status_code_in_the_output_wins() {
    assert_eq!(
        v(Ending::Exited(1), "5.2.2 mailbox full\n"),
        (Bounced, "5.2.2".into(), "mailbox full".into())
    );
    assert_eq!(
        v(Ending::Exited(75), "4.7.1\tgreylisted, come back"),
        (Deferred, "4.7.1".into(), "greylisted, come back".into())
    );
    // Only on failure: success stays success.
    assert_eq!(v(Ending::Exited(0), "5.2.2 full").0, Sent);
    // Without text the usual reason is kept.
    assert_eq!(
        v(Ending::Exited(3), "5.1.0"),
        (
            Bounced,
            "5.1.0".into(),
            "Command died with status 3: \"/usr/bin/x -y\"".into()
        )
    );
    // Not status codes: a 2.x.x, leading zeros, too many digits, no space.
    for text in [
        "2.0.0 ok",
        "5.01.1 x",
        "5.1.1234 x",
        "5.1.1x",
        "5.1 x",
        "5.1.1.1 x",
    ] {
        assert_eq!(
            v(Ending::Exited(1), text).1,
            "5.3.0",
            "{text} is not a status code"
        );
    }
}

#[test]
fn write_errors_other_than_a_closed_pipe_defer() {
    let e = io::Error::from_raw_os_error(libc::EIO);
    let got = verdict("c", Ending::Exited(0), b"", Some(&e));
    assert_eq!(got.0, Deferred);
    assert_eq!(
        got.2,
        "Command failed: Input/output error (os error 5): \"c\""
    );
}

#[test]
fn output_is_made_printable_and_cut() {
    assert_eq!(printable_output(b"a\tb\nc\r\x07d\n\n"), "a b c__d");
    assert_eq!(
        printable_output("\u{e9}t\u{e9}".as_bytes()),
        "\u{e9}t\u{e9}"
    );
    assert_eq!(printable_output(&[b'x'; 5000]).len(), OUTPUT_CAP);
}

#[test]
fn the_environment_is_clean_and_censored() {
    let env = environment(&Whom {
        home: "/home/bob",
        shell: "/bin/bash",
        user: "bob",
        sender: "a$(rm -rf)`x`@ex ample.org",
        recipient: "bob+list@example.org",
        local: "bob+list",
        domain: "example.org",
        extension: Some("list"),
    });
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "HOME",
            "SHELL",
            "USER",
            "LOGNAME",
            "SENDER",
            "RECIPIENT",
            "LOCAL",
            "DOMAIN",
            "EXTENSION",
            "PATH"
        ]
    );
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("SENDER"), Some("a__rm_-rf__x_@ex_ample.org"));
    assert_eq!(get("RECIPIENT"), Some("bob+list@example.org"));
    assert_eq!(get("PATH"), Some("/usr/bin:/bin"));
    let none = environment(&Whom::default());
    assert!(none.iter().all(|(k, _)| k != "EXTENSION"));
}

fn spec(command: &str, limit: u64) -> CommandSpec {
    CommandSpec {
        command: command.into(),
        env: environment(&Whom {
            home: "/",
            user: "bob",
            recipient: "bob@example.org",
            ..Whom::default()
        }),
        cwd: "/nonexistent/home".into(),
        time_limit: limit,
    }
}

fn run_with(spec: &CommandSpec, prefix: &[u8], content: &[u8]) -> (Verdict, u64) {
    let mut input = Cursor::new(content.to_vec());
    let got = run(spec, prefix, &mut input, content.len() as u64).unwrap();
    (got, input.position())
}

#[test]
fn runs_with_the_message_on_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = spec(
        &format!(
            "cat > {}; env > {}.env; pwd >> {}.env",
            out.display(),
            out.display(),
            out.display()
        ),
        10,
    );
    let (got, read) = run_with(
        &s,
        b"From a  x\nReturn-Path: <a>\n",
        b"Subject: s\n\nFrom me\n",
    );
    assert_eq!(got.0, Sent, "{got:?}");
    assert_eq!(read, 20);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"From a  x\nReturn-Path: <a>\nSubject: s\n\nFrom me\n"
    );
    let env = std::fs::read_to_string(format!("{}.env", out.display())).unwrap();
    assert!(env.contains("RECIPIENT=bob@example.org\n"), "{env}");
    assert!(env.contains("PATH=/usr/bin:/bin\n"), "{env}");
    assert!(!env.contains("CARGO"), "{env}");
    // The home directory does not exist: the command runs in `/`.
    assert!(env.ends_with("\n/\n"), "{env}");
}

#[test]
fn failures_carry_the_output() {
    let (got, _) = run_with(&spec("echo oops >&2; echo more; exit 1", 10), b"", b"x\n");
    assert_eq!(
        got,
        (
            Bounced,
            "5.3.0".into(),
            "Command died with status 1: \"echo oops >&2; echo more; exit 1\". Command output: oops more"
                .into()
        )
    );
    let (got, _) = run_with(&spec("exit 75", 10), b"", b"x\n");
    assert_eq!((got.0, got.1.as_str()), (Deferred, "4.3.0"));
    // Much output: the first bytes are kept and the command still ends.
    let (got, _) = run_with(&spec("yes | head -c 1000000; exit 2", 10), b"", b"");
    assert_eq!(got.0, Bounced);
    assert!(got.2.len() < OUTPUT_CAP + 100, "{}", got.2.len());
    assert!(got.2.ends_with("y y y"), "{}", got.2);
}

#[test]
fn a_command_that_reads_nothing_is_fine() {
    let content = vec![b'x'; 1 << 20];
    let (got, read) = run_with(&spec("exit 0", 10), b"", &content);
    assert_eq!(got.0, Sent, "{got:?}");
    // It left early: the rest is for the caller to skip.
    assert!(read <= content.len() as u64);
}

#[test]
fn the_time_limit_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("survived");
    let started = Instant::now();
    let command = format!("(sleep 3; touch {}) & sleep 30", flag.display());
    let (got, _) = run_with(&spec(&command, 1), b"", b"x\n");
    assert_eq!(
        got,
        (
            Deferred,
            "4.3.0".into(),
            format!("Command time limit exceeded: \"{command}\"")
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!flag.exists(), "the background job outlived the limit");
}

#[test]
fn a_command_that_never_reads_its_input_is_stopped_too() {
    let content = vec![b'x'; 4 << 20];
    let started = Instant::now();
    let (got, _) = run_with(&spec("sleep 30", 1), b"", &content);
    assert_eq!(got.0, Deferred);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn broken_content_is_an_error() {
    let s = spec("cat > /dev/null", 10);
    let mut input = Cursor::new(b"short".to_vec());
    match run(&s, b"", &mut input, 100) {
        Err(ContentError::Short { got: 5, len: 100 }) => {}
        other => panic!("{other:?}"),
    }
}
