//! Printing the effective configuration as TOML (`postern config show`):
//! every key, or only those that differ from the defaults (like
//! `postconf -n`). The output parses back into an equal configuration.

use std::collections::BTreeSet;

use super::Config;
use super::defaults::System;
use super::expand::escape;
use super::load::{self, TABLES};
use super::value::format_duration;

/// The configuration as TOML; with `non_default`, only the keys that must be
/// written for the file to give this configuration on `system`.
pub(super) fn to_toml(config: &Config, non_default: bool, system: &System) -> String {
    let values = entries(config);
    if !non_default {
        return render(&values, |_| true);
    }
    // A default may depend on other keys (`server.domain` on
    // `server.hostname`, the hostname on the domain), so keys are added one
    // at a time, the first that the output read back gets wrong each time.
    let mut printed: BTreeSet<&str> = BTreeSet::new();
    loop {
        let text = render(&values, |key| printed.contains(key));
        let Ok(reread) = load::parse(&text, "(config show)", system) else {
            return render(&values, |_| true);
        };
        let reread = entries(&reread);
        match values.iter().zip(&reread).find(|(a, b)| a.1 != b.1) {
            Some(((key, _), _)) if printed.insert(key) => {}
            // Nothing differs, or a printed key still differs (impossible:
            // a printed value is read back as itself): done.
            Some(_) => return render(&values, |_| true),
            None => return text,
        }
    }
}

