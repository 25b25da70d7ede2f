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
use super::keys;
use super::value::{
    check_banner, check_hostname, colliding_listeners, duration_from_secs, format_duration,
    parse_duration, parse_listen,
};
use super::{Choice, Config};
use crate::policy::element::Stage;

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
    let tables = keys::tables();
    for (name, item) in root.iter() {
        let field = source.field(None, root, name, item);
        if !tables.contains(&name) {
            return Err(field.unknown(name));
        }
        let Some(table) = item.as_table_like().filter(|_| !item.is_array_of_tables()) else {
            return Err(field.wrong_type("a table"));
        };
        for (key, item) in table.iter() {
            let f = source.field(Some(name), table, key, item);
            if name == "maps" {
                maps(&f, key, &mut config)?;
                continue;
            }
            match keys::find(name, key) {
                Some(k) => (k.read)(&f, &mut config, &mut given)?,
                None => return Err(f.unknown(key)),
            }
        }
    }
    finish(config, given, file, system)
}

/// The values that depend on other settings, kept until all are read.
#[derive(Default)]
pub(crate) struct Given {
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
    chain_files_line: Option<usize>,
    submission_relay_line: Option<usize>,
    metrics_listen_line: Option<usize>,
    maximal_backoff_line: Option<usize>,
    /// The line of `virtual.mailbox_domains` (its check needs
    /// `virtual.transport`).
    pub(super) virtual_domains_line: Option<usize>,
    /// Per restriction list (in `crate::policy::element::Stage` order): the line
    /// of its key and each table it names with its line, for the checks
    /// that need the whole file.
    restriction_lines: [Option<RestrictionLines>; 5],
}

/// The line of a restriction list's key, and each table it names with
/// the line of its string.
type RestrictionLines = (usize, Vec<(usize, String)>);

// The readers of keys whose value depends on others, or that other keys'
// checks need the line of (see `keys`): they keep what they read in
// `Given` for `finish`.

pub(super) fn hostname(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.vars[Var::Hostname as usize] = Some(f.located()?);
    Ok(())
}

pub(super) fn domain(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.vars[Var::Domain as usize] = Some(f.located()?);
    Ok(())
}

pub(super) fn origin(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.vars[Var::Origin as usize] = Some(f.located()?);
    Ok(())
}

pub(super) fn user(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.vars[Var::User as usize] = Some(f.located()?);
    Ok(())
}

pub(super) fn run_directory(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.run_directory = Some(f.located()?);
    Ok(())
}

pub(super) fn domains(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.domains = Some(f.strings()?);
    Ok(())
}

/// The most lanes (threads) one local-worker serves: `local::worker`'s
/// `MAX_LANES`.
const MAX_CONCURRENCY_PER_USER: usize = 64;

pub(super) fn concurrency_per_user(
    f: &Field,
    _: &mut Config,
    g: &mut Given,
) -> Result<(), ConfigError> {
    let n: usize = f.integer(1)?;
    // One delivery child serves a user's deliveries, a thread each.
    if n > MAX_CONCURRENCY_PER_USER {
        return Err(f.bad(
            n.to_string(),
            format!("must be at most {MAX_CONCURRENCY_PER_USER}"),
        ));
    }
    g.concurrency_per_user = Some(n);
    Ok(())
}

pub(super) fn relay_host(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.relay_host = Some(f.located()?);
    Ok(())
}

pub(super) fn queue_directory(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.queue_directory = Some(f.located()?);
    Ok(())
}

pub(super) fn minimal_backoff(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.queue.minimal_backoff = f.positive_duration()?;
    g.minimal_backoff_line = Some(f.line);
    Ok(())
}

pub(super) fn maximal_backoff(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.queue.maximal_backoff = f.positive_duration()?;
    g.maximal_backoff_line = Some(f.line);
    Ok(())
}

pub(super) fn banner(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.banner = Some(f.located()?);
    Ok(())
}

pub(super) fn helo_name(f: &Field, _: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    g.helo_name = Some(f.located()?);
    Ok(())
}

pub(super) fn client_list(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.restrictions.client = restriction_list(f, Stage::Client, g)?;
    Ok(())
}

