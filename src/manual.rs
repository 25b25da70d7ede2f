//! `postern generate man DIR` and `postern generate completions SHELL
//! DIR`: the manual pages and shell completions the packages install.
//!
//! postern(8) and the completions come from the clap definition of the
//! command line (`Cli` in main.rs, passed in as a [`Command`]).
//! sendmail(1), mailq(1) and newaliases(1) parse Postfix's flags by hand
//! (`postern::sendmail::parse_args`), so their pages come from the clap
//! [`Command`]s built here, which describe those flags and nothing else.
//! postern.toml(5) is a hand-written frame (packaging/man/postern.toml.5)
//! around the KEYS section made from the key table
//! (`postern::config::man_keys`).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use clap_complete::Shell;
use clap_mangen::Man;

/// postern.toml(5)'s frame; the line holding `@KEYS@` becomes the KEYS
/// section.
const POSTERN_TOML_5: &str = include_str!("../packaging/man/postern.toml.5");

/// postern.toml(5) with its KEYS section.
pub fn postern_toml_5() -> String {
    let mut out = String::new();
    let mut lines = POSTERN_TOML_5.lines();
    for line in lines.by_ref() {
        if line.contains("@KEYS@") {
            out.push_str(&postern::config::man_keys());
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    // The placeholder's own comment lines go; the rest follows.
    for line in lines.skip_while(|l| l.starts_with(".\\\"")) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Write postern.8 (and postern-SUBCOMMAND.8 for each visible
/// subcommand), sendmail.1, mailq.1, newaliases.1 and postern.toml.5 into
/// `dir` (created if missing); the paths written, postern.8 first.
pub fn write_man(postern: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut postern = postern.disable_help_subcommand(true);
    postern.build();
    let mut written = Vec::new();
    write_page(&postern, "8", POSTERN_SECTIONS, dir, &mut written)?;
    write_subcommand_pages(&postern, dir, &mut written)?;
    for (cmd, extra) in [
        (sendmail(), SENDMAIL_SECTIONS),
        (mailq(), MAILQ_SECTIONS),
        (newaliases(), NEWALIASES_SECTIONS),
    ] {
        write_page(&cmd, "1", extra, dir, &mut written)?;
    }
    let path = dir.join("postern.toml.5");
    std::fs::write(&path, postern_toml_5())?;
    written.push(path);
    Ok(written)
}

/// postern-start.8, postern-config-show.8, ...: one page per visible
/// subcommand, at every depth, as postern.8's SUBCOMMANDS list names them.
fn write_subcommand_pages(
    cmd: &Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, "8", SUBCOMMAND_SECTIONS, dir, written)?;
        write_subcommand_pages(sub, dir, written)?;
    }
    Ok(())
}

/// One page for `cmd` in `section`, titled with its upper-cased name.
fn write_page(
    cmd: &Command,
    section: &str,
    extra: &[(&str, &str)],
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let man = Man::new(cmd.clone())
        .title(name.to_ascii_uppercase())
        .section(section)
        .source(concat!("postern ", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    render(&man, cmd, extra, &mut page)?;
    let path = dir.join(man.get_filename());
    std::fs::write(&path, page)?;
    written.push(path);
    Ok(())
}

/// Write the completion script for `shell` into `dir` (created if
/// missing): `postern.bash`, `_postern` (zsh) or `postern.fish`.
pub fn write_completions(
    mut postern: Command,
    shell: Shell,
    dir: &Path,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    clap_complete::generate_to(shell, &mut postern, "postern", dir)
}

/// One page: clap's sections for `cmd` (what it has), then `extra`
/// (`(heading, roff body)`).
fn render(
    man: &Man,
    cmd: &Command,
    extra: &[(&str, &str)],
    w: &mut dyn Write,
) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    for (heading, body) in extra {
        writeln!(w, ".SH \"{heading}\"")?;
        writeln!(w, "{}", body.trim_end())?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

const SEE_ALSO: &str = "\\fBpostern\\fR(8), \\fBsendmail\\fR(1), \\fBmailq\\fR(1), \
\\fBnewaliases\\fR(1), \\fBpostern.toml\\fR(5)";

const FILES: &str = ".TP\n/etc/postern/postern.toml\nThe configuration (\\fBpostern.toml\\fR(5)).\n\
.TP\n/var/spool/postern\nThe mail queue.\n.TP\n/run/postern\nThe daemons' Unix sockets.";

const ENVIRONMENT: &str = ".TP\nPOSTERN_CONFIG\nThe configuration file when \\fB\\-\\-config\\fR \
is not given (as Postfix's MAIL_CONFIG).";

const POSTERN_SECTIONS: &[(&str, &str)] = &[
    (
        "NOTES",
        "Called as \\fBsendmail\\fR, \\fBmailq\\fR or \\fBnewaliases\\fR (by a link, or as \
\\fBpostern sendmail\\fR ...), postern takes those commands' Postfix flags instead.",
    ),
    ("ENVIRONMENT", ENVIRONMENT),
    ("FILES", FILES),
    ("SEE ALSO", SEE_ALSO),
];

const SUBCOMMAND_SECTIONS: &[(&str, &str)] = &[("SEE ALSO", SEE_ALSO)];

const SENDMAIL_SECTIONS: &[(&str, &str)] = &[
    (
        "IGNORED OPTIONS",
        "Accepted and ignored, as by Postfix: \\fB\\-B\\fR, \\fB\\-C\\fR, \\fB\\-L\\fR, \\fB\\-X\\fR, \\fB\\-h\\fR \
(each with a value); \\fB\\-n\\fR, \\fB\\-U\\fR, \\fB\\-G\\fR, \\fB\\-m\\fR, \\fB\\-s\\fR, \\fB\\-d\\fR, \\fB\\-e\\fR.",
    ),
    (
        "EXIT STATUS",
        "sysexits(3) codes: 0 queued, 64 usage, 65 data error (a permanent refusal), \
67 unknown local user, 69 mail system unavailable, 75 temporary failure or mail system \
unreachable (the caller should keep the message), 77 not allowed \
(smtpd.authorized_submit_users, smtpd.sender_override_users), 78 configuration error.",
    ),
    ("ENVIRONMENT", ENVIRONMENT),
    ("FILES", FILES),
    ("SEE ALSO", SEE_ALSO),
];

const MAILQ_SECTIONS: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        "0 when the queue was listed, 69 when the mail system is down.",
    ),
    ("ENVIRONMENT", ENVIRONMENT),
    ("SEE ALSO", SEE_ALSO),
];

const NEWALIASES_SECTIONS: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        "0 when every alias source is good, 1 when one has an error, 75 when the \
configuration cannot be read.",
    ),
    ("ENVIRONMENT", ENVIRONMENT),
    (
        "FILES",
        ".TP\n/etc/aliases\nThe default alias file (local.alias_files).\n\
.TP\n/etc/postern/postern.toml\nInline aliases ([local.aliases]) and the list of alias files.",
    ),
    ("SEE ALSO", SEE_ALSO),
];

/// `--config FILE`, the one postern flag the Postfix-named commands take.
fn config_arg() -> Arg {
    Arg::new("config")
        .long("config")
        .value_name("FILE")
        .help("Configuration file (default $POSTERN_CONFIG, then /etc/postern/postern.toml)")
}

/// A flag without a value.
fn flag(id: &'static str, help: &'static str) -> Arg {
    Arg::new(id)
        .short(short(id))
        .action(ArgAction::SetTrue)
        .help(help)
}

/// A flag with a value.
fn valued(id: &'static str, value: &'static str, help: &'static str) -> Arg {
    Arg::new(id).short(short(id)).value_name(value).help(help)
}

/// The short flag named by a one-letter id.
fn short(id: &str) -> char {
    id.chars().next().unwrap_or('-')
}

/// sendmail(1): the flags `postern::sendmail::parse_args` knows.
pub fn sendmail() -> Command {
    Command::new("sendmail")
        .version(env!("CARGO_PKG_VERSION"))
        .about("postern's Postfix-compatible sendmail interface")
        .long_about(
            "Read a message from standard input and hand it to postern for delivery to the \
given recipients (or, with -t, those of its To:, Cc: and Bcc: headers). The message goes \
over SMTP to smtpd's local submission socket; nothing is set-uid or set-gid. Missing From:, \
Date: and Message-ID: headers are added. Without -i, a line with a single dot ends the message.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(flag(
            "t",
            "Take the recipients from the To:, Cc: and Bcc: headers; remove Bcc:",
        ))
        .arg(flag(
            "i",
            "A line with a single dot does not end the message (also -oi)",
        ))
        .arg(valued(
            "f",
            "SENDER",
            "The envelope sender (\"\" or <> for the null sender)",
        ))
        .arg(valued("r", "SENDER", "The same as -f"))
        .arg(valued(
            "F",
            "NAME",
            "The full name for a From: header that is added",
        ))
        .arg(valued(
            "N",
            "DSN",
            "Delivery status notifications: never, or success, delay, failure (RFC 3461)",
        ))
        .arg(valued(
            "R",
            "RET",
            "How much of the message a bounce returns: full or hdrs",
        ))
        .arg(valued("V", "ENVID", "The envelope ID for notifications"))
        .arg(valued(
            "b",
            "MODE",
            "-bm deliver a message (default); -bp list the queue (mailq); -bs SMTP on \
standard input and output; -bi check the aliases (newaliases)",
        ))
        .arg(flag("q", "Try every deferred recipient now"))
        .arg(flag("I", "The same as -bi"))
        .arg(flag("v", "Verbose"))
        .arg(valued(
            "o",
            "OPTION",
            "-oi is -i; other Sendmail -o options (-odb, -oem, ...) are accepted and ignored",
        ))
        .arg(config_arg())
        .arg(
            Arg::new("recipients")
                .value_name("RECIPIENT")
                .num_args(0..)
                .help("Recipient addresses"),
        )
}

