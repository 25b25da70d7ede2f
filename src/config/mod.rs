//! Configuration: the one file `/etc/postern/postern.toml`.
//!
//! The file is TOML with these tables: `[server]`, `[local]`, `[relay]`,
//! `[queue]`, `[smtpd]`, `[restrictions]`, `[maps]`, `[checks]`, `[smtp]`,
//! `[tls]`, `[dns]` and `[sandbox]`, whose keys are the field names below. Every key
//! is optional; the defaults follow Postfix's where they are safe, and each
//! key's documentation names the Postfix parameter it replaces.
//!
//! Unlike Postfix, postern is strict: an unknown key or table, a value of the
//! wrong type or a value that does not parse is fatal, and the error names the
//! file, the line and the dotted key (`smtpd.message_size_limit`), and for an
//! unknown key the nearest valid one ([`ConfigError`]).
//!
//! String values may refer to the `[server]` settings Postfix-style:
//! `$hostname`, `${domain}`, `$(origin)`, `$user` (and Postfix's names
//! `$myhostname`, `$mydomain`, `$myorigin`, `$mail_owner`); `$$` is a literal
//! `$`. Expansion is recursive and happens once, at load time, in
//! `server.hostname`, `server.domain`, `server.origin`, `server.user`,
//! `server.run_directory`, `local.domains`, `queue.directory` and
//! `smtpd.banner`. `local.mailbox` is not expanded: its `$user` and `$home`
//! are per-delivery variables.
//!
//! [`Config::to_toml`] prints the effective configuration (`postern config
//! show`, like `postconf`), optionally only what differs from the defaults
//! (like `postconf -n`).
//!
//! Module map: `load` walks the TOML document into typed values, `expand`
//! resolves `$name` references, `value` parses durations, networks,
//! addresses and names, `defaults` computes the built-in configuration from
//! the system, `show` prints, `error` holds [`ConfigError`].

mod defaults;
mod error;
mod expand;
mod load;
mod show;
mod value;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub(crate) use error::ConfigError;
pub(crate) use value::{check_hostname, v6_only};

use defaults::System;

/// Where the configuration is read from when no path is given.
pub const DEFAULT_PATH: &str = "/etc/postern/postern.toml";
/// The effective configuration `postern start` writes in the run
/// directory and starts every role with.
pub(crate) const EFFECTIVE_FILE: &str = "postern.toml";

/// The whole configuration; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: Server,
    pub local: Local,
    pub relay: Relay,
    pub queue: Queue,
    pub smtpd: Smtpd,
    pub restrictions: Restrictions,
    pub maps: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    pub checks: Checks,
    pub smtp: Smtp,
    pub tls: Tls,
    pub dns: Dns,
    pub sandbox: Sandbox,
}

/// `[smtp]`: the SMTP client that delivers to other hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct Smtp {
    /// `smtp.port` (Postfix: the `smtp` entry of /etc/services): the port
    /// of MX hosts and of next hops written without a port. Default: 25.
    pub port: u16,
    /// `smtp.helo_name`, Postfix `smtp_helo_name`. Default: `$hostname`.
    pub helo_name: String,
    /// `smtp.bind_address`, Postfix `smtp_bind_address`: the local address
    /// of outgoing connections. Default: none (the kernel's choice).
    pub bind_address: Option<std::net::IpAddr>,
    /// `smtp.connect_timeout`, Postfix `smtp_connect_timeout`. Default: 30s.
    pub connect_timeout: Duration,
    /// `smtp.helo_timeout`, Postfix `smtp_helo_timeout` (greeting and
    /// EHLO). Default: 300s.
    pub helo_timeout: Duration,
    /// `smtp.starttls_timeout`, Postfix `smtp_starttls_timeout`. Default: 300s.
    pub starttls_timeout: Duration,
    /// `smtp.mail_timeout`, Postfix `smtp_mail_timeout`. Default: 300s.
    pub mail_timeout: Duration,
    /// `smtp.rcpt_timeout`, Postfix `smtp_rcpt_timeout`. Default: 300s.
    pub rcpt_timeout: Duration,
    /// `smtp.data_init_timeout`, Postfix `smtp_data_init_timeout`. Default: 120s.
    pub data_init_timeout: Duration,
    /// `smtp.data_xfer_timeout`, Postfix `smtp_data_xfer_timeout`. Default: 180s.
    pub data_xfer_timeout: Duration,
    /// `smtp.data_done_timeout`, Postfix `smtp_data_done_timeout`. Default: 600s.
    pub data_done_timeout: Duration,
    /// `smtp.quit_timeout`, Postfix `smtp_quit_timeout`. Default: 300s.
    pub quit_timeout: Duration,
    /// `smtp.destination_concurrency_limit`, Postfix
    /// `default_destination_concurrency_limit`: connections to one
    /// destination at once. Default: 20.
    pub destination_concurrency_limit: usize,
    /// `smtp.destination_recipient_limit`, Postfix
    /// `default_destination_recipient_limit`: recipients per transaction.
    /// Default: 50.
    pub destination_recipient_limit: usize,
    /// `smtp.connection_cache_time`, Postfix
    /// `smtp_connection_cache_time_limit`: how long an idle connection is
    /// kept for the next message to the same destination. Default: 2s.
    pub connection_cache_time: Duration,
}

