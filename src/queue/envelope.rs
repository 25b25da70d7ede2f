//! The envelope of a queued message: everything smtpd learned in the SMTP
//! transaction that is not the message content itself.

use serde::{Deserialize, Serialize};

use super::QueueId;

/// RFC 3461 RET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Ret {
    Full,
    Hdrs,
}

/// RFC 6152 / RFC 3030 BODY.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Body {
    #[default]
    #[serde(rename = "7BIT")]
    SevenBit,
    #[serde(rename = "8BITMIME")]
    EightBitMime,
}

/// One envelope recipient with its RFC 3461 parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    /// ORCPT, as given (`rfc822;addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// NOTIFY, as given (`SUCCESS,FAILURE`, `NEVER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// The recipient as given, when rewriting at queue entry
    /// ([`crate::rewrite`]: canonical, virtual aliases) changed it:
    /// Postfix's `orig_to=`, the DSN's Original-Recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

/// Where the message came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Verified reverse name, or `unknown`.
    pub name: String,
    /// IP address (or `127.0.0.1` style for local submissions later).
    pub addr: String,
    /// HELO/EHLO argument, if any.
    #[serde(default)]
    pub helo: Option<String>,
    /// `SMTP` or `ESMTP`; `local` for postern's own notices (bounces,
    /// delay warnings).
    pub protocol: String,
    /// The login of a client that authenticated (SMTP AUTH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// The submitter's uid, for mail submitted on this host (`sendmail`
    /// on submit.sock: the peer's credentials; the drop directory: the
    /// file's owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

impl Client {
    /// The protocol of postern's own notices.
    pub const NOTICE_PROTOCOL: &'static str = "local";

    /// Submitted on this host: by a local user, or postern's own notice.
    pub fn is_local(&self) -> bool {
        self.uid.is_some() || self.protocol == Client::NOTICE_PROTOCOL
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: QueueId,
    /// Arrival time, microseconds since the epoch.
    pub arrival_us: u64,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    #[serde(default)]
    pub body: Body,
    #[serde(default)]
    pub smtputf8: bool,
    pub client: Client,
    /// The Message-ID header's value as found, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Size of the content in bytes, as stored (LF line ends).
    pub size: u64,
    /// Queue it on hold (a header or body check said HOLD): qmgr keeps it
    /// undelivered until `postern queue release`, as an administrator's
    /// hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
}

/// A message from `s@example.org` to `u0@elsewhere.example`, … (`rcpts`
/// recipients), 5 bytes, for tests.
#[cfg(test)]
pub(crate) fn sample(id: QueueId, rcpts: usize) -> Envelope {
    Envelope {
        id,
        arrival_us: 1,
        sender: "s@example.org".into(),
        recipients: (0..rcpts)
            .map(|i| Recipient {
                address: format!("u{i}@elsewhere.example"),
                orcpt: None,
                notify: None,
                original: None,
            })
            .collect(),
        ret: None,
        envid: None,
        body: Default::default(),
        smtputf8: false,
        client: Client::default(),
        message_id: None,
        size: 5,
        hold: false,
    }
}
