//! The generator's output for every kind of configuration, and what it
//! leaves in its directory.

use super::*;

const SOURCE: &str = "/etc/postern/postern.toml";

fn plan_for(toml: &str) -> Output {
    let config = Config::from_toml(toml, SOURCE).unwrap();
    plan(Ok(&config), Path::new(SOURCE))
}

/// `postern-smtpd.socket`'s part of `out`.
fn smtpd(out: &Output) -> &Listeners {
    let l = &out.sockets[0];
    assert_eq!(l.unit, "postern-smtpd.socket");
    l
}

/// The `[Socket]` section's lines of smtpd's drop-in, comments left out.
fn socket_lines(out: &Output) -> Vec<&str> {
    lines_of(smtpd(out))
}

/// The `[Socket]` section's lines of `l`'s drop-in, comments left out.
fn lines_of(l: &Listeners) -> Vec<&str> {
    l.dropin
        .split_once("[Socket]\n")
        .unwrap()
        .1
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect()
}

/// Issue 16: a queue or run directory the units do not expect is
/// followed by drop-ins; the units' own need none.
#[test]
fn moved_queue_and_run_directories_get_paths_dropins() {
    assert!(plan_for("").paths.is_empty());
    let out = plan_for("[queue]\ndirectory = \"/srv/q\"\n[server]\nrun_directory = \"/run/mx\"\n");
    let units: Vec<&str> = out.paths.iter().map(|(u, _)| *u).collect();
    assert_eq!(
        units,
        [
            "postern-smtpd.service",
            "postern-qmgr.service",
            "postern-submit.socket",
            "postern-qmgr.socket",
            "postern-showq.socket",
            "postern-local.socket",
            "postern-smtp.socket",
            "postern-local.service",
        ]
    );
    assert!(
        out.paths[0]
            .1
            .ends_with("\n[Service]\nReadWritePaths=-/srv/q\n")
    );
    assert!(
        out.paths[2]
            .1
            .ends_with("\n[Socket]\nListenStream=\nListenStream=/run/mx/submit.sock\n")
    );
    assert!(out.messages.is_empty(), "{:?}", out.messages);
    // qmgr's metrics socket only with the endpoint on (masked otherwise).
    let on = plan_for(
        "[server]\nrun_directory = \"/run/mx\"\n[metrics]\nlisten = [\"127.0.0.1:9154\"]\n",
    );
    assert!(
        on.paths
            .iter()
            .any(|(u, t)| *u == "postern-qmgr-metrics.socket"
                && t.ends_with("ListenStream=/run/mx/metrics.sock\n")),
        "{:?}",
        on.paths
    );
    let out = plan_for("[queue]\ndirectory = \"/home/mail/queue\"\n");
    assert_eq!(out.paths.len(), 2);
    assert_eq!(out.messages.len(), 1);
    let out = plan_for("[server]\nrun_directory = \"/run/user/1000/postern\"\n");
    assert_eq!(out.messages.len(), 1);
    assert!(
        out.messages[0].1.contains("server.run_directory"),
        "{:?}",
        out.messages
    );
    assert!(
        out.messages[0].1.contains("ProtectHome="),
        "{:?}",
        out.messages
    );
    // Written, then removed when the file goes back to the default.
    let dir = tempfile::tempdir().unwrap();
    let moved = plan_for("[queue]\ndirectory = \"/srv/q\"\n");
    write(&moved, dir.path()).unwrap();
    let file = dir.path().join("postern-qmgr.service.d").join(PATHS_DROPIN);
    assert!(file.exists());
    write(&plan_for(""), dir.path()).unwrap();
    assert!(!file.exists());
}

#[test]
fn loopback_only() {
    let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:25\"]\n");
    assert_eq!(
        socket_lines(&out),
        ["ListenStream=", "ListenStream=127.0.0.1:25"]
    );
    assert!(!smtpd(&out).mask);
    assert!(out.messages.is_empty(), "{:?}", out.messages);
    assert!(
        smtpd(&out)
            .dropin
            .starts_with("# Written by postern-generator")
    );
    assert!(
        smtpd(&out)
            .dropin
            .contains("\n[Unit]\nSourcePath=/etc/postern/postern.toml\n")
    );
}

#[test]
fn ipv6_wildcard_takes_ipv4_too() {
    let out = plan_for("[smtpd]\nlisten = [\"[::]:25\"]\n");
    assert_eq!(
        socket_lines(&out),
        ["ListenStream=", "ListenStream=[::]:25", "BindIPv6Only=both"]
    );
    let out = plan_for("[smtpd]\nlisten = [\"[::1]:25\"]\n");
    assert_eq!(
        socket_lines(&out),
        ["ListenStream=", "ListenStream=[::1]:25"]
    );
    // Both wildcards on one port: the IPv6 one takes IPv6 only.
    let out = plan_for("[smtpd]\nlisten = [\"0.0.0.0:25\", \"[::]:25\"]\n");
    assert_eq!(
        socket_lines(&out),
        [
            "ListenStream=",
            "ListenStream=0.0.0.0:25",
            "ListenStream=[::]:25",
            "BindIPv6Only=ipv6-only"
        ]
    );
}

