//! The postern binary: dispatch on argv[0] (sendmail, mailq, newaliases),
//! then on the subcommand. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use postern::config::Config;
use postern::ipc::qmgr_client;

mod manual;

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "postern mail transfer agent",
    after_help = "Also: `postern sendmail ARGS…`, `postern mailq ARGS…` and `postern newaliases` \
                  behave as sendmail(1), mailq(1) and newaliases(1), which are this binary under \
                  those names (`sendmail --help` lists sendmail's flags)."
)]
struct Cli {
    /// Configuration file (default $POSTERN_CONFIG, then
    /// /etc/postern/postern.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the mail system: bind the listeners and run every role.
    Start {
        /// Stay in the foreground (logs on stderr).
        #[arg(long)]
        foreground: bool,
    },
    /// Stop a running mail system gracefully.
    Stop,
    /// Read the configuration again (an invalid one is refused and the
    /// running one kept).
    Reload,
    /// Show whether postern runs, its roles and the queue counts.
    Status,
    /// Validate the configuration, and the system as postfix check does
    /// (the postern user, queue and run directories, alias sources): exit
    /// 0 when good, 1 with the errors.
    Check {
        /// Check the file and the files it names (alias files, transport
        /// files, access, regexp and pcre tables, header and body checks)
        /// but nothing of the system: no postern user, queue or run
        /// directory, owners or modes. For builds (NixOS checks the
        /// rendered file as the build user) and CI.
        #[arg(long, visible_alias = "offline")]
        no_system: bool,
    },
    /// Show the configuration, its JSON Schema, or import Postfix's.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Try every deferred recipient now (sendmail -q, postqueue -f).
    Flush,
    /// The alias sources (newaliases).
    Aliases {
        #[command(subcommand)]
        action: AliasesAction,
    },
    /// Lookup tables (postmap).
    Map {
        #[command(subcommand)]
        action: MapAction,
    },
    /// Act on queued messages (IDs, or ALL), like postsuper.
    Queue {
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// The access policy (restriction lists, tables, DNS checks).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Set a login's password in the SMTP AUTH password file (an argon2id
    /// hash; the file made 0640, owner root, group postern). The password
    /// is read from standard input (its first line), or asked for twice
    /// on a terminal.
    Passwd {
        /// The password file.
        #[arg(long, value_name = "FILE", default_value = postern::sasl::passwd::DEFAULT_PATH)]
        file: PathBuf,
        /// The login.
        login: String,
    },
    /// DKIM signing keys: make one, check its DNS record.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Run one role (started by `postern start` or systemd).
    Daemon {
        #[arg(value_parser = ["smtpd", "qmgr", "local", "smtp", "metrics", "local-worker"])]
        role: String,
        /// Apply the role's sandbox, try these accesses (`read:FILE`,
        /// `write:FILE`, `list:DIR`, `connect:HOST:PORT`), print the results
        /// as JSON lines and exit: proof that the sandbox holds.
        #[arg(long, value_name = "KIND:TARGET", hide = true)]
        probe: Vec<String>,
    },
    /// Write the manual pages, shell completions or systemd units' drop-ins
    /// (for packagers, and systemd).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: GenerateWhat,
    },
}