/// `[dns]`: how smtpd's checks and the smtp client ask DNS.
#[derive(Clone, Debug, PartialEq)]
pub struct Dns {
    /// `dns.servers` (no Postfix equivalent; Postfix uses the system's
    /// resolver): DNS servers as `ip` or `ip:port`, instead of
    /// /etc/resolv.conf. Default: none (the system's).
    pub servers: Vec<SocketAddr>,
}

/// `[restrictions]`: smtpd's access policy (Postfix's
/// `smtpd_*_restrictions`). Each list holds restriction elements as
/// Postfix writes them (`permit_mynetworks`, `check_client_access
/// hash:/etc/postern/badclient`, `reject_rbl_client zen.example`, a bare
/// table meaning `check_<stage>_access TABLE`, ...), evaluated in order,
/// the first decisive answer winning (see `crate::policy`).
#[derive(Clone, Debug, PartialEq)]
pub struct Restrictions {
    /// `restrictions.client`, Postfix `smtpd_client_restrictions`. Default: none.
    pub client: Vec<String>,
    /// `restrictions.helo`, Postfix `smtpd_helo_restrictions`. Default: none.
    pub helo: Vec<String>,
    /// `restrictions.sender`, Postfix `smtpd_sender_restrictions`. Default: none.
    pub sender: Vec<String>,
    /// `restrictions.relay`, Postfix `smtpd_relay_restrictions`. Default:
    /// `["permit_mynetworks", "reject_unauth_destination"]` (relay only for
    /// `relay.networks`; Postfix defers unauthorized relaying, postern
    /// rejects it: `554 5.7.1 <…>: Relay access denied`).
    pub relay: Vec<String>,
    /// `restrictions.recipient`, Postfix `smtpd_recipient_restrictions`.
    /// Default: none.
    pub recipient: Vec<String>,
    /// `restrictions.delay_reject`, Postfix `smtpd_delay_reject`: evaluate
    /// the client, helo and sender lists at RCPT time. Default: true.
    pub delay_reject: bool,
    /// `restrictions.rbl_domains`, Postfix `maps_rbl_domains` (removed in
    /// Postfix 3.9): the zones of the deprecated `reject_maps_rbl`.
    /// Default: none.
    pub rbl_domains: Vec<String>,
    /// `restrictions.dns_failure` (no single Postfix equivalent): what a
    /// DNS timeout or server failure in a DNS-based check does:
    /// `"pass"` (the check says nothing; default) or `"defer"` (`450 4.7.1`
    /// so the client tries again later). It never rejects.
    pub dns_failure: DnsFailure,
}

/// What a failed DNS lookup in a check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    Pass,
    Defer,
}

impl DnsFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DnsFailure::Pass => "pass",
            DnsFailure::Defer => "defer",
        }
    }
}

/// `[checks]`: header and body checks on arriving mail (Postfix's
/// `header_checks`, `mime_header_checks`, `body_checks`): lists of tables
/// (`regexp:/path`, `pcre:/path`, or inline `pcre:{ {/re/ ACTION}, … }`),
/// each line of the message matched against them in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Checks {
    /// `checks.header`, Postfix `header_checks`. Default: none.
    pub header: Vec<String>,
    /// `checks.mime_header`, Postfix `mime_header_checks` (headers of MIME
    /// parts). Default: none.
    pub mime_header: Vec<String>,
    /// `checks.body`, Postfix `body_checks`. Default: none.
    pub body: Vec<String>,
}

