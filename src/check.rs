//! `postern check` beyond the configuration file, as `postfix check`
//! does: the postern user, the queue and run directories (owner, mode;
//! the drop directory `queue/maildrop` 3733 in the postern group),
//! the configuration file's permissions, every alias source, the
//! transport files (`relay.transport_files`, with FILE:LINE), the tables
//! and `tls.ca_file`; what smtpd alone reads, when it serves TLS or
//! SMTP AUTH — `tls.chain_files` and `sasl.password_file` —, each loaded
//! as smtpd loads it and readable by the postern user; the relay logins'
//! password tables (`relay.sasl_password_files`: they parse, the postern
//! user and nobody else can read them, the relay host has a login); the
//! DKIM keys (`dkim.keys`: each loads, smtpd's sandbox cannot read it,
//! see [`crate::dkim::check`]); and, when systemd runs this postern,
//! whether its TCP socket units and the running smtpd listen where
//! `smtpd.listen`, `submission.listen` and
//! `submission.implicit_tls_listen` say ([`check_listeners`]).
//!
//! `postern check --no-system` ([`check_files`]) keeps only what the files
//! show: the sources are read and parsed as the daemons would, but no
//! user, directory, owner or mode is looked at, so that a build sandbox
//! (NixOS's, as its build user) can refuse a broken configuration. It
//! does not read the private keys (TLS and DKIM), the password file or
//! the relay password tables: secrets never belong in a build (the Nix
//! store is world-readable), so a sandbox never has them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

/// Every problem found, in order.
pub fn check_system(config: &Config, config_path: Option<&Path>) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    let user = mail_user(config, root, &mut out);
    // As root the queue belongs to server.user; otherwise to whoever runs
    // postern.
    let owner = if root {
        user.as_ref().map(|u| u.uid.as_raw())
    } else {
        Some(nix::unistd::geteuid().as_raw())
    };
    out.extend(check_queue_directories(config, owner));
    let q = &config.queue.directory;
    if q.exists() {
        // As root the drop directory's group is server.user's; otherwise
        // the group of whoever runs postern.
        let group = if root {
            user.as_ref().map(|u| u.gid.as_raw())
        } else {
            Some(nix::unistd::getegid().as_raw())
        };
        out.extend(check_drop_directory(
            &q.join(crate::maildrop::DIR),
            owner,
            group,
            &config.server.user,
        ));
    }
    // The roles that read the queue and the alias files run as the
    // postern user (as root) or as whoever runs postern.
    let reader = role_credentials(config);
    if let Some(who) = &reader
        && let Some(problem) = who.cannot_reach(q)
    {
        out.push((
            Level::Error,
            format!(
                "{} (queue.directory): {problem}: smtpd and qmgr could not start",
                q.display()
            ),
        ));
    }
    out.extend(check_writable_by_others(config, config_path));
    out.extend(check_sources(config, config_path, reader.as_ref()));
    out.extend(check_chain_files(config, reader.as_ref()));
    out.extend(check_password_file(config, reader.as_ref()));
    out.extend(check_sasl_password_files(config, reader.as_ref()));
    let cannot_read = |p: &Path| reader.as_ref().and_then(|w| w.cannot_read(p));
    out.extend(crate::dkim::check::keys(config, config_path, &cannot_read));
    out.extend(check_lmtp_sockets(config));
    out
}

/// The LMTP servers' Unix sockets of `virtual.transport` and
/// `local.mailbox_transport`: a warning when nothing is there (the
/// server may simply not run yet; its mail is deferred until it does).
fn check_lmtp_sockets(config: &Config) -> Vec<(Level, String)> {
    use std::os::unix::fs::FileTypeExt;
    let keys = [
        (
            "virtual.transport",
            &config.r#virtual.transport,
            "its virtual mailbox domains",
        ),
        (
            "local.mailbox_transport",
            &config.local.mailbox_transport,
            "local users",
        ),
    ];
    let mut out = Vec::new();
    for (key, transport, whose) in keys {
        let Some(crate::transport::Transport::Lmtp(n)) = transport else {
            continue;
        };
        let Some(socket) = &n.unix else {
            continue;
        };
        let problem = match std::fs::metadata(socket) {
            Ok(m) if m.file_type().is_socket() => continue,
            Ok(_) => "is not a socket".to_string(),
            Err(e) => e.to_string(),
        };
        out.push((
            Level::Warning,
            format!(
                "{} ({key}): {problem}: mail for {whose} is deferred until the LMTP server listens there",
                socket.display()
            ),
        ));
    }
    out
}