#[test]
fn several_listeners_and_a_specific_address() {
    let out = plan_for(
        "[smtpd]\nlisten = [\"127.0.0.1:25\", \"192.0.2.7:25\", \"[2001:db8::7]:2525\", \"0.0.0.0:587\"]\n",
    );
    assert_eq!(
        socket_lines(&out),
        [
            "ListenStream=",
            "ListenStream=127.0.0.1:25",
            "ListenStream=192.0.2.7:25",
            "ListenStream=[2001:db8::7]:2525",
            "ListenStream=0.0.0.0:587",
            "FreeBind=yes",
        ]
    );
    assert_eq!(smtpd(&out).listen.len(), 4);
    assert!(!smtpd(&out).mask);
}

#[test]
fn no_listener_masks_the_socket() {
    let out = plan_for("[smtpd]\nlisten = []\n");
    assert_eq!(socket_lines(&out), ["ListenStream="]);
    assert!(smtpd(&out).mask);
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].0, Severity::Info);
    assert!(
        out.messages[0].1.contains("smtpd.listen is empty"),
        "{:?}",
        out.messages
    );
}

#[test]
fn port_zero_is_left_out() {
    let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:0\", \"[::1]:25\"]\n");
    assert_eq!(
        socket_lines(&out),
        ["ListenStream=", "ListenStream=[::1]:25"]
    );
    assert_eq!(out.messages[0].0, Severity::Warning);
    assert!(out.messages[0].1.contains("127.0.0.1:0"));
    let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:0\"]\n");
    assert!(smtpd(&out).mask);
    assert_eq!(socket_lines(&out), ["ListenStream="]);
}

#[test]
fn a_broken_file_never_listens() {
    let reason = "/etc/postern/postern.toml:3: unknown key `smtpd.lisen`; did you mean `listen`?";
    let out = plan(Err(reason.to_string()), Path::new(SOURCE));
    assert_eq!(socket_lines(&out), ["ListenStream="]);
    assert!(smtpd(&out).listen.is_empty());
    assert!(smtpd(&out).mask);
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].0, Severity::Error);
    assert!(out.messages[0].1.starts_with(reason), "{:?}", out.messages);
    // The reason is in the file too, as comments.
    assert!(
        smtpd(&out).dropin.contains(&format!("#   {reason}\n")),
        "{}",
        smtpd(&out).dropin
    );
}

#[test]
fn write_replaces_what_an_earlier_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let masked = plan_for("[smtpd]\nlisten = []\n");
    let written = write(&masked, dir.path()).unwrap();
    // Each TCP socket unit's drop-in and mask, and qmgr's metrics socket
    // masked (the endpoint is off).
    assert_eq!(written.len(), 9, "{written:?}");
    let mask = dir.path().join("postern-smtpd.socket");
    assert_eq!(std::fs::read_link(&mask).unwrap(), Path::new("/dev/null"));
    let qmgr_metrics = dir.path().join("postern-qmgr-metrics.socket");
    assert_eq!(
        std::fs::read_link(&qmgr_metrics).unwrap(),
        Path::new("/dev/null")
    );

    let open = plan_for(
        "[smtpd]\nlisten = [\"127.0.0.1:25\"]\n[submission]\nlisten = [\"127.0.0.1:587\"]\n\
         implicit_tls_listen = [\"127.0.0.1:465\"]\n[tls]\nchain_files = [\"/k.pem\"]\n\
         [sasl]\nbackend = \"passwd\"\n[metrics]\nlisten = [\"127.0.0.1:9154\"]\n",
    );
    let written = write(&open, dir.path()).unwrap();
    assert_eq!(
        written,
        [
            "postern-smtpd.socket.d/50-postern-listen.conf",
            "postern-submission.socket.d/50-postern-listen.conf",
            "postern-submissions.socket.d/50-postern-listen.conf",
            "postern-metrics.socket.d/50-postern-listen.conf",
        ]
        .map(|f| dir.path().join(f))
    );
    for unit in [
        "smtpd",
        "submission",
        "submissions",
        "metrics",
        "qmgr-metrics",
    ] {
        let mask = dir.path().join(format!("postern-{unit}.socket"));
        assert!(
            std::fs::symlink_metadata(&mask).is_err(),
            "the mask of {unit} is still there"
        );
    }
    for (file, socket) in written.iter().zip(&open.sockets) {
        assert_eq!(std::fs::read_to_string(file).unwrap(), socket.dropin);
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("postern-smtpd.socket.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["50-postern-listen.conf"]);
}

#[test]
fn a_missing_file_is_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let written = run(&dir.path().join("nope.toml"), &[dir.path().to_path_buf()]).unwrap();
    // Four TCP units' drop-ins and masks, qmgr's metrics socket's mask.
    assert_eq!(written.len(), 9);
    for file in written.iter().filter(|f| f.ends_with(DROPIN)) {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("nope.toml"), "{text}");
        assert!(
            text.trim_end().ends_with("[Socket]\nListenStream="),
            "{text}"
        );
    }
}

