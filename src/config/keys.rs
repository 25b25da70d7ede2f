//! Every configuration key, defined once.
//!
//! Each key is one entry of [`sections!`] below: its field (name, Rust
//! type, documentation), its default, the Postfix parameter it replaces,
//! what kind of value it takes, how it is read from the file and how it is
//! printed. From that one entry come the section structs ([`Server`],
//! [`Local`], …) with their documentation, the built-in configuration
//! (`Section::builtin`), the key table [`KEYS`] that loading, unknown-key
//! suggestions, `postern config show` (with the Postfix names and
//! defaults as comments), `postern config schema` (a JSON Schema for
//! editors) and the key list of postern.toml(5) are made from.
//!
//! Adding a key: one entry here, plus its use. A default that depends on
//! other keys (`server.domain` on `server.hostname`, …) is filled in by
//! `load::finish`, where the entry's reader leaves the written value.
//!
//! An entry:
//!
//! ```text
//! /// Documentation: the first line is the one-line summary.
//! field: Type = default expression (may use `cx`: the system, hostname, domain),
//!     postfix "postfix_name" (or ""), Kind,
//!     read [get method(args)]   (assign `Field::method`'s value)
//!        | [with function]      (a reader of its own: fn(&Field, &mut Config, &mut Given)),
//!     show function;            (a renderer in show.rs taking &Type)
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::defaults::{self, Cx};
use super::error::ConfigError;
use super::load::{self as read, Field, Given};
use super::show as sh;
use super::{
    BareNewline, Choice, Config, DkimCanonicalization, DkimSign, DmarcReject, DnsFailure,
    MilterDefault, SaslBackend, TlsInbound, TlsLevel,
};

impl Submission {
    /// Whether a submission listener is configured (587 or 465).
    pub fn is_on(&self) -> bool {
        !self.listen.is_empty() || !self.implicit_tls_listen.is_empty()
    }
}

/// What a key holds: for the JSON Schema and the manual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A whole number, at least `min`.
    Integer {
        min: i64,
    },
    /// Seconds, or a string with a unit (`"300s"`, `"5d"`).
    Duration,
    String,
    /// A string in which `$hostname`, `$domain`, … are expanded.
    Expanded,
    Strings,
    /// Strings in which `$hostname`, `$domain`, … are expanded.
    ExpandedStrings,
    /// An absolute path (`""`: none, where the key is optional).
    Path,
    Paths,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A list of these words.
    Choices(&'static [&'static str]),
    /// A table of strings (`{ name = "value" }`).
    Table,
}

/// One key of the file.
pub struct Key {
    /// The table it is in (`smtpd`).
    pub table: &'static str,
    /// Its name in the table (`message_size_limit`).
    pub name: &'static str,
    /// The Postfix parameter it replaces, `""` for none.
    pub postfix: &'static str,
    /// Its documentation; the first line is a summary.
    pub doc: &'static str,
    pub kind: Kind,
    /// Reads the key's value into the configuration.
    pub read: fn(&Field, &mut Config, &mut Given) -> Result<(), ConfigError>,
    /// The value as TOML.
    pub show: fn(&Config) -> String,
}

impl Key {
    /// `table.name`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.table, self.name)
    }

    /// The first line of the documentation.
    pub fn summary(&self) -> &'static str {
        self.doc.lines().next().unwrap_or("").trim()
    }
}

/// The key `name` of `table`.
pub fn find(table: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.table == table && k.name == name)
}

/// The tables, in the order of [`KEYS`], with `maps` (named inline
/// tables, no fixed keys) after `checks`, where the file shows it.
pub fn tables() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KEYS {
        if !out.contains(&k.table) {
            if k.table == "checks" {
                out.push("maps");
            }
            out.push(k.table);
        }
    }
    out
}

/// A reader from its form in an entry.
macro_rules! reader {
    ($table:ident, $field:ident, [get $method:ident ( $($arg:expr),* )]) => {
        |f, c, _| {
            c.$table.$field = f.$method($($arg),*)?;
            Ok(())
        }
    };
    ($table:ident, $field:ident, [with $function:path]) => {
        $function
    };
}

