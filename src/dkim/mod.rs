//! DKIM signing of outgoing mail (RFC 6376; Ed25519 keys: RFC 8463), as
//! OpenDKIM does it beside Postfix, built in.
//!
//! # Where, and why there
//!
//! The smtp client signs, as it sends (`crate::smtp`): a
//! `DKIM-Signature:` field (one per key: dual signing with an RSA and an
//! Ed25519 key of the same domain) goes before the content on the wire,
//! computed over the message in the form the receiver gets it (CRLF line
//! ends, not dot-stuffed; [`crate::wire::data::DataWriter::message`]).
//! Nothing is written to the queue: a message deferred and tried again is
//! signed again, with a new `t=`.
//!
//! # Security
//!
//! The private keys are read by the smtp client alone: its Landlock room
//! holds the key files' directories (`crate::sandbox`, `Profile::smtp`);
//! smtpd's does not, so the process that parses the Internet's input
//! never can read a key, even as the same user. `/etc` is in every role's
//! room, so the keys belong elsewhere: `postern dkim keygen` writes them
//! under `/var/lib/postern/dkim` (0600, the postern user's), and `postern
//! check` refuses a key that smtpd's room could read. Loading the
//! configuration never reads a key; `postern check`, `postern dkim check`
//! and the smtp client do.
//!
//! # Which mail is signed
//!
//! [`eligible`] decides by origin (`dkim.sign`: `mynetworks`,
//! `authenticated`, `local`, read from the queue envelope's client), then
//! the domain of the first address of the first `From:` field picks the
//! keys: every entry of `dkim.keys` for exactly that domain (no parent
//! domain: `sub.example.org` needs its own entries, as OpenDKIM's
//! SigningTable without wildcards). Mail that is not eligible, or whose
//! domain has no key, goes unsigned. A key that cannot be used (file
//! missing, unreadable, not a key) defers that domain's mail with `4.7.5`
//! rather than send it unsigned, which a domain that publishes a DMARC
//! `p=reject` would see refused; the reason names the file, and the mail
//! goes out signed once the file is fixed (it is read again when it
//! changes). A key file replaced by one that does not load is refused
//! with a log line, the key read before kept.
//!
//! The log line per signature is OpenDKIM's: `QUEUEID: DKIM-Signature
//! field added (s=SELECTOR, d=DOMAIN)`; the delivery line keeps
//! Postfix's shape.
//!
//! # Configuration
//!
//! `dkim.keys` (OpenDKIM's KeyTable values `domain:selector:/path`),
//! `dkim.headers` (`h=`; a listed field the message lacks is signed as
//! absent, a name listed twice guards against a second instance),
//! `dkim.canonicalization` (`c=`), `dkim.sign`, `relay.networks`.
//!
//! # Module map
//!
//! `key` reads and makes private keys (PEM, PKCS#8 / PKCS#1); `record` is
//! the DNS side (the TXT record to publish, split in 255-byte strings, and
//! a published one compared with a key); `sign` holds the live keys and
//! signs a message stream; `check` is `postern check`'s part; `cli` the
//! `postern dkim` commands. `key_entry` is a `dkim.keys` entry and the
//! default `dkim.headers`: a leaf of syntax the configuration reads
//! without the rest of this module (`tests/imports.rs`).

pub mod check;
pub mod cli;
pub mod key;
pub(crate) mod key_entry;
pub mod record;
pub mod sign;

use std::net::IpAddr;

use crate::config::{Config, DkimSign};
use crate::queue::Client;

pub use key_entry::{KeyEntry, check_selector, default_headers};
pub use sign::{Keys, Pass, Signed};

/// Whether mail from `client` is to be signed (`dkim.sign`); the keys
/// are then the `From:` domain's.
pub fn eligible(config: &Config, client: &Client) -> bool {
    config.dkim.sign.iter().any(|origin| match origin {
        DkimSign::Mynetworks => client
            .addr
            .parse::<IpAddr>()
            .is_ok_and(|ip| config.relay.networks.iter().any(|n| n.contains(&ip))),
        DkimSign::Authenticated => client.sasl_username.is_some(),
        DkimSign::Local => client.is_local(),
    })
}

#[cfg(test)]
mod tests;