/// `server.user`, which must exist when postern runs as root.
fn mail_user(
    config: &Config,
    root: bool,
    out: &mut Vec<(Level, String)>,
) -> Option<nix::unistd::User> {
    match nix::unistd::User::from_name(&config.server.user) {
        Ok(Some(u)) => Some(u),
        _ => {
            if root {
                out.push((
                    Level::Error,
                    format!(
                        "the user {:?} (server.user) does not exist; create it with: useradd --system --user-group --home-dir {} --shell /usr/sbin/nologin {}",
                        config.server.user,
                        config.queue.directory.display(),
                        config.server.user
                    ),
                ));
            }
            None
        }
    }
}

/// The queue and its subdirectories: there, directories, owned by
/// `owner`, with their modes.
fn check_queue_directories(config: &Config, owner: Option<u32>) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let q = &config.queue.directory;
    let mut dirs = vec![q.clone()];
    // A queue yet to be made is one warning, not one per subdirectory.
    if q.exists() {
        dirs.extend(crate::queue::SUBDIRS.iter().map(|d| q.join(d)));
        dirs.push(q.join(crate::maildrop::BAD_DIR));
    }
    for d in &dirs {
        match std::fs::metadata(d) {
            Err(_) => out.push((
                Level::Warning,
                format!("{}: missing; postern start creates it", d.display()),
            )),
            Ok(m) if !m.is_dir() => {
                out.push((Level::Error, format!("{}: not a directory", d.display())))
            }
            Ok(m) => {
                if owner.is_some_and(|o| o != m.uid()) {
                    out.push((
                        Level::Error,
                        format!(
                            "{}: owned by uid {}, not by {}",
                            d.display(),
                            m.uid(),
                            config.server.user
                        ),
                    ));
                }
                let mode = m.mode() & 0o7777;
                if d == q {
                    out.extend(check_queue_mode(q, mode));
                } else if mode & 0o077 != 0 {
                    out.push((
                        Level::Error,
                        format!("{}: mode {mode:o}, should be 700", d.display()),
                    ));
                }
            }
        }
    }
    out
}

/// The run directory and the configuration file, which others must not
/// be able to change.
fn check_writable_by_others(config: &Config, config_path: Option<&Path>) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let r = &config.server.run_directory;
    if let Ok(m) = std::fs::metadata(r)
        && m.mode() & 0o022 != 0
    {
        out.push((
            Level::Error,
            format!(
                "{}: group- or world-writable (mode {:o})",
                r.display(),
                m.mode() & 0o7777
            ),
        ));
    }
    if let Some(path) = config_path
        && let Ok(m) = std::fs::metadata(path)
        && m.mode() & 0o022 != 0
    {
        out.push((
            Level::Warning,
            format!("{}: group- or world-writable", path.display()),
        ));
    }
    out
}

/// What `postern check --offline` says of a configuration's text, named
/// `name` in messages: errors and warnings, or the load error (for
/// `postern config import-postfix --check`, which checks what it wrote;
/// here rather than in `config::import`, which names no checks).
pub fn check_text(text: &str, name: &Path) -> Result<Vec<(Level, String)>, String> {
    let config = Config::from_toml(text, &name.display().to_string()).map_err(|e| e.to_string())?;
    Ok(check_files(&config, Some(name)))
}

/// `postern check --no-system`: what can be checked from the files alone,
/// for a build sandbox (NixOS builds the configuration as nixbld, with no
/// postern user, no queue, no run directory) or CI. The configuration was
/// already loaded strictly (unknown keys, types, values); this reads
/// every file it names — alias files and the `:include:` files they
/// reach, transport files, the tables of the restriction lists and of the
/// header and body checks — and reports what `postern check` would,
/// without owners, modes or who could read them.
pub fn check_files(config: &Config, config_path: Option<&Path>) -> Vec<(Level, String)> {
    check_sources(config, config_path, None)
}