/// Issue 18: each TCP socket unit from its key, in one loop: the
/// submission units from `submission.listen` and
/// `submission.implicit_tls_listen`, with the same rules as smtpd's.
#[test]
fn issue_18_submission_sockets_follow_their_keys() {
    let out = plan_for(
        "[submission]\nlisten = [\"[::]:587\", \"192.0.2.7:587\"]\n\
         implicit_tls_listen = [\"127.0.0.1:465\", \"127.0.0.1:0\"]\n\
         [tls]\nchain_files = [\"/k.pem\"]\n[sasl]\nbackend = \"dovecot\"\n",
    );
    let units: Vec<(&str, &str)> = out.sockets.iter().map(|l| (l.unit, l.key)).collect();
    assert_eq!(
        units,
        [
            ("postern-smtpd.socket", "smtpd.listen"),
            ("postern-submission.socket", "submission.listen"),
            (
                "postern-submissions.socket",
                "submission.implicit_tls_listen"
            ),
            ("postern-metrics.socket", "metrics.listen"),
        ]
    );
    let (submission, submissions) = (&out.sockets[1], &out.sockets[2]);
    assert_eq!(
        lines_of(submission),
        [
            "ListenStream=",
            "ListenStream=[::]:587",
            "ListenStream=192.0.2.7:587",
            // An IPv4 address on [::]'s port: as postern start binds it.
            "BindIPv6Only=ipv6-only",
            "FreeBind=yes"
        ]
    );
    assert!(!submission.mask);
    assert!(
        submission
            .dropin
            .contains("from submission.listen in /etc/postern/postern.toml"),
        "{}",
        submission.dropin
    );
    // Port 0 is left out with a warning naming the key.
    assert_eq!(
        lines_of(submissions),
        ["ListenStream=", "ListenStream=127.0.0.1:465"]
    );
    assert_eq!(out.messages.len(), 1, "{:?}", out.messages);
    assert_eq!(out.messages[0].0, Severity::Warning);
    assert!(
        out.messages[0]
            .1
            .contains("submission.implicit_tls_listen: 127.0.0.1:0 (port 0"),
        "{:?}",
        out.messages
    );
}

/// Issue 18: empty by default, the submission units are masked at
/// every boot without a word in the log; the drop-in says why.
/// Named but unusable (port 0 alone), that is said.
#[test]
fn issue_18_unused_submission_sockets_are_masked_quietly() {
    let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:25\"]\n");
    assert!(out.messages.is_empty(), "{:?}", out.messages);
    assert!(!smtpd(&out).mask);
    for l in &out.sockets[1..] {
        assert!(l.mask, "{}", l.unit);
        assert!(l.listen.is_empty());
        assert_eq!(lines_of(l), ["ListenStream="]);
        assert!(
            l.dropin.contains(&format!(
                "# {} is empty: no TCP listener; {} is masked beside this file.",
                l.key, l.unit
            )),
            "{}",
            l.dropin
        );
    }
    let out = plan_for(
        "[submission]\nlisten = [\"127.0.0.1:0\"]\n[tls]\nchain_files = [\"/k.pem\"]\n\
         [sasl]\nbackend = \"passwd\"\n",
    );
    assert!(out.sockets[1].mask);
    let said: Vec<&str> = out.messages.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[1].contains(
            "submission.listen names no usable listener: postern-submission.socket masked"
        ),
        "{said:?}"
    );
    // A broken file: every TCP unit masked, one error naming them all;
    // qmgr's metrics socket masked too (the endpoint is off by default).
    let out = plan(Err("bad".to_string()), Path::new(SOURCE));
    assert!(out.sockets.iter().all(|l| l.mask && l.listen.is_empty()));
    assert_eq!(out.masked_units, ["postern-qmgr-metrics.socket"]);
    assert_eq!(out.messages.len(), 1);
    assert!(
        out.messages[0].1.starts_with(
            "bad; postern-smtpd.socket, postern-submission.socket, \
             postern-submissions.socket, postern-metrics.socket will not listen"
        ),
        "{:?}",
        out.messages
    );
}