pub(super) fn helo_list(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.restrictions.helo = restriction_list(f, Stage::Helo, g)?;
    Ok(())
}

pub(super) fn sender_list(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.restrictions.sender = restriction_list(f, Stage::Sender, g)?;
    Ok(())
}

pub(super) fn relay_list(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.restrictions.relay = restriction_list(f, Stage::Relay, g)?;
    Ok(())
}

pub(super) fn recipient_list(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.restrictions.recipient = restriction_list(f, Stage::Recipient, g)?;
    Ok(())
}

pub(super) fn submission_sender_list(
    f: &Field,
    c: &mut Config,
    _: &mut Given,
) -> Result<(), ConfigError> {
    // The lines kept in `Given` are those of `[restrictions]`.
    let mut ignored = Given::default();
    c.submission.sender = restriction_list(f, Stage::Sender, &mut ignored)?;
    Ok(())
}

pub(super) fn submission_relay_list(
    f: &Field,
    c: &mut Config,
    g: &mut Given,
) -> Result<(), ConfigError> {
    let mut ignored = Given::default();
    c.submission.relay = restriction_list(f, Stage::Relay, &mut ignored)?;
    g.submission_relay_line = Some(f.line);
    Ok(())
}

pub(super) fn metrics_listen(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.metrics.listen = f.listeners()?;
    g.metrics_listen_line = Some(f.line);
    Ok(())
}

pub(super) fn chain_files(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.tls.chain_files = f.absolute_paths()?;
    g.chain_files_line = Some(f.line);
    Ok(())
}

/// Postfix's `allow_mail_to_*` words.
pub(super) const CONTEXTS: &[&str] = &["alias", "forward", "include"];

/// A restriction list: each element parsed by `crate::policy`, so that a
/// typo is an error at its own line, naming the element.
fn restriction_list(
    f: &Field,
    stage: crate::policy::element::Stage,
    given: &mut Given,
) -> Result<Vec<String>, ConfigError> {
    let located = f.strings()?;
    let elements = crate::policy::element::parse_list(
        stage,
        &located.iter().map(|l| &l.text).collect::<Vec<_>>(),
    )
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
            crate::policy::element::Element::CheckAccess { table, .. } => Some(table),
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

/// What a relay list must hold (Postfix's words, as its smtpd says them
/// at start).
const RELAY_GUARD: &str = "specify at least one working instance of: reject_unauth_destination, \
                           defer_unauth_destination, reject, defer, defer_if_permit";

/// The restriction checks that need the whole file: every `inline:NAME`
/// table exists in `[maps]`, and the relay and recipient lists refuse
/// mail for other domains (as Postfix's smtpd insists at start).
fn check_restrictions(config: &Config, given: &Given, file: &str) -> Result<(), ConfigError> {
    use crate::policy::element::{Stage, has_relay_guard, parse_list};
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
            reason: format!(
                "in restrictions.relay or restrictions.recipient, {RELAY_GUARD} (without it this \
                 server is an open relay)"
            ),
        });
    }
    Ok(())
}

/// `[maps]`: every key is a named inline table (`[maps.badclient]`).
fn maps(f: &Field, key: &str, config: &mut Config) -> Result<(), ConfigError> {
    let table = f
        .any_string_table()?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    config.maps.insert(key.to_string(), table);
    Ok(())
}

/// `ip` or `ip:port` (`[v6]:port`); port 53 when absent.
pub(super) fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse()
        .map_err(|_| "expected ip or ip:port, e.g. \"127.0.0.1:53\"".to_string())
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
                crate::transport::syntax::Nexthop::parse(t)
                    .map_err(|reason| expand::bad_value(file, at, &text, reason))?,
            ),
        };
    }
    config.server.hostname = hostname;
    config.server.domain = domain;
    check_tls(&config, given.chain_files_line, file)?;
    super::virtual_keys::check(&config, given.virtual_domains_line, file)?;
    check_submission(&config, given.submission_relay_line, file)?;
    check_metrics(&config, given.metrics_listen_line, file)?;
    check_backoff(
        &config,
        (given.minimal_backoff_line, given.maximal_backoff_line),
        file,
    )?;
    Ok(config)
}

