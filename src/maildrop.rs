//! The drop directory, `<queue>/maildrop`: where `sendmail` leaves a
//! message when nothing answers on `submit.sock` (the mail system is
//! stopped), and where smtpd's pickup ([`crate::smtpd`]) takes it in, as
//! Postfix's postdrop and pickup do, but with no set-gid program.
//!
//! The directory is mode 3733, owned by the postern user and its group:
//! anyone may create files in it (write and search for all), nobody but
//! postern may list it (no read bit for group and others), nobody may
//! remove or rename another's file (the sticky bit), and every file made
//! in it gets the postern group (the directory's set-group-id bit: a
//! directory's bit, no program's). `sendmail` makes its file 0640, so it
//! is readable by its owner and by postern alone. The queue directory
//! above it is 0711 (search only) so that users can reach it; every other
//! queue directory stays 0700. Files smtpd refuses are moved to
//! `<queue>/maildrop-bad` (0700), never delivered.
//!
//! **Identity is the owner.** The submitter is the file's owner (`st_uid`,
//! set by the kernel when the user created it), read by smtpd with
//! `fstat` on the descriptor it opened with `O_NOFOLLOW`; nothing in the
//! content names a user. The checks that follow are exactly those of a
//! `submit.sock` session with that uid.
//!
//! **The file** ([`encode_head`], [`parse_head`]): a short text envelope,
//! an empty line, then the message as `sendmail` prepared it (LF line
//! ends, not dot-stuffed):
//!
//! ```text
//! postern-maildrop 1
//! size 1234                  the bytes of the message after the empty line
//! from <sender@example.org>  the envelope sender (-f); <> for the null sender
//! to <rcpt@example.org>      one line per recipient (at least one)
//! notify SUCCESS,FAILURE     optional: -N (DSN NOTIFY), for every recipient
//! ret HDRS                   optional: -R (DSN RET)
//! envid QQ+2B1               optional: -V (DSN ENVID), xtext-encoded
//! body 8BITMIME              optional: the message has 8-bit bytes
//!
//! Subject: …
//! ```
//!
//! The parser is sans-IO and strict: the first line must be the version,
//! each key known and given once (`to` repeated), values free of control
//! characters, lines at most [`MAX_LINE`] bytes, the envelope at most
//! [`MAX_HEAD`]; anything else is an error and the file is moved aside. A
//! file shorter than its `size` is not finished yet ([`Head::Incomplete`]).
//!
//! **Writing** ([`deposit`]): `t<random>` is created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, made 0640 whatever the umask, written,
//! fsync'd, renamed to `d<random>` (never replacing a file) and fsync'd
//! again (the user cannot open the directory to sync it; on journaling
//! file systems the second fsync commits the rename). smtpd takes only
//! `d…` files, so it never sees a half-written one; a `t…` file older
//! than an hour is left over from a `sendmail` that was killed, and is
//! removed.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The drop directory's name in the queue directory (Postfix's name).
pub(crate) const DIR: &str = "maildrop";
/// Where smtpd moves the files it refuses, in the queue directory.
pub(crate) const BAD_DIR: &str = "maildrop-bad";
/// The drop directory's mode: set-group-id, sticky, rwx for postern,
/// write and search (no read: no listing) for everyone else.
pub(crate) const DIR_MODE: u32 = 0o3733;
/// A dropped file's mode: its owner and the postern group read it.
pub(crate) const FILE_MODE: u32 = 0o640;
/// The queue directory's mode: search only for others, so that users
/// reach the drop directory and nothing else.
pub(crate) const QUEUE_MODE: u32 = 0o711;
/// The longest envelope (the part before the message).
pub const MAX_HEAD: usize = 1 << 20;
/// The longest line of the envelope.
pub const MAX_LINE: usize = 2048;

const VERSION: &str = "postern-maildrop 1";

/// The largest drop file: the message size limit plus room for the
/// envelope (`smtpd.message_size_limit`; 0, no limit, as there).
pub(crate) fn file_limit(message_size_limit: u64) -> u64 {
    if message_size_limit == 0 {
        u64::MAX
    } else {
        message_size_limit.saturating_add(MAX_HEAD as u64)
    }
}

/// What `sendmail` asks for, as it would say it over SMTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The bytes of the message after the envelope.
    pub size: u64,
    /// The envelope sender, without angle brackets (empty: `<>`).
    pub sender: String,
    pub recipients: Vec<String>,
    /// DSN NOTIFY for every recipient (`NEVER` or a list of `SUCCESS`,
    /// `FAILURE`, `DELAY`).
    pub notify: Option<String>,
    /// DSN RET: `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// DSN ENVID, xtext-encoded.
    pub envid: Option<String>,
    /// `8BITMIME` or `7BIT`.
    pub body: Option<String>,
}

