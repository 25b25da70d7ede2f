//! master.cf's services as postern's listeners: `smtp inet … smtpd` (or
//! `postscreen`) is `smtpd.listen`, `submission` is `submission.listen`,
//! `submissions`/`smtps`/465 (or `-o smtpd_tls_wrappermode=yes`) is
//! `submission.implicit_tls_listen`, on the addresses of
//! `inet_interfaces` and `inet_protocols`. Their `-o` overrides are
//! translated where postern has the setting, reported where not. Postfix's
//! own internal services (pickup, cleanup, qmgr…) have no counterpart to
//! write; other services are reported when main.cf uses them.

use toml::Value as V;

use super::parse::{Service, split_list};
use super::restrictions;
use super::translate::{Work, boolean, strings};
use crate::policy::element::Stage;

/// Postfix's internal services (conf/master.cf): postern's roles do their
/// work, there is nothing to translate.
const INTERNAL: &[&str] = &[
    "anvil",
    "bounce",
    "cleanup",
    "defer",
    "discard",
    "error",
    "flush",
    "lmtp",
    "local",
    "pickup",
    "postlog",
    "proxymap",
    "proxywrite",
    "qmgr",
    "relay",
    "retry",
    "rewrite",
    "scache",
    "showq",
    "smtp",
    "tlsmgr",
    "trace",
    "verify",
    "virtual",
];

/// The listeners, and what else master.cf holds.
pub(crate) fn translate(w: &mut Work, services: &[Service]) {
    let addresses = addresses(w);
    let mut smtpd = Vec::new();
    let (mut submission, mut implicit) = (Vec::new(), Vec::new());
    for s in services {
        let origin = format!("master.cf:{}", s.line);
        if s.kind != "inet" {
            other_service(w, s, &origin);
            continue;
        }
        let Some((host, port)) = endpoint(&s.name) else {
            w.leave_out(&origin, &s.name, "inet service with an unknown port name");
            continue;
        };
        if s.command != "smtpd" && s.command != "postscreen" {
            w.leave_out(
                &origin,
                &s.name,
                &format!("inet service running {}: not supported", s.command),
            );
            continue;
        }
        let at: Vec<String> = match &host {
            Some(h) => vec![listener(h, port)],
            None => addresses.iter().map(|a| listener(a, port)).collect(),
        };
        let wrapper = s
            .overrides
            .iter()
            .any(|(n, v)| n == "smtpd_tls_wrappermode" && boolean(&w.x.expand(v)) == Ok(true));
        match (port, host.is_some()) {
            (25, false) => {
                smtpd.extend(at);
                main_listener(w, s, &origin);
            }
            (587, false) if !wrapper => {
                submission.extend(at);
                submission_overrides(w, s, &origin);
            }
            (465 | 587, false) => {
                implicit.extend(at);
                submission_overrides(w, s, &origin);
            }
            _ => extra_smtpd(w, s, &origin),
        }
    }
    w.set(
        "smtpd.listen",
        strings(smtpd),
        "inet_interfaces + master.cf smtp",
    );
    if !submission.is_empty() {
        w.set(
            "submission.listen",
            strings(submission),
            "master.cf submission",
        );
    }
    if !implicit.is_empty() {
        w.set(
            "submission.implicit_tls_listen",
            strings(implicit),
            "master.cf submissions",
        );
    }
}

/// `host:port` or `port`, the port by number or by name.
fn endpoint(name: &str) -> Option<(Option<String>, u16)> {
    let (host, port) = match name.rsplit_once(':') {
        Some((h, p)) => (Some(h.trim_matches(['[', ']']).to_string()), p),
        None => (None, name),
    };
    let port = match port {
        "smtp" => 25,
        "submission" => 587,
        "submissions" | "smtps" => 465,
        p => p.parse().ok()?,
    };
    Some((host, port))
}

