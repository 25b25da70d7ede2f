//! The sandbox every daemon puts itself in before it reads any input.
//!
//! One visible step per daemon ([`enter`]), the same whoever started it
//! (systemd, `postern start`, an administrator by hand):
//!
//! 1. **Privileges** ([`privileges`]): started as root, smtpd, qmgr and smtp
//!    become `server.user` (postern) after emptying the capability bounding
//!    set; local stays root with only `CAP_SETUID`, `CAP_SETGID` (its
//!    delivery children become the recipients), `CAP_SETPCAP` (so that
//!    those children can empty their own bounding set),
//!    `CAP_DAC_READ_SEARCH` (it reads the queue files, which belong to
//!    postern, mode 0600) and `CAP_KILL` (it stops a hung child). Every other set is emptied (inheritable,
//!    ambient) and `no_new_privs` is set, so no exec can gain a privilege.
//! 2. **Directories** the role writes are created while that is still
//!    possible (smtpd `queue/incoming`, and `queue/maildrop` (3733) and
//!    `queue/maildrop-bad` when missing; qmgr the whole queue).
//! 3. **Landlock** ([`landlock`]): a ruleset per role ([`Profile`]) on the
//!    newest ABI the kernel offers (handled rights the kernel lacks are
//!    dropped, with a warning when what is left misses filesystem
//!    truncation or TCP control, ABI < 4); `sandbox.require = true` makes
//!    that fatal. It binds the process and every thread and child it
//!    creates later, so it is applied before the tokio runtime starts.
//!
//! What each role may touch:
//!
//! | role | reads | writes | TCP |
//! |---|---|---|---|
//! | smtpd | system files (`/etc`, libraries, time zones), its configuration, alias files, its tables (restrictions, checks, `virtual.mailbox_domains` and `virtual.mailbox_maps`), `queue/incoming`, `queue/maildrop` | `queue/incoming`, `queue/maildrop` (removes what it took in), `queue/maildrop-bad` | connect only to DNS ports (53, `dns.servers`) the milters' (`milters.smtpd`, `milters.non_smtpd`) and the policy servers' (`check_policy_service`), no bind |
//! | qmgr | system files, its configuration, the queue, the transport files and `virtual.mailbox_domains`' tables | the queue | no connect, no bind |
//! | smtp | system files, its configuration, the queue, the SASL password files, the DKIM keys; connects to the Unix sockets of its `lmtp:unix:` next hops | nothing | outbound only |
//! | local | everything (commands run by aliases and `.forward` read what they like) | users' homes, mail spools, `/tmp`, `/var/tmp`, `sandbox.local_writable`; everything when commands or files are allowed | as commands need |
//! | local mailbox child | system files, the user's home, the mailbox's directory | the user's home, the mailbox's directory | none |
//!
//! "System files" are `/etc`, the libraries and time zones, `/nix/store`
//! and `/run/systemd/resolve` where they exist, and the real directory of
//! every system file a role reads (`/etc/hosts`, `/etc/resolv.conf`, the
//! CA bundle, …) wherever its symlinks lead; each configured file (the
//! configuration, alias, table, transport, CA and password files, the
//! DKIM keys) is read through
//! the directory it is named in and the real directory of each link on its
//! way ([`rooms_of`]): Landlock checks the file a symlink leads to, and on
//! NixOS `/etc/postern/postern.toml -> /etc/static/… -> /nix/store/…`.
//!
//! Every role also appends to `server.log_file`, may open the existing
//! files of its directory for writing (the file logrotate puts in place of
//! the old one, opened on SIGHUP; nothing can be created, read or removed
//! there), and may connect to the Unix sockets of the run directory,
//! `/run/systemd` and `/dev` (syslog's `/dev/log`, Landlock ABI 9).
//!
//! A `|command` or `/file` delivery child keeps local's own room: a
//! program delivery may do what its user may do, as in Postfix.
//!
//! `postern daemon ROLE --probe …` applies exactly this and then tries the
//! given accesses ([`probe`]): the tests prove the walls are real.

pub mod landlock;
pub mod privileges;
mod probe;

use std::path::{Path, PathBuf};

use crate::config::Config;

pub use self::landlock::{Confinement, SandboxError};
pub use self::probe::{ProbeResult, probe};

