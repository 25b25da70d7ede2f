//! SMTP commands, sans-IO: one command line (without its CRLF, see
//! [`super::line`]) in, a typed [`Command`] or a [`CommandError`] out. The
//! error knows the exact Postfix reply and whether the session ends.
//!
//! Standards: RFC 5321 (commands), RFC 1869 (parameters), RFC 1870 (SIZE),
//! RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN: RET, ENVID,
//! NOTIFY, ORCPT), RFC 3030 (BDAT), RFC 1985 (ETRN).
//!
//! The line is split into words as Postfix's `smtpd_token` does: words are
//! separated by whitespace, except inside `<...>` and `"..."`; a word ends
//! right after `FROM:` or `TO:`, so both `MAIL FROM:<a>` and
//! `MAIL FROM: <a>` work. Verbs and parameter names are case-insensitive.
//!
//! Lines that are not SMTP at all (HTTP `GET`/`POST`, `CONNECT`, a word
//! that looks like a header such as `Subject:`, a first word that does not
//! start with a letter) give [`CommandError::Forbidden`], Postfix's
//! `smtpd_forbidden_commands`: the caller replies and disconnects.
//!
//! A NUL byte is refused where it would be kept: in an address (MAIL,
//! RCPT: bad address syntax), in a HELO or EHLO name (`501 5.5.2 <name>:
//! Helo command rejected: Invalid name`) and in a VRFY argument.
//!
//! An unknown verb gets `502 5.5.2 Error: command not recognized`: 502 is
//! the code Postfix's smtpd sends (500 is for an empty line, `Error: bad
//! syntax`, and for bad UTF-8).

use std::borrow::Cow;

use thiserror::Error;

use crate::address::{Address, AddressError, Path, parse_path};
use crate::reply::Reply;

mod params;

pub(crate) use params::{MailParams, RcptParams};
use params::{parse_mail_params, parse_rcpt_params};

/// One parsed SMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The argument words joined by one space, as Postfix does.
    Helo(String),
    Ehlo(String),
    Mail {
        from: Path,
        params: MailParams,
    },
    /// The null path is refused at parse time.
    Rcpt {
        to: Address,
        params: RcptParams,
    },
    Data,
    /// RFC 3030 `BDAT size [LAST]`.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    /// Arguments are allowed and ignored.
    Noop,
    /// Arguments are allowed and ignored.
    Quit,
    Help,
    /// The argument words joined by one space.
    Vrfy(String),
    /// The argument words joined by one space; may be empty.
    Expn(String),
    Etrn(String),
    StartTls,
    Auth {
        mechanism: String,
        initial_response: Option<String>,
    },
}

/// A command line that cannot be carried out as sent.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("empty command line")]
    BadSyntax,
    #[error("invalid UTF-8 in command")]
    BadUtf8,
    #[error("command not recognized")]
    Unrecognized,
    #[error("non-SMTP command")]
    Forbidden,
    #[error("HELO without hostname")]
    HeloSyntax,
    #[error("EHLO without hostname")]
    EhloSyntax,
    /// A NUL in the HELO or EHLO name (the name as sent).
    #[error("invalid {verb} name")]
    BadHeloName { verb: &'static str, name: String },
    #[error("MAIL syntax")]
    MailSyntax,
    #[error("RCPT syntax")]
    RcptSyntax,
    #[error("DATA with arguments")]
    DataSyntax,
    #[error("RSET with arguments")]
    RsetSyntax,
    #[error("VRFY without argument")]
    VrfySyntax,
    #[error("ETRN syntax")]
    EtrnSyntax,
    #[error("STARTTLS with arguments")]
    StartTlsSyntax,
    #[error("AUTH syntax")]
    AuthSyntax,
    /// The chunk size is unknown, so the session cannot go on.
    #[error("BDAT syntax")]
    BdatSyntax,
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    #[error("null recipient")]
    NullRecipient,
    /// `verb` is `mail` or `rcpt`; `option` is the parameter as sent.
    #[error("unsupported {verb} option {option}")]
    UnsupportedOption { verb: &'static str, option: String },
    #[error("bad SIZE")]
    BadSize,
    #[error("SIZE too large")]
    SizeOverflow,
    #[error("bad RET")]
    BadRet,
    #[error("bad ENVID")]
    BadEnvid,
    #[error("bad NOTIFY")]
    BadNotify,
    #[error("bad ORCPT")]
    BadOrcpt,
}

/// `502 5.5.1 Error: command not implemented`, for the commands postern
/// parses but does not carry out (yet).
pub(crate) fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "Error: command not implemented")
}