/// The metrics endpoint has no authentication: loopback only, unless
/// the administrator says otherwise (issue 23).
fn check_metrics(config: &Config, line: Option<usize>, file: &str) -> Result<(), ConfigError> {
    let m = &config.metrics;
    match m.listen.iter().find(|a| !a.ip().is_loopback()) {
        Some(at) if !m.allow_remote => Err(ConfigError::BadValue {
            file: file.to_string(),
            line: line.unwrap_or(1),
            key: "metrics.listen".to_string(),
            value: format!("\"{at}\""),
            reason: "not a loopback address: the endpoint has no authentication; \
                     set metrics.allow_remote = true to serve it beyond this host \
                     (behind a firewall or a proxy)"
                .to_string(),
        }),
        _ => Ok(()),
    }
}

/// Inbound TLS needs certificates.
fn check_tls(config: &Config, line: Option<usize>, file: &str) -> Result<(), ConfigError> {
    if config.tls.inbound != super::TlsInbound::None && config.tls.chain_files.is_empty() {
        return Err(ConfigError::BadValue {
            file: file.to_string(),
            line: line.unwrap_or(1),
            key: "tls.inbound".to_string(),
            value: format!("{:?}", config.tls.inbound.as_str()),
            reason: "needs tls.chain_files (a private key and its certificate chain)".to_string(),
        });
    }
    Ok(())
}

/// The submission listeners need certificates and a SASL backend, must
/// not share an address with `smtpd.listen`, and their relay list must
/// not make an open relay.
fn check_submission(config: &Config, line: Option<usize>, file: &str) -> Result<(), ConfigError> {
    let sub = &config.submission;
    let bad = |key: &str, value: String, reason: &str| ConfigError::BadValue {
        file: file.to_string(),
        line: line.unwrap_or(1),
        key: key.to_string(),
        value,
        reason: reason.to_string(),
    };
    let all: Vec<_> = config
        .smtpd
        .listen
        .iter()
        .chain(&sub.listen)
        .chain(&sub.implicit_tls_listen)
        .copied()
        .collect();
    if let Some((at, reason)) = colliding_listeners(&all) {
        return Err(bad("submission.listen", format!("\"{at}\""), &reason));
    }
    if !sub.is_on() {
        return Ok(());
    }
    let words = |v: &[std::net::SocketAddr]| format!("{v:?}");
    let key = if sub.listen.is_empty() {
        "submission.implicit_tls_listen"
    } else {
        "submission.listen"
    };
    let listeners = words(if sub.listen.is_empty() {
        &sub.implicit_tls_listen
    } else {
        &sub.listen
    });
    if config.tls.chain_files.is_empty() {
        return Err(bad(
            key,
            listeners,
            "needs tls.chain_files (a private key and its certificate chain)",
        ));
    }
    if config.sasl.backend == super::SaslBackend::None {
        return Err(bad(
            key,
            listeners,
            "needs sasl.backend (\"dovecot\" or \"passwd\"): submission takes mail only from clients that log in",
        ));
    }
    if !sub.listen.is_empty() && sub.tls == super::TlsInbound::None && config.sasl.tls_only {
        return Err(bad(
            "submission.tls",
            "\"none\"".into(),
            "with sasl.tls_only, AUTH would never be offered on submission.listen",
        ));
    }
    use crate::policy::element::{Stage, has_relay_guard, parse_list};
    if let Ok(relay) = parse_list(Stage::Relay, &sub.relay)
        && !has_relay_guard(&relay, &[])
    {
        return Err(bad(
            "submission.relay",
            format!("{:?}", sub.relay),
            &format!("{RELAY_GUARD} (without it the submission listeners are an open relay)"),
        ));
    }
    Ok(())
}