/// What a role may touch, in Landlock terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Read files and list directories beneath.
    pub read: Vec<PathBuf>,
    /// Read and execute beneath (libraries, programs).
    pub exec: Vec<PathBuf>,
    /// Everything beneath (create, write, remove, rename).
    pub write: Vec<PathBuf>,
    /// Single files to append to or write (the log file).
    pub write_files: Vec<PathBuf>,
    /// Directories whose existing files may be opened for writing, and
    /// nothing else (no create, remove or read): the log file's, so that
    /// the file logrotate puts in place of the old one can be opened on
    /// SIGHUP.
    pub write_existing: Vec<PathBuf>,
    /// Directories whose Unix sockets may be connected to (Landlock ABI 9).
    pub unix_sockets: Vec<PathBuf>,
    /// Restrict TCP: no bind, connect only to these ports. `None`: TCP is
    /// not restricted.
    pub tcp_connect: Option<Vec<u16>>,
    /// Restrict the filesystem at all (false: only TCP and scopes).
    pub restrict_fs: bool,
}

/// System files every role reads: account and host databases, time zones,
/// shared libraries (NSS modules are loaded on first use), certificates.
const SYSTEM_READ: &[&str] = &["/etc", "/usr/share/zoneinfo", "/proc/self"];
const SYSTEM_EXEC: &[&str] = &["/usr/lib", "/usr/lib64", "/lib", "/lib64"];
/// Read where they exist: the Nix store (on NixOS most of `/etc` is a
/// symlink into it, through `/etc/static`, and so are the libraries, the
/// time zones and the CA bundle) and systemd-resolved's directory
/// (`/etc/resolv.conf` is a symlink to its `stub-resolv.conf`).
const SYSTEM_TREES: &[&str] = &["/nix/store", "/run/systemd/resolve"];
/// Files under `/etc` the daemons (and the C library for them) read, which
/// may be symlinks to anywhere: Landlock checks the file a symlink leads
/// to, not the link, so each one's real directory is a room too.
const SYSTEM_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/mailname",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

impl Profile {
    /// smtpd: writes `queue/incoming` and the drop directories, reads its
    /// tables, connects over TCP only to DNS.
    pub fn smtpd(config: &Config, config_path: Option<&Path>) -> Profile {
        let queue = &config.queue.directory;
        let mut p = Profile::system(config, config_path);
        p.write.push(queue.join(crate::queue::INCOMING));
        // The pickup reads and removes the files sendmail left in the
        // drop directory, and moves the bad ones aside.
        p.write.push(queue.join(crate::maildrop::DIR));
        p.write.push(queue.join(crate::maildrop::BAD_DIR));
        p.read_files(&config.local.alias_files);
        // The server certificates and keys, read again when they change.
        p.read_files(&config.tls.chain_files);
        // The restrictions' table files, read again when they change.
        p.read_files(crate::policy::table_files(config));
        // SMTP AUTH: the password file (read again when it changes) and
        // the sender login tables.
        if config.sasl.backend == crate::config::SaslBackend::Passwd {
            p.read_files([config.sasl.password_file.clone()]);
        }
        p.read_files(crate::maps::files_of(&config.sasl.sender_login_maps));
        // The virtual mailbox tables (domains and addresses), read again
        // when they change.
        let v = &config.r#virtual;
        p.read_files(crate::maps::files_of(&v.mailbox_domains));
        p.read_files(crate::maps::files_of(&v.mailbox_maps));
        // The address classes and rewriting tables (virtual aliases,
        // relay domains and recipients, canonical maps).
        p.read_files(crate::rewrite::table_files(config));
        // Dovecot's authentication socket: connecting to a Unix socket is
        // a Landlock right from ABI 9 on. Its directory, or, when Dovecot
        // has not made it yet (smtpd started first), the nearest one that
        // exists, so that the socket made later is reachable.
        if config.sasl.backend == crate::config::SaslBackend::Dovecot
            && let Some(dir) = parent(&config.sasl.dovecot_socket)
        {
            p.unix_sockets.push(existing_ancestor(&dir));
        }
        // And those of the header and body checks.
        let c = &config.checks;
        let checks: Vec<String> = [&c.header, &c.mime_header, &c.body]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        p.read_files(crate::maps::files_of(&checks));
        // DNS over TCP (truncated answers) for the restrictions: port 53
        // and the ports of `dns.servers`; and the milters' ports and
        // sockets (their directories, as Dovecot's above), nothing else.
        let mut ports = vec![53];
        ports.extend(config.dns.servers.iter().map(|s| s.port()));
        let services = crate::policy::policy_services(config);
        let milters = config.milters.smtpd.iter().chain(&config.milters.non_smtpd);
        for milter in milters.chain(&services) {
            match milter {
                crate::milter::Address::Inet(addr) => ports.push(addr.port()),
                crate::milter::Address::Unix(path) => {
                    if let Some(dir) = parent(path) {
                        p.unix_sockets.push(existing_ancestor(&dir));
                    }
                }
            }
        }
        ports.sort_unstable();
        ports.dedup();
        p.tcp_connect = Some(ports);
        p
    }

