//! The queue: large messages, crashes, deferral and restarts.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn large_message_goes_through_a_file_of_its_own() {
    let p = Postern::start("");
    let user = p.user.clone();
    let mut body = b"Subject: large\r\n\r\n".to_vec();
    let line = b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n";
    while body.len() < 5 << 20 {
        body.extend_from_slice(line);
    }
    let path = p.dir.path().join("large.eml");
    write_file(&path, &body);
    let out = python_smtplib(
        p.addr.port(),
        "s@example.org",
        &format!("{user}@localhost"),
        &path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = p.wait_delivered(&user, 1, 30);
    assert_eq!(body_after_added_headers(&files[0]), lf(&body));
    // Once delivered, nothing of it is left in the queue.
    p.wait_log(": removed", 1, 10);
    let left: Vec<_> = std::fs::read_dir(p.queue_dir().join("incoming"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".msg"))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn crashed_qmgr_and_local_lose_nothing() {
    let p = Postern::start("");
    let user = p.user.clone();
    let total = 60;
    let addr = p.addr;
    let sender = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for s in 0..6 {
            let mut c = Client::connect(addr, None);
            c.cmd("EHLO c.example");
            for m in 0..10 {
                let tag = format!("msg-{s}-{m}");
                assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
                assert_eq!(
                    c.cmd(&format!("RCPT TO:<{user}@localhost>")),
                    "250 2.1.5 Ok"
                );
                assert!(c.cmd("DATA").starts_with("354"));
                let r = c.cmd(&format!("Subject: {tag}\r\n\r\n{tag}\r\n."));
                assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
                ids.push(tag);
                std::thread::sleep(Duration::from_millis(15));
            }
            c.cmd("QUIT");
        }
        ids
    });
    std::thread::sleep(Duration::from_millis(200));
    let kill9 = |role: &str| {
        let pid = p.role_pid(role);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    };
    kill9("qmgr");
    std::thread::sleep(Duration::from_millis(300));
    kill9("local");
    std::thread::sleep(Duration::from_millis(700));
    kill9("qmgr");
    let tags = sender.join().unwrap();
    assert_eq!(tags.len(), total);
    // Duplicates are allowed (a crash between a delivery and the record
    // of its outcome); a missing message is not. Wait until every tag is
    // there.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let mut seen = std::collections::HashMap::new();
        for f in p.delivered(&p.user) {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            if let Some(tag) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
                *seen.entry(tag.to_string()).or_insert(0) += 1;
            }
        }
        if tags.iter().all(|t| seen.contains_key(t)) || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for t in &tags {
        assert!(
            seen.contains_key(t),
            "{t} was never delivered; log:\n{}",
            p.log()
        );
    }
    assert!(p.log().contains("killed by signal 9"));
}

#[test]
fn deferred_mail_survives_a_restart() {
    // Other domains are deferred until outbound delivery exists; that is a
    // real deferral through the state log and back-off.
    let mut p = Postern::start("");
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<far@remote.example>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: later\r\n\r\nx\r\n.").starts_with("250 "));
    c.cmd("QUIT");
    p.wait_log("status=deferred", 1, 10);
    let st = p.postern(&["status"]);
    let out = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(out.contains("postern is running"), "{out}");
    assert!(out.contains("queue: 1 messages"), "{out}");
    p.stop();
    p.launch();
    let st = p.postern(&["status"]);
    let out = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(out.contains("queue: 1 messages"), "{out}\n{}", p.log());
    p.wait_log("status=deferred", 2, 10);
}