/// The back-off's bounds in order.
fn check_backoff(
    config: &Config,
    (minimal_line, maximal_line): (Option<usize>, Option<usize>),
    file: &str,
) -> Result<(), ConfigError> {
    let queue = &config.queue;
    if queue.minimal_backoff > queue.maximal_backoff {
        let (minimal, maximal) = (
            format_duration(queue.minimal_backoff),
            format_duration(queue.maximal_backoff),
        );
        let (key, line, value, reason) = match maximal_line {
            Some(line) => (
                "maximal_backoff",
                line,
                maximal,
                format!("below queue.minimal_backoff ({minimal})"),
            ),
            None => (
                "minimal_backoff",
                minimal_line.unwrap_or(1),
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
    Ok(())
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
pub(crate) struct Field<'a> {
    source: &'a Source<'a>,
    /// The table the key is in; `None` at the top level.
    table: Option<&'a str>,
    key: String,
    line: usize,
    item: &'a Item,
}

impl Field<'_> {
    /// An optional absolute path: `""` is none.
    pub(super) fn absolute_path(&self) -> Result<PathBuf, ConfigError> {
        match self.optional_path()? {
            Some(p) => Ok(p),
            None => Err(self.bad("\"\"".to_string(), "must be an absolute path".to_string())),
        }
    }

    pub(super) fn optional_path(&self) -> Result<Option<PathBuf>, ConfigError> {
        match self.string()? {
            "" => Ok(None),
            t if t.starts_with('/') => Ok(Some(PathBuf::from(t))),
            t => Err(self.bad(format!("{t:?}"), "must be an absolute path".to_string())),
        }
    }

    /// `local.mailbox`: only `$user` and `$home` may be expanded.
    pub(super) fn mailbox(&self) -> Result<String, ConfigError> {
        let mailbox = self.string()?;
        expand::check_mailbox(mailbox)
            .map_err(|reason| self.bad(format!("{mailbox:?}"), reason))?;
        Ok(mailbox.to_string())
    }

    pub(super) fn owned_string(&self) -> Result<String, ConfigError> {
        Ok(self.string()?.to_string())
    }

    /// A user name other than root.
    pub(super) fn unprivileged_user(&self) -> Result<String, ConfigError> {
        let user = self.string()?;
        if user.is_empty() || user == "root" {
            return Err(self.bad(
                format!("{user:?}"),
                "must be an unprivileged user".to_string(),
            ));
        }
        Ok(user.to_string())
    }

    /// A list of absolute paths.
    pub(super) fn absolute_paths(&self) -> Result<Vec<PathBuf>, ConfigError> {
        self.strings()?
            .into_iter()
            .map(|l| {
                let p = PathBuf::from(&l.text);
                if p.is_absolute() {
                    Ok(p)
                } else {
                    Err(self.bad(
                        format!("{:?}", l.text),
                        "must be an absolute path".to_string(),
                    ))
                }
            })
            .collect()
    }

    /// A list of strings as written.
    pub(super) fn plain_strings(&self) -> Result<Vec<String>, ConfigError> {
        Ok(self.strings()?.into_iter().map(|l| l.text).collect())
    }

    /// A list of [`CONTEXTS`] words (Postfix's allow_mail_to_*).
    pub(super) fn contexts(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for l in self.strings()? {
            let c = l.text.to_ascii_lowercase();
            if !CONTEXTS.contains(&c.as_str()) {
                let words: Vec<String> = CONTEXTS.iter().map(|w| format!("{w:?}")).collect();
                let reason = format!("must be one of {}", words.join(", "));
                return Err(self.bad(format!("{:?}", l.text), reason));
            }
            out.push(c);
        }
        Ok(out)
    }

    /// A list of `T`'s words.
    pub(super) fn choices<T: Choice>(&self) -> Result<Vec<T>, ConfigError> {
        self.strings()?
            .into_iter()
            .map(|at| {
                T::from_name(&at.text)
                    .ok_or_else(|| self.bad_at(&at, one_of(T::NAMES, "must be one of")))
            })
            .collect()
    }

    /// A bad item of a list, at its own line.
    pub(super) fn bad_at(&self, at: &Located, reason: String) -> ConfigError {
        ConfigError::BadValue {
            file: self.source.file.to_string(),
            line: at.line,
            key: at.key.clone(),
            value: format!("{:?}", at.text),
            reason,
        }
    }

    /// One of `T`'s words.
    pub(super) fn choice<T: Choice>(&self) -> Result<T, ConfigError> {
        let text = self.string()?;
        T::from_name(text)
            .ok_or_else(|| self.bad(format!("{text:?}"), one_of(T::NAMES, "expected")))
    }

    /// An optional IP address: `""` is none.
    pub(super) fn optional_ip(&self) -> Result<Option<std::net::IpAddr>, ConfigError> {
        match self.string()? {
            "" => Ok(None),
            t => t
                .parse()
                .map(Some)
                .map_err(|_| self.bad(format!("{t:?}"), "expected an IP address".to_string())),
        }
    }

    /// smtpd's listeners: `ip:port` each, no two colliding.
    pub(super) fn listeners(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        let listen = self.parsed::<SocketAddr>(parse_listen)?;
        if let Some((at, reason)) = colliding_listeners(&listen) {
            return Err(self.bad(format!("\"{at}\""), reason));
        }
        Ok(listen)
    }

    /// An inline transport table, keys lower-cased.
    pub(super) fn transport_table(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::transport::syntax::Transport>, ConfigError>
    {
        let mut table = std::collections::BTreeMap::new();
        for (k, v) in self.any_string_table()? {
            let t = crate::transport::syntax::Transport::parse(&v)
                .map_err(|reason| self.bad(format!("{k} = {v:?}"), reason))?;
            table.insert(k.to_ascii_lowercase(), t);
        }
        Ok(table)
    }

    fn string(&self) -> Result<&str, ConfigError> {
        self.item
            .as_str()
            .ok_or_else(|| self.wrong_type("a string"))
    }

    /// A table of strings (`{ name = "value", … }`), keys lower-cased.
    /// A table of strings whose keys are alias names (local, no domain).
    pub(super) fn string_table(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
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
    pub(super) fn any_string_table(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
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

    pub(super) fn located(&self) -> Result<Located, ConfigError> {
        Ok(Located {
            text: self.string()?.to_string(),
            key: self.key.clone(),
            line: self.line,
        })
    }

    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        self.item
            .as_bool()
            .ok_or_else(|| self.wrong_type("a boolean (true or false)"))
    }

    /// A non-negative integer of at least `min` that fits `T`.
    pub(super) fn integer<T: TryFrom<i64>>(&self, min: i64) -> Result<T, ConfigError> {
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
    pub(super) fn duration(&self) -> Result<Duration, ConfigError> {
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

    pub(super) fn positive_duration(&self) -> Result<Duration, ConfigError> {
        let duration = self.duration()?;
        if duration.is_zero() {
            return Err(self.bad(self.shown(), "must be positive".to_string()));
        }
        Ok(duration)
    }

    /// An array of strings, each located at its own line.
    pub(super) fn strings(&self) -> Result<Vec<Located>, ConfigError> {
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
    pub(super) fn parsed<T>(
        &self,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
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

    pub(super) fn bad(&self, value: String, reason: String) -> ConfigError {
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

/// `must be one of "a", "b" or "c"`.
fn one_of(words: &[&str], lead: &str) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("{lead} {last}"),
        Some((last, rest)) => format!("{lead} {} or {last}", rest.join(", ")),
        None => lead.to_string(),
    }
}

/// The nearest valid key for `name` in `table` (`None`: the top level):
/// bare if in the same table, dotted otherwise.
fn suggest(table: Option<&str>, name: &str) -> Option<String> {
    let relative = |key: &keys::Key| match table {
        Some(t) if t == key.table => key.name.to_string(),
        _ => key.dotted(),
    };
    // A Postfix name written by habit: the key that replaces it.
    if let Some(key) = keys::KEYS
        .iter()
        .find(|k| !k.postfix.is_empty() && k.postfix.eq_ignore_ascii_case(name))
    {
        return Some(relative(key));
    }
    match table {
        Some(table) => {
            let names = keys::KEYS
                .iter()
                .filter(|k| k.table == table)
                .map(|k| k.name);
            if let Some(near) = nearest(name, names) {
                return Some(near.to_string());
            }
        }
        None => {
            if let Some(near) = nearest(name, keys::tables()) {
                return Some(near.to_string());
            }
        }
    }
    keys::KEYS
        .iter()
        .find(|k| k.name == name)
        .or_else(|| {
            let near = nearest(name, keys::KEYS.iter().map(|k| k.name))?;
            keys::KEYS.iter().find(|k| k.name == near)
        })
        .map(|k| k.dotted())
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