#[derive(Subcommand)]
enum DkimAction {
    /// Make a signing key for DOMAIN: DIR/DOMAIN.SELECTOR.key (0600; the
    /// postern user's when run as root), never over an existing file.
    /// Prints the DNS TXT record to publish and the dkim.keys entry.
    Keygen {
        #[arg(value_name = "DOMAIN")]
        domain: String,
        #[arg(value_name = "SELECTOR")]
        selector: String,
        /// rsa (rsa-sha256) or ed25519 (ed25519-sha256, RFC 8463).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
        /// The size of an RSA key (2048 to 4096).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// The directory of the keys: outside /etc, which every role's
        /// sandbox reads; only the smtp client's reads this one.
        #[arg(long, value_name = "DIR", default_value = postern::dkim::cli::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Look up SELECTOR._domainkey.DOMAIN (with dns.servers, as the
    /// daemons) and compare it with the key dkim.keys names: exit 0 when
    /// the DNS publishes that key, 1 when it does not (or nothing).
    Check {
        #[arg(value_name = "DOMAIN")]
        domain: String,
        #[arg(value_name = "SELECTOR")]
        selector: String,
    },
    /// Sign N messages of SIZE bytes with RSA-2048, Ed25519 and both, as
    /// the smtp client does; print the time per message.
    #[command(hide = true)]
    Bench {
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        #[arg(long, default_value_t = 2048)]
        size: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
enum GenerateWhat {
    /// postern.8, sendmail.1, mailq.1, newaliases.1 and postern.toml.5.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The JSON Schema of postern.toml, DIR/postern.schema.json (as
    /// `postern config schema` prints it), for editors and CI.
    Schema {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// As a systemd generator (systemd.generator(7)): the listeners of
    /// postern-smtpd.socket from smtpd.listen, as a drop-in in NORMAL_DIR
    /// (the socket masked when there is none, or the configuration cannot
    /// be read). The configuration file must exist.
    Systemd {
        /// NORMAL_DIR [EARLY_DIR LATE_DIR], as systemd passes them.
        #[arg(value_name = "DIR", num_args = 1..=3, required = true)]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Run the restriction lists with the real tables and DNS for a
    /// client, HELO name, sender and recipients, without sending mail:
    /// every element evaluated, what each table and DNS answered, and the
    /// reply for each recipient. Exit 0 when every recipient would be
    /// accepted, 1 otherwise.
    Test(PolicyTest),
}

/// The arguments of `postern policy test`.
#[derive(clap::Args)]
struct PolicyTest {
    /// The client's address.
    #[arg(long, value_name = "IP")]
    client: std::net::IpAddr,
    /// The client's verified name (default: looked up, PTR and
    /// forward, as smtpd does).
    #[arg(long, value_name = "NAME")]
    client_name: Option<String>,
    /// The HELO/EHLO name.
    #[arg(long, value_name = "NAME")]
    helo: Option<String>,
    /// The envelope sender (default: the null sender <>).
    #[arg(long, value_name = "ADDRESS", default_value = "")]
    from: String,
    /// A recipient (repeat for more).
    #[arg(long = "to", value_name = "ADDRESS", required = true)]
    to: Vec<String>,
    /// A message file (LF or CRLF line ends) for the header and body
    /// checks; also shows its DKIM, SPF and DMARC results with the
    /// records used, the Authentication-Results field smtpd would add,
    /// and what DMARC's p=reject does (verify.dmarc_reject).
    #[arg(long, value_name = "FILE")]
    message: Option<PathBuf>,
    /// The client logged in as this user (SMTP AUTH).
    #[arg(long, value_name = "LOGIN")]
    sasl_user: Option<String>,
    /// The client is on a submission listener: the lists of [submission].
    #[arg(long)]
    submission: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AliasesAction {
    /// Check every alias source (inline, files, :include: files) and report
    /// each problem with its file and line; exit 1 on errors. Running
    /// daemons notice changed files by themselves.
    Build,
}

#[derive(Subcommand)]
enum MapAction {
    /// Check a table file's syntax (postmap FILE) and print each problem
    /// as FILE:LINE: error: …; exit 1 on errors. There is nothing to
    /// compile: the daemons read the text file itself and notice changes.
    Build {
        /// The file, as `type:FILE` or FILE (hash unless -t says otherwise).
        #[arg(value_name = "[TYPE:]FILE")]
        file: String,
        /// The table type: hash (texthash), regexp or pcre.
        #[arg(short = 't', long = "type", value_name = "TYPE")]
        table_type: Option<String>,
    },
    /// Look KEY up in TABLE with exactly that key (postmap -q KEY TABLE)
    /// and print the value: exit 0 when found, 1 when not, 2 on errors.
    Query {
        /// A table spec: hash:/path, pcre:/path, inline:NAME, … (a bare
        /// absolute path is a hash file).
        #[arg(value_name = "TABLE")]
        table: String,
        #[arg(value_name = "KEY")]
        key: String,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Show one message's envelope and content (like postcat -q).
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Show the queue as mailq (postqueue -p) does.
    List {
        /// One JSON object per message (postqueue -j).
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Recipients (or senders) per domain and age, as Postfix's qshape:
    /// what is stuck, where, since when.
    Shape {
        /// Count by `recipient-domain` (every recipient) or
        /// `sender-domain` (one per message; qshape -s).
        #[arg(long, value_name = "WHAT", default_value = "recipient-domain",
              value_parser = ["recipient-domain", "recipient", "sender-domain", "sender"])]
        by: String,
        /// The number of age buckets (qshape -b).
        #[arg(short = 'b', long, default_value_t = 10,
              value_parser = clap::value_parser!(u16).range(1..))]
        buckets: u16,
        /// The first bucket's bound in minutes (qshape -t); each next one
        /// doubles it.
        #[arg(short = 't', long, value_name = "MINUTES", default_value_t = 5,
              value_parser = clap::value_parser!(u64).range(1..))]
        tick: u64,
        /// Bounds are multiples of the first (qshape -l).
        #[arg(short = 'l', long)]
        linear: bool,
        /// Also rows for parent domains (`.example.com`) with at least this
        /// many subdomains in the table (qshape -p -m 5).
        #[arg(short = 'p', long, value_name = "MIN_SUBDOMAINS", num_args = 0..=1,
              default_missing_value = "5")]
        parents: Option<usize>,
        /// The width to align to (qshape -w; at least 80).
        #[arg(short = 'w', long, default_value_t = 80)]
        width: usize,
        /// The reference time, seconds since the epoch (default: now).
        #[arg(long, value_name = "EPOCH")]
        now: Option<u64>,
        /// The table as one JSON object.
        #[arg(long, short = 'j')]
        json: bool,
        /// Only these queues (active, deferred, hold); default: active and
        /// deferred.
        #[arg(value_parser = ["active", "deferred", "hold"])]
        queues: Vec<String>,
    },
    /// Keep messages in the queue without delivering them (postsuper -h).
    Hold {
        #[arg(required = true, value_name = "ID|ALL")]
        ids: Vec<String>,
    },
    /// Let held messages be delivered again (postsuper -H).
    Release {
        #[arg(required = true, value_name = "ID|ALL")]
        ids: Vec<String>,
    },
    /// Remove messages without a notice to anyone (postsuper -d).
    Delete {
        #[arg(required = true, value_name = "ID|ALL")]
        ids: Vec<String>,
    },
    /// Try the waiting recipients now (postsuper -r, postqueue -i).
    Requeue {
        #[arg(required = true, value_name = "ID|ALL")]
        ids: Vec<String>,
    },
    /// Recover what can be recovered from a damaged queue file (one qmgr
    /// kept in queue/corrupt/): print its records and damaged ranges, and
    /// re-queue every intact message not yet done, with its envelope and
    /// queue ID. Exit 0 when messages were re-queued, 1 when none could be.
    Salvage {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Only list what would be re-queued.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration as TOML (like postconf).
    Show {
        /// Only the settings the file makes, as written there: `$name`
        /// forms kept (like postconf -n).
        #[arg(long)]
        non_default: bool,
        /// The built-in defaults, not the file's values (like postconf -d).
        #[arg(long, conflicts_with = "non_default")]
        defaults: bool,
        /// Only these keys, `table.key` or a Postfix name (`relay.networks`,
        /// `mynetworks`), one `key = value` line each (like postconf NAME).
        keys: Vec<String>,
    },
    /// Print a JSON Schema of postern.toml, for editors (taplo, Even
    /// Better TOML): every key with its type, documentation and default.
    Schema,
    /// Translate a Postfix configuration (main.cf, master.cf) into a
    /// postern.toml, with a report of what could not be translated: exit
    /// 0 when complete, 2 when written but incomplete, 1 on an error.
    ImportPostfix(ImportArgs),
}

/// `postern config import-postfix`'s arguments.
#[derive(clap::Args)]
struct ImportArgs {
    /// The directory of main.cf and master.cf.
    #[arg(default_value = "/etc/postfix")]
    dir: PathBuf,
    /// Write the result to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long, requires = "output")]
    force: bool,
    /// Run the result through the checks of `postern check --offline`.
    #[arg(long)]
    check: bool,
    /// Read the files the configuration names by absolute path
    /// (/etc/mailname, mynetworks files) under DIR instead of /.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Postfix's myhostname default (else this machine's name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
}

/// sysexits EX_CONFIG: a daemon's configuration (or its sandbox) is
/// wrong; systemd does not restart it (RestartPreventExitStatus=78).
const EX_CONFIG: u8 = postern::ipc::EX_CONFIG as u8;

fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // `postern sendmail|mailq|newaliases …` behave as those commands (with
    // their flags, not postern's).
    let first = std::env::args_os()
        .nth(1)
        .map(|a| a.to_string_lossy().into_owned());
    let (argv0, skip) = match first.as_deref() {
        Some(name @ ("sendmail" | "mailq" | "newaliases")) if argv0 == "postern" => {
            (name.to_string(), 2)
        }
        _ => (argv0, 1),
    };
    if argv0 == "newaliases" {
        // newaliases(1): check the alias sources (there is no database to
        // build: the daemons read the files and notice changes).
        return match load(&config_arg()).and_then(|c| aliases_build(&c)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("newaliases: {e:#}");
                ExitCode::from(75)
            }
        };
    }
    if argv0 == "mailq" {
        postern::sys::die_on_sigpipe();
        let json = std::env::args_os().any(|a| a == "--json" || a == "-j");
        return match mailq(&load_client(&config_arg(), "mailq"), json) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mailq: {e:#}");
                ExitCode::from(69)
            }
        };
    }
    if argv0 == "sendmail" {
        return sendmail(std::env::args_os().skip(skip).collect());
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon { .. } | Command::Start { .. }) {
        postern::sys::die_on_sigpipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `postern aliases build` / `newaliases`: every problem on stderr as
/// `FILE:LINE: error: message`; exit 1 when any is an error.
fn aliases_build(config: &Config) -> anyhow::Result<ExitCode> {
    let read =
        |p: &std::path::Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let diagnostics = postern::aliases::check(
        config
            .local
            .aliases
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        std::path::Path::new("postern.toml [local.aliases]"),
        &config.local.alias_files,
        &postern::aliases::expand_options(config),
        read,
    );
    for d in &diagnostics {
        eprintln!("{d}");
    }
    Ok(if diagnostics.iter().any(|d| d.is_error()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `postern map build | query` (the work is in `postern::maps::cli`).
fn map(action: MapAction, config: &Option<PathBuf>) -> ExitCode {
    use postern::maps::cli;
    match action {
        MapAction::Build { file, table_type } => match cli::build(&file, table_type.as_deref()) {
            Ok(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                ExitCode::from(u8::from(diagnostics.iter().any(|d| d.error)))
            }
            Err(e) => {
                eprintln!("postern: {e}");
                ExitCode::from(1)
            }
        },
        MapAction::Query { table, key } => {
            let found = load(config)
                .map_err(|e| format!("{e:#}"))
                .and_then(|c| cli::query(&table, &key, &c).map_err(|e| e.to_string()));
            match found {
                Ok(Some(value)) => {
                    println!("{value}");
                    ExitCode::SUCCESS
                }
                Ok(None) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("postern: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `mailq` / `postern queue list`: exit 69 (EX_UNAVAILABLE) when the mail
/// system is down, as postqueue.
fn mailq(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let entries = match queue_entries(config) {
        Ok(entries) => entries,
        Err(code) => return Ok(code),
    };
    let text = if json {
        postern::mailq::format_json(&entries)
    } else {
        postern::mailq::format(&entries, postern::wire::date::asctime)
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The queue as qmgr lists it (showq.sock); postqueue's message and
/// EX_UNAVAILABLE when the mail system is down.
fn queue_entries(config: &Config) -> Result<Vec<postern::ipc::QueueEntry>, ExitCode> {
    qmgr_client::list(&config.server.run_directory).map_err(|e| {
        eprintln!("postern: Queue report unavailable - mail system is down ({e:#})");
        ExitCode::from(69)
    })
}

/// `postern queue shape`: qshape's table from qmgr's report of the queue.
fn queue_shape(
    config: &Config,
    opts: &postern::qshape::Options,
    now: Option<u64>,
    width: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let entries = match queue_entries(config) {
        Ok(entries) => entries,
        Err(code) => return Ok(code),
    };
    let now = now.unwrap_or_else(|| postern::queue::now_micros() / 1_000_000);
    let shape = postern::qshape::shape(&entries, now, opts);
    match json {
        true => print!("{}", postern::qshape::format_json(&shape)),
        false => print!("{}", postern::qshape::format(&shape, width)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `postern queue salvage FILE` (the work is in `postern::queue::salvage`).
fn salvage(config: &Config, file: &std::path::Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let run_dir = &config.server.run_directory;
    let live = qmgr_client::list(run_dir)
        .ok()
        .map(|entries| entries.into_iter().map(|e| e.queue_id).collect());
    let opts = postern::queue::salvage::Salvage {
        queue_dir: &config.queue.directory,
        wake_qmgr: &|| qmgr_client::wake(run_dir),
        live,
        dry_run,
    };
    let n = postern::queue::salvage::salvage(file, &opts, &mut std::io::stdout().lock())?;
    Ok(if n > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sendmail` with Postfix's flags; sysexits codes, one line on stderr.
fn sendmail(args: Vec<std::ffi::OsString>) -> ExitCode {
    use postern::sendmail::{self as sm, Mode};
    if args.first().is_some_and(|a| a == "--help") {
        // Postfix's sendmail has no --help; programs never pass it, people do.
        postern::sys::die_on_sigpipe();
        print!("{}", manual::sendmail().render_help());
        return ExitCode::SUCCESS;
    }
    let opts = match sm::parse_args(&args) {
        Ok(o) => o,
        Err(f) => {
            eprintln!("sendmail: {}", f.message);
            return ExitCode::from(f.code);
        }
    };
    // A broken configuration file must not lose the user's mail: warn,
    // and find the running system anyway.
    let config = load_client(&opts.config.as_ref().map(PathBuf::from), "sendmail");
    let socket = config
        .server
        .run_directory
        .join(postern::ipc::names::SUBMIT_SOCKET);
    let result = match opts.mode {
        Mode::List => return mailq(&config, false).unwrap_or(ExitCode::from(sm::EX_UNAVAILABLE)),
        Mode::Aliases => return aliases_build(&config).unwrap_or(ExitCode::from(sm::EX_TEMPFAIL)),
        Mode::Flush => {
            let all = vec!["ALL".to_string()];
            return match postern::supervisor::queue_op(
                &config,
                postern::ipc::QueueAction::Requeue,
                all,
            ) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sendmail: {e:#}");
                    ExitCode::from(sm::EX_UNAVAILABLE)
                }
            };
        }
        Mode::Smtp => sm::smtp_on_stdio(&socket),
        Mode::Deliver => sm::deliver(&config, &opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sendmail: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `--config FILE` anywhere in the arguments, for the commands called by
/// their Postfix names (which take Postfix's flags, not postern's).
fn config_arg() -> Option<PathBuf> {
    std::env::args_os()
        .skip_while(|a| a != "--config")
        .nth(1)
        .map(PathBuf::from)
}

/// The configuration: `--config FILE`, else `$POSTERN_CONFIG` (for
/// programs that run `sendmail` or `mailq` without postern's flags, as
/// Postfix's `MAIL_CONFIG`), else /etc/postern/postern.toml, else the
/// built-in defaults.
fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    let from_env = std::env::var_os("POSTERN_CONFIG").map(PathBuf::from);
    Ok(Config::load(
        path.as_ref().or(from_env.as_ref()).map(PathBuf::as_path),
    )?)
}

/// The file a command reads: `--config FILE`, else `$POSTERN_CONFIG`, else
/// the default path (which may not exist).
fn config_path(path: &Option<PathBuf>) -> PathBuf {
    path.clone()
        .or_else(|| std::env::var_os("POSTERN_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(postern::config::DEFAULT_PATH))
}

/// The configuration for a command that only talks to the running
/// system: an error in the file is a warning naming it, and the running
/// system is found anyway ([`Config::fallback`]), so a typo never locks
/// the administrator out of `stop`, `status` or the queue, nor users out
/// of `sendmail` and `mailq`.
fn load_client(path: &Option<PathBuf>, program: &str) -> Config {
    load(path).unwrap_or_else(|e| {
        eprintln!("{program}: warning: {e:#}; using the running system's configuration");
        let from_env = std::env::var_os("POSTERN_CONFIG").map(PathBuf::from);
        Config::fallback(path.as_ref().or(from_env.as_ref()).map(PathBuf::as_path))
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate { what } => generate(&cli.config, what),
        Command::Check { no_system } => check(&cli.config, no_system),
        Command::Config { action } => config(&cli.config, action),
        Command::Start { foreground } => start(&cli.config, foreground),
        Command::Reload => {
            let path = config_path(&cli.config);
            let path = path.exists().then_some(path.as_path());
            postern::supervisor::reload(&load(&cli.config)?, path)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop => {
            postern::supervisor::stop(&load_client(&cli.config, "postern"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => Ok(success_or_1(postern::supervisor::status(&load_client(
            &cli.config,
            "postern",
        ))?)),
        Command::Aliases {
            action: AliasesAction::Build,
        } => aliases_build(&load(&cli.config)?),
        Command::Map { action } => Ok(map(action, &cli.config)),
        Command::Passwd { file, login } => passwd(&file, &login),
        Command::Flush => {
            let all = vec!["ALL".to_string()];
            let ok = postern::supervisor::queue_op(
                &load_client(&cli.config, "postern"),
                postern::ipc::QueueAction::Requeue,
                all,
            )?;
            Ok(success_or_1(ok))
        }
        Command::Queue { action } => queue(&cli.config, action),
        Command::Policy {
            action: PolicyAction::Test(args),
        } => policy_test(&cli.config, args),
        Command::Dkim { action } => dkim(&cli.config, action),
        Command::Daemon { role, probe } => daemon(&cli.config, &role, &probe),
    }
}

/// Exit status 0 for yes, 1 for no (`postern status`, `postern flush`).
fn success_or_1(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `postern config show | import-postfix | schema`.
fn config(cli_config: &Option<PathBuf>, action: ConfigAction) -> anyhow::Result<ExitCode> {
    match action {
        ConfigAction::Show {
            non_default,
            defaults,
            keys,
        } => {
            let config = match defaults {
                true => postern::config::Config::builtin(),
                false => load(cli_config)?,
            };
            if !keys.is_empty() {
                let shown = config.show_keys(&keys).map_err(anyhow::Error::msg)?;
                print!("{shown}");
                return Ok(ExitCode::SUCCESS);
            }
            match non_default {
                // The file was loaded without error above; a missing
                // default file sets nothing.
                true => print!(
                    "{}",
                    Config::as_written(
                        &std::fs::read_to_string(config_path(cli_config)).unwrap_or_default()
                    )
                ),
                false => print!("{}", config.to_annotated_toml()),
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigAction::ImportPostfix(args) => Ok(import_postfix(args)),
        ConfigAction::Schema => {
            print!("{}", postern::config::json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `postern start [--foreground]`: a fault no retry can mend
/// ([`postern::ipc::Unrecoverable`]) exits with EX_CONFIG.
fn start(cli_config: &Option<PathBuf>, foreground: bool) -> anyhow::Result<ExitCode> {
    let config = load(cli_config)?;
    let source = cli_config
        .clone()
        .or_else(|| std::env::var_os("POSTERN_CONFIG").map(PathBuf::from));
    match postern::supervisor::start(config, source, foreground) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is::<postern::ipc::Unrecoverable>() => {
            eprintln!("postern: {e:#}");
            Ok(ExitCode::from(EX_CONFIG))
        }
        Err(e) => Err(e),
    }
}

/// `postern dkim keygen | check | bench` (the work is in
/// `postern::dkim::cli`).
fn dkim(cli_config: &Option<PathBuf>, action: DkimAction) -> anyhow::Result<ExitCode> {
    use postern::dkim::{cli, key::Algorithm};
    match action {
        DkimAction::Keygen {
            domain,
            selector,
            algorithm,
            bits,
            dir,
        } => {
            // The key's owner: server.user, whatever else the file says.
            let user = load(cli_config).map_or_else(|_| "postern".to_string(), |c| c.server.user);
            let algorithm = match algorithm {
                KeyAlgorithm::Rsa => Algorithm::Rsa,
                KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
            };
            cli::keygen(&domain, &selector, algorithm, bits, &dir, &user)?;
            Ok(ExitCode::SUCCESS)
        }
        DkimAction::Check { domain, selector } => {
            let good = cli::check(&load(cli_config)?, &domain, &selector)?;
            Ok(ExitCode::from(u8::from(!good)))
        }
        DkimAction::Bench { messages, size } => {
            cli::bench(messages, size)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `postern daemon ROLE`: take the sockets, read the configuration, enter
/// the role's sandbox (its row of the role table), run it.
fn daemon(cli_config: &Option<PathBuf>, name: &str, probe: &[String]) -> anyhow::Result<ExitCode> {
    if name == "local-worker" {
        postern::local::worker_main(probe)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(role) = postern::role::Role::from_name(name) else {
        eprintln!("postern: daemon {name}: no such role");
        return Ok(ExitCode::from(EX_CONFIG));
    };
    // Take the sockets before anything else (before any thread).
    let fds = postern::sys::listen_fds();
    if fds.is_empty() && probe.is_empty() {
        eprintln!(
            "postern: daemon {role}: no sockets were handed over (LISTEN_FDS is not set for this process); \
             the daemons are started by systemd socket activation (postern-{role}.socket) or by `postern start`, \
             and never bind their listeners themselves"
        );
        return Ok(ExitCode::from(EX_CONFIG));
    }
    let config_path = cli_config
        .clone()
        .or_else(|| std::env::var_os("POSTERN_CONFIG").map(PathBuf::from));
    let config = match load(cli_config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postern: {e:#}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    if let Err(e) = postern::logging::init_for(role.name(), config.server.log_file.as_deref()) {
        eprintln!("postern: {e:#}");
        return Ok(ExitCode::from(EX_CONFIG));
    }
    postern::systemd::listeners::warn_about_handed(role, &config, &fds);
    // Privileges, directories, Landlock: before any thread and any
    // input (the sandbox binds the threads created later).
    if let Err(e) = role.enter(&config, config_path.as_deref()) {
        log::error!("{e:#}");
        return Ok(ExitCode::from(EX_CONFIG));
    }
    if !probe.is_empty() {
        for p in probe {
            println!("{}", serde_json::to_string(&postern::sandbox::probe(p))?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match postern::supervisor::run_role(role, config, config_path, fds) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Already logged; restarting would not help.
        Err(e) if e.is::<postern::ipc::Unrecoverable>() => Ok(ExitCode::from(EX_CONFIG)),
        Err(e) => Err(e),
    }
}

/// `postern generate …`: systemd units, manual pages, completions.
fn generate(cli_config: &Option<PathBuf>, what: GenerateWhat) -> anyhow::Result<ExitCode> {
    let written = match what {
        GenerateWhat::Systemd { dirs } => {
            // systemd reads the exit status only; the messages went
            // to the kernel log or stderr, and nothing goes to
            // stdout (the console at boot).
            let path = config_path(cli_config);
            return Ok(match postern::systemd::generator::run(&path, &dirs) {
                Ok(_) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            });
        }
        GenerateWhat::Man { dir } => manual::write_man(Cli::command(), &dir)?,
        GenerateWhat::Schema { dir } => {
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("postern.schema.json");
            std::fs::write(&path, postern::config::json_schema())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            vec![path]
        }
        GenerateWhat::Completions { shell, dir } => {
            vec![manual::write_completions(Cli::command(), shell, &dir)?]
        }
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `postern queue …`: list, show, hold, release, delete, requeue, salvage.
fn queue(cli_config: &Option<PathBuf>, action: QueueCommand) -> anyhow::Result<ExitCode> {
    use postern::ipc::QueueAction as A;
    let (action, ids) = match action {
        QueueCommand::List { json } => {
            return mailq(&load_client(cli_config, "postern"), json);
        }
        QueueCommand::Shape {
            by,
            buckets,
            tick,
            linear,
            parents,
            width,
            now,
            json,
            queues,
        } => {
            let opts = postern::qshape::Options {
                by_sender: by.starts_with("sender"),
                buckets: usize::from(buckets),
                tick_minutes: tick,
                linear,
                parents,
                queues,
            };
            return queue_shape(&load_client(cli_config, "postern"), &opts, now, width, json);
        }
        QueueCommand::Show { id } => {
            let ok = postern::supervisor::queue_show(&load_client(cli_config, "postern"), &id)?;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        QueueCommand::Hold { ids } => (A::Hold, ids),
        QueueCommand::Release { ids } => (A::Release, ids),
        QueueCommand::Delete { ids } => (A::Delete, ids),
        QueueCommand::Requeue { ids } => (A::Requeue, ids),
        QueueCommand::Salvage { file, dry_run } => {
            return salvage(&load(cli_config)?, &file, dry_run);
        }
    };
    let ok = postern::supervisor::queue_op(&load_client(cli_config, "postern"), action, ids)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `postern policy test`: what smtpd would answer to a client, command
/// by command, and why.
fn policy_test(cli_config: &Option<PathBuf>, args: PolicyTest) -> anyhow::Result<ExitCode> {
    let PolicyTest {
        client,
        client_name,
        helo,
        from,
        to,
        message,
        sasl_user,
        submission,
        json,
    } = args;
    let config = load(cli_config)?;
    let bare = |s: &str| {
        let s = s.trim();
        s.strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s)
            .to_string()
    };
    let probe = postern::policy::trace::Probe {
        client,
        client_name,
        helo,
        sender: bare(&from),
        recipients: to.iter().map(|t| bare(t)).collect(),
        message,
        sasl_user,
        submission,
    };
    let code = postern::policy::trace::main(config, probe, json)?;
    Ok(ExitCode::from(code))
}

/// `postern check [--no-system]`: the file, the files it names, and (but
/// with `--no-system`) the system.
fn check(cli_config: &Option<PathBuf>, no_system: bool) -> anyhow::Result<ExitCode> {
    match load(cli_config) {
        Ok(config) => {
            let path = config_path(cli_config);
            let what = if no_system {
                " (the file and the files it names, not the system)"
            } else {
                ""
            };
            // Say what was checked: a file, or the built-in defaults
            // because the default file is missing.
            if path.exists() {
                eprintln!("postern: checking {}{what}", path.display());
            } else {
                eprintln!(
                    "postern: {} does not exist: checking the built-in defaults{what}",
                    path.display()
                );
            }
            let found = if no_system {
                postern::check::check_files(&config, Some(&path))
            } else {
                let mut found = postern::check::check_system(&config, Some(&path));
                found.extend(postern::systemd::check_listeners(&config));
                found
            };
            let mut failed = false;
            for (level, message) in &found {
                let word = match level {
                    postern::check::Level::Warning => "warning",
                    postern::check::Level::Error => {
                        failed = true;
                        "error"
                    }
                };
                eprintln!("postern: {word}: {message}");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            eprintln!("postern: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `postern config import-postfix`: 0 complete, 2 written but
/// incomplete, 1 when nothing could be written (or `--check` failed).
fn import_postfix(args: ImportArgs) -> ExitCode {
    let options = postern::config::import::Options {
        dir: args.dir,
        root: args.root,
        hostname: args.hostname,
    };
    let (output, force, check) = (args.output.as_deref(), args.force, args.check);
    let imported = match postern::config::import::import(&options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("postern: import-postfix: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprint!("{}", imported.report);
    match output {
        Some(path) => {
            let mut open = std::fs::OpenOptions::new();
            open.write(true);
            if force {
                open.create(true).truncate(true);
            } else {
                open.create_new(true);
            }
            let written = open
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, imported.toml.as_bytes()));
            if let Err(e) = written {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (--force overwrites it)"
                } else {
                    ""
                };
                eprintln!("postern: import-postfix: {}: {e}{hint}", path.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{}", imported.toml),
    }
    if check {
        let name = output.unwrap_or(std::path::Path::new("postern.toml"));
        match postern::check::check_text(&imported.toml, name) {
            Ok(found) => {
                let errors = found
                    .iter()
                    .filter(|(l, _)| matches!(l, postern::check::Level::Error))
                    .count();
                for (level, message) in &found {
                    let word = match level {
                        postern::check::Level::Warning => "warning",
                        postern::check::Level::Error => "error",
                    };
                    eprintln!("postern: check: {word}: {message}");
                }
                if errors > 0 {
                    eprintln!("postern: check: the result fails postern check --offline");
                    return ExitCode::FAILURE;
                }
                eprintln!("postern: check: the result passes postern check --offline");
            }
            Err(e) => {
                eprintln!("postern: check: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if imported.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `postern passwd [--file FILE] LOGIN`.
fn passwd(file: &std::path::Path, login: &str) -> anyhow::Result<ExitCode> {
    use postern::sasl::passwd;
    if login.is_empty() || login.contains([':', '\n']) || login.chars().any(char::is_whitespace) {
        eprintln!("postern: passwd: bad login {login:?}");
        return Ok(ExitCode::from(64));
    }
    let password = match passwd::read_password()? {
        Some(p) => p,
        None => {
            eprintln!("postern: passwd: the passwords differ; nothing changed");
            return Ok(ExitCode::FAILURE);
        }
    };
    if password.is_empty() {
        eprintln!("postern: passwd: empty password; nothing changed");
        return Ok(ExitCode::FAILURE);
    }
    let hash = passwd::hash(&password).map_err(anyhow::Error::msg)?;
    passwd::set(file, login, &hash)?;
    eprintln!("postern: passwd: {login} set in {}", file.display());
    Ok(ExitCode::SUCCESS)
}