/// `[tls]`: TLS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Tls {
    /// `tls.outbound`, Postfix `smtp_tls_security_level`: `"none"`,
    /// `"may"` (STARTTLS when offered, certificate not checked, plain text
    /// when the handshake fails), `"encrypt"` (TLS required, certificate
    /// not checked), `"verify"` (TLS required, certificate chain and host
    /// name checked). Default: `"may"`.
    pub outbound: TlsLevel,
    /// `tls.ca_file`, Postfix `smtp_tls_CAfile`: PEM certificates trusted
    /// at `verify`. Default: none (the system's, /etc/ssl/certs).
    pub ca_file: Option<PathBuf>,
}

/// Outbound TLS security level (Postfix's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLevel {
    None,
    May,
    Encrypt,
    Verify,
}

impl TlsLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::May => "may",
            TlsLevel::Encrypt => "encrypt",
            TlsLevel::Verify => "verify",
        }
    }
}

/// `[sandbox]`: how the daemons confine themselves (no Postfix
/// equivalent). Each daemon applies its own Landlock ruleset and drops its
/// capabilities before it reads any input (see [`crate::sandbox`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Sandbox {
    /// `sandbox.require`: refuse to start when the kernel cannot enforce
    /// the Landlock ruleset completely (no Landlock, or an older ABI that
    /// misses some of the rights). Default: false (start, with a warning).
    pub require: bool,
    /// `sandbox.local_writable`: more directories local's delivery
    /// children may write when neither commands nor files are allowed
    /// (`local.allow_mail_to_commands` and `local.allow_mail_to_files`
    /// empty); homes, mail spools and `/tmp` are always in. Default: none.
    pub local_writable: Vec<PathBuf>,
}

/// `[server]`: identity of the mail system and where its daemons live.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// `server.hostname`, Postfix `myhostname`: this system's fully
    /// qualified name. Default: `gethostname()`, with `.$domain` (or
    /// `.localdomain`) appended when it has no dot. Must be a valid hostname.
    pub hostname: String,
    /// `server.domain`, Postfix `mydomain`. Default: `$hostname` minus its
    /// first label, `localdomain` if it has only one.
    pub domain: String,
    /// `server.origin`, Postfix `myorigin`: the domain appended to
    /// unqualified addresses in locally posted mail. Default: `$hostname`.
    pub origin: String,
    /// `server.user`, Postfix `mail_owner`: the user smtpd and qmgr run as
    /// when started as root. Default: `postern`.
    pub user: String,
    /// `server.run_directory` (no Postfix equivalent; Postfix keeps its
    /// sockets under `queue_directory`): directory for the Unix sockets
    /// (qmgr.sock, local.sock, submit.sock). Default: `/run/postern` as root
    /// or as the `postern` user,
    /// else `$XDG_STATE_HOME/postern/run` (`~/.local/state/postern/run`).
    pub run_directory: PathBuf,
    /// `server.log_file`, Postfix `maillog_file`: write the log to this file
    /// (appended, syslog format, readable by pflogsumm) instead of the
    /// journal, syslog or standard error; opened again on SIGHUP
    /// (`postern reload`, logrotate's postrotate). Default: none.
    pub log_file: Option<PathBuf>,
}

