//! Wire formats: the small encodings and text shapes of mail that more
//! than one room reads or writes, each written once here so that the
//! roles agree byte for byte and never borrow them from each other.
//!
//! * [`xtext`]: RFC 3461 xtext and RFC 6533 utf-8-addr-xtext (ENVID=,
//!   ORCPT=), decoded by smtpd, encoded by smtp and `sendmail`.
//! * [`header`]: "is this a header line" (Postfix's `is_header`), a
//!   field's unfolded value (the Message-ID), for smtpd, the content
//!   checks, the DSN builder, local's loop check and `sendmail -t`.
//! * [`date`]: the date shapes of headers and reports (RFC 5322, with the
//!   local zone or in UTC as Postfix's `mail_date`), of `mailq`
//!   (asctime) and of Message-ID stamps.
//! * [`delay`]: `delay=` and `delays=` numbers as Postfix prints them,
//!   for the log lines of local, smtp and qmgr.
//! * [`printable`]: Postfix's `printable()`, outside text masked for a
//!   log line, a reply or a header (smtpd, the content checks, DSNs).
//! * [`data`]: the stored form of a message (LF line ends) as SMTP DATA
//!   (CRLF, dot-stuffed), for `sendmail` and smtpd's pickup.
//! * [`hostname`]: host and domain name syntax (Postfix's
//!   `valid_hostname`), for the configuration and the value parsers of
//!   next hops and DKIM keys.
//! * [`lines`]: Postfix's logical lines (comments, blank lines,
//!   continuations), for main.cf and master.cf in `config import-postfix`,
//!   the table files of `maps` and `transport`, and aliases files.
//!
//! Everything here is pure (bytes or values in, text out): no I/O, no
//! configuration.

pub(crate) mod data;
pub mod date;
pub(crate) mod delay;
pub(crate) mod header;
pub(crate) mod hostname;
pub(crate) mod lines;
pub(crate) mod printable;
pub(crate) mod xtext;