/// Every key (dotted) with its value as TOML, in `TABLES` order.
pub(super) fn entries(c: &Config) -> Vec<(&'static str, String)> {
    let s = |text: &str| toml_edit::Value::from(text).to_string();
    let expandable = |text: &str| s(&escape(text));
    let path = |p: &std::path::Path| expandable(&p.to_string_lossy());
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let duration = |d| s(&format_duration(d));
    let (server, local, relay, queue, smtpd) = (&c.server, &c.local, &c.relay, &c.queue, &c.smtpd);
    let values = vec![
        ("server.hostname", expandable(&server.hostname)),
        ("server.domain", expandable(&server.domain)),
        ("server.origin", expandable(&server.origin)),
        ("server.user", expandable(&server.user)),
        ("server.run_directory", path(&server.run_directory)),
        (
            "server.log_file",
            server
                .log_file
                .as_deref()
                .map_or_else(|| s(""), |p| s(&p.to_string_lossy())),
        ),
        (
            "local.domains",
            list(local.domains.iter().map(|d| expandable(d)).collect()),
        ),
        ("local.mailbox", s(&local.mailbox)),
        ("local.worker_idle", duration(local.worker_idle)),
        (
            "local.concurrency_per_user",
            local.concurrency_per_user.to_string(),
        ),
        (
            "local.aliases",
            format!(
                "{{ {} }}",
                local
                    .aliases
                    .iter()
                    .map(|(k, v)| format!("{} = {}", toml_edit::Key::new(k.as_str()), s(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .replace("{  }", "{}"),
        ),
        (
            "local.alias_files",
            list(
                local
                    .alias_files
                    .iter()
                    .map(|p| s(&p.to_string_lossy()))
                    .collect(),
            ),
        ),
        ("local.recipient_delimiter", s(&local.recipient_delimiter)),
        (
            "local.command_time_limit",
            duration(local.command_time_limit),
        ),
        ("local.default_privs", s(&local.default_privs)),
        (
            "local.allow_mail_to_commands",
            list(local.allow_mail_to_commands.iter().map(|c| s(c)).collect()),
        ),
        (
            "local.allow_mail_to_files",
            list(local.allow_mail_to_files.iter().map(|c| s(c)).collect()),
        ),
        (
            "relay.networks",
            list(relay.networks.iter().map(|n| s(&n.to_string())).collect()),
        ),
        (
            "relay.host",
            expandable(
                &relay
                    .host
                    .as_ref()
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
            ),
        ),
        (
            "relay.transport",
            format!(
                "{{ {} }}",
                relay
                    .transport
                    .iter()
                    .map(|(k, v)| format!(
                        "{} = {}",
                        toml_edit::Key::new(k.as_str()),
                        s(&v.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .replace("{  }", "{}"),
        ),
        (
            "relay.transport_files",
            list(
                relay
                    .transport_files
                    .iter()
                    .map(|p| s(&p.to_string_lossy()))
                    .collect(),
            ),
        ),
        ("queue.directory", path(&queue.directory)),
        (
            "queue.large_message_threshold",
            queue.large_message_threshold.to_string(),
        ),
        ("queue.minimal_backoff", duration(queue.minimal_backoff)),
        ("queue.maximal_backoff", duration(queue.maximal_backoff)),
        ("queue.run_delay", duration(queue.run_delay)),
        ("queue.maximal_lifetime", duration(queue.maximal_lifetime)),
        (
            "queue.move_deferred_after",
            duration(queue.move_deferred_after),
        ),
        (
            "queue.delay_warning_time",
            duration(queue.delay_warning_time),
        ),
        (
            "queue.bounce_size_limit",
            queue.bounce_size_limit.to_string(),
        ),
        (
            "queue.authorized_mailq_users",
            list(queue.authorized_mailq_users.iter().map(|u| s(u)).collect()),
        ),
        ("queue.minfree", queue.minfree.to_string()),
        (
            "smtpd.listen",
            list(smtpd.listen.iter().map(|a| s(&a.to_string())).collect()),
        ),
        ("smtpd.banner", expandable(&smtpd.banner)),
        (
            "smtpd.message_size_limit",
            smtpd.message_size_limit.to_string(),
        ),
        ("smtpd.recipient_limit", smtpd.recipient_limit.to_string()),
        (
            "smtpd.line_length_limit",
            smtpd.line_length_limit.to_string(),
        ),
        ("smtpd.timeout", duration(smtpd.timeout)),
        ("smtpd.hard_error_limit", smtpd.hard_error_limit.to_string()),
        (
            "smtpd.junk_command_limit",
            smtpd.junk_command_limit.to_string(),
        ),
        (
            "smtpd.session_time_limit",
            duration(smtpd.session_time_limit),
        ),
        ("smtpd.max_connections", smtpd.max_connections.to_string()),
        (
            "smtpd.max_connections_per_client",
            smtpd.max_connections_per_client.to_string(),
        ),
        ("smtpd.vrfy", smtpd.vrfy.to_string()),
        (
            "smtpd.forbid_bare_newline",
            s(smtpd.forbid_bare_newline.as_str()),
        ),
        (
            "smtpd.forbid_unauth_pipelining",
            smtpd.forbid_unauth_pipelining.to_string(),
        ),
        (
            "smtpd.authorized_submit_users",
            list(smtpd.authorized_submit_users.iter().map(|u| s(u)).collect()),
        ),
        (
            "smtpd.sender_override_users",
            list(smtpd.sender_override_users.iter().map(|u| s(u)).collect()),
        ),
        (
            "restrictions.client",
            list(c.restrictions.client.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.helo",
            list(c.restrictions.helo.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.sender",
            list(c.restrictions.sender.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.relay",
            list(c.restrictions.relay.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.recipient",
            list(c.restrictions.recipient.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.delay_reject",
            c.restrictions.delay_reject.to_string(),
        ),
        (
            "restrictions.rbl_domains",
            list(c.restrictions.rbl_domains.iter().map(|e| s(e)).collect()),
        ),
        (
            "restrictions.dns_failure",
            s(c.restrictions.dns_failure.as_str()),
        ),
        (
            "checks.header",
            list(c.checks.header.iter().map(|e| s(e)).collect()),
        ),
        (
            "checks.mime_header",
            list(c.checks.mime_header.iter().map(|e| s(e)).collect()),
        ),
        (
            "checks.body",
            list(c.checks.body.iter().map(|e| s(e)).collect()),
        ),
        ("smtp.port", c.smtp.port.to_string()),
        ("smtp.helo_name", expandable(&c.smtp.helo_name)),
        (
            "smtp.bind_address",
            s(&c.smtp
                .bind_address
                .map(|a| a.to_string())
                .unwrap_or_default()),
        ),
        ("smtp.connect_timeout", duration(c.smtp.connect_timeout)),
        ("smtp.helo_timeout", duration(c.smtp.helo_timeout)),
        ("smtp.starttls_timeout", duration(c.smtp.starttls_timeout)),
        ("smtp.mail_timeout", duration(c.smtp.mail_timeout)),
        ("smtp.rcpt_timeout", duration(c.smtp.rcpt_timeout)),
        ("smtp.data_init_timeout", duration(c.smtp.data_init_timeout)),
        ("smtp.data_xfer_timeout", duration(c.smtp.data_xfer_timeout)),
        ("smtp.data_done_timeout", duration(c.smtp.data_done_timeout)),
        ("smtp.quit_timeout", duration(c.smtp.quit_timeout)),
        (
            "smtp.destination_concurrency_limit",
            c.smtp.destination_concurrency_limit.to_string(),
        ),
        (
            "smtp.destination_recipient_limit",
            c.smtp.destination_recipient_limit.to_string(),
        ),
        (
            "smtp.connection_cache_time",
            duration(c.smtp.connection_cache_time),
        ),
        ("tls.outbound", s(c.tls.outbound.as_str())),
        (
            "tls.ca_file",
            s(&c.tls
                .ca_file
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()),
        ),
        // Named inline tables print as `[maps.NAME]` tables of their own.
        (
            "maps",
            c.maps
                .iter()
                .map(|(name, table)| {
                    let mut t = format!("[maps.{}]\n", toml_edit::Key::new(name.as_str()));
                    for (k, v) in table {
                        t += &format!("{} = {}\n", toml_edit::Key::new(k.as_str()), s(v));
                    }
                    t
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            "dns.servers",
            list(c.dns.servers.iter().map(|a| s(&a.to_string())).collect()),
        ),
        ("sandbox.require", c.sandbox.require.to_string()),
        (
            "sandbox.local_writable",
            list(
                c.sandbox
                    .local_writable
                    .iter()
                    .map(|p| s(&p.to_string_lossy()))
                    .collect(),
            ),
        ),
    ];
    values
}

/// The selected keys as TOML, one table per section, empty tables left out.
fn render(values: &[(&'static str, String)], selected: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for (table, _) in TABLES {
        let mut lines = values
            .iter()
            .filter(|(key, _)| selected(key))
            .filter_map(|(key, value)| Some((key.strip_prefix(table)?.strip_prefix('.')?, value)))
            .peekable();
        if lines.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{table}]\n"));
        for (key, value) in lines {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    if let Some((_, maps)) = values
        .iter()
        .find(|(key, value)| *key == "maps" && !value.is_empty() && selected(key))
    {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(maps);
    }
    out
}