/// mailq(1): the queue listing.
pub fn mailq() -> Command {
    Command::new("mailq")
        .version(env!("CARGO_PKG_VERSION"))
        .about("list the postern mail queue")
        .long_about(
            "List the messages in the queue as Postfix's mailq (postqueue -p) does: queue ID, \
size, arrival time, sender, and each waiting recipient with the reason of its last failure. \
The same as postern queue list and sendmail -bp.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("json")
                .short('j')
                .long("json")
                .action(ArgAction::SetTrue)
                .help("One JSON object per message (postqueue -j)"),
        )
        .arg(config_arg())
}

/// newaliases(1): check the alias sources.
pub fn newaliases() -> Command {
    Command::new("newaliases")
        .version(env!("CARGO_PKG_VERSION"))
        .about("check postern's alias sources")
        .long_about(
            "Check every alias source (the inline [local.aliases], the files of \
local.alias_files and their :include: files) and print each problem as FILE:LINE: error: \
message. There is no database to build: postern reads the text files and notices changes by \
itself. The same as postern aliases build and sendmail -bi.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(config_arg())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postfix_commands_are_valid_clap_commands() {
        for cmd in [sendmail(), mailq(), newaliases()] {
            cmd.debug_assert();
        }
    }

    #[test]
    fn sendmail_page_documents_its_flags() {
        let mut page = Vec::new();
        let man = Man::new(sendmail()).title("SENDMAIL").section("1");
        render(&man, &sendmail(), SENDMAIL_SECTIONS, &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains("\n.TH SENDMAIL 1 "), "{page}");
        for flag in ["\\-t", "\\-f", "\\-b", "EXIT STATUS", "postern.toml"] {
            assert!(page.contains(flag), "{flag} missing");
        }
    }
}
