//! The greeting level of a session: what EHLO or HELO said (the name, as
//! Postfix stores it, and whether the client speaks ESMTP), and the two
//! commands that set it. A new EHLO/HELO ends a transaction; STARTTLS
//! (issue 18) will clear the greeting, so that EHLO is required again.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use super::milter::{Said, Stage};
use crate::policy::When;
use crate::reply::Reply;

/// What EHLO or HELO said.
pub(super) struct Greeting {
    /// The name given, non-printable characters replaced by `?`.
    pub(super) name: String,
    /// EHLO rather than HELO.
    pub(super) esmtp: bool,
}

impl Greeting {
    /// The protocol for the log and the Received header: `ESMTP` after
    /// EHLO, else `SMTP`.
    pub(super) fn proto(greeting: Option<&Greeting>) -> &'static str {
        if greeting.is_some_and(|g| g.esmtp) {
            "ESMTP"
        } else {
            "SMTP"
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// HELO or EHLO: the helo restrictions (without delay_reject), then
    /// the greeting.
    pub(super) async fn helo_cmd(&mut self, name: &str, esmtp: bool) -> bool {
        let name = printable(name);
        if let Some(r) = self.restrict(When::Helo, Some(&name)).await {
            return self.fail(r);
        }
        if let Said::Refuse(r) = self.milter_stage(Stage::Helo(&name)).await {
            return self.fail(r);
        }
        self.greeting = Some(Greeting { name, esmtp });
        self.tx = None;
        let r = if esmtp {
            self.ehlo_reply()
        } else {
            Reply::plain(250, self.hostname())
        };
        self.reply(&r);
        true
    }

    fn ehlo_reply(&self) -> Reply {
        let c = &self.cfg().smtpd;
        let mut lines = vec![self.hostname(), "PIPELINING".to_string()];
        lines.push(if c.message_size_limit > 0 {
            format!("SIZE {}", c.message_size_limit)
        } else {
            "SIZE".into()
        });
        if c.vrfy {
            lines.push("VRFY".into());
        }
        if !self.io.is_tls() && self.tls_offered().is_some() {
            lines.push("STARTTLS".into());
        }
        lines.extend(self.auth_keyword());
        // CHUNKING (RFC 3030) last, where Postfix lists it; on the local
        // submit socket too (`sendmail -bs` speaks the same session).
        for k in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(k.into());
        }
        Reply::plain(250, lines.join("\n"))
    }
}

/// Non-printable characters replaced by `?`, as Postfix stores HELO names.
pub(super) fn printable(s: &str) -> String {
    crate::wire::printable::printable(s, true).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_esmtp_only_after_ehlo() {
        assert_eq!(Greeting::proto(None), "SMTP");
        let helo = Greeting {
            name: "a".into(),
            esmtp: false,
        };
        assert_eq!(Greeting::proto(Some(&helo)), "SMTP");
        let ehlo = Greeting {
            name: "a".into(),
            esmtp: true,
        };
        assert_eq!(Greeting::proto(Some(&ehlo)), "ESMTP");
    }

    #[test]
    fn helo_names_are_stored_printable() {
        assert_eq!(printable("mx\u{7}.example\t"), "mx?.example?");
    }
}