macro_rules! sections {
    ($cx:ident; $(
        $(#[doc = $sdoc:literal])*
        $table:ident: $Section:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty = $default:expr,
                    postfix $postfix:literal, $kind:expr,
                    read $how:tt, show $show:ident;
            )*
        }
    )*) => {
        $(
            $(#[doc = $sdoc])*
            #[derive(Clone, Debug, PartialEq)]
            pub struct $Section {
                $(
                    $(#[doc = $doc])*
                    pub $field: $ty,
                )*
            }

            impl $Section {
                /// The section an empty file gives.
                #[allow(unused_variables)]
                pub(super) fn builtin($cx: &Cx) -> $Section {
                    $Section { $($field: $default,)* }
                }
            }
        )*

        /// Every table with keys and its documentation, in file order.
        pub static SECTIONS: &[(&str, &str)] = &[
            $((unraw(stringify!($table)), concat!($($sdoc, "\n"),*)),)*
        ];

        /// Every key, in the order `config show` prints them.
        pub static KEYS: &[Key] = &[
            $($(
                Key {
                    table: unraw(stringify!($table)),
                    name: stringify!($field),
                    postfix: $postfix,
                    doc: concat!($($doc, "\n"),*),
                    kind: $kind,
                    read: reader!($table, $field, $how),
                    show: |c| sh::$show(&c.$table.$field),
                },
            )*)*
        ];
    };
}

/// A table's name without the `r#` of a raw identifier (`r#virtual` is
/// the `[virtual]` table: `virtual` is a reserved word in Rust).
const fn unraw(name: &'static str) -> &'static str {
    match name.as_bytes() {
        [b'r', b'#', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(rest) => rest,
            Err(_) => name,
        },
        _ => name,
    }
}

fn loopback_networks() -> Vec<IpNet> {
    vec![
        IpNet::V4(Ipv4Net::new_assert([127, 0, 0, 0].into(), 8)),
        IpNet::V6(Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128)),
    ]
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

sections! {
    cx;

    /// `[server]`: identity of the mail system and where its daemons live.
    server: Server {
        /// This system's fully qualified name.
        /// Default: `gethostname()`, with `.$domain` (or `.localdomain`)
        /// appended when it has no dot. Must be a valid host name.
        hostname: String = cx.hostname.clone(),
            postfix "myhostname", Kind::Expanded, read [with read::hostname], show expandable;
        /// The local domain.
        /// Default: `$hostname` minus its first label, `localdomain` if it
        /// has only one.
        domain: String = cx.domain.clone(),
            postfix "mydomain", Kind::Expanded, read [with read::domain], show expandable;
        /// The domain appended to unqualified addresses in locally posted mail.
        /// Default: `$hostname`.
        origin: String = cx.hostname.clone(),
            postfix "myorigin", Kind::Expanded, read [with read::origin], show expandable;
        /// The user smtpd, qmgr and smtp run as when started as root.
        /// Default: `postern`.
        user: String = defaults::DEFAULT_USER.to_string(),
            postfix "mail_owner", Kind::Expanded, read [with read::user], show expandable;
        /// Directory of the Unix sockets (qmgr.sock, local.sock, submit.sock).
        /// Postfix keeps its sockets under `queue_directory`. Default:
        /// `/run/postern` as root or as the `postern` user, else
        /// `$XDG_STATE_HOME/postern/run` (`~/.local/state/postern/run`).
        run_directory: PathBuf = cx.system.default_run_directory(),
            postfix "", Kind::Path, read [with read::run_directory], show path;
        /// Write the log to this file instead of the journal, syslog or stderr.
        /// Appended, syslog format (pflogsumm reads it); opened again on
        /// SIGHUP (`postern reload`, logrotate's postrotate). Default: none.
        log_file: Option<PathBuf> = None,
            postfix "maillog_file", Kind::Path, read [get optional_path()], show optional_path;
    }

    /// `[local]`: local delivery.
    local: Local {
        /// The domains delivered locally; lower-cased, expanded.
        /// Default: `["$hostname", "localhost.$domain", "localhost"]`.
        domains: Vec<String> = defaults::default_domains(&cx.hostname, &cx.domain),
            postfix "mydestination", Kind::ExpandedStrings, read [with read::domains],
            show expandable_list;
        /// The mailbox, relative to the home directory, or absolute.
        /// May hold `$user`, `${user}`, `$home` and `${home}` (expanded per
        /// delivery; no other `$` is accepted). A trailing `/` means
        /// Maildir. Default: `Maildir/`.
        mailbox: String = defaults::DEFAULT_MAILBOX.to_string(),
            postfix "home_mailbox", Kind::String, read [get mailbox()], show string;
        /// Where mailbox deliveries go instead of `local.mailbox`: an LMTP server.
        /// `"lmtp:unix:/run/dovecot/lmtp"`, `"lmtp:inet:127.0.0.1:24"` or
        /// `"lmtp:[host]:port"` (Dovecot's LMTP). Aliases, `.forward`,
        /// `|command` and `/file` stay local deliveries; what would be
        /// written to a user's mailbox goes to that server instead, for
        /// `user@domain` as local resolved it. Postfix's relative
        /// `unix:private/…` paths are refused: give the socket's absolute
        /// path. Default: empty (the mailbox).
        mailbox_transport: Option<crate::transport::syntax::Transport> = None,
            postfix "mailbox_transport", Kind::String,
            read [with super::virtual_keys::mailbox_transport], show optional_display;
        /// How long a per-user delivery child waits for more work.
        /// Compare Postfix's `max_idle`. Default: 60s.
        worker_idle: Duration = secs(60),
            postfix "", Kind::Duration, read [get duration()], show duration;
        /// Deliveries to one user in parallel.
        /// Default: 8 when `local.mailbox` is a Maildir (no lock; with a
        /// journal, parallel fsyncs share commits), 2 for mbox (Postfix's
        /// default, where the mbox lock makes more pointless).
        concurrency_per_user: usize = defaults::MAILDIR_CONCURRENCY,
            postfix "local_destination_concurrency_limit", Kind::Integer { min: 1 },
            read [with read::concurrency_per_user], show plain;
        /// Inline aliases: `{ postmaster = "root", root = "admin" }`.
        /// Each value is an aliases(5) right-hand side; they win over the
        /// files; keys lower-cased. Postfix keeps aliases in files only.
        /// Default: none (the built-in `postmaster` and `mailer-daemon`
        /// aliases still exist unless overridden).
        aliases: BTreeMap<String, String> = BTreeMap::new(),
            postfix "", Kind::Table, read [get string_table()], show display_table;
        /// Alias files in aliases(5) format, first match wins.
        /// Default: `["/etc/aliases"]` where it exists, else none.
        alias_files: Vec<PathBuf> = if cx.system.etc_aliases {
                vec![PathBuf::from(defaults::ETC_ALIASES)]
            } else {
                Vec::new()
            },
            postfix "alias_maps", Kind::Paths, read [get absolute_paths()], show paths;
        /// The characters that split `user+ext`.
        /// Default: empty (none).
        recipient_delimiter: String = String::new(),
            postfix "recipient_delimiter", Kind::String, read [get owned_string()], show string;
        /// How long a `|command` delivery may run.
        /// Default: 1000s.
        command_time_limit: Duration = secs(1000),
            postfix "command_time_limit", Kind::Duration, read [get positive_duration()],
            show duration;
        /// The user commands and files of root-owned or inline aliases run as.
        /// Default: nobody.
        default_privs: String = "nobody".to_string(),
            postfix "default_privs", Kind::String, read [get unprivileged_user()], show string;
        /// Where `|command` targets may come from (`alias`, `forward`, `include`).
        /// Default: alias, forward.
        allow_mail_to_commands: Vec<String> = words(&["alias", "forward"]),
            postfix "allow_mail_to_commands", Kind::Choices(read::CONTEXTS),
            read [get contexts()], show strings;
        /// Where `/file` targets may come from (`alias`, `forward`, `include`).
        /// Default: alias, forward.
        allow_mail_to_files: Vec<String> = words(&["alias", "forward"]),
            postfix "allow_mail_to_files", Kind::Choices(read::CONTEXTS),
            read [get contexts()], show strings;
    }

    /// `[relay]`: who may relay through this server, and where mail for
    /// other domains goes.
    relay: Relay {
        /// Trusted client networks, as CIDR (`10.0.0.0/8`) or bare addresses.
        /// Default: `127.0.0.0/8` and `::1/128`.
        networks: Vec<IpNet> = loopback_networks(),
            postfix "mynetworks", Kind::Strings, read [get parsed(super::value::parse_network)],
            show display_list;
        /// Where mail for other domains goes when no transport entry says otherwise.
        /// `[host]:port` (no MX lookup) or `host` (its MX hosts); may hold
        /// `$domain` etc. Default: none (the MX hosts of each recipient's
        /// domain).
        host: Option<crate::transport::syntax::Nexthop> = None,
            postfix "relayhost", Kind::Expanded, read [with read::relay_host],
            show optional_expandable;
        /// Inline transport table: `{ "example.com" = "smtp:[10.0.0.1]:25" }`.
        /// Keys are lower-cased addresses (`user@domain`), domains,
        /// `.domain` (its subdomains) or `*`; they win over the files.
        /// Postfix keeps transports in files (`transport_maps`). Default:
        /// none.
        transport: BTreeMap<String, crate::transport::syntax::Transport> = BTreeMap::new(),
            postfix "", Kind::Table, read [get transport_table()], show display_table;
        /// Transport files (transport(5): `key result` per line), first match wins.
        /// Default: none.
        transport_files: Vec<PathBuf> = Vec::new(),
            postfix "transport_maps", Kind::Paths, read [get absolute_paths()], show paths;
        /// Tables of logins for the servers mail is relayed through (`key user:password`).
        /// As Postfix's `smtp_sasl_password_maps` (a login found is
        /// `smtp_sasl_auth_enable`): `"hash:/etc/postern/sasl_passwd"`
        /// (also `texthash:`, `regexp:`, `pcre:`, `inline:`, `static:`), a
        /// bare absolute path being `texthash:`. Keys, in order: the
        /// server's host name (`smtp.example.com`), then the next hop as
        /// `relay.host` or the transport writes it, brackets and port
        /// included (`[smtp.example.com]:587`, also `:submission`). With a
        /// login the smtp client sends AUTH (PLAIN, else LOGIN) after EHLO
        /// and STARTTLS, and defers (4.7.0) when it cannot. The files hold
        /// passwords: make them readable by the postern user only (`chown
        /// root:postern`, `chmod 640`); `postern check` warns when others
        /// can read one. Default: none.
        sasl_password_files: Vec<String> = Vec::new(),
            postfix "smtp_sasl_password_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
        /// Send a relay login over a session without TLS.
        /// false: a login is sent only after STARTTLS; without TLS the mail
        /// is deferred (4.7.0) and the password not sent (Postfix's
        /// `smtp_sasl_security_options = noplaintext`, there the default
        /// even over TLS). Default: false.
        sasl_plaintext: bool = false,
            postfix "smtp_sasl_security_options", Kind::Bool, read [get boolean()], show plain;
        /// Domains this host relays to from anyone: a backup MX, a gateway.
        /// Entries: `example.com` (the domain and its subdomains, as
        /// Postfix's `parent_domain_matches_subdomains`), `.example.com`
        /// (its subdomains), or a table (`hash:/etc/postern/relay_domains`:
        /// the domain or a parent domain as key). Their recipients pass
        /// `reject_unauth_destination` and go by the transport table, else
        /// `relay.host` or MX. Default: none.
        domains: Vec<String> = Vec::new(),
            postfix "relay_domains", Kind::Strings,
            read [get parsed(crate::rewrite::pattern::parse_domain_pattern)], show strings;
        /// Tables of the valid recipients in `relay.domains`.
        /// Keys `user@domain` or `@domain` (every user); a recipient not
        /// found is refused at RCPT: `550 5.1.1 … User unknown in relay
        /// recipient table`. Empty: every recipient is accepted. Default:
        /// none.
        recipient_maps: Vec<String> = Vec::new(),
            postfix "relay_recipient_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
    }

    /// `[virtual]`: many domains on one host: virtual mailbox domains,
    /// whose users have mailboxes on a mailbox server (Dovecot over LMTP),
    /// not system accounts (Postfix's virtual mailbox address class), and
    /// virtual alias domains and tables (virtual(5)), applied to every
    /// recipient of every message as it enters the queue.
    r#virtual: Virtual {
        /// The virtual mailbox domains: domain names and/or tables whose keys are domains.
        /// A recipient there is accepted when `virtual.mailbox_maps` lists
        /// it (else `550 5.1.1 … User unknown in virtual mailbox table`),
        /// and goes to `virtual.transport`. Tables as
        /// `relay.sasl_password_files` (`hash:/etc/postern/vdomains`, …).
        /// A domain may not also be in `local.domains`. Default: none.
        mailbox_domains: Vec<String> = Vec::new(),
            postfix "virtual_mailbox_domains", Kind::Strings,
            read [with super::virtual_keys::mailbox_domains], show strings;
        /// Tables of the valid addresses of the virtual mailbox domains.
        /// Keys `user@domain` (also without the `local.recipient_delimiter`
        /// extension), or `@domain` for every user of the domain; the value
        /// is not used (Dovecot knows where the mailbox is). Specs as
        /// `relay.sasl_password_files`: `"hash:/etc/postern/vmailbox"`,
        /// `"regexp:/…"`, `"inline:{ a@example.com=1 }"`. A table that
        /// cannot be read defers the recipient (451 4.3.0). Default: none
        /// (no address is valid).
        mailbox_maps: Vec<String> = Vec::new(),
            postfix "virtual_mailbox_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
        /// Where mail for the virtual mailbox domains goes: a transport result.
        /// Usually `"lmtp:unix:/run/dovecot/lmtp"` (Dovecot's LMTP socket)
        /// or `"lmtp:inet:127.0.0.1:24"`. Postfix's default, its `virtual`
        /// delivery agent, does not exist in postern: required when
        /// `virtual.mailbox_domains` is set. An entry of the transport
        /// table still wins. Default: none.
        transport: Option<crate::transport::syntax::Transport> = None,
            postfix "virtual_transport", Kind::String,
            read [with super::virtual_keys::transport], show optional_display;
        /// Domains whose every address is an alias (no local mailboxes).
        /// Entries: `example.com` (that domain only), `.example.com` (its
        /// subdomains), a table (`hash:/path`, the domain as key), or
        /// `$alias_maps`: a domain is an alias domain when `alias_maps`
        /// has an entry for the bare domain (`example.com  anything`), as
        /// Postfix's default `$virtual_alias_maps`. A recipient there with
        /// no alias is refused: `550 5.1.1 … User unknown in virtual alias
        /// table`. Default: `["$alias_maps"]`.
        alias_domains: Vec<String> = words(&["$alias_maps"]),
            postfix "virtual_alias_domains", Kind::Strings,
            read [get parsed(crate::rewrite::pattern::parse_alias_domain)], show strings;
        /// Alias tables for every domain (`user@domain  address, address`).
        /// Keys, in order: `user+ext@domain`, `user@domain` (the extension
        /// then added to each result), `user+ext` and `user` for local
        /// domains, `@domain` (catch-all). Results are expanded again (up
        /// to 1000 levels and 1000 addresses); an address that maps to
        /// itself is kept. `hash:/path`, `texthash:`, `regexp:`, `pcre:`,
        /// `inline:`. Default: none.
        alias_maps: Vec<String> = Vec::new(),
            postfix "virtual_alias_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
    }

    /// `[rewrite]`: canonical address mapping and masquerading, applied as a
    /// message enters the queue (Postfix's cleanup), before virtual aliases.
    rewrite: Rewrite {
        /// Tables mapping sender and recipient addresses (canonical(5)).
        /// Keys `user@domain`, `user` (local domains), `@domain`; the value
        /// is one address. Default: none.
        canonical_maps: Vec<String> = Vec::new(),
            postfix "canonical_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
        /// Tables mapping sender addresses, asked before `canonical_maps`.
        /// Default: none.
        sender_canonical_maps: Vec<String> = Vec::new(),
            postfix "sender_canonical_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
        /// Tables mapping recipient addresses, asked before `canonical_maps`.
        /// Default: none.
        recipient_canonical_maps: Vec<String> = Vec::new(),
            postfix "recipient_canonical_maps", Kind::Strings,
            read [get parsed(crate::maps::spec::parse_spec)], show strings;
        /// Strip the host part of sender addresses down to these domains.
        /// `user@host.example.com` becomes `user@example.com` with
        /// `["example.com"]`; `!sub.example.com` keeps that domain (and its
        /// hosts) as written. First match wins. Default: none.
        masquerade_domains: Vec<String> = Vec::new(),
            postfix "masquerade_domains", Kind::Strings, read [get plain_strings()], show strings;
        /// Users whose addresses are never masqueraded (`root`, `mailer-daemon`).
        /// Default: none.
        masquerade_exceptions: Vec<String> = Vec::new(),
            postfix "masquerade_exceptions", Kind::Strings, read [get plain_strings()],
            show strings;
    }

    /// `[queue]`: the mail queue and its retry schedule.
    queue: Queue {
        /// The queue directory.
        /// Default: `/var/spool/postern` as root or as the `postern` user,
        /// else `$XDG_STATE_HOME/postern/queue`
        /// (`~/.local/state/postern/queue`).
        directory: PathBuf = cx.system.default_queue_directory(),
            postfix "queue_directory", Kind::Path, read [with read::queue_directory], show path;
        /// Content above this many bytes goes to a file of its own.
        /// Default: 1 MiB.
        large_message_threshold: u64 = 1 << 20,
            postfix "", Kind::Integer { min: 0 }, read [get integer(0)], show plain;
        /// The shortest wait before a deferred message is tried again.
        /// Default: 300s.
        minimal_backoff: Duration = secs(300),
            postfix "minimal_backoff_time", Kind::Duration, read [with read::minimal_backoff],
            show duration;
        /// The longest wait between two tries of a deferred message.
        /// Default: 4000s; must not be below `minimal_backoff`.
        maximal_backoff: Duration = secs(4000),
            postfix "maximal_backoff_time", Kind::Duration, read [with read::maximal_backoff],
            show duration;
        /// How often the deferred messages are looked at.
        /// Default: 300s.
        run_delay: Duration = secs(300),
            postfix "queue_run_delay", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long a message is retried before it is returned.
        /// Default: 5d.
        maximal_lifetime: Duration = secs(5 * 86400),
            postfix "maximal_queue_lifetime", Kind::Duration, read [get duration()],
            show duration;
        /// A message deferred this long moves to `deferred/` as a file of its own.
        /// Postfix moves a message to `deferred/` at its first failure.
        /// Default: 1h.
        move_deferred_after: Duration = secs(3600),
            postfix "", Kind::Duration, read [get duration()], show duration;
        /// Messages qmgr keeps in memory at most (its active window).
        /// The rest of the queue waits on disk: segments not yet read, and
        /// deferred messages in `deferred/`, taken in as room comes.
        /// Default: 20000.
        active_limit: usize = 20_000,
            postfix "qmgr_message_active_limit", Kind::Integer { min: 1 }, read [get integer(1)],
            show plain;
        /// After a message has waited this long, its sender gets one delay notice.
        /// "Delayed Mail (still being retried)"; 0 (the default, as
        /// Postfix) is off.
        delay_warning_time: Duration = Duration::ZERO,
            postfix "delay_warning_time", Kind::Duration, read [get duration()], show duration;
        /// A returned original larger than this is reduced to its headers.
        /// Default: 50000.
        bounce_size_limit: usize = 50_000,
            postfix "bounce_size_limit", Kind::Integer { min: 0 }, read [get integer(0)],
            show plain;
        /// Who may list the queue (user names; `*` anyone).
        /// Default: `["*"]`.
        authorized_mailq_users: Vec<String> = words(&["*"]),
            postfix "authorized_mailq_users", Kind::Strings, read [get plain_strings()],
            show strings;
        /// Bytes of free space the queue's file system must keep.
        /// smtpd answers MAIL with `452 4.3.1 Insufficient system storage`
        /// when free space minus the declared `SIZE=` would fall below it,
        /// or when the message would take half of what is free. The limit
        /// in effect is never below 1.5 times `smtpd.message_size_limit`,
        /// as in Postfix. Default: 0 (that 1.5 times the size limit).
        minfree: u64 = 0,
            postfix "queue_minfree", Kind::Integer { min: 0 }, read [get integer(0)], show plain;
    }

    /// `[smtpd]`: the SMTP server.
    smtpd: Smtpd {
        /// The TCP listeners, as `ip:port` (`[::1]:25` for IPv6).
        /// Postfix: `inet_interfaces` plus the port in master.cf. Bound by
        /// `postern start`, and written into `postern-smtpd.socket` by the
        /// systemd generator ([`crate::systemd::generator`]). Default:
        /// `["127.0.0.1:2525"]`.
        listen: Vec<SocketAddr> = vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            postfix "inet_interfaces", Kind::Strings, read [get listeners()], show display_list;
        /// The greeting's text after `220 `.
        /// Default: `$hostname ESMTP postern`.
        banner: String = defaults::default_banner(&cx.hostname),
            postfix "smtpd_banner", Kind::Expanded, read [with read::banner], show expandable;
        /// The largest message in bytes; 0 = unlimited.
        /// Default: 10240000.
        message_size_limit: u64 = 10_240_000,
            postfix "message_size_limit", Kind::Integer { min: 0 }, read [get integer(0)],
            show plain;
        /// Recipients per message.
        /// Default: 1000.
        recipient_limit: usize = 1000,
            postfix "smtpd_recipient_limit", Kind::Integer { min: 1 }, read [get integer(1)],
            show plain;
        /// The longest command line: at least 512 (RFC 5321).
        /// Default: 2048.
        line_length_limit: usize = 2048,
            postfix "line_length_limit", Kind::Integer { min: 512 }, read [get integer(512)],
            show plain;
        /// Deadline for each command.
        /// Default: 300s.
        timeout: Duration = secs(300),
            postfix "smtpd_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// Errors before the client is disconnected.
        /// Default: 20.
        hard_error_limit: u32 = 20,
            postfix "smtpd_hard_error_limit", Kind::Integer { min: 1 }, read [get integer(1)],
            show plain;
        /// Junk commands (HELO, EHLO, RSET, NOOP, VRFY, ETRN, HELP) before each counts as an error.
        /// A client that only keeps its connection open so reaches
        /// `hard_error_limit`. Both counters start again after each
        /// message accepted. Default: 100.
        junk_command_limit: u32 = 100,
            postfix "smtpd_junk_command_limit", Kind::Integer { min: 0 }, read [get integer(0)],
            show plain;
        /// How long one connection may last in all, whatever it does; 0: no limit.
        /// At the limit the client gets `421 4.4.2` and is disconnected (a
        /// message being transferred is not queued). Default: 1h.
        session_time_limit: Duration = secs(3600),
            postfix "", Kind::Duration, read [get duration()], show duration;
        /// Simultaneous connections in all.
        /// Postfix: the `maxproc` column of smtpd in master.cf. Clamped to
        /// what the open file limit allows. From 80 % of it on, smtpd is in
        /// stress mode (Postfix's `stress` parameter): `timeout` 10s,
        /// `hard_error_limit` 1, `junk_command_limit` 1,
        /// `session_time_limit` 5m at most. At the limit, the session that
        /// has waited longest for a command without a transaction is closed
        /// to make room; only when there is none is the new client refused.
        /// Default: 2000.
        max_connections: usize = 2000,
            postfix "", Kind::Integer { min: 1 }, read [get integer(1)], show plain;
        /// Simultaneous connections from one address; 0: no limit.
        /// Default: 50.
        max_connections_per_client: usize = 50,
            postfix "smtpd_client_connection_count_limit", Kind::Integer { min: 0 },
            read [get integer(0)], show plain;
        /// Whether VRFY answers (Postfix's `disable_vrfy_command`, inverted).
        /// Default: false (VRFY answers 502).
        vrfy: bool = false,
            postfix "disable_vrfy_command", Kind::Bool, read [get boolean()], show plain;
        /// What a bare LF does: `"normalize"` (a line end) or `"reject"`.
        /// Default: `"normalize"`.
        forbid_bare_newline: BareNewline = BareNewline::Normalize,
            postfix "smtpd_forbid_bare_newline", Kind::Choice(BareNewline::NAMES),
            read [get choice()], show choice;
        /// Refuse remote clients that pipeline without EHLO, or ahead of a group's end.
        /// RFC 2920; local submitters (submit.sock) are exempt. Default: true.
        forbid_unauth_pipelining: bool = true,
            postfix "smtpd_forbid_unauth_pipelining", Kind::Bool, read [get boolean()],
            show plain;
        /// Who may submit with `sendmail` (user names; `*` anyone).
        /// Default: `["*"]`.
        authorized_submit_users: Vec<String> = words(&["*"]),
            postfix "authorized_submit_users", Kind::Strings, read [get plain_strings()],
            show strings;
        /// Who may submit with an envelope sender other than their own (`sendmail -f`).
        /// Compare Postfix's `local_login_sender_maps`. Default: `["*"]`,
        /// and every submission is logged with its uid.
        sender_override_users: Vec<String> = words(&["*"]),
            postfix "", Kind::Strings, read [get plain_strings()], show strings;
    }

    /// `[submission]`: mail submission by mail programs (RFC 6409, RFC
    /// 8314), Postfix's `submission` and `submissions` services of
    /// master.cf as they are usually set: AUTH required before MAIL,
    /// offered only over TLS, a relay policy of their own. Served by
    /// smtpd beside `smtpd.listen`; needs `tls.chain_files` and a
    /// `sasl.backend`.
    submission: Submission {
        /// Submission listeners (port 587): STARTTLS, then AUTH.
        /// Handed to smtpd as the socket `submission`. Default: none.
        listen: Vec<SocketAddr> = Vec::new(),
            postfix "", Kind::Strings, read [get listeners()], show display_list;
        /// Listeners with TLS from the first byte (port 465, RFC 8314).
        /// Handed to smtpd as the socket `submissions`. Default: none.
        implicit_tls_listen: Vec<SocketAddr> = Vec::new(),
            postfix "", Kind::Strings, read [get listeners()], show display_list;
        /// STARTTLS on the submission listeners: `"may"` or `"encrypt"` (required before MAIL).
        /// master.cf's `-o smtpd_tls_security_level=encrypt`. Default:
        /// `"encrypt"`.
        tls: TlsInbound = TlsInbound::Encrypt,
            postfix "", Kind::Choice(TlsInbound::NAMES), read [get choice()], show choice;
        /// Restrictions on the envelope sender on the submission listeners.
        /// master.cf's `-o smtpd_sender_restrictions=`; for example
        /// `["reject_sender_login_mismatch"]` with `sasl.sender_login_maps`.
        /// The client, helo and recipient lists of `[restrictions]` do not
        /// apply there. Default: none.
        sender: Vec<String> = Vec::new(),
            postfix "", Kind::Strings, read [with read::submission_sender_list], show strings;
        /// The relay policy on the submission listeners.
        /// master.cf's `-o smtpd_relay_restrictions=`. Default:
        /// `["permit_sasl_authenticated", "reject"]`.
        relay: Vec<String> = words(&["permit_sasl_authenticated", "reject"]),
            postfix "", Kind::Strings, read [with read::submission_relay_list], show strings;
    }

    /// `[sasl]`: SMTP AUTH in smtpd (RFC 4954; Postfix's `smtpd_sasl_*`),
    /// mechanisms PLAIN and LOGIN.
    sasl: Sasl {
        /// Who checks passwords: `"none"`, `"dovecot"` or `"passwd"` (`sasl.password_file`).
        /// `dovecot`: Dovecot's authentication socket (Postfix's
        /// `smtpd_sasl_type = dovecot`); `passwd`: postern's own file of
        /// argon2 or SHA-512-crypt hashes (`postern passwd`). Default:
        /// `"none"` (no AUTH).
        backend: SaslBackend = SaslBackend::None,
            postfix "smtpd_sasl_type", Kind::Choice(SaslBackend::NAMES), read [get choice()],
            show choice;
        /// Dovecot's authentication socket (a `unix_listener` of its `service auth`).
        /// Default: `/run/dovecot/auth-client`.
        dovecot_socket: PathBuf = PathBuf::from("/run/dovecot/auth-client"),
            postfix "smtpd_sasl_path", Kind::Path, read [get absolute_path()], show path;
        /// The password file of `backend = "passwd"` (`login:hash` lines).
        /// Default: `/etc/postern/passwd`.
        password_file: PathBuf = PathBuf::from(super::SASL_PASSWORD_FILE),
            postfix "", Kind::Path, read [get absolute_path()], show path;
        /// Offer AUTH on `smtpd.listen` too, not only on the submission listeners.
        /// Default: false (port 25 never offers AUTH).
        smtpd_listeners: bool = false,
            postfix "smtpd_sasl_auth_enable", Kind::Bool, read [get boolean()], show plain;
        /// Offer AUTH only inside TLS.
        /// Default: true.
        tls_only: bool = true,
            postfix "smtpd_tls_auth_only", Kind::Bool, read [get boolean()], show plain;
        /// Failed logins from one client address before its AUTH is refused for `failure_window`.
        /// Then AUTH gets `421 4.7.0` and the connection is closed. 0: no
        /// limit. Default: 5.
        failure_limit: u32 = 5,
            postfix "", Kind::Integer { min: 0 }, read [get integer(0)], show plain;
        /// How long failed logins of one client address are remembered.
        /// Default: 10m.
        failure_window: Duration = secs(600),
            postfix "", Kind::Duration, read [get positive_duration()], show duration;
        /// How long a failed login waits before its `535`.
        /// Postfix's `smtpd_error_sleep_time`. Default: 1s.
        failure_delay: Duration = secs(1),
            postfix "smtpd_error_sleep_time", Kind::Duration, read [get duration()],
            show duration;
        /// Tables of which logins own which envelope senders.
        /// For `reject_sender_login_mismatch`: the key is the sender
        /// address, then `@domain`; the value the logins, separated by
        /// commas or spaces (`hash:/etc/postern/sender_logins`,
        /// `inline:NAME`). Default: none.
        sender_login_maps: Vec<String> = Vec::new(),
            postfix "smtpd_sender_login_maps", Kind::Strings, read [get plain_strings()],
            show strings;
    }

    /// `[restrictions]`: smtpd's access policy (Postfix's
    /// `smtpd_*_restrictions`). Each list holds restriction elements as
    /// Postfix writes them (`permit_mynetworks`, `check_client_access
    /// hash:/etc/postern/badclient`, `reject_rbl_client zen.example`, a
    /// bare table meaning `check_<stage>_access TABLE`, ...), evaluated in
    /// order, the first decisive answer winning (see `crate::policy`).
    restrictions: Restrictions {
        /// Restrictions at connect time (or at RCPT with `delay_reject`).
        /// Default: none.
        client: Vec<String> = Vec::new(),
            postfix "smtpd_client_restrictions", Kind::Strings, read [with read::client_list],
            show strings;
        /// Restrictions on the HELO/EHLO name.
        /// Default: none.
        helo: Vec<String> = Vec::new(),
            postfix "smtpd_helo_restrictions", Kind::Strings, read [with read::helo_list],
            show strings;
        /// Restrictions on the envelope sender.
        /// Default: none.
        sender: Vec<String> = Vec::new(),
            postfix "smtpd_sender_restrictions", Kind::Strings, read [with read::sender_list],
            show strings;
        /// Who may send to which domains: the relay policy.
        /// Default: `["permit_mynetworks", "reject_unauth_destination"]`
        /// (relay only for `relay.networks`; Postfix defers unauthorized
        /// relaying, postern rejects it: `554 5.7.1 <…>: Relay access
        /// denied`).
        relay: Vec<String> = words(&["permit_mynetworks", "reject_unauth_destination"]),
            postfix "smtpd_relay_restrictions", Kind::Strings, read [with read::relay_list],
            show strings;
        /// Restrictions on each recipient, after the relay policy.
        /// Default: none.
        recipient: Vec<String> = Vec::new(),
            postfix "smtpd_recipient_restrictions", Kind::Strings,
            read [with read::recipient_list], show strings;
        /// Evaluate the client, helo and sender lists at RCPT time.
        /// Default: true.
        delay_reject: bool = true,
            postfix "smtpd_delay_reject", Kind::Bool, read [get boolean()], show plain;
        /// The zones of the deprecated `reject_maps_rbl`.
        /// Postfix's `maps_rbl_domains` (removed in Postfix 3.9). Default:
        /// none.
        rbl_domains: Vec<String> = Vec::new(),
            postfix "", Kind::Strings, read [get plain_strings()], show strings;
        /// What a DNS timeout or server failure in a DNS-based check does.
        /// `"pass"` (the check says nothing; default) or `"defer"` (`450
        /// 4.7.1` so the client tries again later). It never rejects.
        dns_failure: DnsFailure = DnsFailure::Pass,
            postfix "", Kind::Choice(DnsFailure::NAMES), read [get choice()], show choice;
    }

    /// `[checks]`: header and body checks on arriving mail: lists of
    /// tables (`regexp:/path`, `pcre:/path`, or inline `pcre:{ {/re/
    /// ACTION}, … }`), each line of the message matched against them in
    /// order.
    checks: Checks {
        /// Tables matched against each header line.
        /// Default: none.
        header: Vec<String> = Vec::new(),
            postfix "header_checks", Kind::Strings, read [get plain_strings()], show strings;
        /// Tables matched against the headers of MIME parts.
        /// Default: none.
        mime_header: Vec<String> = Vec::new(),
            postfix "mime_header_checks", Kind::Strings, read [get plain_strings()],
            show strings;
        /// Tables matched against each body line.
        /// Default: none.
        body: Vec<String> = Vec::new(),
            postfix "body_checks", Kind::Strings, read [get plain_strings()], show strings;
    }

    /// `[smtp]`: the SMTP client that delivers to other hosts.
    smtp: Smtp {
        /// The port of MX hosts and of next hops written without a port.
        /// Postfix: the `smtp` entry of /etc/services. Default: 25.
        port: u16 = 25,
            postfix "smtp_tcp_port", Kind::Integer { min: 1 }, read [get integer(1)], show plain;
        /// The name sent in EHLO.
        /// Default: `$hostname`.
        helo_name: String = cx.hostname.clone(),
            postfix "smtp_helo_name", Kind::Expanded, read [with read::helo_name],
            show expandable;
        /// The local address of outgoing connections.
        /// Default: none (the kernel's choice).
        bind_address: Option<IpAddr> = None,
            postfix "smtp_bind_address", Kind::String, read [get optional_ip()],
            show optional_display;
        /// How long a connection may take to set up.
        /// Default: 30s.
        connect_timeout: Duration = secs(30),
            postfix "smtp_connect_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the greeting and the EHLO reply may take.
        /// Default: 300s.
        helo_timeout: Duration = secs(300),
            postfix "smtp_helo_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long STARTTLS and its handshake may take.
        /// Default: 300s.
        starttls_timeout: Duration = secs(300),
            postfix "smtp_starttls_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the reply to MAIL FROM may take.
        /// Default: 300s.
        mail_timeout: Duration = secs(300),
            postfix "smtp_mail_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the reply to each RCPT TO may take.
        /// Default: 300s.
        rcpt_timeout: Duration = secs(300),
            postfix "smtp_rcpt_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the reply to DATA may take.
        /// Default: 120s.
        data_init_timeout: Duration = secs(120),
            postfix "smtp_data_init_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long sending a piece of the message may take.
        /// Default: 180s.
        data_xfer_timeout: Duration = secs(180),
            postfix "smtp_data_xfer_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the reply to the final dot may take.
        /// Default: 600s.
        data_done_timeout: Duration = secs(600),
            postfix "smtp_data_done_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// How long the reply to QUIT may take.
        /// Default: 300s.
        quit_timeout: Duration = secs(300),
            postfix "smtp_quit_timeout", Kind::Duration, read [get positive_duration()],
            show duration;
        /// Connections to one destination at once.
        /// Default: 20.
        destination_concurrency_limit: usize = 20,
            postfix "default_destination_concurrency_limit", Kind::Integer { min: 1 },
            read [get integer(1)], show plain;
        /// Recipients per transaction.
        /// Default: 50.
        destination_recipient_limit: usize = 50,
            postfix "default_destination_recipient_limit", Kind::Integer { min: 1 },
            read [get integer(1)], show plain;
        /// How long an idle connection is kept for the next message to the same destination.
        /// Default: 2s.
        connection_cache_time: Duration = secs(2),
            postfix "smtp_connection_cache_time_limit", Kind::Duration, read [get duration()],
            show duration;
    }

    /// `[tls]`: TLS settings.
    tls: Tls {
        /// Outbound TLS: `"none"`, `"may"`, `"encrypt"` or `"verify"`.
        /// `may`: STARTTLS when offered, certificate not checked, plain
        /// text when the handshake fails; `encrypt`: TLS required,
        /// certificate not checked; `verify`: TLS required, certificate
        /// chain and host name checked. Default: `"may"`.
        outbound: TlsLevel = TlsLevel::May,
            postfix "smtp_tls_security_level", Kind::Choice(TlsLevel::NAMES),
            read [get choice()], show choice;
        /// Inbound TLS: `"none"`, `"may"` (STARTTLS offered) or `"encrypt"` (required before MAIL).
        /// STARTTLS per RFC 3207 on TCP listeners (never on the local
        /// submit.sock); needs `tls.chain_files`. Default: `"none"`.
        inbound: TlsInbound = TlsInbound::None,
            postfix "smtpd_tls_security_level", Kind::Choice(TlsInbound::NAMES),
            read [get choice()], show choice;
        /// PEM files with smtpd's private keys, each followed by its certificate chain.
        /// As Postfix's `smtpd_tls_chain_files`: a key, then its chain, then
        /// optionally another key (RSA and ECDSA side by side); each client
        /// gets the first chain it can check. Read again when they change.
        /// Default: none.
        chain_files: Vec<PathBuf> = Vec::new(),
            postfix "smtpd_tls_chain_files", Kind::Paths, read [with read::chain_files],
            show paths;
        /// PEM certificates trusted at `verify`.
        /// Default: none (the system's, /etc/ssl/certs).
        ca_file: Option<PathBuf> = None,
            postfix "smtp_tls_CAfile", Kind::Path, read [get optional_path()],
            show optional_path;
    }

    /// `[dkim]`: DKIM signing of outgoing mail (RFC 6376, RFC 8463), by
    /// the smtp client as it sends: the process that parses the
    /// Internet's input (smtpd) never can read a private key. Postfix
    /// has no such keys: it signs through a milter, OpenDKIM, whose
    /// KeyTable and SigningTable these replace.
    dkim: Dkim {
        /// The signing keys, as OpenDKIM's KeyTable values: `"domain:selector:/path/key.pem"`.
        /// A PEM private key: RSA (PKCS#8 or PKCS#1, 2048 to 4096 bits;
        /// `rsa-sha256`) or Ed25519 (PKCS#8; `ed25519-sha256`), the
        /// algorithm taken from the key. Mail whose (first) `From:`
        /// address is in exactly that domain is signed with each of the
        /// domain's keys (two entries, RSA and Ed25519: dual signing);
        /// subdomains need entries of their own. `postern dkim keygen`
        /// makes a key and prints the DNS record to publish. Read by the
        /// smtp client only (keep them out of /etc, which every role
        /// reads: `/var/lib/postern/dkim`), again when a file changes; an
        /// entry whose file cannot be used defers that domain's mail
        /// (4.7.5) rather than send it unsigned. Postfix: OpenDKIM's
        /// KeyTable and SigningTable. Default: none.
        keys: Vec<crate::dkim::key_entry::KeyEntry> = Vec::new(),
            postfix "", Kind::Strings, read [with super::dkim::keys], show display_list;
        /// The header fields signed, in this order (`h=`).
        /// A field the message lacks is signed as absent (it cannot be
        /// added without breaking the signature); a name given twice
        /// also guards against a second instance (`From` is, by
        /// default). Must hold `From`. Postfix: OpenDKIM's
        /// SignHeaders/OversignHeaders. Default: `From` (twice),
        /// `Reply-To`, `Subject`, `Date`, `To`, `Cc`, `Message-ID`,
        /// `In-Reply-To`, `References`, `MIME-Version`, `Content-Type`,
        /// `Content-Transfer-Encoding`, `List-Id`, `List-Unsubscribe`,
        /// `List-Unsubscribe-Post`.
        headers: Vec<String> = crate::dkim::key_entry::default_headers(),
            postfix "", Kind::Strings, read [with super::dkim::headers], show strings;
        /// Canonicalization, header/body: `"relaxed/relaxed"`, `"relaxed/simple"`, `"simple/relaxed"` or `"simple/simple"`.
        /// Postfix: OpenDKIM's Canonicalization. Default:
        /// `"relaxed/relaxed"`.
        canonicalization: DkimCanonicalization = DkimCanonicalization::RelaxedRelaxed,
            postfix "", Kind::Choice(DkimCanonicalization::NAMES), read [get choice()],
            show choice;
        /// Which mail is signed, by origin: `"mynetworks"`, `"authenticated"`, `"local"`.
        /// `mynetworks`: the client's address is in `relay.networks`;
        /// `authenticated`: the client logged in (SMTP AUTH); `local`:
        /// submitted on this host (`sendmail`, and postern's own bounces
        /// and notices). Mail from elsewhere, or whose `From:` domain has
        /// no key, is sent unsigned. Postfix: OpenDKIM's InternalHosts
        /// and MTA. Default: all three.
        sign: Vec<DkimSign> = vec![DkimSign::Mynetworks, DkimSign::Authenticated, DkimSign::Local],
            postfix "", Kind::Choices(DkimSign::NAMES), read [get choices()], show choices;
    }

    /// `[verify]`: verification of arriving mail (RFC 8601): DKIM
    /// signatures, SPF for HELO and MAIL FROM, DMARC, written as one
    /// `Authentication-Results:` field under smtpd's `Received:`, with
    /// `server.hostname` as the authserv-id (a field with that id that
    /// came with the message is removed as a forgery). smtpd runs the
    /// checks through `dns.servers`; no key is involved. Postfix: the
    /// OpenDKIM and OpenDMARC milters and policyd-spf.
    verify: Verify {
        /// Verify mail from outside: clients not in `relay.networks`, not logged in, not local.
        /// Mail from this host's own clients is not checked (it is what
        /// `dkim.sign` signs). Default: true.
        inbound: bool = true,
            postfix "", Kind::Bool, read [get boolean()], show plain;
        /// What a DMARC `fail` under the domain's `p=reject` does: `"reject"`, `"hold"` or `"header"`.
        /// `reject`: `550 5.7.1` at the end of the message; `hold`: the
        /// message is accepted and held (`postern queue release`);
        /// `header`: only the `Authentication-Results:` field says so.
        /// `p=quarantine` and `p=none` only write the field. A DNS
        /// failure never rejects. Postfix: OpenDMARC's RejectFailures.
        /// Default: `"reject"`.
        dmarc_reject: DmarcReject = DmarcReject::Reject,
            postfix "", Kind::Choice(DmarcReject::NAMES), read [get choice()], show choice;
    }

    /// `[milters]`: content filters that speak Sendmail's milter
    /// protocol (rspamd, OpenDKIM, OpenDMARC, clamav-milter), called by
    /// smtpd stage by stage as Postfix calls them.
    milters: Milters {
        /// Milters for mail that arrives over SMTP, in order: `"unix:/path"` or `"inet:ip:port"`.
        /// Each is asked at connect, HELO, MAIL, RCPT, DATA and the end of
        /// the message; later milters see what earlier ones changed.
        /// Default: none.
        smtpd: Vec<crate::milter::address::Address> = Vec::new(),
            postfix "smtpd_milters", Kind::Strings,
            read [get parsed(crate::milter::address::Address::parse_text)], show display_list;
        /// Milters for mail submitted on this host (`sendmail`, the drop directory).
        /// Default: none.
        non_smtpd: Vec<crate::milter::address::Address> = Vec::new(),
            postfix "non_smtpd_milters", Kind::Strings,
            read [get parsed(crate::milter::address::Address::parse_text)], show display_list;
        /// What a milter that cannot be reached or breaks the protocol means: `"accept"`, `"tempfail"`, `"reject"` or `"quarantine"`.
        /// `accept`: go on as if it were not configured; `tempfail`:
        /// `451 4.7.1 Service unavailable - try again later`; `reject`:
        /// `554 5.7.1 Service unavailable`; `quarantine`: accept and
        /// hold. Default: `"tempfail"`.
        default_action: MilterDefault = MilterDefault::Tempfail,
            postfix "milter_default_action", Kind::Choice(MilterDefault::NAMES),
            read [get choice()], show choice;
        /// How long to wait for a milter's connection and its option negotiation.
        /// Default: 30s.
        connect_timeout: Duration = secs(30),
            postfix "milter_connect_timeout", Kind::Duration, read [get duration()],
            show duration;
        /// How long to wait for a milter's reply to a command (connect, HELO, MAIL, RCPT, DATA).
        /// Default: 30s.
        command_timeout: Duration = secs(30),
            postfix "milter_command_timeout", Kind::Duration, read [get duration()],
            show duration;
        /// How long to wait for a milter's reply to the message's content.
        /// Default: 300s.
        content_timeout: Duration = secs(300),
            postfix "milter_content_timeout", Kind::Duration, read [get duration()],
            show duration;
        /// The macros sent at connect. Default: Postfix's, `j {daemon_name} {daemon_addr} v _`.
        connect_macros: Vec<String> = words(&["j", "{daemon_name}", "{daemon_addr}", "v", "_"]),
            postfix "milter_connect_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at HELO. Default: Postfix's, `{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}`.
        helo_macros: Vec<String> = words(&["{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"]),
            postfix "milter_helo_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at MAIL. Default: Postfix's, `i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}`.
        mail_macros: Vec<String> = words(&["i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"]),
            postfix "milter_mail_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at RCPT. Default: Postfix's, `i {rcpt_addr} {rcpt_host} {rcpt_mailer}`.
        rcpt_macros: Vec<String> = words(&["i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"]),
            postfix "milter_rcpt_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at DATA. Default: Postfix's, `i`.
        data_macros: Vec<String> = words(&["i"]),
            postfix "milter_data_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at the end of the header section. Default: Postfix's, `i`.
        end_of_header_macros: Vec<String> = words(&["i"]),
            postfix "milter_end_of_header_macros", Kind::Strings, read [get plain_strings()],
            show strings;
        /// The macros sent at the end of the message. Default: Postfix's, `i`.
        end_of_data_macros: Vec<String> = words(&["i"]),
            postfix "milter_end_of_data_macros", Kind::Strings, read [get plain_strings()],
            show strings;
    }

    /// `[dns]`: how smtpd's checks and the smtp client ask DNS.
    dns: Dns {
        /// DNS servers as `ip` or `ip:port`, instead of /etc/resolv.conf.
        /// Postfix always uses the system's resolver. Default: none (the
        /// system's: /etc/hosts, then resolv.conf's nameservers).
        servers: Vec<SocketAddr> = Vec::new(),
            postfix "", Kind::Strings, read [get parsed(read::parse_dns_server)],
            show display_list;
    }

    /// `[sandbox]`: how the daemons confine themselves (no Postfix
    /// equivalent). Each daemon applies its own Landlock ruleset and drops
    /// its capabilities before it reads any input (see [`crate::sandbox`]).
    sandbox: Sandbox {
        /// Refuse to start when the kernel cannot enforce the Landlock ruleset completely.
        /// No Landlock, or an older ABI that misses some of the rights.
        /// Default: false (start, with a warning).
        require: bool = false,
            postfix "", Kind::Bool, read [get boolean()], show plain;
        /// More directories local's delivery children may write.
        /// When neither commands nor files are allowed
        /// (`local.allow_mail_to_commands` and `local.allow_mail_to_files`
        /// empty); homes, mail spools and `/tmp` are always in. Default:
        /// none.
        local_writable: Vec<PathBuf> = Vec::new(),
            postfix "", Kind::Paths, read [get absolute_paths()], show paths;
    }

    /// `[metrics]`: the Prometheus endpoint (no Postfix equivalent), served
    /// by the `metrics` role from the numbers qmgr keeps: `GET /metrics`,
    /// the text exposition (README, "Metrics").
    metrics: Metrics {
        /// The endpoint's TCP listeners, as `ip:port` (`127.0.0.1:9154`).
        /// Handed to the metrics role as the socket `http` by `postern
        /// start`, and written into `postern-metrics.socket` by the
        /// generator. Only loopback addresses unless
        /// `metrics.allow_remote`. Default: none (no endpoint, no metrics
        /// role).
        listen: Vec<SocketAddr> = Vec::new(),
            postfix "", Kind::Strings, read [with read::metrics_listen], show display_list;
        /// Allow `metrics.listen` addresses other than loopback.
        /// The endpoint has no authentication: put a firewall or a proxy
        /// in front of it. Default: false.
        allow_remote: bool = false,
            postfix "", Kind::Bool, read [get boolean()], show plain;
        /// How long the endpoint waits for a client's request before it closes the connection.
        /// Default: 10s.
        timeout: Duration = secs(10),
            postfix "", Kind::Duration, read [get positive_duration()], show duration;
    }
}