fn listener(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The addresses of `inet_interfaces`, for the protocols of
/// `inet_protocols`.
fn addresses(w: &mut Work) -> Vec<String> {
    let protocols = w.x.value("inet_protocols").to_ascii_lowercase();
    let (v4, v6) = match protocols.trim() {
        "all" => (true, true),
        p => (p.contains("ipv4"), p.contains("ipv6")),
    };
    let interfaces = w.x.value("inet_interfaces").to_ascii_lowercase();
    let pick = |a: &str, b: &str| {
        let mut out = Vec::new();
        if v4 {
            out.push(a.to_string());
        }
        if v6 {
            out.push(b.to_string());
        }
        out
    };
    match interfaces.trim() {
        "all" => pick("0.0.0.0", "::"),
        "loopback-only" => pick("127.0.0.1", "::1"),
        list => {
            let mut out = Vec::new();
            for a in split_list(list) {
                let a = a.trim_matches(['[', ']']).to_string();
                if a.parse::<std::net::IpAddr>().is_ok() {
                    out.push(a);
                } else {
                    let origin = w.origin_of("inet_interfaces");
                    w.leave_out(
                        &origin,
                        "inet_interfaces",
                        &format!("{a}: postern listens on addresses, not host names"),
                    );
                }
            }
            out
        }
    }
}

/// The port 25 service: its overrides apply to smtpd, as main.cf's would;
/// postscreen is reported.
fn main_listener(w: &mut Work, s: &Service, origin: &str) {
    if s.command == "postscreen" {
        w.leave_out(origin, &s.name, "postscreen: not supported; smtpd takes port 25 itself (postscreen_* parameters are reported one by one)");
    }
    for (name, value) in &s.overrides {
        let from = format!("{origin} -o");
        w.param(name, value, &from);
    }
}

/// A second smtpd with settings of its own (a content filter's
/// re-injection port, a port for a web mailer).
fn extra_smtpd(w: &mut Work, s: &Service, origin: &str) {
    let names: Vec<&str> = s.overrides.iter().map(|(n, _)| n.as_str()).collect();
    let with = if names.is_empty() {
        String::new()
    } else {
        format!(" (-o {})", names.join(", "))
    };
    w.leave_out(origin, &s.name, &format!("another smtpd listener with its own settings{with}: not supported (postern has smtpd.listen and the submission listeners)"));
}

/// unix, fifo and pass services.
fn other_service(w: &mut Work, s: &Service, origin: &str) {
    if INTERNAL.contains(&s.name.as_str())
        && s.overrides
            .iter()
            .all(|(n, _)| n == "syslog_name" || n == "smtp_fallback_relay")
    {
        return;
    }
    if s.kind == "pass" && s.command == "smtpd" {
        // postscreen's smtpd: its overrides are the port 25 smtpd's.
        for (name, value) in &s.overrides {
            w.param(name, value, &format!("{origin} -o"));
        }
        return;
    }
    match w.used_by(&s.name) {
        Some(param) => w.leave_out(
            origin,
            &s.name,
            &format!("{} service used by {param}: not supported", s.command),
        ),
        None => w.note(
            origin,
            &s.name,
            &format!("{} service not used by main.cf: not translated", s.command),
        ),
    }
}

/// The submission services' overrides.
fn submission_overrides(w: &mut Work, s: &Service, origin: &str) {
    // The SASL type first: the path depends on it.
    let sasl_type = s.overrides.iter().find(|(n, _)| n == "smtpd_sasl_type");
    if let Some((name, raw)) = sasl_type
        && !w.cf.params.contains_key(name)
    {
        let value = w.x.expand(raw).trim().to_string();
        w.sasl_type(&format!("master.cf {} -o {name}", s.name), &value, origin);
    }
    for (name, raw) in &s.overrides {
        let value = w.x.expand(raw).trim().to_string();
        let from = format!("master.cf {} -o {name}", s.name);
        let origin = origin.to_string();
        match name.as_str() {
            "syslog_name" => w.note(&origin, name, "ignored: postern logs as postern/smtpd"),
            "smtpd_tls_wrappermode" => {}
            "smtpd_tls_security_level" | "smtpd_enforce_tls" => {
                submission_tls(w, name, &value, &origin, &from)
            }
            "smtpd_sasl_auth_enable" => {
                if boolean(&value) != Ok(true) {
                    w.leave_out(
                        &origin,
                        name,
                        "submission without AUTH: postern's submission always requires it",
                    );
                }
            }
            "smtpd_sasl_type" if !w.cf.params.contains_key("smtpd_sasl_type") => {}
            "smtpd_sasl_path" if !w.cf.params.contains_key("smtpd_sasl_path") => {
                let default_type = w.x.value("smtpd_sasl_type");
                if w.is_set("sasl.backend") || default_type == "dovecot" {
                    w.sasl_path(&from, &value, &origin);
                }
            }
            "smtpd_client_restrictions" | "smtpd_recipient_restrictions" => {
                auth_required(w, name, &value, &origin)
            }
            "smtpd_relay_restrictions" => {
                let list = restrictions::list(w, &value, Stage::Relay, name, &origin);
                w.set("submission.relay", strings(list), &from);
            }
            "smtpd_sender_restrictions" => {
                let list = restrictions::list(w, &value, Stage::Sender, name, &origin);
                w.set("submission.sender", strings(list), &from);
            }
            _ => listener_override(w, name, &value, &origin),
        }
    }
}

fn submission_tls(w: &mut Work, name: &str, value: &str, origin: &str, from: &str) {
    let level = match (name, value) {
        ("smtpd_enforce_tls", v) if boolean(v) == Ok(true) => "encrypt",
        ("smtpd_enforce_tls", _) => return,
        (_, "encrypt") => "encrypt",
        (_, "may") => "may",
        (_, other) => {
            w.leave_out(
                origin,
                name,
                &format!("{other}: postern's submission offers STARTTLS (may or encrypt)"),
            );
            return;
        }
    };
    w.set("submission.tls", V::String(level.into()), from);
}

/// `permit_sasl_authenticated, reject` is what postern's submission does
/// (AUTH before MAIL); anything else is reported.
fn auth_required(w: &mut Work, name: &str, value: &str, origin: &str) {
    let words: Vec<String> = split_list(value)
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["permit_sasl_authenticated", "reject"] | [] => {}
        ["permit_mynetworks", "permit_sasl_authenticated", "reject"] => w.leave_out(origin, name, "permit_mynetworks: postern's submission requires AUTH of every client, also those in relay.networks"),
        _ => w.leave_out(origin, name, &format!("{value}: postern's submission requires AUTH before MAIL and has no list of its own here")),
    }
}

