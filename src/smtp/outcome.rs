//! What happened to a recipient, with Postfix's texts: the remote reply
//! quoted (`host mx.example.com[192.0.2.1] said: 550 5.1.1 <b@x>: unknown
//! user (in reply to RCPT TO command)`), or the local reason (`connect to
//! ...: Connection refused`, `conversation with ... timed out while ...`).

use crate::ipc::{DeliveryResult, DeliveryStatus};
use crate::outcome::{Enhanced, code};

use super::dns::Target;
use super::reply::Reply;

/// One recipient's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub status: DeliveryStatus,
    /// Enhanced status code.
    pub dsn: Enhanced,
    pub reason: String,
    /// `dns; HOST` of the server whose reply this is.
    pub remote_mta: Option<String>,
    /// `smtp; REPLY`.
    pub diagnostic: Option<String>,
}

impl Outcome {
    /// An outcome decided here, without a remote reply.
    pub(crate) fn local(
        status: DeliveryStatus,
        dsn: Enhanced,
        reason: impl Into<String>,
    ) -> Outcome {
        Outcome {
            status,
            dsn,
            reason: reason.into(),
            remote_mta: None,
            diagnostic: None,
        }
    }

    pub(crate) fn deferred(dsn: Enhanced, reason: impl Into<String>) -> Outcome {
        Outcome::local(DeliveryStatus::Deferred, dsn, reason)
    }

    /// A reply to `command` (`RCPT TO`, `end of DATA`): 2xx sent (the
    /// reply is the reason), 4xx (and anything else unexpected) deferred,
    /// 5xx bounced.
    pub(crate) fn of_reply(target: &Target, reply: &Reply, command: &str) -> Outcome {
        let status = if reply.is_positive() {
            DeliveryStatus::Sent
        } else if reply.is_permanent() {
            DeliveryStatus::Bounced
        } else {
            DeliveryStatus::Deferred
        };
        let dsn = match status {
            // A 3xx where a final reply was due: temporary trouble.
            DeliveryStatus::Deferred if !reply.is_transient() => code::TEMP,
            _ => reply.dsn(),
        };
        let reason = match status {
            DeliveryStatus::Sent => reply.text(),
            _ => format!(
                "host {} said: {} (in reply to {command} command)",
                namaddr(target),
                reply.text()
            ),
        };
        Outcome {
            status,
            dsn,
            reason,
            remote_mta: Some(remote_mta(target)),
            diagnostic: Some(format!("smtp; {}", reply.text())),
        }
    }

    /// A server that refuses the session (greeting, EHLO/HELO, STARTTLS):
    /// `reason` quotes the reply. A 5xx greeting only defers (Postfix's
    /// `smtp_skip_5xx_greeting`): `defer_5xx`.
    pub(crate) fn refused(
        target: &Target,
        reply: &Reply,
        reason: String,
        defer_5xx: bool,
    ) -> Outcome {
        let (status, dsn) = if reply.is_permanent() && !defer_5xx {
            (DeliveryStatus::Bounced, reply.dsn())
        } else {
            (DeliveryStatus::Deferred, reply.dsn().as_transient())
        };
        Outcome {
            status,
            dsn,
            reason,
            remote_mta: Some(remote_mta(target)),
            diagnostic: Some(format!("smtp; {}", reply.text())),
        }
    }

    /// The result line for qmgr.
    pub(crate) fn result(&self, rcpt_index: usize) -> DeliveryResult {
        DeliveryResult {
            rcpt_index,
            status: self.status,
            dsn: self.dsn,
            reason: self.reason.clone(),
            forward: Vec::new(),
            lists: Vec::new(),
            owner_failures: Vec::new(),
            remote_mta: self.remote_mta.clone(),
            diagnostic: self.diagnostic.clone(),
            mailbox_transport: None,
            started: None,
        }
    }

    /// Whether this is the recipient's last word (sent or bounced); a
    /// deferral may still change at the next host.
    pub(crate) fn is_final(&self) -> bool {
        self.status != DeliveryStatus::Deferred
    }
}

/// `host[ip]`, Postfix's `namaddr` (`myhostname[/path]` for a Unix
/// socket).
pub(crate) fn namaddr(target: &Target) -> String {
    format!("{}[{}]", target.host, target.addr.bracketed())
}

/// `host[ip]:port`, the `relay=` of a log line (`myhostname[/path]` for
/// a Unix socket, as Postfix's lmtp).
pub(crate) fn relay(target: &Target) -> String {
    match &target.addr {
        super::dns::Addr::Inet(a) => format!("{}:{}", namaddr(target), a.port()),
        super::dns::Addr::Unix(_) => namaddr(target),
    }
}

fn remote_mta(target: &Target) -> String {
    format!("dns; {}", target.host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::{Parsed, parse_reply};

    fn reply(text: &str) -> Reply {
        match parse_reply(format!("{text}\r\n").as_bytes()) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn target() -> Target {
        Target {
            host: "mx.example.com".into(),
            addr: "192.0.2.1:25"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        }
    }

    #[test]
    fn replies_quoted_as_postfix_does() {
        let o = Outcome::of_reply(
            &target(),
            &reply("550 5.1.1 <b@x>: unknown user"),
            "RCPT TO",
        );
        assert_eq!(
            (o.status, o.dsn.as_str()),
            (DeliveryStatus::Bounced, "5.1.1")
        );
        assert_eq!(
            o.reason,
            "host mx.example.com[192.0.2.1] said: 550 5.1.1 <b@x>: unknown user (in reply to RCPT TO command)"
        );
        assert_eq!(o.remote_mta.as_deref(), Some("dns; mx.example.com"));
        assert_eq!(
            o.diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 <b@x>: unknown user")
        );

        let o = Outcome::of_reply(
            &target(),
            &reply("250 2.0.0 Ok: queued as X"),
            "end of DATA",
        );
        assert_eq!(
            (o.status, o.reason.as_str()),
            (DeliveryStatus::Sent, "250 2.0.0 Ok: queued as X")
        );

        let o = Outcome::of_reply(&target(), &reply("451 try later"), "MAIL FROM");
        assert_eq!(
            (o.status, o.dsn.as_str()),
            (DeliveryStatus::Deferred, "4.0.0")
        );
        let o = Outcome::of_reply(&target(), &reply("354 go on"), "RCPT TO");
        assert_eq!(
            (o.status, o.dsn.as_str()),
            (DeliveryStatus::Deferred, "4.0.0")
        );
    }

    #[test]
    fn a_5xx_greeting_defers() {
        let r = reply("554 5.7.1 go away");
        let o = Outcome::refused(&target(), &r, "x".into(), true);
        assert_eq!(
            (o.status, o.dsn.as_str()),
            (DeliveryStatus::Deferred, "4.7.1")
        );
        let o = Outcome::refused(&target(), &r, "x".into(), false);
        assert_eq!(
            (o.status, o.dsn.as_str()),
            (DeliveryStatus::Bounced, "5.7.1")
        );
        assert_eq!(relay(&target()), "mx.example.com[192.0.2.1]:25");
    }
}