/// A message deferred long enough moves out of its segment into a file of
/// its own in deferred/, its segment goes, and it survives a restart from
/// there.
#[test]
fn long_deferred_message_moves_to_deferred_and_survives_restart() {
    let mut p = Postern::start(
        "[queue]\ndirectory = \"{dir}/queue\"\nminimal_backoff = \"1s\"\nmaximal_backoff = \"1s\"\nrun_delay = \"1s\"\nmove_deferred_after = \"1s\"\n",
    );
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<far@remote.example>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: moving\r\n\r\nx\r\n.");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    p.wait_log(&format!("{id}: moved to deferred/"), 1, 20);
    let file = p.queue_dir().join("deferred").join(&id);
    assert!(file.exists());
    p.stop();
    // The segment is sealed at shutdown; with its only message moved, the
    // next qmgr deletes it.
    p.launch();
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 3, 20);
    let st = p.postern(&["status"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("queue: 1 messages"));
    let segments: Vec<_> = std::fs::read_dir(p.queue_dir().join("incoming"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(
        segments.iter().all(|s| !s.contains(&id[..8])) || segments.len() <= 1,
        "{segments:?}"
    );
    assert!(file.exists());
}

/// postsuper's operations: hold (kept across a restart), release, requeue,
/// delete.
#[test]
fn hold_release_requeue_delete() {
    let mut p = Postern::start(
        "[queue]\ndirectory = \"{dir}/queue\"\nminimal_backoff = \"1h\"\nmaximal_backoff = \"2h\"\nrun_delay = \"1s\"\n",
    );
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<far@remote.example>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: held\r\n\r\nx\r\n.");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 1, 10);

    let out = p.postern(&["queue", "hold", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern: Placed on hold: 1 message\n"
    );
    p.wait_log(&format!("{id}: placed on hold"), 1, 5);
    // A requeue of a held message does not deliver it.
    p.postern(&["queue", "requeue", "ALL"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        p.log()
            .matches(&format!("{id}: to=<far@remote.example>"))
            .count(),
        1
    );
    let st = String::from_utf8_lossy(&p.postern(&["status"]).stdout).to_string();
    assert!(st.contains("1 messages on hold"), "{st}");

    // Held across a restart.
    p.stop();
    p.launch();
    p.wait_log(&format!("{id}: on hold"), 1, 10);
    let st = String::from_utf8_lossy(&p.postern(&["status"]).stdout).to_string();
    assert!(st.contains("1 messages on hold"), "{st}");

    // Release: tried at once again.
    let out = p.postern(&["queue", "release", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern: Released from hold: 1 message\n"
    );
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 2, 10);
    // Requeue: at once, despite the one-hour back-off.
    let out = p.postern(&["queue", "requeue", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern: Requeued: 1 message\n"
    );
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 3, 10);

    let out = p.postern(&["queue", "delete", "0000000000000A", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern: Deleted: 1 message\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("0000000000000A: no such message in the queue")
    );
    p.wait_log(&format!("{id}: removed"), 1, 5);
    let st = String::from_utf8_lossy(&p.postern(&["status"]).stdout).to_string();
    assert!(st.contains("queue: 0 messages"), "{st}");
    // Deleted stays deleted after a restart.
    p.stop();
    p.launch();
    let st = String::from_utf8_lossy(&p.postern(&["status"]).stdout).to_string();
    assert!(st.contains("queue: 0 messages"), "{st}");
}

/// mailq in Postfix's layout, as `postern queue list`, as a `mailq`
/// symlink, and as JSON lines; exit 69 when postern is down.
#[test]
fn mailq_lists_the_queue() {
    let mut p = Postern::start("");
    let empty = p.postern(&["queue", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&empty.stdout),
        "Mail queue is empty\n"
    );
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<far@remote.example>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: listed\r\n\r\nx\r\n.");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 1, 10);

    let out = p.postern(&["queue", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------"
    );
    assert!(lines[1].starts_with(&id), "{text}");
    assert!(lines[1].ends_with(" s@example.org"), "{text}");
    assert!(
        lines[2]
            .trim_start()
            .starts_with("(connect to 127.0.0.1[127.0.0.1]:1: Connection refused)"),
        "{text}"
    );
    assert_eq!(lines[3], format!("{:47}far@remote.example", ""));
    assert!(text.ends_with("-- 0 Kbytes in 1 Request.\n"), "{text}");

    let json = p.postern(&["queue", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["queue_id"], id.as_str());
    assert_eq!(v["recipients"][0]["address"], "far@remote.example");

    // Any user may list the queue (the read-only showq socket) …
    if is_root() {
        let out = p.postern_as(65534, &["queue", "list"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            text,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // … but that socket does nothing else.
    {
        use std::io::{Read, Write};
        let mut s =
            std::os::unix::net::UnixStream::connect(p.run_dir().join("showq.sock")).unwrap();
        s.write_all(
            format!("{{\"op\":\"queue\",\"action\":\"delete\",\"ids\":[\"{id}\"]}}\n").as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "");
        let again = p.postern(&["queue", "list"]);
        assert_eq!(String::from_utf8_lossy(&again.stdout), text);
    }
    // One message, like postcat.
    let show = p.postern(&["queue", "show", &id]);
    let shown = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(
        shown.starts_with(&format!("*** ENVELOPE RECORDS {id} ***\n")),
        "{shown}"
    );
    assert!(shown.contains("sender: s@example.org\n"), "{shown}");
    assert!(
        shown.contains("recipient: far@remote.example (pending)\n"),
        "{shown}"
    );
    assert!(shown.contains("Subject: listed\n\nx\n"), "{shown}");
    assert!(
        shown.ends_with(&format!("*** MESSAGE FILE END {id} ***\n")),
        "{shown}"
    );
    assert_eq!(
        p.postern(&["queue", "show", "0000000000000A"])
            .status
            .code(),
        Some(1)
    );
    // The same binary called mailq.
    let link = p.dir.path().join("mailq");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link)
        .arg("--config")
        .arg(&p.config)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);

    p.stop();
    let down = p.postern(&["queue", "list"]);
    assert_eq!(down.status.code(), Some(69));
    assert!(
        String::from_utf8_lossy(&down.stderr)
            .contains("Queue report unavailable - mail system is down")
    );
}

/// `postern queue shape`: qshape's table from the live queue, for
/// messages of known ages (their arrival times from `queue list --json`,
/// the reference time given), by recipient and by sender domain, held
/// mail left out unless asked for, and as JSON.
#[test]
fn queue_shape_counts_domains_by_age() {
    // Every remote domain to a port that refuses: deferred at once.
    let mut p = Postern::start("[relay]\ntransport = { \"*\" = \"smtp:[127.0.0.1]:1\" }\n");
    let send = |p: &mut Postern, from: &str, rcpts: &[&str]| -> String {
        let mut c = p.client();
        c.cmd("EHLO c.example");
        c.cmd(&format!("MAIL FROM:<{from}>"));
        for r in rcpts {
            assert_eq!(c.cmd(&format!("RCPT TO:<{r}>")), "250 2.1.5 Ok");
        }
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd("Subject: shape\r\n\r\nx\r\n.");
        c.cmd("QUIT");
        let id = r.rsplit(' ').next().unwrap().to_string();
        p.wait_log(&format!("{id}: to=<{}>", rcpts[0]), 1, 10);
        id
    };
    let first = send(
        &mut p,
        "s@Example.org",
        &["a@one.example", "b@ONE.example", "c@two.example"],
    );
    // A later second for the next ones.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = send(&mut p, "", &["d@two.example"]);
    let held = send(&mut p, "s@example.org", &["h@three.example"]);
    assert!(p.postern(&["queue", "hold", &held]).status.success());

    let list = p.postern(&["queue", "list", "--json"]);
    let arrival = |id: &str| -> u64 {
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["queue_id"] == id)
            .unwrap()["arrival_time"]
            .as_u64()
            .unwrap()
    };
    let last = arrival(&second);
    assert!(last > arrival(&first));
    // The later messages 4 min 59 s old (the first bucket), the first
    // one 5 minutes or more (the second).
    let now = (last + 299).to_string();
    let shape = |args: &[&str]| -> String {
        let mut all = vec!["queue", "shape", "--now", now.as_str()];
        all.extend_from_slice(args);
        let out = p.postern(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let table = |rows: &[&str]| -> String {
        let mut t = format!("{:>80}\n", "T  5 10 20 40 80 160 320 640 1280 1280+");
        for r in rows {
            t += &format!("{r:>80}\n");
        }
        t
    };
    assert_eq!(
        shape(&[]),
        table(&[
            "TOTAL  4  1  3  0  0  0   0   0   0    0     0",
            "one.example  2  0  2  0  0  0   0   0   0    0     0",
            "two.example  2  1  1  0  0  0   0   0   0    0     0",
        ])
    );
    assert_eq!(
        shape(&["--by", "sender-domain"]),
        table(&[
            "TOTAL  2  1  1  0  0  0   0   0   0    0     0",
            "example.org  1  0  1  0  0  0   0   0   0    0     0",
            "MAILER-DAEMON  1  1  0  0  0  0   0   0   0    0     0",
        ])
    );
    assert_eq!(
        shape(&["hold"]),
        table(&[
            "TOTAL  1  1  0  0  0  0   0   0   0    0     0",
            "three.example  1  1  0  0  0  0   0   0   0    0     0",
        ])
    );
    let json: serde_json::Value =
        serde_json::from_str(&shape(&["--json", "-b", "3", "-l"])).unwrap();
    assert_eq!(json["by"], "recipient-domain");
    assert_eq!(json["bucket_minutes"], serde_json::json!([5, 10, null]));
    assert_eq!(
        json["rows"][0],
        serde_json::json!({"domain": "TOTAL", "total": 4, "counts": [1, 3, 0]})
    );
}