/// `[local]`: local delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    /// `local.domains`, Postfix `mydestination`: the domains delivered
    /// locally; lower-case, expanded. Default: `["$hostname",
    /// "localhost.$domain", "localhost"]`.
    pub domains: Vec<String>,
    /// `local.mailbox`, Postfix `home_mailbox`: relative to the home
    /// directory, or absolute; may hold `$user`, `${user}`, `$home` and
    /// `${home}` (expanded per delivery; no other `$` is accepted). A
    /// trailing `/` means Maildir. Default: `Maildir/`.
    pub mailbox: String,
    /// `local.worker_idle` (no Postfix equivalent; compare `max_idle`): how
    /// long a per-user delivery child waits for more work. Default: 60s.
    pub worker_idle: Duration,
    /// `local.concurrency_per_user`, Postfix
    /// `local_destination_concurrency_limit` (default 2 there, where mbox
    /// locking makes more pointless): deliveries to one user in parallel.
    /// Default: 8 when `local.mailbox` is a Maildir (no lock; with a
    /// journal, parallel fsyncs share commits), 2 for mbox.
    pub concurrency_per_user: usize,
    /// `local.aliases`, inline aliases (no Postfix equivalent: Postfix
    /// keeps them in files): `{ postmaster = "root", root = "admin" }`,
    /// each value an aliases(5) right-hand side. They win over the files.
    /// Keys lower-cased. Default: none (the built-in `postmaster` and
    /// `mailer-daemon` aliases still exist unless overridden).
    pub aliases: std::collections::BTreeMap<String, String>,
    /// `local.alias_files`, Postfix `alias_maps` (files in aliases(5)
    /// format, first match wins). Default: `["/etc/aliases"]`; a missing
    /// file counts as empty, with a warning.
    pub alias_files: Vec<PathBuf>,
    /// `local.recipient_delimiter`, Postfix `recipient_delimiter`: the
    /// characters that split `user+ext`. Default: empty (none).
    pub recipient_delimiter: String,
    /// `local.command_time_limit`, Postfix `command_time_limit`: how long a
    /// `|command` delivery may run. Default: 1000s.
    pub command_time_limit: Duration,
    /// `local.default_privs`, Postfix `default_privs`: the user commands
    /// and files of root-owned or inline aliases run as. Default: nobody.
    pub default_privs: String,
    /// `local.allow_mail_to_commands`, Postfix `allow_mail_to_commands`:
    /// where `|command` targets may come from (`alias`, `forward`,
    /// `include`). Default: alias, forward.
    pub allow_mail_to_commands: Vec<String>,
    /// `local.allow_mail_to_files`, Postfix `allow_mail_to_files`: where
    /// `/file` targets may come from. Default: alias, forward.
    pub allow_mail_to_files: Vec<String>,
}

/// `[relay]`: who may relay through this server.
#[derive(Clone, Debug, PartialEq)]
pub struct Relay {
    /// `relay.networks`, Postfix `mynetworks`: trusted client networks, as
    /// CIDR (`10.0.0.0/8`, `[::1]/128`) or bare addresses. Default:
    /// `127.0.0.0/8` and `::1/128`.
    pub networks: Vec<IpNet>,
    /// `relay.host`, Postfix `relayhost`: where mail for other domains
    /// goes when no transport entry says otherwise: `[host]:port` (no MX
    /// lookup) or `host` (its MX hosts); may hold `$domain` etc. Default:
    /// none (deliver by the MX records of each recipient's domain).
    pub host: Option<crate::transport::Nexthop>,
    /// `relay.transport`, inline transport table (Postfix `transport_maps`
    /// in a file): `{ "example.com" = "smtp:[10.0.0.1]:25", ".example.com"
    /// = "error:5.7.1 no mail here" }`; keys are lower-cased addresses
    /// (`user@domain`), domains, `.domain` (its subdomains) or `*`. They
    /// win over the files. Default: none.
    pub transport: std::collections::BTreeMap<String, crate::transport::Transport>,
    /// `relay.transport_files`, Postfix `transport_maps`: files in
    /// transport(5) format (`key result` per line, `#` comments), first
    /// match wins. Default: none.
    pub transport_files: Vec<PathBuf>,
}

/// `[queue]`: the mail queue and its retry schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    /// `queue.directory`, Postfix `queue_directory`. Default:
    /// `/var/spool/postern` as root or as the `postern` user, else
    /// `$XDG_STATE_HOME/postern/queue`
    /// (`~/.local/state/postern/queue`).
    pub directory: PathBuf,
    /// `queue.large_message_threshold` (no Postfix equivalent): content above
    /// this many bytes goes to a file of its own. Default: 1 MiB.
    pub large_message_threshold: u64,
    /// `queue.minimal_backoff`, Postfix `minimal_backoff_time`. Default: 300s.
    pub minimal_backoff: Duration,
    /// `queue.maximal_backoff`, Postfix `maximal_backoff_time`. Default:
    /// 4000s; must not be below `minimal_backoff`.
    pub maximal_backoff: Duration,
    /// `queue.run_delay`, Postfix `queue_run_delay`. Default: 300s.
    pub run_delay: Duration,
    /// `queue.maximal_lifetime`, Postfix `maximal_queue_lifetime`. Default: 5d.
    pub maximal_lifetime: Duration,
    /// `queue.move_deferred_after` (no Postfix equivalent; Postfix moves a
    /// message to `deferred/` at its first failure): a message deferred this
    /// long moves to `deferred/` as a file of its own. Default: 1h.
    pub move_deferred_after: Duration,
    /// `queue.delay_warning_time`, Postfix `delay_warning_time`: after a
    /// message has waited this long, its sender gets one "Delayed Mail
    /// (still being retried)" notice. 0 (the default, as Postfix) is off.
    pub delay_warning_time: Duration,
    /// `queue.bounce_size_limit`, Postfix `bounce_size_limit`: a returned
    /// original larger than this is reduced to its headers. Default: 50000.
    pub bounce_size_limit: usize,
    /// `queue.authorized_mailq_users`, Postfix `authorized_mailq_users`:
    /// who may list the queue (user names; `*` anyone). Default: `["*"]`.
    pub authorized_mailq_users: Vec<String>,
    /// `queue.minfree`, Postfix `queue_minfree`: bytes of free space the
    /// queue's file system must keep; smtpd answers MAIL with `452 4.3.1
    /// Insufficient system storage` when free space minus the declared
    /// `SIZE=` would fall below it, or when the message would take half of
    /// what is free. The limit in effect is never below 1.5 times
    /// `smtpd.message_size_limit`, as in Postfix. Default: 0 (that 1.5
    /// times the size limit).
    pub minfree: u64,
}

