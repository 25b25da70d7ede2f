//! Issue 15: `postern status|reload|stop|start` and `postern check` when
//! systemd runs the mail system. There is no systemd as PID 1 here, so a
//! stand-in `systemctl` on PATH answers `show` from a file and records
//! every call; what postern asks and does is checked against it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// A stand-in `systemctl` in its own directory, with what it answers and
/// what it was asked.
struct FakeSystemctl {
    dir: tempfile::TempDir,
}

impl FakeSystemctl {
    /// `show` answers `show`; other verbs exit with `exit`.
    fn new(show: &str, exit: u8) -> FakeSystemctl {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let answer = dir.path().join("show");
        std::fs::write(&answer, show).unwrap();
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncase \"$1\" in\n  show) cat '{}' ;;\n  *) exit {exit} ;;\nesac\n",
            log.display(),
            answer.display()
        );
        let path = dir.path().join("systemctl");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeSystemctl { dir }
    }

    /// The calls, one line each (`show --property=… -- UNITS`, `stop …`).
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The calls other than `show`: what postern had systemd do.
    fn actions(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("show "))
            .collect()
    }

    /// `postern --config CONFIG ARGS…` with this systemctl first on PATH,
    /// as an administrator runs it (not from a unit).
    fn command(&self, config: &Path, args: &[&str]) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = vec![self.dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env_remove("INVOCATION_ID");
        cmd
    }

    fn postern(&self, config: &Path, args: &[&str]) -> Output {
        self.command(config, args).output().unwrap()
    }
}

/// What `systemctl show` says of a running system whose qmgr socket is
/// `qmgr_sock`, smtpd socket listening on `smtp`.
fn running_system(qmgr_sock: &Path, smtp: &str, smtpd_pid: u32) -> String {
    format!(
        "Id=postern.target\nLoadState=loaded\nActiveState=active\nSubState=active\n\
         ActiveEnterTimestamp=Mon 2026-12-07 04:00:00 UTC\n\n\
         Id=postern-local.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=101\n\n\
         Id=postern-smtp.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=102\n\n\
         Id=postern-qmgr.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=103\n\n\
         Id=postern-smtpd.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID={smtpd_pid}\n\n\
         Id=postern-smtpd.socket\nLoadState=loaded\nActiveState=active\nListen={smtp} (Stream)\n\n\
         Id=postern-qmgr.socket\nLoadState=loaded\nActiveState=active\nListen={} (Stream)\n",
        qmgr_sock.display()
    )
}

fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_reports_the_systemd_run_system() {
    let p = Postern::configure("", &[], None);
    let fake = FakeSystemctl::new(
        &running_system(&p.run_dir().join("qmgr.sock"), "127.0.0.1:25", 104),
        0,
    );
    let out = fake.postern(&p.config, &["status"]);
    let text = out_text(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    for line in [
        "postern is running under systemd (postern.target active since Mon 2026-12-07 04:00:00 UTC)\n",
        "  local  running (pid 101)\n",
        "  qmgr   running (pid 103)\n",
        "  smtpd  running (pid 104)\n",
        "  smtp listeners: 127.0.0.1:25\n",
        "queue: qmgr does not answer",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("not running"), "{text}");
    assert_eq!(fake.actions(), Vec::<String>::new());
}

#[test]
fn stop_reload_and_start_go_through_systemctl() {
    let p = Postern::configure("", &[], None);
    let fake = FakeSystemctl::new(
        &running_system(&p.run_dir().join("qmgr.sock"), "127.0.0.1:25", 104),
        0,
    );

    let out = fake.postern(&p.config, &["stop"]);
    assert!(out.status.success(), "{}", out_text(&out));
    assert_eq!(
        fake.actions(),
        ["stop postern.target postern-*.socket postern-*.service"]
    );

    let out = fake.postern(&p.config, &["reload"]);
    assert!(out.status.success(), "{}", out_text(&out));
    assert_eq!(fake.actions()[1..], ["reload postern.target"]);

    let out = fake.postern(&p.config, &["start"]);
    assert!(out.status.success(), "{}", out_text(&out));
    assert_eq!(
        fake.actions()[2..],
        [
            "reset-failed postern.target postern-*.socket postern-*.service",
            "start postern.target"
        ]
    );
    // In the foreground postern is the supervisor (a service of its own,
    // or a test): systemd is not asked.
    assert!(!fake.calls().iter().any(|c| c.contains("--foreground")));
}

#[test]
fn reload_refuses_a_configuration_with_errors_without_asking_systemd() {
    let p = Postern::configure("", &[], None);
    let fake = FakeSystemctl::new(
        &running_system(&p.run_dir().join("qmgr.sock"), "127.0.0.1:25", 104),
        0,
    );
    // A configured alias file that is missing: an error for postern check,
    // as for ExecReload=.
    std::fs::remove_file(p.dir.path().join("aliases")).unwrap();
    let out = fake.postern(&p.config, &["reload"]);
    let text = out_text(&out);
    println!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("error: ") && text.contains("local.alias_files"),
        "{text}"
    );
    assert_eq!(fake.actions(), Vec::<String>::new());
    // A file that does not load at all is refused before anything else.
    p.edit_config("[smtpd]", "[smtpd]\nlisen = 1");
    std::fs::write(p.dir.path().join("aliases"), "").unwrap();
    let out = fake.postern(&p.config, &["reload"]);
    assert!(!out.status.success(), "{}", out_text(&out));
    assert_eq!(fake.actions(), Vec::<String>::new());
}