/// The configured sources, read by whoever runs the check; with `reader`,
/// also whether the roles' user could read each alias file.
fn check_sources(
    config: &Config,
    config_path: Option<&Path>,
    reader: Option<&Access>,
) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let read = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    // A configured alias file that cannot be read defers mail to every
    // alias (4.3.0): an error here, not a surprise at run time.
    let mut files = Vec::new();
    for path in &config.local.alias_files {
        if let Err(e) = std::fs::metadata(path) {
            out.push((
                Level::Error,
                format!(
                    "{} (local.alias_files): {e}; mail to aliases would be deferred until it can be read",
                    path.display()
                ),
            ));
        } else if let Some(problem) = reader.and_then(|w| w.cannot_read(path)) {
            out.push((
                Level::Error,
                format!(
                    "{} (local.alias_files): {problem}: smtpd could not look aliases up",
                    path.display()
                ),
            ));
        } else {
            files.push(path.clone());
        }
    }
    // Inline aliases are reported as FILE [local.aliases]: local.aliases.NAME.
    let origin = format!(
        "{} [local.aliases]",
        config_path.map_or_else(|| "postern.toml".into(), |p| p.display().to_string())
    );
    for d in crate::aliases::check(
        config
            .local
            .aliases
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        Path::new(&origin),
        &files,
        &crate::aliases::expand_options(config),
        read,
    ) {
        let level = if d.is_error() {
            Level::Error
        } else {
            Level::Warning
        };
        out.push((level, d.to_string()));
    }
    out.extend(check_transport_files(config));
    out.extend(check_virtual_mailboxes(config));
    out.extend(check_tables(config));
    out.extend(check_ca_file(config));
    out
}

/// `tls.chain_files` when smtpd serves TLS (`tls.inbound`, or the
/// submission listeners): readable by the roles' user, every key followed
/// by its chain, each key its certificate's (what smtpd would refuse to
/// start with).
fn check_chain_files(config: &Config, reader: Option<&Access>) -> Vec<(Level, String)> {
    if !config.serves_tls() {
        return Vec::new();
    }
    let unreadable = unreadable_by(reader, &config.tls.chain_files, "tls.chain_files");
    if !unreadable.is_empty() {
        return unreadable;
    }
    match crate::certs::server_config(&config.tls.chain_files) {
        Ok(_) => Vec::new(),
        Err(e) => vec![(Level::Error, format!("tls.chain_files: {e}"))],
    }
}

/// `sasl.password_file` with `sasl.backend = "passwd"`: readable by the
/// roles' user, and every line a login and a hash smtpd can check.
fn check_password_file(config: &Config, reader: Option<&Access>) -> Vec<(Level, String)> {
    if config.sasl.backend != crate::config::SaslBackend::Passwd {
        return Vec::new();
    }
    let path = &config.sasl.password_file;
    let unreadable = unreadable_by(reader, std::slice::from_ref(path), "sasl.password_file");
    if !unreadable.is_empty() {
        return unreadable;
    }
    match crate::sasl::passwd::PasswordFile::load(path) {
        Ok(_) => Vec::new(),
        Err(e) => vec![(
            Level::Error,
            format!(
                "sasl.password_file: {e}; smtpd could not start (postern passwd LOGIN makes one)"
            ),
        )],
    }
}

/// Errors for those of `files` (the values of `key`) that smtpd, running
/// as `reader`, could not read: it reads them itself, after it has
/// become that user.
fn unreadable_by(reader: Option<&Access>, files: &[PathBuf], key: &str) -> Vec<(Level, String)> {
    let Some(who) = reader else {
        return Vec::new();
    };
    files
        .iter()
        .filter_map(|f| {
            let problem = who.cannot_read(f)?;
            Some((
                Level::Error,
                format!(
                    "{} ({key}): {problem}: smtpd, which runs as {}, could not start; give \
                     the file the group {} and mode 0640 (and let {} enter its directory)",
                    f.display(),
                    who.name,
                    who.name,
                    who.name
                ),
            ))
        })
        .collect()
}