/// `smtpd.forbid_bare_newline`, Postfix `smtpd_forbid_bare_newline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNewline {
    /// `"normalize"`: accept a bare LF as a line end (Postfix `normalize`).
    Normalize,
    /// `"reject"`: reject a command or message line ending in a bare LF
    /// (Postfix `reject`).
    Reject,
}

/// `[smtpd]`: the SMTP server.
#[derive(Clone, Debug, PartialEq)]
pub struct Smtpd {
    /// `smtpd.listen` (Postfix `inet_interfaces` plus the port in
    /// master.cf): the TCP listeners, as `ip:port` (`[::1]:25` for IPv6),
    /// bound by `postern start`, and written into `postern-smtpd.socket` by
    /// the systemd generator ([`crate::systemd::generator`]). Default:
    /// `["127.0.0.1:2525"]`.
    pub listen: Vec<SocketAddr>,
    /// `smtpd.banner`, Postfix `smtpd_banner` (the text after `220 `).
    /// Default: `$hostname ESMTP postern`.
    pub banner: String,
    /// `smtpd.message_size_limit`, Postfix `message_size_limit`: bytes; 0 =
    /// unlimited. Default: 10240000.
    pub message_size_limit: u64,
    /// `smtpd.recipient_limit`, Postfix `smtpd_recipient_limit`. Default: 1000.
    pub recipient_limit: usize,
    /// `smtpd.line_length_limit`, Postfix `line_length_limit` (for
    /// commands): at least 512 (RFC 5321). Default: 2048.
    pub line_length_limit: usize,
    /// `smtpd.timeout`, Postfix `smtpd_timeout`: deadline for each command.
    /// Default: 300s.
    pub timeout: Duration,
    /// `smtpd.hard_error_limit`, Postfix `smtpd_hard_error_limit`. Default: 20.
    pub hard_error_limit: u32,
    /// `smtpd.junk_command_limit`, Postfix `smtpd_junk_command_limit`:
    /// after this many junk commands (HELO, EHLO, RSET, NOOP, VRFY, ETRN,
    /// HELP) each further one counts as an error, so a client that only
    /// keeps its connection open reaches `hard_error_limit`. Both counters
    /// start again after each message accepted. Default: 100.
    pub junk_command_limit: u32,
    /// `smtpd.session_time_limit` (no Postfix equivalent): how long one
    /// connection may last in all, whatever it does; at the limit the
    /// client gets `421 4.4.2` and is disconnected (a message being
    /// transferred is not queued). 0 means no limit. Default: 1h.
    pub session_time_limit: Duration,
    /// `smtpd.max_connections` (Postfix: the `maxproc` column of smtpd in
    /// master.cf): total simultaneous connections, clamped to what the open
    /// file limit allows. From 80 % of it on, smtpd is in stress mode
    /// (Postfix's `stress` parameter): `timeout` 10s, `hard_error_limit` 1,
    /// `junk_command_limit` 1, `session_time_limit` 5m at most. At the
    /// limit, the session that has waited longest for a command without a
    /// transaction is closed to make room; only when there is none is the
    /// new client refused. Default: 2000.
    pub max_connections: usize,
    /// `smtpd.max_connections_per_client`, Postfix
    /// `smtpd_client_connection_count_limit`: simultaneous connections from
    /// one address; 0 means no limit. Default: 50.
    pub max_connections_per_client: usize,
    /// `smtpd.vrfy`, Postfix `!disable_vrfy_command`: whether VRFY answers
    /// (default false: VRFY answers 502).
    pub vrfy: bool,
    /// `smtpd.forbid_bare_newline`, Postfix `smtpd_forbid_bare_newline`:
    /// `"normalize"` (default) or `"reject"`.
    pub forbid_bare_newline: BareNewline,
    /// `smtpd.forbid_unauth_pipelining`, Postfix
    /// `smtpd_forbid_unauth_pipelining`. Default: true.
    pub forbid_unauth_pipelining: bool,
    /// `smtpd.authorized_submit_users`, Postfix `authorized_submit_users`:
    /// who may submit with `sendmail` (user names; `*` anyone). Default:
    /// `["*"]`.
    pub authorized_submit_users: Vec<String>,
    /// `smtpd.sender_override_users` (compare Postfix
    /// `local_login_sender_maps`): who may submit with an envelope sender
    /// other than their own (`sendmail -f`). Default: `["*"]`, and every
    /// submission is logged with its uid.
    pub sender_override_users: Vec<String>,
}

