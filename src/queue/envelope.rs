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
    /// `SMTP` or `ESMTP`.
    pub protocol: String,
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
