//! Where a recipient's mail goes: transport(5) results and next hops.
//!
//! A transport result is `transport:nexthop` as in Postfix's transport
//! tables: `smtp:[mail.example.com]:587` (that host, no MX lookup, port
//! 587), `smtp:example.com` (the MX hosts of example.com), `smtp:` or
//! `:` (the default route: the relay host when set, else the MX hosts of
//! the recipient's domain), `relay:…` (as `smtp:`), `local:` (local
//! delivery), `error:5.1.1 text` (bounce with that text), `discard:text`
//! (drop, reported as delivered), and `lmtp:` (LMTP, RFC 2033, to a
//! mailbox server such as Dovecot: `lmtp:unix:/run/dovecot/lmtp`,
//! `lmtp:inet:host:port`, `lmtp:[host]:port`, `lmtp:host:port`, as
//! Postfix's lmtp(8) writes them; never an MX lookup, port 24 by default).
//!
//! Transport tables (Postfix `transport_maps`) map recipients to these
//! results: [`TransportTable`] (the lookup order), [`parse_file`] (the
//! transport(5) file format) and [`LiveTransport`] (the table as qmgr uses
//! it, read again when a file changes). The results themselves
//! ([`Transport`], [`Nexthop`]) and their parsers are in [`syntax`], a
//! leaf the configuration reads without the tables (`tests/imports.rs`).

mod live;
pub(crate) mod syntax;
mod table;

use std::path::PathBuf;

use crate::outcome::Enhanced;

pub use live::{Current, LiveTransport, read as read_file};
pub use syntax::{LMTP_PORT, Nexthop, Transport, parse_mailbox_transport};
pub use table::{
    Answer, Diagnostic, Severity, TransportFile, TransportTable, lookup_keys, parse_file,
};

/// The Unix sockets of every `lmtp:unix:` next hop the configuration
/// names (the inline transport table, the transport files as they are
/// now, `virtual.transport`, `local.mailbox_transport`): the smtp agent's
/// sandbox lets it connect there. A file that cannot be read adds nothing (qmgr defers while it
/// is unreadable; `postern check` says so).
pub fn lmtp_sockets(config: &crate::config::Config) -> Vec<PathBuf> {
    let mut transports: Vec<Transport> = config.relay.transport.values().cloned().collect();
    transports.extend(config.r#virtual.transport.clone());
    transports.extend(config.local.mailbox_transport.clone());
    for path in &config.relay.transport_files {
        if let Ok(text) = read_file(path) {
            let (file, _) = parse_file(&text, path);
            transports.extend(file.entries().filter_map(|(_, a)| a.clone().ok()));
        }
    }
    let mut out: Vec<PathBuf> = transports
        .into_iter()
        .filter_map(|t| match t {
            Transport::Lmtp(n) => n.unix,
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Split an RFC 3463 status code off the front of `text` (Postfix's
/// `dsn_split`): `"5.7.1 no mail"` gives `("5.7.1", "no mail")`. The code
/// must be of `class` (`b'2'`, `b'4'` or `b'5'`); otherwise, or without a
/// code, `default` is the code. The code is removed from the text either
/// way, as Postfix does.
pub(crate) fn split_status(text: &str, class: u8, default: Enhanced) -> (Enhanced, &str) {
    let text = text.trim();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    match Enhanced::parse(word) {
        None => (default, text),
        Some(code) if code.class() == class => (code, rest.trim_start()),
        Some(_) => (default, rest.trim_start()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_split_off_the_text() {
        let split = |text, class, default| {
            let (code, rest) = split_status(text, class, Enhanced::from_static(default));
            (code.to_string(), rest)
        };
        assert_eq!(
            split("5.7.1 no mail for you", b'5', "5.0.0"),
            ("5.7.1".into(), "no mail for you")
        );
        assert_eq!(split("no mail", b'5', "5.0.0"), ("5.0.0".into(), "no mail"));
        // A code of the wrong class is replaced, and still removed.
        assert_eq!(
            split("4.2.0 later", b'5', "5.0.0"),
            ("5.0.0".into(), "later")
        );
        assert_eq!(split("2.0.0", b'2', "2.0.0"), ("2.0.0".into(), ""));
        assert_eq!(
            split("5.1234.1 x", b'5', "5.0.0"),
            ("5.0.0".into(), "5.1234.1 x")
        );
        assert_eq!(
            split("5.1.1x y", b'5', "5.0.0"),
            ("5.0.0".into(), "5.1.1x y")
        );
        assert_eq!(split("", b'5', "5.0.0"), ("5.0.0".into(), ""));
    }
}