/// `tls.ca_file`: PEM certificates the smtp client trusts at `tls.outbound
/// = verify` (an error there: every such delivery would be deferred), a
/// warning at other levels, which do not read it yet.
fn check_ca_file(config: &Config) -> Vec<(Level, String)> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Some(path) = &config.tls.ca_file else {
        return Vec::new();
    };
    let problem = match CertificateDer::pem_file_iter(path) {
        Err(e) => Some(e.to_string()),
        Ok(certs) => {
            let mut n = 0;
            let mut bad = None;
            for cert in certs {
                match cert {
                    Ok(_) => n += 1,
                    Err(e) => {
                        bad = Some(e.to_string());
                        break;
                    }
                }
            }
            bad.or_else(|| (n == 0).then(|| "no certificates in it".to_string()))
        }
    };
    let Some(problem) = problem else {
        return Vec::new();
    };
    let level = if config.tls.outbound == crate::config::TlsLevel::Verify {
        Level::Error
    } else {
        Level::Warning
    };
    vec![(level, format!("tls.ca_file {}: {problem}", path.display()))]
}

/// The queue directory: nobody else may read or write it; others need
/// its search bit to reach the drop directory.
fn check_queue_mode(q: &Path, mode: u32) -> Vec<(Level, String)> {
    let want = crate::maildrop::QUEUE_MODE;
    if mode & 0o066 != 0 || mode & 0o7000 != 0 {
        vec![(
            Level::Error,
            format!("{}: mode {mode:o}, should be {want:o}", q.display()),
        )]
    } else if mode & 0o011 != 0o011 {
        vec![(
            Level::Warning,
            format!(
                "{}: mode {mode:o}, should be {want:o}: users cannot reach the drop directory, so sendmail cannot keep mail while postern is down",
                q.display()
            ),
        )]
    } else {
        Vec::new()
    }
}

/// The drop directory (`queue/maildrop`): mode 3733, the queue's owner,
/// and the group whose members (postern) alone read the files in it.
fn check_drop_directory(
    d: &Path,
    owner: Option<u32>,
    group: Option<u32>,
    user: &str,
) -> Vec<(Level, String)> {
    let want = crate::maildrop::DIR_MODE;
    let m = match std::fs::symlink_metadata(d) {
        Err(_) => {
            return vec![(
                Level::Warning,
                format!("{}: missing; postern start creates it", d.display()),
            )];
        }
        Ok(m) if !m.is_dir() => {
            return vec![(Level::Error, format!("{}: not a directory", d.display()))];
        }
        Ok(m) => m,
    };
    let mut out = Vec::new();
    if owner.is_some_and(|o| o != m.uid()) {
        out.push((
            Level::Error,
            format!("{}: owned by uid {}, not by {user}", d.display(), m.uid()),
        ));
    }
    let mode = m.mode() & 0o7777;
    if mode != want {
        out.push((
            Level::Error,
            format!(
                "{}: mode {mode:o}, should be {want:o} (anyone adds files, nobody else lists them, each file gets the directory's group)",
                d.display()
            ),
        ));
    }
    if group.is_some_and(|g| g != m.gid()) {
        out.push((
            Level::Error,
            format!(
                "{}: group {}, should be {}: the files sendmail leaves there are readable by that group",
                d.display(),
                group_name(m.gid()),
                group.map(group_name).unwrap_or_default()
            ),
        ));
    }
    out
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Who the roles that read the queue and the configured files run as:
/// `server.user` when postern runs as root (`None` if that user does not
/// exist: reported already), else the one running the check.
fn role_credentials(config: &Config) -> Option<Access> {
    if nix::unistd::geteuid().is_root() {
        let c = crate::sys::user_credentials(&config.server.user).ok()??;
        Some(Access {
            name: config.server.user.clone(),
            uid: c.uid,
            groups: std::iter::once(c.gid).chain(c.groups).collect(),
        })
    } else {
        Some(Access {
            name: crate::sys::user_name(nix::unistd::geteuid().as_raw()),
            uid: nix::unistd::geteuid().as_raw(),
            groups: std::iter::once(nix::unistd::getegid().as_raw())
                .chain(
                    nix::unistd::getgroups()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|g| g.as_raw()),
                )
                .collect(),
        })
    }
}

