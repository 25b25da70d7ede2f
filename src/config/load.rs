//! Reading the TOML document: every key is looked up in its table, typed,
//! and located (line of the key) so that each error can name file, line and
//! key. Strings that may hold `$name` references are kept with their
//! location and expanded once the whole file is read.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::defaults::{self, System};
use super::error::{ConfigError, nearest};
use super::expand::{self, Located, Resolver, Var};
use super::value::{
    check_banner, check_hostname, colliding_listeners, duration_from_secs, format_duration,
    parse_duration, parse_listen, parse_network,
};
use super::{BareNewline, Config};

/// Every table and its keys, in the order `config show` prints them.
pub(super) const TABLES: [(&str, &[&str]); 12] = [
    (
        "server",
        &[
            "hostname",
            "domain",
            "origin",
            "user",
            "run_directory",
            "log_file",
        ],
    ),
    (
        "local",
        &[
            "domains",
            "mailbox",
            "worker_idle",
            "concurrency_per_user",
            "aliases",
            "alias_files",
            "recipient_delimiter",
            "command_time_limit",
            "default_privs",
            "allow_mail_to_commands",
            "allow_mail_to_files",
        ],
    ),
    (
        "relay",
        &["networks", "host", "transport", "transport_files"],
    ),
    (
        "queue",
        &[
            "directory",
            "large_message_threshold",
            "minimal_backoff",
            "maximal_backoff",
            "run_delay",
            "maximal_lifetime",
            "move_deferred_after",
            "delay_warning_time",
            "bounce_size_limit",
            "authorized_mailq_users",
            "minfree",
        ],
    ),
    (
        "smtpd",
        &[
            "listen",
            "banner",
            "message_size_limit",
            "recipient_limit",
            "line_length_limit",
            "timeout",
            "hard_error_limit",
            "junk_command_limit",
            "session_time_limit",
            "max_connections",
            "max_connections_per_client",
            "vrfy",
            "forbid_bare_newline",
            "forbid_unauth_pipelining",
            "authorized_submit_users",
            "sender_override_users",
        ],
    ),
    (
        "restrictions",
        &[
            "client",
            "helo",
            "sender",
            "relay",
            "recipient",
            "delay_reject",
            "rbl_domains",
            "dns_failure",
        ],
    ),
    ("maps", &[]),
    ("checks", &["header", "mime_header", "body"]),
    (
        "smtp",
        &[
            "port",
            "helo_name",
            "bind_address",
            "connect_timeout",
            "helo_timeout",
            "starttls_timeout",
            "mail_timeout",
            "rcpt_timeout",
            "data_init_timeout",
            "data_xfer_timeout",
            "data_done_timeout",
            "quit_timeout",
            "destination_concurrency_limit",
            "destination_recipient_limit",
            "connection_cache_time",
        ],
    ),
    ("tls", &["outbound", "ca_file"]),
    ("dns", &["servers"]),
    ("sandbox", &["require", "local_writable"]),
];