impl Config {
    /// Whether mail for `domain` is delivered here (`local.domains`,
    /// Postfix's mydestination); an empty domain is ours too.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain.is_empty()
            || self
                .local
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Reads the configuration. With `Some(path)` that file must exist; with
    /// `None`, [`DEFAULT_PATH`] is read if it exists, else the built-in
    /// defaults ([`Config::builtin`]) are returned.
    ///
    /// [`DEFAULT_PATH`] describes the system's mail system: its defaults
    /// are the system's (`/run/postern`, `/var/spool/postern`) whoever
    /// reads it, so that `sendmail` and `mailq` of every user find the
    /// running system. Another file, and the built-in defaults, take the
    /// caller's (per-user directories for an ordinary user).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::builtin());
            }
            Err(cause) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    cause,
                });
            }
        };
        let file_name = path.display().to_string();
        let text = load::utf8(&bytes, &file_name)?;
        load::parse(text, &file_name, &System::for_file(path))
    }

    /// For commands that only talk to the running system (`sendmail`,
    /// `mailq`, `postern status|stop|flush|queue`), when `path` (as
    /// [`Config::load`] takes it) has an error: the configuration the
    /// running system uses — the effective file the supervisor wrote in
    /// the run directory that `path` names (read leniently: only
    /// `server.run_directory`), or the default one — else the defaults
    /// with that run directory. Never fails: finding the running system
    /// needs nothing more.
    pub fn fallback(path: Option<&Path>) -> Config {
        let file = path.unwrap_or(Path::new(DEFAULT_PATH));
        let system = System::for_file(file);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let run_dir = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("server")?
                    .get("run_directory")?
                    .as_str()
                    .map(PathBuf::from)
            })
            // Not even TOML: the line as it is usually written.
            .or_else(|| {
                text.lines().find_map(|l| {
                    let v = l.trim().strip_prefix("run_directory")?.trim();
                    let v = v.strip_prefix('=')?.trim().strip_prefix('"')?;
                    Some(PathBuf::from(&v[..v.find('"')?]))
                })
            })
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| system.default_run_directory());
        let effective = run_dir.join(EFFECTIVE_FILE);
        if let Ok(c) = Config::load(Some(&effective)) {
            return c;
        }
        let mut c = defaults::builtin(&system);
        c.server.run_directory = run_dir;
        c
    }

    /// Parses a configuration from TOML text; `file_name` is used only in
    /// error messages.
    pub fn from_toml(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        load::parse(text, file_name, &System::current())
    }

    /// The built-in configuration: what an empty file gives on this system.
    /// (As [`Config::load`] without a file.)
    pub fn builtin() -> Config {
        defaults::builtin(&System::current())
    }

    /// The configuration as TOML, like `postconf`; with `non_default`, only
    /// the keys whose value differs from the default, like `postconf -n`.
    /// The text parses back with [`Config::from_toml`] into an equal
    /// `Config`.
    pub fn to_toml(&self, non_default: bool) -> String {
        show::to_toml(self, non_default, &System::current())
    }
}

impl BareNewline {
    /// The value as written in the file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BareNewline::Normalize => "normalize",
            BareNewline::Reject => "reject",
        }
    }
}

#[cfg(test)]
mod tests;