    /// qmgr: writes the queue, reads its transport files, no TCP.
    pub fn qmgr(config: &Config, config_path: Option<&Path>) -> Profile {
        let mut p = Profile::system(config, config_path);
        p.write.push(config.queue.directory.clone());
        // The transport files and the virtual mailbox domain tables, read
        // again when they change.
        p.read_files(&config.relay.transport_files);
        p.read_files(crate::maps::files_of(&config.r#virtual.mailbox_domains));
        // The rewriting tables: an alias's forwarded copies are rewritten
        // as they are queued (virtual aliases, canonical maps).
        p.read_files(crate::rewrite::table_files(config));
        p.tcp_connect = Some(Vec::new());
        p
    }

    /// metrics: reads nothing of the system but its configuration, the
    /// libraries and the time zones (no `/etc`: not the account databases,
    /// not `/etc/shadow`), never the queue; connects to the run
    /// directory's sockets (qmgr's metrics socket) and no TCP (its
    /// listeners are handed to it).
    pub fn metrics(config: &Config, config_path: Option<&Path>) -> Profile {
        let mut p = Profile::system(config, config_path);
        p.read.retain(|r| r != Path::new("/etc"));
        p.tcp_connect = Some(Vec::new());
        p
    }

    /// smtp: reads the queue, the CA certificates, the password tables
    /// of its relay logins and the DKIM keys, writes nothing, connects
    /// anywhere over TCP (MX hosts are anywhere).
    pub fn smtp(config: &Config, config_path: Option<&Path>) -> Profile {
        let mut p = Profile::system(config, config_path);
        p.read.push(config.queue.directory.clone());
        p.read.extend(["/usr/share/ca-certificates".into()]);
        p.read_files(&config.tls.ca_file);
        // `relay.sasl_password_files`, read again when they change.
        p.read_files(crate::maps::files_of(&config.relay.sasl_password_files));
        // The DKIM private keys (`dkim.keys`), read again when they
        // change: this room alone has them.
        p.read_files(config.dkim.keys.iter().map(|k| &k.path));
        // The LMTP servers' Unix sockets (`lmtp:unix:` in the transport
        // tables and `virtual.transport`), their directories as for
        // smtpd's milters: a socket directory added later needs a restart
        // of the smtp role, as its room cannot grow.
        for socket in crate::transport::lmtp_sockets(config) {
            if let Some(dir) = parent(&socket) {
                p.unix_sockets.push(existing_ancestor(&dir));
            }
        }
        p.tcp_connect = None;
        p
    }

    /// What every role reads, and the sockets it talks to.
    fn system(config: &Config, config_path: Option<&Path>) -> Profile {
        let mut p = Profile::base();
        // The configuration is replaced by rename (editors, `postern
        // reload`, a new NixOS generation), so its directory, not the
        // file, is the rule, and so is the directory it really is in.
        let config_path = config_path.unwrap_or(Path::new(crate::config::DEFAULT_PATH));
        p.read_files([config_path]);
        p.read.push(config.server.run_directory.clone());
        p.unix_sockets.push(config.server.run_directory.clone());
        p.unix_sockets.push("/run/systemd".into());
        // syslog (`/dev/log`), connected again after the syslog daemon
        // restarted (Landlock ABI 9 scopes Unix sockets).
        if let Some(dir) = parent(crate::logging::syslog_socket()) {
            p.unix_sockets.push(dir);
        }
        if let Some(dir) = std::env::var_os("NOTIFY_SOCKET")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .and_then(parent)
        {
            p.unix_sockets.push(dir);
        }
        if let Some(file) = &config.server.log_file {
            p.write_files.push(file.clone());
            p.write_existing.extend(parent(file));
        }
        p.write_files.push("/dev/null".into());
        p
    }

    /// The local delivery agent: its children run commands and write users'
    /// files, so its own room is theirs (see the module manual).
    pub fn local(config: &Config, config_path: Option<&Path>) -> Profile {
        let programs = !config.local.allow_mail_to_commands.is_empty()
            || !config.local.allow_mail_to_files.is_empty();
        let mut p = Profile::system(config, config_path);
        p.read.push("/".into());
        p.exec.push("/".into());
        if programs {
            // A `|command` may write wherever its user may; the wall that
            // remains is the user's own permissions and no capabilities.
            p.write.push("/".into());
            p.tcp_connect = None;
        } else {
            p.write.extend(mailbox_roots(config));
            p.write.extend(["/tmp".into(), "/var/tmp".into()]);
            // The delivery record (crate::local::journal).
            p.write.push(
                config
                    .server
                    .run_directory
                    .join(crate::ipc::names::JOURNAL_DIR),
            );
            p.write
                .extend(config.sandbox.local_writable.iter().cloned());
            p.tcp_connect = Some(Vec::new());
        }
        p
    }

    /// A mailbox delivery child of `home`: it writes the home and the
    /// directory that holds the mailbox (the spool, for mbox), nothing else.
    pub fn mailbox_worker(home: &Path, mailbox_dirs: &[PathBuf]) -> Profile {
        let mut p = Profile {
            tcp_connect: Some(Vec::new()),
            ..Profile::base()
        };
        // A mailbox directory not made yet (the first delivery makes it)
        // has no inode to bind a rule to: its nearest existing ancestor
        // stands in.
        p.write.push(home.to_path_buf());
        p.write
            .extend(mailbox_dirs.iter().map(|d| existing_ancestor(d)));
        p.write_files.push("/dev/null".into());
        p
    }
}

impl Profile {
    /// The rule through which this profile may read `file` (a read,
    /// execute or write rule on the directory it really is in, or one
    /// above it), if there is one. Landlock checks the file a symlink
    /// leads to, and a rule's directory, wherever its own links lead.
    pub fn covers(&self, file: &Path) -> Option<PathBuf> {
        // A file not there (yet) is where its name says.
        let real = std::fs::canonicalize(file)
            .ok()
            .or_else(|| {
                let dir = std::fs::canonicalize(file.parent()?).ok()?;
                Some(dir.join(file.file_name()?))
            })
            .unwrap_or_else(|| file.to_path_buf());
        self.read
            .iter()
            .chain(&self.exec)
            .chain(&self.write)
            .find(|rule| {
                let rule = std::fs::canonicalize(rule).unwrap_or_else(|_| rule.to_path_buf());
                real.starts_with(&rule)
            })
            .cloned()
    }

    /// The system's files, wherever they really are.
    fn base() -> Profile {
        let mut p = Profile {
            read: SYSTEM_READ.iter().map(PathBuf::from).collect(),
            exec: SYSTEM_EXEC.iter().map(PathBuf::from).collect(),
            restrict_fs: true,
            ..Profile::default()
        };
        for tree in SYSTEM_TREES.iter().map(Path::new).filter(|t| t.is_dir()) {
            p.add_read(tree.to_path_buf());
        }
        p.read_files(SYSTEM_FILES);
        p
    }

    /// Make `files` readable, with their replacements: the directories
    /// they are named in and the directories they really are in
    /// ([`rooms_of`]).
    fn read_files<P: AsRef<Path>>(&mut self, files: impl IntoIterator<Item = P>) {
        for file in files {
            for room in rooms_of(file.as_ref()) {
                self.add_read(room);
            }
        }
    }

    fn add_read(&mut self, dir: PathBuf) {
        if !self.read.contains(&dir) {
            self.read.push(dir);
        }
    }
}

/// The directories a file is read through: the one it is named in, and
/// the real (canonical) directory of every symlink on the way to it and
/// of the file itself. Landlock checks the file a symlink leads to, so a
/// rule for `/etc` does not cover `/etc/hosts -> /etc/static/hosts ->
/// /nix/store/…-etc/etc/hosts`. The rule is the directory, not the file:
/// a file replaced by rename (an editor, a NixOS switch) stays covered.
/// `/` itself is never made a room: a file there is covered only by the
/// rooms the role has anyway.
pub fn rooms_of(file: &Path) -> Vec<PathBuf> {
    /// The kernel's limit on symlinks followed in one path (MAXSYMLINKS).
    const MAX_HOPS: usize = 40;
    let mut rooms: Vec<PathBuf> = Vec::new();
    let mut add = |dir: PathBuf| {
        if dir != Path::new("/") && !rooms.contains(&dir) {
            rooms.push(dir);
        }
    };
    if let Some(dir) = parent(file) {
        add(dir);
    }
    let mut hop = file.to_path_buf();
    for _ in 0..MAX_HOPS {
        let (Some(dir), Some(name)) = (
            hop.parent().and_then(|d| std::fs::canonicalize(d).ok()),
            hop.file_name(),
        ) else {
            break;
        };
        let here = dir.join(name);
        add(dir.clone());
        match std::fs::read_link(&here) {
            // A relative target is relative to the link's directory.
            Ok(target) => hop = dir.join(target),
            Err(_) => break,
        }
    }
    rooms
}

fn existing_ancestor(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

fn parent(p: impl AsRef<Path>) -> Option<PathBuf> {
    let p = p.as_ref();
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// Where mailboxes live when commands and files are not allowed: the
/// directories holding users' homes (`/home`), system users' homes
/// themselves (`/root`), and the mail spools.
fn mailbox_roots(config: &Config) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = vec!["/var/mail".into(), "/var/spool/mail".into()];
    if let Some(dir) = Path::new(&config.local.mailbox)
        .parent()
        .filter(|d| d.is_absolute() && !d.to_string_lossy().contains('$'))
    {
        roots.push(dir.to_path_buf());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let (Some(uid), Some(home)) = (fields.get(2), fields.get(5)) else {
            continue;
        };
        let home = Path::new(home);
        if !home.is_dir() || home == Path::new("/") {
            continue;
        }
        let uid: u32 = uid.parse().unwrap_or(0);
        let root = match home.parent() {
            Some(p) if uid >= 1000 && p != Path::new("/") => p.to_path_buf(),
            _ => home.to_path_buf(),
        };
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots
}

/// The daemon's sandbox step for `role`: privileges, its directories,
/// Landlock, as its row of the role table says (`crate::role`'s
/// `Role::enter` passes them). Called by `postern daemon ROLE` before the
/// runtime starts and before any input is read.
pub fn enter(
    role: &str,
    run_as: privileges::RunAs,
    dirs: &[Dir],
    profile: &Profile,
    config: &Config,
) -> anyhow::Result<Confinement> {
    privileges::drop_for(role, run_as, config)?;
    make_directories(dirs)?;
    let confinement = landlock::confine(profile, config.sandbox.require)?;
    confinement.log(role);
    Ok(confinement)
}

/// Create what the role writes, while it still may (under systemd the
/// queue directory may be brand new), as the role's user, so that owner
/// and group are right; the mode is set whatever the umask. Whatever
/// exists (even a symlink) is left alone. A directory the role can do
/// without is a warning when it cannot be made.
fn make_directories(dirs: &[Dir]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for d in dirs {
        if std::fs::symlink_metadata(&d.path).is_ok() {
            continue;
        }
        let made = std::fs::DirBuilder::new()
            .mode(d.mode & 0o777)
            .create(&d.path)
            .and_then(|()| {
                std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode))
            });
        match (made, d.without) {
            (Ok(()), _) => {}
            (Err(e), None) => anyhow::bail!("cannot create {}: {e}", d.path.display()),
            (Err(e), Some(lost)) => {
                log::warn!("cannot create {}: {e}; {lost}", d.path.display())
            }
        }
    }
    Ok(())
}

/// A directory a role makes at start.
pub struct Dir {
    pub path: PathBuf,
    pub mode: u32,
    /// What is lost without it; `None`: the role cannot run without it.
    pub without: Option<&'static str>,
}

impl Dir {
    /// One the role needs.
    pub fn needed(path: PathBuf, mode: u32) -> Dir {
        Dir {
            path,
            mode,
            without: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Issue 16: NixOS's shape, `/etc/hosts -> /etc/static/hosts`,
    /// `/etc/static -> /nix/store/…-etc/etc`, the file itself one more
    /// link away: every real directory on the way is a room.
    #[test]
    fn issue_16_rooms_follow_symlinks_to_where_files_are() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let etc = root.join("etc");
        let store_etc = root.join("store/abc-etc/etc");
        let store_file = root.join("store/def-hosts");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&store_etc).unwrap();
        std::fs::create_dir_all(&store_file).unwrap();
        std::fs::write(store_file.join("hosts"), "127.0.0.1 server\n").unwrap();
        symlink(&store_etc, etc.join("static")).unwrap();
        symlink("static/hosts", etc.join("hosts")).unwrap();
        symlink(store_file.join("hosts"), store_etc.join("hosts")).unwrap();
        assert_eq!(
            rooms_of(&etc.join("hosts")),
            [etc.clone(), store_etc.clone(), store_file.clone()]
        );
        // A plain file: its directory, once.
        std::fs::write(etc.join("plain"), "").unwrap();
        assert_eq!(rooms_of(&etc.join("plain")), vec![etc.clone()]);
        // A name given through a symlinked directory: the name's and the
        // real one.
        assert_eq!(
            rooms_of(&etc.join("static/hosts")),
            [etc.join("static"), store_etc.clone(), store_file.clone()]
        );
        // A missing file still has the room it would be made in; a link to
        // a file in `/` never makes `/` a room.
        assert_eq!(rooms_of(&etc.join("missing")), vec![etc.clone()]);
        symlink("/postern-no-such-file", etc.join("to-root")).unwrap();
        assert_eq!(rooms_of(&etc.join("to-root")), vec![etc.clone()]);
        // A loop ends.
        symlink("loop-b", etc.join("loop-a")).unwrap();
        symlink("loop-a", etc.join("loop-b")).unwrap();
        assert_eq!(rooms_of(&etc.join("loop-a")), vec![etc.clone()]);
    }

    /// The smtp client, and it alone, reads the directories of its relay
    /// logins' password tables.
    #[test]
    fn smtp_reads_the_password_tables() {
        let mut config = Config::builtin();
        config.relay.sasl_password_files = vec![
            "hash:/etc/postern/secrets/sasl_passwd".into(),
            "inline:{ a=b:c }".into(),
        ];
        let room = PathBuf::from("/etc/postern/secrets");
        assert!(Profile::smtp(&config, None).read.contains(&room));
        assert!(!Profile::smtpd(&config, None).read.contains(&room));
        assert!(!Profile::qmgr(&config, None).read.contains(&room));
    }

    /// Issue 21: smtpd reads the virtual mailbox tables (domains and
    /// addresses), qmgr the domain tables (routing), smtp neither; smtp
    /// reaches the directories of its LMTP sockets, the others do not.
    #[test]
    fn issue_21_virtual_mailbox_tables_and_lmtp_sockets() {
        let mut config = Config::builtin();
        config.r#virtual.mailbox_domains = vec!["v.example".into(), "hash:/srv/vd/domains".into()];
        config.r#virtual.mailbox_maps = vec!["hash:/srv/vm/mailboxes".into()];
        config.r#virtual.transport =
            crate::transport::Transport::parse("lmtp:unix:/nonexistent/dovecot/lmtp").ok();
        config.relay.transport.insert(
            "x.example".into(),
            crate::transport::Transport::parse("lmtp:unix:/run/other/lmtp").unwrap(),
        );
        let (domains, mailboxes) = (PathBuf::from("/srv/vd"), PathBuf::from("/srv/vm"));
        let smtpd = Profile::smtpd(&config, None);
        assert!(smtpd.read.contains(&domains) && smtpd.read.contains(&mailboxes));
        let qmgr = Profile::qmgr(&config, None);
        assert!(qmgr.read.contains(&domains) && !qmgr.read.contains(&mailboxes));
        let smtp = Profile::smtp(&config, None);
        assert!(!smtp.read.contains(&domains) && !smtp.read.contains(&mailboxes));
        // A socket directory not made yet: its nearest existing ancestor.
        assert!(
            smtp.unix_sockets.contains(&PathBuf::from("/")),
            "{:?}",
            smtp.unix_sockets
        );
        assert!(
            smtp.unix_sockets
                .contains(&existing_ancestor(Path::new("/run/other")))
        );
        for other in [&smtpd, &qmgr] {
            assert!(!other.unix_sockets.contains(&PathBuf::from("/")));
        }
    }

    /// Issue 19: the DKIM keys' directory is smtp's room alone, and
    /// `covers` finds the rule through which a role could read a file.
    #[test]
    fn issue_19_only_smtp_reads_the_dkim_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("dkim");
        std::fs::create_dir(&keys).unwrap();
        let key = keys.join("example.org.sel.key");
        std::fs::write(&key, "").unwrap();
        let mut config = Config::builtin();
        config.dkim.keys = vec![
            crate::dkim::KeyEntry::parse(&format!("example.org:sel:{}", key.display())).unwrap(),
        ];
        let config_path = Path::new("/etc/postern/postern.toml");
        let smtp = Profile::smtp(&config, Some(config_path));
        let smtpd = Profile::smtpd(&config, Some(config_path));
        assert!(smtp.read.contains(&keys));
        assert_eq!(smtp.covers(&key), Some(keys.clone()));
        assert!(!smtpd.read.contains(&keys));
        assert!(
            !Profile::qmgr(&config, Some(config_path))
                .read
                .contains(&keys)
        );
        assert_eq!(smtpd.covers(&key), None);
        // Under /etc, or beside the configuration, smtpd could read it.
        assert_eq!(
            smtpd.covers(Path::new("/etc/postern/dkim/k.pem")),
            Some(PathBuf::from("/etc"))
        );
        let beside = dir.path().join("postern.toml");
        let smtpd = Profile::smtpd(&config, Some(&beside));
        assert_eq!(smtpd.covers(&key), Some(dir.path().to_path_buf()));
    }

    /// Every role reads the Nix store and systemd-resolved's directory
    /// where they exist, and the real directory of each system file.
    #[test]
    fn issue_16_system_trees_and_files_are_rooms_where_they_exist() {
        let config = Config::builtin();
        let p = Profile::smtpd(&config, Some(Path::new("/etc/postern/postern.toml")));
        for tree in SYSTEM_TREES {
            assert_eq!(
                p.read.contains(&PathBuf::from(tree)),
                Path::new(tree).is_dir(),
                "{tree}: {:?}",
                p.read
            );
        }
        for file in SYSTEM_FILES {
            for room in rooms_of(Path::new(file)) {
                assert!(
                    p.read.contains(&room),
                    "{file}: {room:?} not in {:?}",
                    p.read
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        assert!(p.read.iter().all(|r| seen.insert(r)), "{:?}", p.read);
        assert!(!p.read.contains(&PathBuf::from("/")));
    }

    /// Issue 18: smtpd may connect to Dovecot's auth socket (a Landlock
    /// right from ABI 9 on) and read the password file, each only with its
    /// backend; no other role gets either, nor the key's directory.
    #[test]
    fn issue_18_smtpd_reaches_its_sasl_backend_and_keys() {
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        let (run, secrets) = (dir.join("dovecot"), dir.join("secrets"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&secrets).unwrap();
        let toml = |backend: &str, socket: &Path| {
            format!(
                "[submission]\nlisten = [\"127.0.0.1:587\"]\n[tls]\nchain_files = [\"{}\"]\n\
                 [sasl]\nbackend = \"{backend}\"\ndovecot_socket = \"{}\"\npassword_file = \"{}\"\n",
                secrets.join("key.pem").display(),
                socket.display(),
                secrets.join("passwd").display()
            )
        };
        let path = Some(Path::new("/etc/postern/postern.toml"));
        let config = Config::from_toml(&toml("dovecot", &run.join("auth-client")), "t").unwrap();
        let p = Profile::smtpd(&config, path);
        assert!(p.unix_sockets.contains(&run), "{:?}", p.unix_sockets);
        assert!(p.read.contains(&secrets), "{:?}", p.read);
        // Not made yet: the nearest directory that exists.
        let later = run.join("not-yet").join("auth-client");
        let config = Config::from_toml(&toml("dovecot", &later), "t").unwrap();
        let p = Profile::smtpd(&config, path);
        assert!(p.unix_sockets.contains(&run), "{:?}", p.unix_sockets);
        let config = Config::from_toml(&toml("passwd", &run.join("auth-client")), "t").unwrap();
        let p = Profile::smtpd(&config, path);
        assert!(!p.unix_sockets.contains(&run), "{:?}", p.unix_sockets);
        assert!(p.read.contains(&secrets), "{:?}", p.read);
        for other in [Profile::qmgr, Profile::smtp] {
            let o = other(&config, path);
            assert!(
                !o.unix_sockets.contains(&run) && !o.read.contains(&secrets),
                "{o:?}"
            );
        }
    }
}