/// Another override on a submission listener: postern's settings are
/// global, so only a value main.cf has as well is harmless.
fn listener_override(w: &mut Work, name: &str, value: &str, origin: &str) {
    if let Some(row) = super::params::find(name) {
        let what = match row.status {
            super::params::Status::Ignored => {
                w.note(origin, name, &format!("ignored: {}", row.note));
                return;
            }
            _ => row.note,
        };
        w.leave_out(
            origin,
            name,
            &format!("on a submission listener: not supported ({what})"),
        );
        return;
    }
    let global = w.x.value(name);
    if global.trim() == value {
        return;
    }
    w.leave_out(
        origin,
        name,
        &format!("{value}: a per-listener setting, not supported (postern's settings are global)"),
    );
}

impl Work<'_> {
    /// `main.cf:LINE` of a parameter, or `main.cf (default)`.
    pub(crate) fn origin_of(&self, name: &str) -> String {
        match self.cf.params.get(name) {
            Some(p) => format!("main.cf:{}", p.line),
            None => "main.cf (default)".to_string(),
        }
    }

    /// The main.cf parameter whose value names the service `service` as a
    /// transport (`dovecot`, `smtp-amavis:[127.0.0.1]:10024`).
    pub(crate) fn used_by(&self, service: &str) -> Option<String> {
        let prefix = format!("{service}:");
        self.cf.params.iter().find_map(|(name, p)| {
            split_list(&p.value)
                .iter()
                .any(|v| v == service || v.starts_with(&prefix))
                .then(|| name.clone())
        })
    }
}