/// Parses one command line (without CRLF). `utf8_ok` is true when the
/// server offers SMTPUTF8 (Postfix `smtputf8_enable`): then a line that is
/// not valid UTF-8 gives [`CommandError::BadUtf8`], and addresses may hold
/// non-ASCII. Without it, invalid UTF-8 is replaced by U+FFFD (harmless:
/// addresses must then be ASCII anyway).
pub fn parse_command(line: &[u8], utf8_ok: bool) -> Result<Command, CommandError> {
    let text = if utf8_ok {
        Cow::Borrowed(std::str::from_utf8(line).map_err(|_| CommandError::BadUtf8)?)
    } else {
        String::from_utf8_lossy(line)
    };
    let words = tokenize(&text);
    let Some((verb, args)) = words.split_first() else {
        return Err(CommandError::BadSyntax);
    };
    let verb = verb.text;
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    if is("HELO") || is("EHLO") {
        if args.is_empty() {
            return Err(if is("HELO") {
                CommandError::HeloSyntax
            } else {
                CommandError::EhloSyntax
            });
        }
        let name = join(args);
        if name.contains('\0') {
            let verb = if is("HELO") { "helo" } else { "ehlo" };
            return Err(CommandError::BadHeloName { verb, name });
        }
        Ok(if is("HELO") {
            Command::Helo(name)
        } else {
            Command::Ehlo(name)
        })
    } else if is("MAIL") {
        parse_mail(args, utf8_ok)
    } else if is("RCPT") {
        parse_rcpt(args, utf8_ok)
    } else if is("DATA") {
        no_args(args, Command::Data, CommandError::DataSyntax)
    } else if is("BDAT") {
        parse_bdat(args)
    } else if is("RSET") {
        no_args(args, Command::Rset, CommandError::RsetSyntax)
    } else if is("NOOP") {
        Ok(Command::Noop)
    } else if is("QUIT") {
        Ok(Command::Quit)
    } else if is("HELP") {
        Ok(Command::Help)
    } else if is("VRFY") {
        match args {
            [] => Err(CommandError::VrfySyntax),
            _ if args.iter().any(|w| w.text.contains('\0')) => Err(CommandError::VrfySyntax),
            _ => Ok(Command::Vrfy(join(args))),
        }
    } else if is("EXPN") {
        Ok(Command::Expn(join(args)))
    } else if is("ETRN") {
        match args {
            [domain] => Ok(Command::Etrn(domain.text.to_string())),
            _ => Err(CommandError::EtrnSyntax),
        }
    } else if is("STARTTLS") {
        no_args(args, Command::StartTls, CommandError::StartTlsSyntax)
    } else if is("AUTH") {
        match args {
            [m] => Ok(auth(m.text, None)),
            [m, r] => Ok(auth(m.text, Some(r.text))),
            _ => Err(CommandError::AuthSyntax),
        }
    } else if is_forbidden(verb) {
        Err(CommandError::Forbidden)
    } else {
        Err(CommandError::Unrecognized)
    }
}

impl Command {
    /// Lower-case verb, for Postfix's disconnect statistics
    /// (`ehlo=1 mail=1 rcpt=1 data=1 quit=1`).
    pub(crate) fn verb_name(&self) -> &'static str {
        match self {
            Command::Helo(_) => "helo",
            Command::Ehlo(_) => "ehlo",
            Command::Mail { .. } => "mail",
            Command::Rcpt { .. } => "rcpt",
            Command::Data => "data",
            Command::Bdat { .. } => "bdat",
            Command::Rset => "rset",
            Command::Noop => "noop",
            Command::Quit => "quit",
            Command::Help => "help",
            Command::Vrfy(_) => "vrfy",
            Command::Expn(_) => "expn",
            Command::Etrn(_) => "etrn",
            Command::StartTls => "starttls",
            Command::Auth { .. } => "auth",
        }
    }
}