impl Envelope {
    /// The MAIL command that submits this envelope to smtpd, as `sendmail`
    /// gives it on submit.sock and smtpd's pickup on its in-memory session:
    /// `MAIL FROM:<sender>`, then SIZE= when `size` is given (the pickup
    /// knows it from the file; sendmail never sent it), RET=, ENVID=,
    /// BODY=.
    pub(crate) fn mail_command(&self, size: Option<u64>) -> String {
        let mut mail = format!("MAIL FROM:<{}>", self.sender);
        if let Some(size) = size {
            mail.push_str(&format!(" SIZE={size}"));
        }
        for (key, value) in [
            ("RET", &self.ret),
            ("ENVID", &self.envid),
            ("BODY", &self.body),
        ] {
            if let Some(v) = value {
                mail.push_str(&format!(" {key}={v}"));
            }
        }
        mail
    }

    /// The RCPT command for `rcpt`, one of the recipients: `RCPT
    /// TO:<rcpt>` with NOTIFY=.
    pub(crate) fn rcpt_command(&self, rcpt: &str) -> String {
        match &self.notify {
            Some(n) => format!("RCPT TO:<{rcpt}> NOTIFY={n}"),
            None => format!("RCPT TO:<{rcpt}>"),
        }
    }
}

/// What [`parse_head`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// The envelope has not ended yet (the file is still being written,
    /// or more bytes must be read).
    Incomplete,
    /// The envelope, and where the message starts.
    Complete { envelope: Envelope, offset: usize },
}

