//! The Prometheus endpoint (issue 23): exact counts of known mail, the
//! exposition checked by `promtool` and scraped by a real Prometheus,
//! which evaluates every query of the Grafana dashboard, hostile clients, off by default, loopback unless allowed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Start postern with the endpoint on a free port; `extra` more tables.
fn start_with_metrics(extra: &str, metrics_extra: &str) -> (Postern, u16) {
    let port = free_port();
    let p = Postern::start(&format!(
        "{extra}[metrics]\nlisten = [\"127.0.0.1:{port}\"]\n{metrics_extra}\n"
    ));
    (p, port)
}

/// One HTTP exchange: what the server sent until it closed.
fn http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /metrics`: the head and the body.
fn scrape(port: u16) -> (String, String) {
    let text = http(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    (head.to_string(), body.to_string())
}

/// The value of the sample `series` (name and labels exactly as
/// exposed), if any.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrape until every `(series, value)` is there, within `secs`.
fn scrape_until(port: u16, want: &[(&str, f64)], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, body) = scrape(port);
        if want.iter().all(|(s, v)| value(&body, s) == Some(*v)) {
            return body;
        }
        assert!(Instant::now() < deadline, "never saw {want:?} in:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_count_known_mail_exactly() {
    // 127.0.0.1 may relay, 127.0.0.3 may not; remote.example is deferred
    // (nothing listens on port 1).
    let relay = "[relay]\nnetworks = [\"127.0.0.1/32\"]\n\
                 transport = { \"remote.example\" = \"smtp:[127.0.0.1]:1\" }\n\n";
    let (mut p, port) = start_with_metrics(relay, "");
    let user = p.user.clone();

    let mut c = p.client_from("127.0.0.1");
    c.cmd("EHLO inside.example");
    for rcpt in [
        format!("{user}@localhost"),
        format!("{user}@localhost"),
        "u@remote.example".to_string(),
    ] {
        assert_eq!(c.cmd("MAIL FROM:<s@inside.example>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        assert!(
            c.cmd("Subject: m\r\n\r\nhello\r\n.")
                .starts_with("250 2.0.0")
        );
    }
    assert!(c.cmd("QUIT").starts_with("221"));

    let mut out = p.client_from("127.0.0.3");
    out.cmd("EHLO outsider.example");
    assert_eq!(out.cmd("MAIL FROM:<s@outsider.example>"), "250 2.1.0 Ok");
    assert_eq!(
        out.cmd("RCPT TO:<u@elsewhere.example>"),
        "554 5.7.1 <u@elsewhere.example>: Relay access denied"
    );
    assert!(out.cmd("QUIT").starts_with("221"));

    p.wait_delivered(&user, 2, 20);
    p.wait_log("status=deferred", 1, 20);

    let body = scrape_until(
        port,
        &[
            ("postern_messages_accepted_total{listener=\"smtp\"}", 3.0),
            (
                "postern_smtpd_connections_total{listener=\"smtp\",outcome=\"quit\"}",
                2.0,
            ),
            (
                "postern_smtpd_replies_total{class=\"5xx\",code=\"5.7.1\"}",
                1.0,
            ),
            (
                "postern_deliveries_total{transport=\"local\",status=\"sent\"}",
                2.0,
            ),
            (
                "postern_restriction_hits_total{element=\"reject_unauth_destination\",action=\"reject\"}",
                1.0,
            ),
        ],
        20,
    );
    // The deferred one: at least one attempt so far, none sent.
    let deferred = value(
        &body,
        "postern_deliveries_total{transport=\"smtp\",status=\"deferred\"}",
    );
    assert!(deferred.is_some_and(|n| n >= 1.0), "{body}");
    assert_eq!(
        value(
            &body,
            "postern_deliveries_total{transport=\"smtp\",status=\"sent\"}"
        ),
        None
    );
    // 250 after DATA, three times: 2.0.0.
    assert!(
        value(
            &body,
            "postern_smtpd_replies_total{class=\"2xx\",code=\"2.0.0\"}"
        )
        .is_some_and(|n| n >= 3.0),
        "{body}"
    );
    // One message left in the queue (the deferred one), none on hold.
    let queued: f64 = ["active", "deferred", "hold"]
        .iter()
        .filter_map(|q| value(&body, &format!("postern_queue_messages{{queue=\"{q}\"}}")))
        .sum();
    assert_eq!(queued, 1.0, "{body}");
    assert_eq!(
        value(&body, "postern_queue_messages{queue=\"hold\"}"),
        Some(0.0)
    );
    assert!(body.contains(&format!(
        "postern_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(body.contains("# TYPE postern_delivery_delay_seconds histogram\n"));
    assert!(body.contains("postern_delivery_delay_seconds_count{transport=\"local\"} 2\n"));
    // Group commits of smtpd's queue log and qmgr's state log.
    assert!(body.contains("postern_queue_fsync_seconds_count{log=\"incoming\"}"));
    assert!(body.contains("postern_queue_commit_batch_size_bucket{log=\"state\",le=\"+Inf\"}"));

    let (head, _) = scrape(port);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    promtool_check(&body);
    prometheus_scrapes(&p, port, 3.0);

    // smtpd killed: the supervisor restarts it, qmgr keeps the counts.
    let smtpd = p.role_pid("smtpd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(smtpd),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.role_pid("smtpd") == smtpd || p.role_pid("smtpd") == 0 {
        assert!(Instant::now() < deadline, "smtpd not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = p.client_from("127.0.0.1");
    c.cmd("EHLO inside.example");
    c.cmd("MAIL FROM:<s@inside.example>");
    c.cmd(&format!("RCPT TO:<{user}@localhost>"));
    c.cmd("DATA");
    assert!(
        c.cmd("Subject: m\r\n\r\nagain\r\n.")
            .starts_with("250 2.0.0")
    );
    c.cmd("QUIT");
    scrape_until(
        port,
        &[
            ("postern_messages_accepted_total{listener=\"smtp\"}", 4.0),
            ("postern_process_restarts_total{role=\"smtpd\"}", 1.0),
        ],
        20,
    );
    p.wait_delivered(&user, 3, 20);

    // postern status: each role's pid, uptime and restarts, the queue at
    // a glance (the line qmgr sends as STATUS= under systemd).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = String::from_utf8_lossy(&p.postern(&["status"]).stdout).to_string();
        let want = [
            "  metrics running (pid ",
            ", 1 restarts\n",
            "  qmgr   running (pid ",
            "queue: active ",
            ", hold 0, 4 msg/min in, 3 out\n",
        ];
        if want.iter().all(|w| st.contains(w)) {
            assert!(st.contains(", up "), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "{st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    p.stop();
}

/// The smtp agent counts its TLS handshakes and sends them with its
/// results; every role's process has its start time.
#[test]
fn metrics_count_outbound_tls_and_each_roles_start() {
    use crate::outbound::sink::{Script, Sink};
    let cert = crate::outbound::pki::self_signed(&["mx.tls.test"]);
    let sink = Sink::start(
        "127.0.0.1",
        Script::accept().with_starttls(cert.server_config()),
    );
    let (p, port) = start_with_metrics(
        &format!(
            "[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{}\" }}\n\n\
             [tls]\noutbound = \"may\"\n\n",
            sink.port()
        ),
        "",
    );
    let sender = format!("{}@localhost", p.user);
    let rcpts = ["rcpt@example.test"];
    crate::outbound::submit(&p, &sender, &rcpts, crate::outbound::MESSAGE);
    let msgs = sink.wait_messages(1, 20, || p.log());
    assert!(msgs[0].tls);
    let body = scrape_until(
        port,
        &[
            (
                "postern_tls_handshakes_total{direction=\"outbound\",outcome=\"ok\"}",
                1.0,
            ),
            (
                "postern_deliveries_total{transport=\"smtp\",status=\"sent\"}",
                1.0,
            ),
        ],
        20,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for role in ["local", "smtp", "qmgr", "smtpd", "metrics"] {
        let series = format!("postern_process_start_time_seconds{{role=\"{role}\"}}");
        let at = value(&body, &series).unwrap_or_else(|| panic!("no {series} in:\n{body}"));
        assert!(
            now - 300.0 < at && at <= now + 1.0,
            "{series} {at}, now {now}"
        );
    }
    assert!(body.contains("# TYPE postern_process_start_time_seconds gauge\n"));
    promtool_check(&body);
}

/// smtpd counts a DNSBL's listing by zone, the restriction element that
/// rejected, and its TLS handshakes (Python's ssl the client that
/// succeeds; one that sends plain text after STARTTLS fails).
#[test]
fn metrics_count_dnsbl_listings_and_inbound_tls() {
    use crate::outbound::dns::{DnsServer, Zone};
    let dns = DnsServer::start(Zone::new().a("6.0.0.127.bl.test", "127.0.0.2"));
    let port = free_port();
    let mut p = Postern::configure(
        &format!(
            "{}[restrictions]\nclient = [\"reject_rbl_client bl.test\"]\n\n\
             [tls]\ninbound = \"may\"\nchain_files = [\"{{dir}}/chain.pem\"]\n\n\
             [metrics]\nlisten = [\"127.0.0.1:{port}\"]\n",
            dns.config_table()
        ),
        &[],
        None,
    );
    let (_, ca) = crate::starttls::certificate(p.dir.path());
    p.launch();
    let me = format!("{}@localhost", p.user);

    let mut c = p.client_from("127.0.0.6");
    c.cmd("EHLO six.example");
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{me}>")),
        "554 5.7.1 Service unavailable; Client host [127.0.0.6] blocked using bl.test"
    );
    c.cmd("QUIT");

    let smtp = p.addr.port();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {smtp}, timeout=20)
s.ehlo("client.example")
s.starttls(context=ssl.create_default_context(cafile="{ca}"))
s.ehlo("client.example")
s.quit()
"#
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let mut c = p.client_from("127.0.0.1");
    c.cmd("EHLO client.example");
    assert!(c.cmd("STARTTLS").starts_with("220"), "STARTTLS refused");
    c.send(b"this is no TLS client hello\r\n");
    drop(c);

    let body = scrape_until(
        port,
        &[
            ("postern_dnsbl_answers_total{zone=\"bl.test\"}", 1.0),
            (
                "postern_restriction_hits_total{element=\"reject_rbl_client\",action=\"reject\"}",
                1.0,
            ),
            (
                "postern_tls_handshakes_total{direction=\"inbound\",outcome=\"ok\"}",
                1.0,
            ),
            (
                "postern_tls_handshakes_total{direction=\"inbound\",outcome=\"failed\"}",
                1.0,
            ),
        ],
        20,
    );
    promtool_check(&body);
}

/// `promtool check metrics` on the exposition (Debian's `prometheus`).
fn promtool_check(body: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped promtool: not installed (apt-get install prometheus; .ci/run does)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the Prometheus the test started.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus scrapes the endpoint every second; its query API
/// gives `accepted` for `postern_messages_accepted_total`.
fn prometheus_scrapes(p: &Postern, port: u16, accepted: f64) {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped prometheus: not installed (apt-get install prometheus; .ci/run does)");
        return;
    }
    let dir = p.dir.path().join("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: postern\n    static_configs:\n      \
             - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _prometheus = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = TcpStream::connect(("127.0.0.1", web)).ok().map(|_| {
            http(
                web,
                b"GET /api/v1/query?query=postern_messages_accepted_total HTTP/1.1\r\n\
                  Host: localhost\r\nConnection: close\r\n\r\n",
            )
        });
        if let Some(v) = answer.as_deref().and_then(query_value) {
            assert_eq!(v, accepted, "{answer:?}");
            dashboard_queries_answer(web, port);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the metric: {answer:?}\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every query of the Grafana dashboard (`packaging/grafana/postern.json`)
/// names metrics and labels the endpoint exports, and the Prometheus that
/// scrapes it evaluates each one, as Grafana would send it, without error;
/// the panels of accepted mail, deliveries and the queue show data.
fn dashboard_queries_answer(web: u16, port: u16) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/postern.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let (_, body) = scrape(port);
    let name = regex::Regex::new(r"postern_[a-z_]+").unwrap();
    let by = regex::Regex::new(r"by \(([a-z_, ]+)\)").unwrap();
    let matcher = regex::Regex::new(r"([a-z_]+)=~?\x22").unwrap();
    for expr in &exprs {
        // What each query reads: its metric, exported, with every label the
        // query groups or filters by (instance is Prometheus' own).
        let series = name.find(expr).expect(expr).as_str();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| series.strip_suffix(s))
            .filter(|b| body.contains(&format!("# TYPE {b} histogram\n")))
            .unwrap_or(series);
        assert!(
            body.contains(&format!("# TYPE {base} ")),
            "the dashboard queries {base}, which the endpoint does not export: {expr}\n{body}"
        );
        let labels = by
            .captures_iter(expr)
            .flat_map(|c| {
                c[1].split(',')
                    .map(|l| l.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .chain(matcher.captures_iter(expr).map(|c| c[1].to_string()))
            .filter(|l| l != "instance");
        // Labels are checked where this run has samples (no TLS here: the
        // handshakes' labels are checked by the outbound TLS test).
        let sampled = body.lines().any(|l| l.starts_with(series));
        for label in labels.filter(|_| sampled) {
            assert!(
                body.lines()
                    .any(|l| l.starts_with(series) && l.contains(&format!("{label}=\""))),
                "the dashboard groups {series} by {label}, which it does not carry: {expr}\n{body}"
            );
        }
    }
    // Each query as Grafana sends it, until the rates have two samples.
    let deadline = Instant::now() + Duration::from_secs(30);
    for expr in &exprs {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", &format!("127.0.0.1:{port}"));
        let must_show = ["accepted_total", "deliveries_total", "queue_messages{"]
            .iter()
            .any(|m| q.contains(m));
        loop {
            let answer = http(
                web,
                format!(
                    "GET /api/v1/query?query={} HTTP/1.1\r\nHost: localhost\r\n\
                     Connection: close\r\n\r\n",
                    percent_encode(&q)
                )
                .as_bytes(),
            );
            assert!(answer.contains("\"status\":\"success\""), "{q}: {answer}");
            if !must_show || answer.contains("\"result\":[{") {
                break;
            }
            assert!(Instant::now() < deadline, "no data for {q}: {answer}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The `expr` and `query` strings of a Grafana dashboard, depth first.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x.as_str()) {
                    ("expr", Some(e)) => out.push(e.to_string()),
                    ("query", Some(q)) if q.contains("postern_") => {
                        // label_values(METRIC, LABEL): the metric it lists.
                        let metric = q.trim_start_matches("label_values(").split(',').next();
                        out.extend(metric.map(str::to_string))
                    }
                    _ => collect_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// A query string's value, percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first sample's value of a Prometheus query answer.
fn query_value(response: &str) -> Option<f64> {
    let (_, body) = response.split_once("\r\n\r\n")?;
    // The body may be chunked: the JSON object is between the outer braces.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn metrics_endpoint_survives_hostile_clients() {
    let (mut p, port) = start_with_metrics("", "timeout = \"2s\"\n");
    // One that says nothing, one that sends a header line of 100 KiB.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    big.resize(100 * 1024, b'a');
    let answer = http(port, &big);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    // The others are served meanwhile.
    let (head, body) = scrape(port);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.contains("# TYPE postern_messages_accepted_total counter"));
    assert!(http(port, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    let post = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");
    assert!(http(port, b"HELLO\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // The silent one is closed after the timeout, with nothing said.
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap();
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    p.stop();
}

#[test]
fn metrics_are_off_by_default_and_loopback_unless_allowed() {
    let mut p = Postern::start("");
    let roles = std::fs::read_to_string(p.run_dir().join("roles.json")).unwrap();
    assert!(roles.contains("\"smtpd\""), "{roles}");
    assert!(!roles.contains("metrics"), "{roles}");
    assert!(!p.log().contains("/metrics"), "{}", p.log());
    assert_eq!(p.log().matches("listening on ").count(), 1, "{}", p.log());
    // Nothing of the endpoint listens, not even qmgr's metrics.sock.
    assert!(p.run_dir().join("qmgr.sock").exists());
    assert!(!p.run_dir().join("metrics.sock").exists());
    p.stop();

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("postern.toml");
    let check = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        Command::new(BIN)
            .arg("--config")
            .arg(&conf)
            .arg("check")
            .output()
            .unwrap()
    };
    let out = check("[metrics]\nlisten = [\"0.0.0.0:9154\"]\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2", conf.display())), "{err}");
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(err.contains("\"0.0.0.0:9154\""), "{err}");
    assert!(err.contains("metrics.allow_remote = true"), "{err}");
    let out = check("[metrics]\nlisten = [\"0.0.0.0:9154\"]\nallow_remote = true\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("metrics.listen"), "{err}");
    let out = check("[metrics]\nlisten = [\"127.0.0.1:9154\", \"[::1]:9154\"]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("metrics.listen"), "{err}");
}