impl CommandError {
    /// The reply Postfix gives. Text the client sent is echoed with
    /// non-printable characters replaced by `?`.
    pub fn reply(&self) -> Reply {
        use CommandError as E;
        match self {
            E::BadSyntax => Reply::new(500, "5.5.2", "Error: bad syntax"),
            E::BadUtf8 => Reply::new(500, "5.5.2", "Error: bad UTF-8 syntax"),
            E::Unrecognized => Reply::not_recognized(),
            E::Forbidden => Reply::new(221, "2.7.0", "Error: I can break rules, too. Goodbye."),
            E::HeloSyntax => Reply::plain(501, "Syntax: HELO hostname"),
            E::EhloSyntax => Reply::plain(501, "Syntax: EHLO hostname"),
            E::BadHeloName { name, .. } => Reply::invalid_helo_name(&printable(name)),
            E::MailSyntax => Reply::new(501, "5.5.4", "Syntax: MAIL FROM:<address>"),
            E::RcptSyntax => Reply::new(501, "5.5.4", "Syntax: RCPT TO:<address>"),
            E::DataSyntax => Reply::new(501, "5.5.4", "Syntax: DATA"),
            E::RsetSyntax => Reply::new(501, "5.5.4", "Syntax: RSET"),
            E::VrfySyntax => Reply::new(501, "5.5.4", "Syntax: VRFY address"),
            E::EtrnSyntax => Reply::plain(500, "Syntax: ETRN domain"),
            E::StartTlsSyntax => Reply::new(501, "5.5.4", "Syntax: STARTTLS"),
            E::AuthSyntax => Reply::new(501, "5.5.4", "Syntax: AUTH mechanism"),
            E::BdatSyntax => Reply::new(521, "5.5.4", "Syntax: BDAT count [LAST]"),
            E::BadSender(_) => Reply::new(501, "5.1.7", "Bad sender address syntax"),
            E::BadRecipient(_) | E::NullRecipient => {
                Reply::new(501, "5.1.3", "Bad recipient address syntax")
            }
            E::UnsupportedOption { option, .. } => Reply::new(
                555,
                "5.5.4",
                format!("Unsupported option: {}", printable(option)),
            ),
            E::BadSize => Reply::new(501, "5.5.4", "Bad message size syntax"),
            E::SizeOverflow => Reply::new(
                552,
                "5.3.4",
                "Message size exceeds file system imposed limit",
            ),
            E::BadRet => Reply::new(501, "5.5.4", "Bad RET parameter syntax"),
            E::BadEnvid => Reply::new(501, "5.5.4", "Bad ENVID parameter syntax"),
            E::BadNotify => Reply::new(501, "5.5.4", "Error: Bad NOTIFY parameter syntax"),
            E::BadOrcpt => Reply::new(501, "5.5.4", "Error: Bad ORCPT parameter syntax"),
        }
    }

    /// The caller must close the connection after sending the reply.
    pub fn disconnects(&self) -> bool {
        matches!(self, CommandError::Forbidden | CommandError::BdatSyntax)
    }

    /// The verb the failed command counts under in the disconnect
    /// statistics; `unknown` for lines that are no known command.
    pub fn verb_name(&self) -> &'static str {
        use CommandError as E;
        match self {
            E::BadSyntax | E::BadUtf8 | E::Unrecognized | E::Forbidden => "unknown",
            E::HeloSyntax => "helo",
            E::EhloSyntax => "ehlo",
            E::BadHeloName { verb, .. } => verb,
            E::MailSyntax | E::BadSender(_) | E::BadSize | E::SizeOverflow => "mail",
            E::BadRet | E::BadEnvid => "mail",
            E::RcptSyntax | E::BadRecipient(_) | E::NullRecipient => "rcpt",
            E::BadNotify | E::BadOrcpt => "rcpt",
            E::UnsupportedOption { verb, .. } => verb,
            E::DataSyntax => "data",
            E::RsetSyntax => "rset",
            E::VrfySyntax => "vrfy",
            E::EtrnSyntax => "etrn",
            E::StartTlsSyntax => "starttls",
            E::AuthSyntax => "auth",
            E::BdatSyntax => "bdat",
        }
    }
}

/// One word of a command line; `complete` is false when a `<` or `"` in it
/// was never closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word<'a> {
    text: &'a str,
    complete: bool,
}

/// Splits a line into words the way Postfix's `smtpd_token` does.
fn tokenize(line: &str) -> Vec<Word<'_>> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return words;
        }
        let start = i;
        let mut complete = true;
        while i < bytes.len() && !is_space(bytes[i]) {
            let b = bytes[i];
            i += 1;
            match b {
                b'<' | b'"' => {
                    let (end, closed) = skip_quoted(bytes, i, b == b'"');
                    i = end;
                    complete &= closed;
                }
                b'\\' if i < bytes.len() => i += 1,
                b':' => {
                    let word = &bytes[start..i];
                    if word.eq_ignore_ascii_case(b"from:") || word.eq_ignore_ascii_case(b"to:") {
                        break;
                    }
                }
                _ => {}
            }
        }
        // `start` and `i` sit on ASCII bytes or the ends of the line (a
        // skipped escape may land inside a character, but the scan then
        // moves on over its continuation bytes, which are never ASCII), so
        // they are character boundaries.
        words.push(Word {
            text: &line[start..i],
            complete,
        });
    }
}