/// Postfix parameters and the keys that replace them, so that a Postfix
/// name written by habit gets the right suggestion.
const POSTFIX_NAMES: [(&str, &str); 65] = [
    ("smtpd_client_restrictions", "restrictions.client"),
    ("smtpd_helo_restrictions", "restrictions.helo"),
    ("smtpd_sender_restrictions", "restrictions.sender"),
    ("smtpd_relay_restrictions", "restrictions.relay"),
    ("smtpd_recipient_restrictions", "restrictions.recipient"),
    ("smtpd_delay_reject", "restrictions.delay_reject"),
    ("header_checks", "checks.header"),
    ("mime_header_checks", "checks.mime_header"),
    ("body_checks", "checks.body"),
    ("relayhost", "relay.host"),
    ("transport_maps", "relay.transport_files"),
    ("smtp_tcp_port", "smtp.port"),
    ("smtp_helo_name", "smtp.helo_name"),
    ("smtp_bind_address", "smtp.bind_address"),
    ("smtp_connect_timeout", "smtp.connect_timeout"),
    ("smtp_helo_timeout", "smtp.helo_timeout"),
    ("smtp_starttls_timeout", "smtp.starttls_timeout"),
    ("smtp_mail_timeout", "smtp.mail_timeout"),
    ("smtp_rcpt_timeout", "smtp.rcpt_timeout"),
    ("smtp_data_init_timeout", "smtp.data_init_timeout"),
    ("smtp_data_xfer_timeout", "smtp.data_xfer_timeout"),
    ("smtp_data_done_timeout", "smtp.data_done_timeout"),
    ("smtp_quit_timeout", "smtp.quit_timeout"),
    (
        "default_destination_concurrency_limit",
        "smtp.destination_concurrency_limit",
    ),
    (
        "default_destination_recipient_limit",
        "smtp.destination_recipient_limit",
    ),
    (
        "smtp_connection_cache_time_limit",
        "smtp.connection_cache_time",
    ),
    ("smtp_tls_security_level", "tls.outbound"),
    ("smtp_tls_cafile", "tls.ca_file"),
    ("myhostname", "server.hostname"),
    ("mydomain", "server.domain"),
    ("myorigin", "server.origin"),
    ("mail_owner", "server.user"),
    ("maillog_file", "server.log_file"),
    ("mydestination", "local.domains"),
    ("home_mailbox", "local.mailbox"),
    ("mynetworks", "relay.networks"),
    ("queue_directory", "queue.directory"),
    ("alias_maps", "local.alias_files"),
    ("delay_warning_time", "queue.delay_warning_time"),
    ("authorized_submit_users", "smtpd.authorized_submit_users"),
    ("authorized_mailq_users", "queue.authorized_mailq_users"),
    ("command_time_limit", "local.command_time_limit"),
    ("default_privs", "local.default_privs"),
    ("allow_mail_to_commands", "local.allow_mail_to_commands"),
    ("allow_mail_to_files", "local.allow_mail_to_files"),
    ("bounce_size_limit", "queue.bounce_size_limit"),
    ("recipient_delimiter", "local.recipient_delimiter"),
    (
        "local_destination_concurrency_limit",
        "local.concurrency_per_user",
    ),
    ("minimal_backoff_time", "queue.minimal_backoff"),
    ("maximal_backoff_time", "queue.maximal_backoff"),
    ("queue_run_delay", "queue.run_delay"),
    ("maximal_queue_lifetime", "queue.maximal_lifetime"),
    ("inet_interfaces", "smtpd.listen"),
    ("smtpd_banner", "smtpd.banner"),
    ("message_size_limit", "smtpd.message_size_limit"),
    ("smtpd_recipient_limit", "smtpd.recipient_limit"),
    ("line_length_limit", "smtpd.line_length_limit"),
    ("smtpd_timeout", "smtpd.timeout"),
    ("smtpd_hard_error_limit", "smtpd.hard_error_limit"),
    ("smtpd_junk_command_limit", "smtpd.junk_command_limit"),
    ("queue_minfree", "queue.minfree"),
    (
        "smtpd_client_connection_count_limit",
        "smtpd.max_connections_per_client",
    ),
    ("disable_vrfy_command", "smtpd.vrfy"),
    ("smtpd_forbid_bare_newline", "smtpd.forbid_bare_newline"),
    (
        "smtpd_forbid_unauth_pipelining",
        "smtpd.forbid_unauth_pipelining",
    ),
];

/// The file's bytes as text; invalid UTF-8 is a syntax error at its line.
pub(super) fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction; lossy only to stay total.
        let (line, column) = line_column(&String::from_utf8_lossy(valid), valid.len());
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            column,
            message: "invalid UTF-8".to_string(),
        }
    })
}

/// Parses the TOML text into a configuration, on `system`'s defaults.
pub(super) fn parse(text: &str, file: &str, system: &System) -> Result<Config, ConfigError> {
    let source = Source { file, text };
    let document = ImDocument::parse(text).map_err(|e| source.syntax(&e))?;
    let root = document.as_table();
    let mut config = defaults::builtin(system);
    let mut given = Given::default();
    for (name, item) in root.iter() {
        let field = source.field(None, root, name, item);
        let read: Reader = match name {
            "server" => server,
            "local" => local,
            "relay" => relay,
            "queue" => queue,
            "smtpd" => smtpd,
            "restrictions" => restrictions,
            "maps" => maps,
            "checks" => checks,
            "smtp" => smtp,
            "tls" => tls,
            "dns" => dns,
            "sandbox" => sandbox,
            _ => return Err(field.unknown(name)),
        };
        let Some(table) = item.as_table_like().filter(|_| !item.is_array_of_tables()) else {
            return Err(field.wrong_type("a table"));
        };
        for (key, item) in table.iter() {
            read(
                &source.field(Some(name), table, key, item),
                key,
                &mut config,
                &mut given,
            )?;
        }
    }
    finish(config, given, file, system)
}

/// Reads one key of a table into the configuration.
type Reader = fn(&Field, &str, &mut Config, &mut Given) -> Result<(), ConfigError>;