/// A user's view of the file system by the permission bits (root sees
/// everything; ACLs are not read).
struct Access {
    name: String,
    uid: u32,
    groups: Vec<u32>,
}

impl Access {
    /// Whether the bits `want` (4 read, 2 write, 1 search) are granted by
    /// `m`'s owner, group or other class for this user.
    fn granted(&self, m: &std::fs::Metadata, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = m.mode();
        let bits = if m.uid() == self.uid {
            mode >> 6
        } else if self.groups.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// Why this user cannot walk to `path` (every existing directory on
    /// the way must be searchable), or `None`.
    fn cannot_reach(&self, path: &Path) -> Option<String> {
        let mut walked = std::path::PathBuf::new();
        for part in path.parent()?.components() {
            walked.push(part);
            let Ok(m) = std::fs::metadata(&walked) else {
                return None;
            };
            if m.is_dir() && !self.granted(&m, 1) {
                return Some(format!(
                    "the {} user cannot enter {} (mode {:o}, owner uid {})",
                    self.name,
                    walked.display(),
                    m.mode() & 0o7777,
                    m.uid()
                ));
            }
        }
        None
    }

    /// Why this user cannot read the file `path`, or `None`.
    fn cannot_read(&self, path: &Path) -> Option<String> {
        if let Some(problem) = self.cannot_reach(path) {
            return Some(problem);
        }
        let m = std::fs::metadata(path).ok()?;
        (!self.granted(&m, 4)).then(|| {
            format!(
                "the {} user cannot read it (mode {:o}, owner uid {})",
                self.name,
                m.mode() & 0o7777,
                m.uid()
            )
        })
    }
}

/// The tables of the restriction lists and of the header and body checks:
/// each must open and compile (a missing file or a syntax error, with FILE:LINE, is an
/// error: smtpd would answer `451 4.3.5 Server configuration error`).
fn check_tables(config: &Config) -> Vec<(Level, String)> {
    let mut out: Vec<(Level, String)> = Vec::new();
    let policy = crate::policy::Policy::new(std::sync::Arc::new(config.clone()));
    for p in policy.problems() {
        out.push((Level::Error, p.clone()));
    }
    for p in policy.rewriter().class_conflicts() {
        out.push((Level::Error, p));
    }
    // Each table of each key on its own (ContentChecks::open stops at the
    // first), so that every broken one is named with its key.
    let c = &config.checks;
    for (key, specs) in [
        ("header", &c.header),
        ("mime_header", &c.mime_header),
        ("body", &c.body),
    ] {
        for spec in specs {
            if let Err(e) = crate::maps::Table::open(spec, config) {
                out.push((Level::Error, format!("checks.{key}: {e}")));
            }
        }
    }
    out
}

/// `[virtual]`: each table of `virtual.mailbox_domains` and
/// `virtual.mailbox_maps` opens (smtpd would defer every recipient of
/// the class), and no domain is both local and a virtual mailbox domain
/// (Postfix warns; here it is an error: which class wins would be a
/// guess).
fn check_virtual_mailboxes(config: &Config) -> Vec<(Level, String)> {
    let v = &config.r#virtual;
    let mut out = Vec::new();
    let tables = v.mailbox_domains.iter().filter(|d| d.contains(':'));
    for (key, spec) in tables
        .map(|s| ("mailbox_domains", s))
        .chain(v.mailbox_maps.iter().map(|s| ("mailbox_maps", s)))
    {
        if let Err(e) = crate::maps::Table::open(spec, config) {
            out.push((Level::Error, format!("virtual.{key}: {e}")));
        }
    }
    for domain in &config.local.domains {
        if let Ok(true) = crate::virtual_mailbox::is_domain(config, domain) {
            out.push((
                Level::Error,
                format!(
                    "{domain} is in both local.domains and virtual.mailbox_domains:                      a domain is either local (system users) or virtual mailbox, not both"
                ),
            ));
        }
    }
    if !v.mailbox_domains.is_empty() && v.mailbox_maps.is_empty() {
        out.push((
            Level::Warning,
            "virtual.mailbox_domains is set but virtual.mailbox_maps is empty:              every recipient there is refused (User unknown in virtual mailbox table)"
                .to_string(),
        ));
    }
    out
}

/// `relay.sasl_password_files`: each table opens and parses (a typo is an
/// error at its FILE:LINE: the smtp client would defer every delivery
/// until it is fixed), the roles' user can read each file and others
/// cannot (it holds passwords: a warning with the commands that fix it,
/// as Postfix's SASL_README advises root-only files; here the smtp client
/// reads them as the postern user), and `relay.host` has a login in them.
fn check_sasl_password_files(config: &Config, reader: Option<&Access>) -> Vec<(Level, String)> {
    const KEY: &str = "relay.sasl_password_files";
    let mut out = Vec::new();
    let specs = &config.relay.sasl_password_files;
    for path in crate::maps::files_of(specs) {
        // A file that is not there is Table::open's error below.
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        if let Some(problem) = reader.and_then(|w| w.cannot_read(&path)) {
            out.push((
                Level::Error,
                format!(
                    "{} ({KEY}): {problem}: the smtp client could not read its logins",
                    path.display()
                ),
            ));
        }
        let f = path.display();
        let fix = format!(
            "chown root:{g} {f} && chmod 640 {f}",
            g = config.server.user
        );
        out.extend(world_readable(&path, &m, KEY, "holds passwords", &fix));
    }
    let mut opened = true;
    for spec in specs {
        if let Err(e) = crate::maps::Table::open(spec, config) {
            out.push((Level::Error, format!("{KEY}: {e}")));
            opened = false;
        }
    }
    if let Some(hop) = config
        .relay
        .host
        .as_ref()
        .filter(|_| opened && !specs.is_empty())
    {
        let logins = crate::sasl::client::Logins { config };
        if let Ok(None) = logins.find(&hop.host, hop) {
            out.push((
                Level::Warning,
                format!(
                    "relay.host {hop} has no login in {KEY} (keys looked up: {}): mail to it is sent without AUTH",
                    crate::sasl::client::lookup_keys(&hop.host, hop).join(", ")
                ),
            ));
        }
    }
    out
}

/// Every transport file: missing or unreadable ones (qmgr defers all mail
/// while one is), lines that do not parse, duplicates.
fn check_transport_files(config: &Config) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for path in &config.relay.transport_files {
        let text = match crate::transport::read_file(path) {
            Ok(t) => t,
            Err(e) => {
                out.push((Level::Error, e));
                continue;
            }
        };
        let (_, diagnostics) = crate::transport::parse_file(&text, path);
        for d in diagnostics {
            let level = match d.severity {
                crate::transport::Severity::Error => Level::Error,
                crate::transport::Severity::Warning => Level::Warning,
            };
            out.push((level, d.to_string()));
        }
    }
    out
}