/// C `isspace`: what ends a word.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Skips a `<...>` (nested `<` and `"..."` inside) or `"..."` whose opening
/// character is just before `i`; returns the index after the closing
/// character and whether there was one.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: bool) -> (usize, bool) {
    let mut depth: usize = usize::from(!quote);
    let mut in_quote = quote;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b == b'\\' {
            if i < bytes.len() {
                i += 1;
            }
        } else if in_quote {
            if b == b'"' {
                in_quote = false;
                if depth == 0 {
                    return (i, true);
                }
            }
        } else if b == b'>' {
            depth -= 1;
            if depth == 0 {
                return (i, true);
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<' {
            depth += 1;
        }
    }
    (i, false)
}

fn join(words: &[Word<'_>]) -> String {
    let texts: Vec<&str> = words.iter().map(|w| w.text).collect();
    texts.join(" ")
}

fn no_args(args: &[Word<'_>], ok: Command, err: CommandError) -> Result<Command, CommandError> {
    if args.is_empty() { Ok(ok) } else { Err(err) }
}

fn auth(mechanism: &str, initial: Option<&str>) -> Command {
    Command::Auth {
        mechanism: mechanism.to_string(),
        initial_response: initial.map(str::to_string),
    }
}

/// Postfix's `smtpd_forbidden_commands` and header test, for a verb that is
/// no known command.
fn is_forbidden(verb: &str) -> bool {
    let first_is_letter = verb.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
    ["CONNECT", "GET", "POST"]
        .iter()
        .any(|v| verb.eq_ignore_ascii_case(v))
        || !first_is_letter
        || looks_like_header(verb)
}

/// Postfix `is_header`: printable ASCII up to a `:`.
fn looks_like_header(word: &str) -> bool {
    match word.find(':') {
        Some(colon) => colon > 0 && word[..colon].bytes().all(|b| b.is_ascii_graphic()),
        None => false,
    }
}

fn parse_mail(args: &[Word<'_>], utf8_ok: bool) -> Result<Command, CommandError> {
    let [from_kw, addr, params @ ..] = args else {
        return Err(CommandError::MailSyntax);
    };
    if !from_kw.text.eq_ignore_ascii_case("from:") {
        return Err(CommandError::MailSyntax);
    }
    if !addr.complete {
        return Err(CommandError::BadSender(AddressError::Syntax(
            "unterminated",
        )));
    }
    let from = parse_path(addr.text, utf8_ok).map_err(CommandError::BadSender)?;
    let params = parse_mail_params(params, utf8_ok)?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &[Word<'_>], utf8_ok: bool) -> Result<Command, CommandError> {
    let [to_kw, addr, params @ ..] = args else {
        return Err(CommandError::RcptSyntax);
    };
    if !to_kw.text.eq_ignore_ascii_case("to:") {
        return Err(CommandError::RcptSyntax);
    }
    if !addr.complete {
        return Err(CommandError::BadRecipient(AddressError::Syntax(
            "unterminated",
        )));
    }
    let to = match parse_path(addr.text, utf8_ok).map_err(CommandError::BadRecipient)? {
        Path::Null => return Err(CommandError::NullRecipient),
        Path::Mailbox(a) => a,
    };
    let params = parse_rcpt_params(params)?;
    Ok(Command::Rcpt { to, params })
}

fn parse_bdat(args: &[Word<'_>]) -> Result<Command, CommandError> {
    let (size, last) = match args {
        [size] => (size.text, false),
        [size, last] if last.text.eq_ignore_ascii_case("LAST") => (size.text, true),
        _ => return Err(CommandError::BdatSyntax),
    };
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::BdatSyntax);
    }
    let size = size.parse().map_err(|_| CommandError::BdatSyntax)?;
    Ok(Command::Bdat { size, last })
}

/// Client text fit for a reply line: printable ASCII.
fn printable(s: &str) -> String {
    crate::wire::printable::printable(s, false).into_owned()
}

#[cfg(test)]
mod tests;