/// The values that depend on other settings, kept until all are read.
#[derive(Default)]
struct Given {
    /// `server.hostname`, `.domain`, `.origin`, `.user`, in `Var` order.
    vars: [Option<Located>; 4],
    run_directory: Option<Located>,
    domains: Option<Vec<Located>>,
    queue_directory: Option<Located>,
    banner: Option<Located>,
    helo_name: Option<Located>,
    relay_host: Option<Located>,
    concurrency_per_user: Option<usize>,
    minimal_backoff_line: Option<usize>,
    maximal_backoff_line: Option<usize>,
    /// Per restriction list (in `crate::policy::Stage` order): the line
    /// of its key and each table it names with its line, for the checks
    /// that need the whole file.
    restriction_lines: [Option<RestrictionLines>; 5],
}

/// The line of a restriction list's key, and each table it names with
/// the line of its string.
type RestrictionLines = (usize, Vec<(usize, String)>);

fn server(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    let var = match key {
        "log_file" => {
            let text = f.string()?;
            let p = PathBuf::from(text);
            config.server.log_file = match text {
                "" => None,
                _ if p.is_absolute() => Some(p),
                _ => {
                    return Err(f.bad(format!("{text:?}"), "must be an absolute path".to_string()));
                }
            };
            return Ok(());
        }
        "hostname" => Var::Hostname,
        "domain" => Var::Domain,
        "origin" => Var::Origin,
        "user" => Var::User,
        "run_directory" => {
            given.run_directory = Some(f.located()?);
            return Ok(());
        }
        _ => return Err(f.unknown(key)),
    };
    given.vars[var as usize] = Some(f.located()?);
    Ok(())
}