/// Why a drop file is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a postern drop file (the first line is not {VERSION:?})")]
    Version,
    #[error("line {0}: longer than {MAX_LINE} bytes")]
    LineTooLong(usize),
    #[error("the envelope is longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("line {0}: not UTF-8")]
    NotUtf8(usize),
    #[error("line {0}: a control character")]
    Control(usize),
    #[error("line {line}: unknown key {key:?}")]
    UnknownKey { line: usize, key: String },
    #[error("line {line}: {key} given twice")]
    Twice { line: usize, key: &'static str },
    #[error("line {line}: bad {key} value")]
    BadValue { line: usize, key: &'static str },
    #[error("no {0} line")]
    Missing(&'static str),
}

/// The envelope as it is written, ending with the empty line.
pub fn encode_head(e: &Envelope) -> Result<Vec<u8>, FormatError> {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "{VERSION}");
    let _ = writeln!(text, "size {}", e.size);
    let _ = writeln!(text, "from <{}>", e.sender);
    for r in &e.recipients {
        let _ = writeln!(text, "to <{r}>");
    }
    for (key, value) in [
        ("notify", &e.notify),
        ("ret", &e.ret),
        ("envid", &e.envid),
        ("body", &e.body),
    ] {
        if let Some(v) = value {
            let _ = writeln!(text, "{key} {v}");
        }
    }
    text.push('\n');
    // What is written must read back the same: the same rules apply.
    match parse_head(text.as_bytes())? {
        Head::Complete { envelope, .. } if envelope == *e => Ok(text.into_bytes()),
        _ => Err(FormatError::BadValue { line: 0, key: "to" }),
    }
}

/// Parse the envelope at the start of `buf` (sans-IO: `buf` may be any
/// prefix of the file).
pub fn parse_head(buf: &[u8]) -> Result<Head, FormatError> {
    let mut e = Envelope::default();
    let (mut size, mut from) = (None, None);
    let mut pos = 0;
    let mut number = 0;
    loop {
        number += 1;
        let rest = &buf[pos..];
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            // Whatever is there so far must be the start of the version.
            if number == 1 && !VERSION.as_bytes().starts_with(rest) {
                return Err(FormatError::Version);
            }
            if rest.len() > MAX_LINE {
                return Err(FormatError::LineTooLong(number));
            }
            if buf.len() >= MAX_HEAD {
                return Err(FormatError::HeadTooLong);
            }
            return Ok(Head::Incomplete);
        };
        if number == 1 {
            if &rest[..end] != VERSION.as_bytes() {
                return Err(FormatError::Version);
            }
            pos += end + 1;
            continue;
        }
        if end > MAX_LINE {
            return Err(FormatError::LineTooLong(number));
        }
        if pos + end + 1 > MAX_HEAD {
            return Err(FormatError::HeadTooLong);
        }
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| FormatError::NotUtf8(number))?;
        pos += end + 1;
        if line.is_empty() {
            break;
        }
        if line.chars().any(char::is_control) {
            return Err(FormatError::Control(number));
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let bad = |key: &'static str| FormatError::BadValue { line: number, key };
        match key {
            "size" => {
                let n = (!value.is_empty()
                    && value.len() <= 20
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or(bad("size"))?;
                once(&mut size, n, number, "size")?;
            }
            "from" => once(
                &mut from,
                bracketed(value).ok_or(bad("from"))?,
                number,
                "from",
            )?,
            "to" => match bracketed(value) {
                Some(r) if !r.is_empty() => e.recipients.push(r),
                _ => return Err(bad("to")),
            },
            "notify" => once(
                &mut e.notify,
                notify(value).ok_or(bad("notify"))?,
                number,
                "notify",
            )?,
            "ret" => match value {
                "FULL" | "HDRS" => once(&mut e.ret, value.to_string(), number, "ret")?,
                _ => return Err(bad("ret")),
            },
            "envid" if is_xtext(value) => once(&mut e.envid, value.to_string(), number, "envid")?,
            "envid" => return Err(bad("envid")),
            "body" => match value {
                "7BIT" | "8BITMIME" => once(&mut e.body, value.to_string(), number, "body")?,
                _ => return Err(bad("body")),
            },
            other => {
                return Err(FormatError::UnknownKey {
                    line: number,
                    key: other.chars().take(40).collect(),
                });
            }
        }
    }
    e.size = size.ok_or(FormatError::Missing("size"))?;
    e.sender = from.ok_or(FormatError::Missing("from"))?;
    if e.recipients.is_empty() {
        return Err(FormatError::Missing("to"));
    }
    Ok(Head::Complete {
        envelope: e,
        offset: pos,
    })
}

fn once<T>(slot: &mut Option<T>, v: T, line: usize, key: &'static str) -> Result<(), FormatError> {
    if slot.is_some() {
        return Err(FormatError::Twice { line, key });
    }
    *slot = Some(v);
    Ok(())
}

/// `<…>`: what is inside (no control characters: checked by the caller).
fn bracketed(v: &str) -> Option<String> {
    let inner = v.strip_prefix('<')?.strip_suffix('>')?;
    Some(inner.to_string())
}

/// RFC 3461 NOTIFY: `NEVER`, or one or more of SUCCESS, FAILURE, DELAY.
fn notify(v: &str) -> Option<String> {
    if v == "NEVER" {
        return Some(v.into());
    }
    let ok = !v.is_empty()
        && v.split(',')
            .all(|w| matches!(w, "SUCCESS" | "FAILURE" | "DELAY"));
    ok.then(|| v.to_string())
}

/// RFC 3461 xtext, strictly; at most 100 characters decoded (ENVID's
/// limit), so 300 encoded.
fn is_xtext(v: &str) -> bool {
    !v.is_empty() && v.len() <= 300 && crate::wire::xtext::is_strict(v)
}

/// What a name in the drop directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// `d…`: a finished file, to be taken in.
    Ready,
    /// `t…`: being written (or left over by a `sendmail` that was killed).
    Temporary,
    /// Anything else: not made by `sendmail`.
    Other,
}