/// The warning for a secret file others can read: `path` (named by
/// `key`) `holds` something secret; `fix` is the commands that mend it.
pub(crate) fn world_readable(
    path: &Path,
    meta: &std::fs::Metadata,
    key: &str,
    holds: &str,
    fix: &str,
) -> Option<(Level, String)> {
    (meta.mode() & 0o004 != 0).then(|| {
        (
            Level::Warning,
            format!(
                "{} ({key}): readable by everyone (mode {:o}), but it {holds}: {fix}",
                path.display(),
                meta.mode() & 0o7777
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bad_modes_missing_dirs_and_alias_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.queue.directory = dir.path().join("queue");
        config.server.run_directory = dir.path().join("run");
        config.local.alias_files = vec![dir.path().join("aliases")];
        std::fs::write(dir.path().join("aliases"), "bad line\n").unwrap();
        std::fs::create_dir(&config.queue.directory).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &config.queue.directory,
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let found = check_system(&config, None);
        let text: Vec<String> = found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("Error") && t.contains("mode 755")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("Warning") && t.contains("incoming: missing")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("Error") && t.contains("aliases:1")),
            "{text:?}"
        );
    }

    #[test]
    fn issue_15_checks_the_drop_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("queue");
        std::fs::create_dir(&q).unwrap();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(&q, 0o711);
        assert!(check_queue_mode(&q, 0o711).is_empty());
        assert_eq!(check_queue_mode(&q, 0o700)[0].0, Level::Warning);
        assert_eq!(check_queue_mode(&q, 0o755)[0].0, Level::Error);
        let drop = q.join(crate::maildrop::DIR);
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        assert_eq!(
            check_drop_directory(&drop, Some(me), Some(gid), "u")[0].0,
            Level::Warning
        );
        std::fs::create_dir(&drop).unwrap();
        mode(&drop, 0o3733);
        assert!(check_drop_directory(&drop, Some(me), Some(gid), "u").is_empty());
        mode(&drop, 0o1777);
        let found = check_drop_directory(&drop, Some(me), Some(gid), "u");
        assert!(
            found[0].1.contains("mode 1777, should be 3733"),
            "{found:?}"
        );
        mode(&drop, 0o3733);
        let found = check_drop_directory(&drop, Some(me), Some(gid + 1), "u");
        assert!(found[0].1.contains(": group "), "{found:?}");
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn sasl_password_files_parse_stay_private_and_cover_the_relay_host() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("sasl_passwd");
        let bad = dir.path().join("sasl_bad");
        std::fs::write(&good, "[smtp.example.com]:587 alice:secret\n").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&bad, "a.example bob:pw\n[smtp.example.com]:587\n").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut config = Config::builtin();
        let spec = |p: &Path| format!("texthash:{}", p.display());
        config.relay.sasl_password_files = vec![spec(&good), spec(&bad)];
        config.relay.host = crate::transport::Nexthop::parse("[other.example]:587").ok();
        let text = |found: Vec<(Level, String)>| -> Vec<String> {
            found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect()
        };
        let found = text(check_sasl_password_files(&config, None));
        let (g, b) = (good.display(), bad.display());
        assert_eq!(
            found,
            [
                format!(
                    "Warning: {g} (relay.sasl_password_files): readable by everyone (mode 644), \
                     but it holds passwords: chown root:postern {g} && chmod 640 {g}"
                ),
                format!(
                    "Error: relay.sasl_password_files: {b}:2: error: expected format: key whitespace value"
                ),
            ]
        );
        // The password is never quoted.
        assert!(!found.concat().contains("secret"));

        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o640)).unwrap();
        config.relay.sasl_password_files = vec![spec(&good)];
        assert_eq!(
            text(check_sasl_password_files(&config, None)),
            [
                "Warning: relay.host [other.example]:587 has no login in relay.sasl_password_files \
              (keys looked up: other.example, [other.example]:587, \
              [other.example]:submission): mail to it is sent without AUTH"
            ]
        );
        config.relay.host = crate::transport::Nexthop::parse("[smtp.example.com]:587").ok();
        assert!(check_sasl_password_files(&config, None).is_empty());
        // Another reader than its owner may not read it: an error.
        let someone = Access {
            name: "postern".into(),
            uid: 4_000_000,
            groups: vec![4_000_000],
        };
        let found = text(check_sasl_password_files(&config, Some(&someone)));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!("Error: {g} (relay.sasl_password_files): ")),
            "{found:?}"
        );
    }

    #[test]
    fn reports_transport_files_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.queue.directory = dir.path().join("queue");
        config.server.run_directory = dir.path().join("run");
        config.local.alias_files = Vec::new();
        let file = dir.path().join("transport");
        let missing = dir.path().join("missing");
        config.relay.transport_files = vec![file.clone(), missing.clone()];
        std::fs::write(
            &file,
            "# routes\nexample.com smtp:[mx.example.com]\n\nbad.example uucp:x\nexample.com local:\n",
        )
        .unwrap();
        let found = check_system(&config, None);
        let text: Vec<String> = found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect();
        let f = file.display();
        assert!(
            text.iter().any(|t| t.starts_with(&format!(
                "Error: {f}:4: bad.example uucp:x: unknown transport"
            ))),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("Warning: {f}:5: duplicate entry"))),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with(&format!(
                "Error: transport table {} unavailable: ",
                missing.display()
            ))),
            "{text:?}"
        );
    }
}