#[test]
fn a_failing_systemctl_fails_the_command() {
    let p = Postern::configure("", &[], None);
    let fake = FakeSystemctl::new(
        &running_system(&p.run_dir().join("qmgr.sock"), "127.0.0.1:25", 104),
        1,
    );
    for verb in ["reload", "stop"] {
        let out = fake.postern(&p.config, &[verb]);
        let text = out_text(&out);
        assert!(!out.status.success(), "{verb}: {text}");
        assert!(
            text.contains(&format!("systemctl {verb} postern.target")),
            "{verb}: {text}"
        );
    }
}

#[test]
fn a_systemd_system_on_another_run_directory_is_not_this_one() {
    let p = Postern::configure("", &[], None);
    let fake = FakeSystemctl::new(
        &running_system(Path::new("/run/postern/qmgr.sock"), "127.0.0.1:25", 104),
        0,
    );
    let out = fake.postern(&p.config, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern is not running\n"
    );
    for verb in ["stop", "reload"] {
        let out = fake.postern(&p.config, &[verb]);
        assert!(!out.status.success(), "{verb}");
        assert!(
            out_text(&out).contains("postern is not running"),
            "{}",
            out_text(&out)
        );
    }
    assert_eq!(fake.actions(), Vec::<String>::new());
}

#[test]
fn check_warns_when_systemd_or_smtpd_listen_elsewhere() {
    let p = Postern::configure("", &[], None);
    p.edit_config("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]");
    // A listener of this process stands for the running smtpd's.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let fake = FakeSystemctl::new(
        &running_system(
            &p.run_dir().join("qmgr.sock"),
            "0.0.0.0:25",
            std::process::id(),
        ),
        0,
    );
    let out = fake.postern(&p.config, &["check"]);
    let text = out_text(&out);
    println!("{text}");
    assert!(
        text.contains(
            "postern: warning: systemd's postern-smtpd.socket listens not on 127.0.0.1:1 of smtpd.listen, but on 0.0.0.0:25 that it does not name; postern-generator writes its listeners from smtpd.listen: run systemctl daemon-reload, then systemctl restart postern.target"
        ),
        "{text}"
    );
    let running = text
        .lines()
        .find(|l| l.contains("the running smtpd"))
        .unwrap_or_else(|| panic!("no warning about the running smtpd in\n{text}"));
    assert!(
        running.contains(&format!("(pid {})", std::process::id()))
            && running.contains(&format!("127.0.0.1:{port}")),
        "{running}"
    );
    assert_eq!(fake.actions(), Vec::<String>::new());

    // Run by a unit (ExecStartPre=, ExecReload=), check asks systemd
    // nothing: smtpd compares what it is handed itself.
    let fake = FakeSystemctl::new(
        &running_system(
            &p.run_dir().join("qmgr.sock"),
            "0.0.0.0:25",
            std::process::id(),
        ),
        0,
    );
    let out = fake
        .command(&p.config, &["check"])
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(!out_text(&out).contains("listens"), "{}", out_text(&out));
    assert_eq!(fake.calls(), Vec::<String>::new());
    drop(held);
}

/// Issue 18: `postern check` compares each submission unit with its key
/// and names that key; `postern status` lists their listeners.
#[test]
fn issue_18_check_and_status_name_the_submission_keys() {
    let p = Postern::configure(
        "[submission]\nlisten = [\"127.0.0.1:587\"]\n\
         [tls]\nchain_files = [\"{dir}/chain.pem\"]\n\
         [sasl]\nbackend = \"passwd\"\npassword_file = \"{dir}/passwd\"\n",
        &[],
        None,
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mail.test.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    write_file(
        &p.dir.path().join("chain.pem"),
        format!("{}{}", key.serialize_pem(), cert.pem()).as_bytes(),
    );
    write_file(&p.dir.path().join("passwd"), b"# no login yet\n");
    // The submission unit masked (daemon-reload not run since the key was
    // set); the submissions unit listening where no key says.
    let show = format!(
        "{}\nId=postern-submission.socket\nLoadState=masked\nActiveState=inactive\n\n\
         Id=postern-submissions.socket\nLoadState=loaded\nActiveState=active\n\
         Listen=0.0.0.0:465 (Stream)\n",
        running_system(&p.run_dir().join("qmgr.sock"), "127.0.0.1:25", 0)
    );
    let fake = FakeSystemctl::new(&show, 0);
    let out = fake.postern(&p.config, &["check"]);
    let text = out_text(&out);
    println!("{text}");
    for warning in [
        "postern: warning: systemd's postern-submission.socket listens not on 127.0.0.1:587 of submission.listen; postern-generator writes its listeners from submission.listen: run systemctl daemon-reload, then systemctl restart postern.target",
        "postern: warning: systemd's postern-submissions.socket listens on 0.0.0.0:465 that submission.implicit_tls_listen does not name; postern-generator writes its listeners from submission.implicit_tls_listen",
    ] {
        assert!(text.contains(warning), "no {warning:?} in\n{text}");
    }
    // smtpd.listen (port 0: any port) agrees with the unit's 127.0.0.1:25.
    assert!(!text.contains("postern-smtpd.socket"), "{text}");
    let asked = fake.calls();
    assert!(
        asked.iter().any(|c| c.starts_with("show ")
            && c.contains(" postern-smtpd.socket postern-submission.socket postern-submissions.socket postern-metrics.socket postern-smtpd.service")),
        "{asked:?}"
    );

    let out = fake.postern(&p.config, &["status"]);
    let text = out_text(&out);
    println!("{text}");
    assert!(
        text.contains("  smtp listeners: 127.0.0.1:25\n  submissions listeners: 0.0.0.0:465\n"),
        "{text}"
    );
    assert!(!text.contains("  submission listeners"), "{text}");
    assert_eq!(fake.actions(), Vec::<String>::new());
}