/// Classify a file name (bytes as the directory gives them).
pub fn classify(name: &[u8]) -> Name {
    let tail_ok = |t: &[u8]| {
        (1..=100).contains(&t.len())
            && t.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    match name.split_first() {
        Some((b'd', t)) if tail_ok(t) => Name::Ready,
        Some((b't', t)) if tail_ok(t) => Name::Temporary,
        _ => Name::Other,
    }
}

/// Leave a message in the drop directory `dir`: the envelope (its `size`
/// is set here) and the message. Returns the file's path.
pub(crate) fn deposit(dir: &Path, envelope: &Envelope, content: &[u8]) -> io::Result<PathBuf> {
    let meta = std::fs::symlink_metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() || mode & 0o3000 != 0o3000 || mode & 0o044 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a drop directory (mode {mode:o}, should be {DIR_MODE:o}; see postern check)",
            dir.display()
        )));
    }
    let envelope = Envelope {
        size: content.len() as u64,
        ..envelope.clone()
    };
    let head =
        encode_head(&envelope).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (tmp, name, mut file) = create(dir)?;
    let written = (|| {
        // The umask may have taken the group's read bit: postern needs it.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        if file.metadata()?.gid() != meta.gid() {
            return Err(io::Error::other(format!(
                "{} does not give its files its group (the set-group-id bit)",
                dir.display()
            )));
        }
        file.write_all(&head)?;
        file.write_all(content)?;
        file.sync_all()?;
        let done = dir.join(&name);
        nix::fcntl::renameat2(
            None,
            &tmp,
            None,
            &done,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(io::Error::from)?;
        file.sync_all()?;
        Ok(done)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new `t<random>` file, and the `d<random>` name it will get.
fn create(dir: &Path) -> io::Result<(PathBuf, String, File)> {
    let mut last = None;
    for _ in 0..5 {
        let random = random_hex()?;
        let tmp = dir.join(format!("t{random}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, format!("d{random}"), f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free name")))
}

/// 128 random bits as hex: names nobody can guess.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// A name from the drop directory as it may be logged: printable ASCII,
/// anything else `?`, at most 100 characters.
pub(crate) fn printable_name(name: &[u8]) -> String {
    name.iter()
        .take(100)
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_commands_of_an_envelope() {
        let mut e = Envelope {
            size: 20,
            sender: "u@example.org".into(),
            recipients: vec!["a@x".into()],
            notify: None,
            ret: None,
            envid: None,
            body: None,
        };
        assert_eq!(e.mail_command(None), "MAIL FROM:<u@example.org>");
        assert_eq!(e.rcpt_command("a@x"), "RCPT TO:<a@x>");
        e.ret = Some("HDRS".into());
        e.envid = Some("E+2B".into());
        e.body = Some("8BITMIME".into());
        e.notify = Some("NEVER".into());
        assert_eq!(
            e.mail_command(Some(20)),
            "MAIL FROM:<u@example.org> SIZE=20 RET=HDRS ENVID=E+2B BODY=8BITMIME"
        );
        assert_eq!(e.rcpt_command("a@x"), "RCPT TO:<a@x> NOTIFY=NEVER");
    }
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            size: 5,
            sender: "u@example.org".into(),
            recipients: vec!["a@example.org".into(), "\"b c\"@example.org".into()],
            notify: Some("SUCCESS,FAILURE".into()),
            ret: Some("HDRS".into()),
            envid: Some("QQ+2B1".into()),
            body: Some("8BITMIME".into()),
        }
    }

    #[test]
    fn round_trip_and_offset() {
        let head = encode_head(&sample()).unwrap();
        let mut file = head.clone();
        file.extend_from_slice(b"hi\n.\n");
        assert_eq!(
            parse_head(&file).unwrap(),
            Head::Complete {
                envelope: sample(),
                offset: head.len()
            }
        );
        let bare = Envelope {
            sender: String::new(),
            recipients: vec!["root".into()],
            ..Envelope::default()
        };
        let head = encode_head(&bare).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&head),
            "postern-maildrop 1\nsize 0\nfrom <>\nto <root>\n\n"
        );
    }

    #[test]
    fn every_prefix_is_incomplete_or_the_same() {
        let head = encode_head(&sample()).unwrap();
        for n in 0..head.len() {
            assert_eq!(parse_head(&head[..n]), Ok(Head::Incomplete), "{n}");
        }
    }

    #[test]
    fn strict() {
        let err = |s: &str| parse_head(s.as_bytes()).unwrap_err();
        let v = "postern-maildrop 1\n";
        assert_eq!(err("From: x\n"), FormatError::Version);
        assert_eq!(err("postern-maildrop 2\n"), FormatError::Version);
        assert_eq!(err("garbage"), FormatError::Version);
        assert_eq!(
            err(&format!("{v}size 1\nfrom <a>\nto <b>\nuid 0\n\n")),
            FormatError::UnknownKey {
                line: 5,
                key: "uid".into()
            }
        );
        assert_eq!(
            err(&format!("{v}size 1\nsize 2\n")),
            FormatError::Twice {
                line: 3,
                key: "size"
            }
        );
        assert_eq!(
            err(&format!("{v}from <a>\nto <b>\n\n")),
            FormatError::Missing("size")
        );
        assert_eq!(
            err(&format!("{v}size 1\nfrom <a>\n\n")),
            FormatError::Missing("to")
        );
        assert_eq!(
            err(&format!("{v}size 1\nfrom <a\r>\n")),
            FormatError::Control(3)
        );
        assert_eq!(
            err(&format!("{v}size -1\n")),
            FormatError::BadValue {
                line: 2,
                key: "size"
            }
        );
        assert_eq!(
            err(&format!("{v}size 1\nto <>\n")),
            FormatError::BadValue { line: 3, key: "to" }
        );
        assert_eq!(
            err(&format!("{v}envid a=b\n")),
            FormatError::BadValue {
                line: 2,
                key: "envid"
            }
        );
        assert_eq!(
            err(&format!("{v}notify SUCCESS,NEVER\n")),
            FormatError::BadValue {
                line: 2,
                key: "notify"
            }
        );
        let long = format!("{v}to <{}>\n", "a".repeat(MAX_LINE));
        assert_eq!(err(&long), FormatError::LineTooLong(2));
        assert_eq!(err(&long[..long.len() - 1]), FormatError::LineTooLong(2));
        let mut many = v.to_string();
        while many.len() < MAX_HEAD {
            many.push_str("to <someone@example.org>\n");
        }
        assert_eq!(err(&many), FormatError::HeadTooLong);
        // A control character cannot be written either.
        let mut e = sample();
        e.recipients.push("x\ny".into());
        assert!(encode_head(&e).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(classify(b"d0123abcdef"), Name::Ready);
        assert_eq!(classify(b"t0123abcdef"), Name::Temporary);
        for other in [&b"d"[..], b"x123", b"d../x", b"d a", b"", b"d\n", b"\xffd"] {
            assert_eq!(classify(other), Name::Other, "{other:?}");
        }
        assert_eq!(printable_name(b"d\nx y"), "d?x?y");
    }

    #[test]
    fn deposit_makes_a_finished_file_the_parser_reads() {
        let dir = tempfile::tempdir().unwrap();
        let drop = dir.path().join(DIR);
        std::fs::create_dir(&drop).unwrap();
        // Not a drop directory yet.
        assert!(deposit(&drop, &sample(), b"x\n").is_err());
        std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(DIR_MODE)).unwrap();
        let path = deposit(&drop, &sample(), b"Subject: x\n\nbody\n").unwrap();
        let name = path.file_name().unwrap().as_encoded_bytes().to_vec();
        assert_eq!(classify(&name), Name::Ready);
        assert_eq!(name.len(), 33);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, FILE_MODE);
        let data = std::fs::read(&path).unwrap();
        let Head::Complete { envelope, offset } = parse_head(&data).unwrap() else {
            panic!("incomplete");
        };
        assert_eq!(&data[offset..], b"Subject: x\n\nbody\n");
        assert_eq!(envelope.size, data.len() as u64 - offset as u64);
        // Nothing else is left behind.
        assert_eq!(std::fs::read_dir(&drop).unwrap().count(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any bytes: an answer, never a panic; a complete head lies
        /// within the input and is written back the same; a prefix is
        /// incomplete or says the same (what the fuzz target checks).
        #[test]
        fn any_bytes(
            input in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b' '), Just(b'<'), Just(b'>'), any::<u8>()
            ], 0..300),
            keys in proptest::collection::vec(prop_oneof![
                Just("size 3\n"), Just("from <a>\n"), Just("to <b>\n"), Just("ret FULL\n"),
                Just("notify NEVER\n"), Just("envid x+41\n"), Just("body 7BIT\n"), Just("\n"),
            ], 0..6),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut data = b"postern-maildrop 1\n".to_vec();
            for k in keys {
                data.extend_from_slice(k.as_bytes());
            }
            data.extend_from_slice(&input);
            let whole = parse_head(&data);
            if let Ok(Head::Complete { envelope, offset }) = &whole {
                prop_assert!(*offset <= data.len());
                let again = encode_head(envelope).unwrap();
                prop_assert_eq!(
                    parse_head(&again),
                    Ok(Head::Complete { envelope: envelope.clone(), offset: again.len() })
                );
            }
            let cut = cut.index(data.len() + 1);
            match (parse_head(&data[..cut]), &whole) {
                (Ok(Head::Incomplete), _) => {}
                (Ok(Head::Complete { offset, .. }), Ok(Head::Complete { offset: o, .. })) => {
                    prop_assert_eq!(offset, *o)
                }
                (Err(e), Err(w)) => prop_assert_eq!(&e, w),
                (prefix, whole) => prop_assert!(false, "prefix {:?} but whole {:?}", prefix, whole),
            }
        }

        /// What can be written reads back the same.
        #[test]
        fn encode_parse(sender in "[ -~]{0,40}", rcpts in proptest::collection::vec("[!-~][ -~]{0,30}", 1..5), size in any::<u64>()) {
            let e = Envelope { size, sender, recipients: rcpts, ..Envelope::default() };
            if let Ok(head) = encode_head(&e) {
                let parsed = parse_head(&head).unwrap();
                prop_assert_eq!(parsed, Head::Complete { envelope: e, offset: head.len() });
            }
        }
    }
}