fn local(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    let local = &mut config.local;
    match key {
        "domains" => given.domains = Some(f.strings()?),
        "mailbox" => {
            let mailbox = f.string()?;
            expand::check_mailbox(mailbox)
                .map_err(|reason| f.bad(format!("{mailbox:?}"), reason))?;
            local.mailbox = mailbox.to_string();
        }
        "worker_idle" => local.worker_idle = f.duration()?,
        "concurrency_per_user" => given.concurrency_per_user = Some(f.integer(1)?),
        "aliases" => local.aliases = f.string_table()?,
        "alias_files" => local.alias_files = absolute_paths(f)?,
        "recipient_delimiter" => local.recipient_delimiter = f.string()?.to_string(),
        "command_time_limit" => local.command_time_limit = f.positive_duration()?,
        "default_privs" => {
            let user = f.string()?;
            if user.is_empty() || user == "root" {
                return Err(f.bad(
                    format!("{user:?}"),
                    "must be an unprivileged user".to_string(),
                ));
            }
            local.default_privs = user.to_string();
        }
        "allow_mail_to_commands" => local.allow_mail_to_commands = contexts(f)?,
        "allow_mail_to_files" => local.allow_mail_to_files = contexts(f)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

/// A list of absolute paths.
fn absolute_paths(f: &Field) -> Result<Vec<PathBuf>, ConfigError> {
    f.strings()?
        .into_iter()
        .map(|l| {
            let p = PathBuf::from(&l.text);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(f.bad(
                    format!("{:?}", l.text),
                    "must be an absolute path".to_string(),
                ))
            }
        })
        .collect()
}

/// A list of strings as written (user names here).
fn plain_strings(f: &Field) -> Result<Vec<String>, ConfigError> {
    Ok(f.strings()?.into_iter().map(|l| l.text).collect())
}

/// A list of `alias`, `forward`, `include` (Postfix's allow_mail_to_*).
fn contexts(f: &Field) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for l in f.strings()? {
        let c = l.text.to_ascii_lowercase();
        if !matches!(c.as_str(), "alias" | "forward" | "include") {
            return Err(f.bad(
                format!("{:?}", l.text),
                "must be one of \"alias\", \"forward\", \"include\"".to_string(),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

fn sandbox(f: &Field, key: &str, config: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    match key {
        "require" => config.sandbox.require = f.boolean()?,
        "local_writable" => config.sandbox.local_writable = absolute_paths(f)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn relay(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    match key {
        "networks" => config.relay.networks = f.parsed(parse_network)?,
        "host" => given.relay_host = Some(f.located()?),
        "transport" => {
            let mut table = std::collections::BTreeMap::new();
            for (k, v) in f.any_string_table()? {
                let t = crate::transport::Transport::parse(&v)
                    .map_err(|reason| f.bad(format!("{k} = {v:?}"), reason))?;
                table.insert(k.to_ascii_lowercase(), t);
            }
            config.relay.transport = table;
        }
        "transport_files" => config.relay.transport_files = absolute_paths(f)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn queue(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    let queue = &mut config.queue;
    match key {
        "directory" => given.queue_directory = Some(f.located()?),
        "large_message_threshold" => queue.large_message_threshold = f.integer(0)?,
        "minimal_backoff" => {
            queue.minimal_backoff = f.positive_duration()?;
            given.minimal_backoff_line = Some(f.line);
        }
        "maximal_backoff" => {
            queue.maximal_backoff = f.positive_duration()?;
            given.maximal_backoff_line = Some(f.line);
        }
        "run_delay" => queue.run_delay = f.positive_duration()?,
        "maximal_lifetime" => queue.maximal_lifetime = f.duration()?,
        "move_deferred_after" => queue.move_deferred_after = f.duration()?,
        "delay_warning_time" => queue.delay_warning_time = f.duration()?,
        "bounce_size_limit" => queue.bounce_size_limit = f.integer(0)?,
        "authorized_mailq_users" => queue.authorized_mailq_users = plain_strings(f)?,
        "minfree" => queue.minfree = f.integer(0)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn smtpd(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    let smtpd = &mut config.smtpd;
    match key {
        "listen" => {
            smtpd.listen = f.parsed::<SocketAddr>(parse_listen)?;
            if let Some((at, reason)) = colliding_listeners(&smtpd.listen) {
                return Err(f.bad(format!("\"{at}\""), reason));
            }
        }
        "banner" => given.banner = Some(f.located()?),
        "message_size_limit" => smtpd.message_size_limit = f.integer(0)?,
        "recipient_limit" => smtpd.recipient_limit = f.integer(1)?,
        "line_length_limit" => smtpd.line_length_limit = f.integer(512)?,
        "timeout" => smtpd.timeout = f.positive_duration()?,
        "hard_error_limit" => smtpd.hard_error_limit = f.integer(1)?,
        "junk_command_limit" => smtpd.junk_command_limit = f.integer(0)?,
        "session_time_limit" => smtpd.session_time_limit = f.duration()?,
        "max_connections" => smtpd.max_connections = f.integer(1)?,
        "max_connections_per_client" => smtpd.max_connections_per_client = f.integer(0)?,
        "vrfy" => smtpd.vrfy = f.boolean()?,
        "forbid_bare_newline" => {
            smtpd.forbid_bare_newline = match f.string()? {
                "normalize" => BareNewline::Normalize,
                "reject" => BareNewline::Reject,
                other => {
                    let reason = "expected \"normalize\" or \"reject\"".to_string();
                    return Err(f.bad(format!("{other:?}"), reason));
                }
            }
        }
        "forbid_unauth_pipelining" => smtpd.forbid_unauth_pipelining = f.boolean()?,
        "authorized_submit_users" => smtpd.authorized_submit_users = plain_strings(f)?,
        "sender_override_users" => smtpd.sender_override_users = plain_strings(f)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn smtp(f: &Field, key: &str, config: &mut Config, given: &mut Given) -> Result<(), ConfigError> {
    let smtp = &mut config.smtp;
    match key {
        "port" => smtp.port = f.integer(1)?,
        "helo_name" => given.helo_name = Some(f.located()?),
        "bind_address" => {
            let text = f.string()?;
            smtp.bind_address =
                match text {
                    "" => None,
                    t => Some(t.parse().map_err(|_| {
                        f.bad(format!("{t:?}"), "expected an IP address".to_string())
                    })?),
                };
        }
        "connect_timeout" => smtp.connect_timeout = f.positive_duration()?,
        "helo_timeout" => smtp.helo_timeout = f.positive_duration()?,
        "starttls_timeout" => smtp.starttls_timeout = f.positive_duration()?,
        "mail_timeout" => smtp.mail_timeout = f.positive_duration()?,
        "rcpt_timeout" => smtp.rcpt_timeout = f.positive_duration()?,
        "data_init_timeout" => smtp.data_init_timeout = f.positive_duration()?,
        "data_xfer_timeout" => smtp.data_xfer_timeout = f.positive_duration()?,
        "data_done_timeout" => smtp.data_done_timeout = f.positive_duration()?,
        "quit_timeout" => smtp.quit_timeout = f.positive_duration()?,
        "destination_concurrency_limit" => smtp.destination_concurrency_limit = f.integer(1)?,
        "destination_recipient_limit" => smtp.destination_recipient_limit = f.integer(1)?,
        "connection_cache_time" => smtp.connection_cache_time = f.duration()?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn dns(f: &Field, key: &str, config: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    match key {
        "servers" => config.dns.servers = f.parsed(parse_dns_server)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

fn restrictions(
    f: &Field,
    key: &str,
    config: &mut Config,
    given: &mut Given,
) -> Result<(), ConfigError> {
    use crate::policy::Stage;
    let r = &mut config.restrictions;
    match key {
        "client" => r.client = restriction_list(f, Stage::Client, given)?,
        "helo" => r.helo = restriction_list(f, Stage::Helo, given)?,
        "sender" => r.sender = restriction_list(f, Stage::Sender, given)?,
        "relay" => r.relay = restriction_list(f, Stage::Relay, given)?,
        "recipient" => r.recipient = restriction_list(f, Stage::Recipient, given)?,
        "delay_reject" => r.delay_reject = f.boolean()?,
        "rbl_domains" => r.rbl_domains = plain_strings(f)?,
        "dns_failure" => {
            r.dns_failure = match f.string()? {
                "pass" => super::DnsFailure::Pass,
                "defer" => super::DnsFailure::Defer,
                other => {
                    let reason = "expected \"pass\" or \"defer\"".to_string();
                    return Err(f.bad(format!("{other:?}"), reason));
                }
            }
        }
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

/// A restriction list: each element parsed by `crate::policy`, so that a
/// typo is an error at its own line, naming the element.
fn restriction_list(
    f: &Field,
    stage: crate::policy::Stage,
    given: &mut Given,
) -> Result<Vec<String>, ConfigError> {
    let located = f.strings()?;
    let elements =
        crate::policy::parse_list(stage, &located.iter().map(|l| &l.text).collect::<Vec<_>>())
            .map_err(|e| ConfigError::BadValue {
                file: f.source.file.to_string(),
                line: located.get(e.index).map_or(f.line, |l| l.line),
                key: f.key.clone(),
                value: format!("{:?}", e.element),
                reason: e.reason,
            })?;
    // Which string each table came from is not kept by the parser: find
    // the first string that names it.
    let tables = elements
        .iter()
        .filter_map(|e| match e {
            crate::policy::Element::CheckAccess { table, .. } => Some(table),
            _ => None,
        })
        .map(|table| {
            let line = located
                .iter()
                .find(|l| l.text.contains(table.as_str()))
                .map_or(f.line, |l| l.line);
            (line, table.clone())
        })
        .collect();
    given.restriction_lines[stage as usize] = Some((f.line, tables));
    Ok(located.into_iter().map(|l| l.text).collect())
}

/// The restriction checks that need the whole file: every `inline:NAME`
/// table exists in `[maps]`, and the relay and recipient lists refuse
/// mail for other domains (as Postfix's smtpd insists at start).
fn check_restrictions(config: &Config, given: &Given, file: &str) -> Result<(), ConfigError> {
    use crate::policy::{Stage, has_relay_guard, parse_list};
    for (stage, lines) in Stage::ALL.iter().zip(&given.restriction_lines) {
        let Some((_, tables)) = lines else { continue };
        for (line, spec) in tables {
            if let Some(name) = spec.strip_prefix("inline:").filter(|n| !n.starts_with('{'))
                && !config.maps.contains_key(name)
            {
                return Err(ConfigError::BadValue {
                    file: file.to_string(),
                    line: *line,
                    key: format!("restrictions.{}", stage.name()),
                    value: format!("{spec:?}"),
                    reason: format!("there is no table [maps.{name}]"),
                });
            }
        }
    }
    let r = &config.restrictions;
    if let (Ok(relay), Ok(recipient)) = (
        parse_list(Stage::Relay, &r.relay),
        parse_list(Stage::Recipient, &r.recipient),
    ) && !has_relay_guard(&relay, &recipient)
    {
        let at = |s: Stage| {
            given.restriction_lines[s as usize]
                .as_ref()
                .map(|(l, _)| *l)
        };
        let (key, line) = match (at(Stage::Relay), at(Stage::Recipient)) {
            (Some(l), _) => ("relay", l),
            (None, Some(l)) => ("recipient", l),
            (None, None) => ("relay", 1),
        };
        return Err(ConfigError::BadValue {
            file: file.to_string(),
            line,
            key: format!("restrictions.{key}"),
            value: format!(
                "{:?}",
                if key == "relay" {
                    &r.relay
                } else {
                    &r.recipient
                }
            ),
            reason: "in restrictions.relay or restrictions.recipient, specify at least one \
                     working instance of: reject_unauth_destination, defer_unauth_destination, \
                     reject, defer, defer_if_permit (without it this server is an open relay)"
                .to_string(),
        });
    }
    Ok(())
}

/// `[maps]`: every key is a named inline table (`[maps.badclient]`).
fn maps(f: &Field, key: &str, config: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    let table = f
        .any_string_table()?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    config.maps.insert(key.to_string(), table);
    Ok(())
}

fn checks(f: &Field, key: &str, config: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    let c = &mut config.checks;
    match key {
        "header" => c.header = plain_strings(f)?,
        "mime_header" => c.mime_header = plain_strings(f)?,
        "body" => c.body = plain_strings(f)?,
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

/// `ip` or `ip:port` (`[v6]:port`); port 53 when absent.
fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse()
        .map_err(|_| "expected ip or ip:port, e.g. \"127.0.0.1:53\"".to_string())
}

fn tls(f: &Field, key: &str, config: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    use super::TlsLevel;
    match key {
        "outbound" => {
            config.tls.outbound = match f.string()? {
                "none" => TlsLevel::None,
                "may" => TlsLevel::May,
                "encrypt" => TlsLevel::Encrypt,
                "verify" | "secure" => TlsLevel::Verify,
                other => {
                    let reason =
                        "expected \"none\", \"may\", \"encrypt\" or \"verify\"".to_string();
                    return Err(f.bad(format!("{other:?}"), reason));
                }
            }
        }
        "ca_file" => {
            let text = f.string()?;
            config.tls.ca_file = match text {
                "" => None,
                t if t.starts_with('/') => Some(PathBuf::from(t)),
                t => {
                    return Err(f.bad(format!("{t:?}"), "must be an absolute path".to_string()));
                }
            };
        }
        _ => return Err(f.unknown(key)),
    }
    Ok(())
}

/// Resolves the references, fills in the defaults that depend on other
/// settings, and checks what involves more than one key.
fn finish(
    mut config: Config,
    given: Given,
    file: &str,
    system: &System,
) -> Result<Config, ConfigError> {
    check_restrictions(&config, &given, file)?;
    let mut resolver = Resolver::new(file, system, given.vars);
    let hostname = resolver.get(Var::Hostname)?;
    let domain = resolver.get(Var::Domain)?;
    config.server.origin = resolver.get(Var::Origin)?;
    config.server.user = resolver.get(Var::User)?;
    if let Some(at) = &given.run_directory {
        config.server.run_directory = directory(&mut resolver, file, at)?;
    }
    if let Some(at) = &given.queue_directory {
        config.queue.directory = directory(&mut resolver, file, at)?;
    }
    config.local.domains = match &given.domains {
        None => defaults::default_domains(&hostname, &domain),
        Some(list) => list
            .iter()
            .map(|at| {
                let value = resolver.expand(at)?.to_ascii_lowercase();
                let checked = match value.as_str() {
                    "" => Err("empty domain".to_string()),
                    name => check_hostname(name),
                };
                checked.map_err(|reason| expand::bad_value(file, at, &value, reason))?;
                Ok(value)
            })
            .collect::<Result<_, ConfigError>>()?,
    };
    config.local.concurrency_per_user =
        given
            .concurrency_per_user
            .unwrap_or(match config.local.mailbox.ends_with('/') {
                true => defaults::MAILDIR_CONCURRENCY,
                false => defaults::MBOX_CONCURRENCY,
            });
    config.smtpd.banner = match &given.banner {
        None => defaults::default_banner(&hostname),
        Some(at) => {
            let banner = resolver.expand(at)?;
            check_banner(&banner).map_err(|reason| expand::bad_value(file, at, &banner, reason))?;
            banner
        }
    };
    config.smtp.helo_name = match &given.helo_name {
        None => hostname.clone(),
        Some(at) => {
            let name = resolver.expand(at)?;
            check_hostname(&name).map_err(|reason| expand::bad_value(file, at, &name, reason))?;
            name
        }
    };
    if let Some(at) = &given.relay_host {
        let text = resolver.expand(at)?;
        config.relay.host = match text.trim() {
            "" => None,
            t => Some(
                crate::transport::Nexthop::parse(t)
                    .map_err(|reason| expand::bad_value(file, at, &text, reason))?,
            ),
        };
    }
    config.server.hostname = hostname;
    config.server.domain = domain;
    let queue = &config.queue;
    if queue.minimal_backoff > queue.maximal_backoff {
        let (minimal, maximal) = (
            format_duration(queue.minimal_backoff),
            format_duration(queue.maximal_backoff),
        );
        let (key, line, value, reason) = match given.maximal_backoff_line {
            Some(line) => (
                "maximal_backoff",
                line,
                maximal,
                format!("below queue.minimal_backoff ({minimal})"),
            ),
            None => (
                "minimal_backoff",
                given.minimal_backoff_line.unwrap_or(1),
                minimal,
                format!("above queue.maximal_backoff ({maximal})"),
            ),
        };
        return Err(ConfigError::BadValue {
            file: file.to_string(),
            line,
            key: format!("queue.{key}"),
            value: format!("{value:?}"),
            reason,
        });
    }
    Ok(config)
}

/// Expands a directory and checks that it is absolute.
fn directory(resolver: &mut Resolver, file: &str, at: &Located) -> Result<PathBuf, ConfigError> {
    let path = resolver.expand(at)?;
    let reason = if path.contains('\0') {
        "NUL byte in path"
    } else if !path.starts_with('/') {
        "must be an absolute path"
    } else {
        return Ok(PathBuf::from(path));
    };
    Err(expand::bad_value(file, at, &path, reason.to_string()))
}

/// The text being read, for turning byte offsets into lines.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl<'a> Source<'a> {
    fn line(&self, span: Option<Range<usize>>) -> usize {
        span.map_or(1, |s| line_column(self.text, s.start).0)
    }

    fn syntax(&self, error: &toml_edit::TomlError) -> ConfigError {
        let (line, column) = error
            .span()
            .map_or((1, 1), |s| line_column(self.text, s.start));
        let message = error
            .message()
            .trim()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigError::Syntax {
            file: self.file.to_string(),
            line,
            column,
            message,
        }
    }

    /// The key `name` of `parent` (a table inside `table`, or the root).
    fn field(
        &'a self,
        table: Option<&'a str>,
        parent: &'a dyn TableLike,
        name: &'a str,
        item: &'a Item,
    ) -> Field<'a> {
        let key_span = parent.get_key_value(name).and_then(|(k, _)| k.span());
        Field {
            source: self,
            table,
            key: match table {
                Some(table) => format!("{table}.{}", name.escape_debug()),
                None => name.escape_debug().to_string(),
            },
            line: self.line(key_span.or_else(|| item.span())),
            item,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One key with its value, dotted name and line.
struct Field<'a> {
    source: &'a Source<'a>,
    /// The table the key is in; `None` at the top level.
    table: Option<&'a str>,
    key: String,
    line: usize,
    item: &'a Item,
}

impl Field<'_> {
    fn string(&self) -> Result<&str, ConfigError> {
        self.item
            .as_str()
            .ok_or_else(|| self.wrong_type("a string"))
    }

    /// A table of strings (`{ name = "value", … }`), keys lower-cased.
    /// A table of strings whose keys are alias names (local, no domain).
    fn string_table(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        let table = self.any_string_table()?;
        if let Some(k) = table.keys().find(|k| k.contains('@') || k.is_empty()) {
            return Err(self.bad(
                format!("{k:?}"),
                "an alias name must be local, without a domain".to_string(),
            ));
        }
        Ok(table)
    }

    /// A table of strings, keys lower-cased.
    fn any_string_table(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        const EXPECTED: &str = "a table of strings (name = \"value\")";
        let table = self
            .item
            .as_table_like()
            .ok_or_else(|| self.wrong_type(EXPECTED))?;
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in table.iter() {
            let value = v.as_str().ok_or_else(|| self.wrong_type(EXPECTED))?;
            out.insert(k.to_ascii_lowercase(), value.to_string());
        }
        Ok(out)
    }

    fn located(&self) -> Result<Located, ConfigError> {
        Ok(Located {
            text: self.string()?.to_string(),
            key: self.key.clone(),
            line: self.line,
        })
    }

    fn boolean(&self) -> Result<bool, ConfigError> {
        self.item
            .as_bool()
            .ok_or_else(|| self.wrong_type("a boolean (true or false)"))
    }

    /// A non-negative integer of at least `min` that fits `T`.
    fn integer<T: TryFrom<i64>>(&self, min: i64) -> Result<T, ConfigError> {
        let n = self
            .item
            .as_integer()
            .ok_or_else(|| self.wrong_type("an integer"))?;
        if n < min {
            return Err(self.bad(n.to_string(), format!("must be at least {min}")));
        }
        T::try_from(n).map_err(|_| self.bad(n.to_string(), "too large".to_string()))
    }

    /// Seconds as an integer, or a string with a unit (`"5d"`).
    fn duration(&self) -> Result<Duration, ConfigError> {
        const EXPECTED: &str = "a duration (seconds, or a string like \"300s\" or \"5d\")";
        if let Some(n) = self.item.as_integer() {
            let secs = u64::try_from(n)
                .map_err(|_| self.bad(n.to_string(), "must not be negative".to_string()))?;
            return duration_from_secs(secs).map_err(|reason| self.bad(n.to_string(), reason));
        }
        let text = self
            .item
            .as_str()
            .ok_or_else(|| self.wrong_type(EXPECTED))?;
        parse_duration(text).map_err(|reason| self.bad(format!("{text:?}"), reason))
    }

    fn positive_duration(&self) -> Result<Duration, ConfigError> {
        let duration = self.duration()?;
        if duration.is_zero() {
            return Err(self.bad(self.shown(), "must be positive".to_string()));
        }
        Ok(duration)
    }

    /// An array of strings, each located at its own line.
    fn strings(&self) -> Result<Vec<Located>, ConfigError> {
        const EXPECTED: &str = "an array of strings";
        let array = self
            .item
            .as_array()
            .ok_or_else(|| self.wrong_type(EXPECTED))?;
        array
            .iter()
            .map(|value| match value.as_str() {
                Some(text) => Ok(Located {
                    text: text.to_string(),
                    key: self.key.clone(),
                    line: self.source.line(value.span()).max(self.line),
                }),
                None => Err(ConfigError::WrongType {
                    file: self.source.file.to_string(),
                    line: self.source.line(value.span()).max(self.line),
                    key: self.key.clone(),
                    expected: EXPECTED,
                    found: match value_type(value) {
                        "an integer" => "an array holding an integer",
                        "a float" => "an array holding a float",
                        "a boolean" => "an array holding a boolean",
                        "a date-time" => "an array holding a date-time",
                        "an array" => "an array holding an array",
                        _ => "an array holding a table",
                    },
                }),
            })
            .collect()
    }

    /// An array of strings, each parsed by `parse`.
    fn parsed<T>(&self, parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, ConfigError> {
        self.strings()?
            .into_iter()
            .map(|at| {
                parse(&at.text).map_err(|reason| ConfigError::BadValue {
                    file: self.source.file.to_string(),
                    line: at.line,
                    key: at.key,
                    value: format!("{:?}", at.text),
                    reason,
                })
            })
            .collect()
    }

    /// The value as written, for messages.
    fn shown(&self) -> String {
        match (self.item.as_integer(), self.item.as_str()) {
            (Some(n), _) => n.to_string(),
            (_, Some(text)) => format!("{text:?}"),
            _ => item_type(self.item).to_string(),
        }
    }

    fn wrong_type(&self, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            file: self.source.file.to_string(),
            line: self.line,
            key: self.key.clone(),
            expected,
            found: item_type(self.item),
        }
    }

    fn bad(&self, value: String, reason: String) -> ConfigError {
        ConfigError::BadValue {
            file: self.source.file.to_string(),
            line: self.line,
            key: self.key.clone(),
            value,
            reason,
        }
    }

    /// This key is not known in its table.
    fn unknown(&self, name: &str) -> ConfigError {
        let is_table =
            self.item.is_table() || self.item.is_inline_table() || self.item.is_array_of_tables();
        ConfigError::Unknown {
            file: self.source.file.to_string(),
            line: self.line,
            what: if is_table { "table" } else { "key" },
            key: self.key.clone(),
            suggestion: suggest(self.table, name),
        }
    }
}

/// The nearest valid key for `name` in `table` (`None`: the top level):
/// bare if in the same table, dotted otherwise.
fn suggest(table: Option<&str>, name: &str) -> Option<String> {
    let relative = |dotted: &str| match (table, dotted.split_once('.')) {
        (Some(t), Some((in_table, key))) if t == in_table => key.to_string(),
        _ => dotted.to_string(),
    };
    if let Some((_, key)) = POSTFIX_NAMES.iter().find(|(p, _)| *p == name) {
        return Some(relative(key));
    }
    let all = || {
        TABLES
            .iter()
            .flat_map(|(t, keys)| keys.iter().map(move |k| (*t, *k)))
    };
    match table {
        Some(table) => {
            let keys = TABLES
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(&[][..], |(_, k)| *k);
            if let Some(near) = nearest(name, keys.iter().copied()) {
                return Some(near.to_string());
            }
        }
        None => {
            if let Some(near) = nearest(name, TABLES.iter().map(|(t, _)| *t)) {
                return Some(near.to_string());
            }
        }
    }
    all()
        .find(|(_, k)| *k == name)
        .or_else(|| {
            let near = nearest(name, all().map(|(_, k)| k))?;
            all().find(|(_, k)| *k == near)
        })
        .map(|(t, k)| format!("{t}.{k}"))
}

fn item_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(value) => value_type(value),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}
