//! Messages between the roles: Unix stream sockets, one JSON object per
//! line, readable with `socat` (DESIGN.md). The roles never `use` each
//! other; they meet here and in the queue.
//!
//! * smtpd → qmgr (`qmgr` socket): [`QmgrRequest::Wake`] after a group
//!   commit, so qmgr reads the new records at once. The same socket carries
//!   the administrator's requests (`status`), and smtpd's metrics counts
//!   ([`QmgrRequest::Counters`], once a second).
//! * metrics → qmgr (`metrics` socket): [`QmgrRequest::Metrics`], answered
//!   with the exposition.
//! * qmgr → local (`local` socket): one [`DeliveryRequest`] per line, each
//!   answered by one [`DeliveryResult`] line, in order, on one connection.
//!   qmgr opens as many connections as it wants deliveries in parallel.
//! * qmgr → smtp (`smtp-client` socket, `smtp.sock`): one [`SmtpRequest`]
//!   per line (one message, one next hop, its recipients for that hop),
//!   each answered by one [`SmtpResult`] line, in order, on one connection.

pub mod names;
pub mod qmgr_client;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::outcome::Enhanced;
use crate::queue::{ContentRef, QueueId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum QmgrRequest {
    /// New records are durable in `incoming/`.
    Wake,
    /// Queue counts, answered with one [`QmgrStatus`] line.
    Status,
    /// An administrator's operation on messages (`ALL` for every one),
    /// answered with one [`QueueOpResult`] line.
    Queue {
        action: QueueAction,
        ids: Vec<String>,
    },
    /// The queue's contents (`mailq`), answered with one line: a JSON
    /// array of [`QueueEntry`].
    List,
    /// One message, envelope and content (`postern queue show`, like
    /// postcat), answered with one [`ShownMessage`] line (null when unknown).
    Show { id: String },
    /// Another role's counts since its last report, added to qmgr's
    /// (smtpd, once a second when it counted something); not answered.
    Counters {
        counts: crate::metrics::registry::Registry,
        /// The sending process, on the first report of each connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<Started>,
    },
    /// The Prometheus exposition, answered with one line: a JSON string.
    /// The only request qmgr's metrics socket answers. `started`: the
    /// metrics role's process.
    Metrics {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<Started>,
    },
}

/// A role's process as it tells qmgr with the metrics on: smtpd on the
/// first report of each connection, the delivery agents in the first
/// answer on each of qmgr's connections, the metrics role with each
/// scrape. qmgr exports it as `postern_process_start_time_seconds` and,
/// where no supervisor counts them, counts a role's restarts as the new
/// processes it hears of (systemd restarts the roles on its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub role: String,
    pub pid: u32,
    /// Seconds since the epoch.
    pub at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShownMessage {
    pub envelope: crate::queue::Envelope,
    /// Per recipient: `pending`, `active`, `delivered`, `bounced`.
    pub states: Vec<String>,
    /// The content as stored (LF line ends), invalid UTF-8 replaced.
    pub content: String,
}

/// One message in the queue listing, with the members and in the order of
/// Postfix's `postqueue -j`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// `active`, `deferred` or `hold`.
    pub queue_name: String,
    pub queue_id: String,
    /// Seconds since the epoch.
    pub arrival_time: u64,
    pub message_size: u64,
    pub forced_expire: bool,
    /// Empty for the null sender.
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecipient {
    pub address: String,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueAction {
    /// Keep the message, deliver nothing of it (`postsuper -h`).
    Hold,
    /// Undo hold (`postsuper -H`).
    Release,
    /// Remove the message without notice (`postsuper -d`).
    Delete,
    /// Try every waiting recipient now (`postsuper -r`, `postqueue -i`).
    Requeue,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueOpResult {
    /// Messages the operation changed.
    pub affected: usize,
    /// IDs that name no message in the queue.
    #[serde(default)]
    pub unknown: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QmgrStatus {
    /// Messages with recipients still to deliver.
    pub messages: usize,
    /// Of those, recipients being delivered now.
    pub active: usize,
    /// Recipients waiting for a retry.
    pub deferred: usize,
    /// Messages on hold.
    #[serde(default)]
    pub held: usize,
    /// Messages in the active queue (as `mailq` names the queues); absent
    /// from an older qmgr.
    #[serde(default)]
    pub active_messages: Option<usize>,
    /// Messages in the deferred queue.
    #[serde(default)]
    pub deferred_messages: Option<usize>,
    /// The age of the oldest deferred message, in seconds.
    #[serde(default)]
    pub oldest_deferred_secs: Option<u64>,
    /// Messages taken in over the last minute.
    #[serde(default)]
    pub in_last_minute: Option<u64>,
    /// Recipients delivered over the last minute.
    #[serde(default)]
    pub out_last_minute: Option<u64>,
}

impl QmgrStatus {
    /// The queue at a glance, one line (`postern status`, qmgr's
    /// `STATUS=`): `active 3, deferred 120 (oldest 2h), hold 0, 41 msg/min
    /// in, 40 out`.
    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "active {}, deferred {}",
            self.active_messages.unwrap_or(0),
            self.deferred_messages.unwrap_or(0)
        );
        if let Some(age) = self.oldest_deferred_secs {
            s += &format!(" (oldest {})", short_age(age));
        }
        s += &format!(
            ", hold {}, {} msg/min in, {} out",
            self.held,
            self.in_last_minute.unwrap_or(0),
            self.out_last_minute.unwrap_or(0)
        );
        s
    }
}

/// An age as one unit, rounded down: `45s`, `12m`, `2h`, `3d`.
pub(crate) fn short_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// A delivery request from qmgr to a delivery agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    pub id: QueueId,
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    /// The recipient address as queued.
    pub recipient: String,
    /// The address the sender gave, when rewriting at queue entry
    /// (virtual aliases, canonical) changed it: `orig_to=`,
    /// `X-Original-To:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Index of the recipient in the envelope, echoed in the result.
    pub rcpt_index: usize,
    pub content: ContentRef,
    /// Arrival time, microseconds since the epoch.
    pub arrival_us: u64,
    /// When qmgr took the message into its active set (for `delays=a/b/..`).
    pub active_us: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Sent,
    Deferred,
    Bounced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResult {
    pub rcpt_index: usize,
    pub status: DeliveryStatus,
    /// Enhanced status code, e.g. `2.0.0`, `4.3.0`, `5.4.6`.
    pub dsn: Enhanced,
    /// Human text, e.g. `delivered to maildir`.
    pub reason: String,
    /// Addresses an alias expanded to that local does not deliver itself
    /// (other domains): qmgr queues the message anew for them before it
    /// records this result (Postfix: "forwarded as NEWID").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
    /// Addresses of lists that have an `owner-NAME` alias: qmgr queues the
    /// message anew for them from the owner (Postfix's
    /// `owner_request_special`), so that their delivery problems go to
    /// the owner, not to the sender.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListForward>,
    /// Permanent failures of deliveries an owner answers for (a command or
    /// file of a list that has an `owner-NAME`): reported to the owner; the
    /// sender hears nothing of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_failures: Vec<OwnerFailure>,
    /// The remote host that gave the answer, for the DSN's `Remote-MTA:`
    /// (`dns; mx.example.com`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// The remote reply, for the DSN's `Diagnostic-Code:` (`smtp; 550
    /// 5.1.1 <b@example.com>: unknown user`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// Mailbox deliveries local passed on to `local.mailbox_transport`
    /// instead of making them (local only): the recipient is not done
    /// until they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_transport: Option<MailboxTransport>,
    /// local's process, in its first answer on a connection with the
    /// metrics on ([`Started`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Started>,
}

/// Mailbox deliveries local passes on (Postfix's `mailbox_transport`):
/// the users an expansion reached whose mail would go into their mailbox,
/// to be delivered by `nexthop`, an LMTP server (Dovecot), instead.
/// local cannot connect there itself (the LMTP socket is the smtp
/// agent's), so qmgr hands these addresses to the smtp agent in LMTP mode
/// and records the recipient's outcome only with their answers: the worst
/// of them and of `status` (any deferral defers, else any bounce
/// bounces). The recipient stays active until then; a crash before that
/// record repeats the whole delivery (local's journal keeps its own
/// commands and files from running twice). Sent only with a result that
/// is not deferred: a deferred recipient's mailboxes are passed on at its
/// next attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxTransport {
    /// The LMTP server (`lmtp` set).
    pub nexthop: crate::transport::Nexthop,
    /// `user@domain` as local resolved each: the recipient's own domain
    /// for the recipient itself, `server.origin` for a user an alias or
    /// a `.forward` named; the recipient's extension kept.
    pub addresses: Vec<String>,
}

/// A list's addresses, to queue the message anew for from the list's
/// owner: `sender` is `owner-NAME@$origin`. The new message has no DSN
/// envelope id, RET or ORCPT, and NOTIFY loses SUCCESS, as in Postfix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListForward {
    pub sender: String,
    pub addresses: Vec<String>,
}

/// A failed delivery reported to a list's owner instead of the sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerFailure {
    /// `owner-NAME@$origin`.
    pub owner: String,
    /// The address the failed delivery was for (the list, for its
    /// commands and files).
    pub recipient: String,
    pub dsn: Enhanced,
    pub reason: String,
}

/// A delivery request from qmgr to the smtp agent: one message to one
/// next hop, with the recipients that go there (at most
/// `smtp.destination_recipient_limit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SmtpRequest {
    pub id: QueueId,
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    pub recipients: Vec<SmtpRecipient>,
    /// Where to: the transport table's next hop, the relay host, or the
    /// recipients' domain with `mx` set.
    pub nexthop: crate::transport::Nexthop,
    pub content: ContentRef,
    /// The message size as received (for SIZE=).
    pub size: u64,
    /// BODY= of the original transaction.
    pub body: crate::queue::Body,
    /// The message needs SMTPUTF8 (it was received with it).
    pub smtputf8: bool,
    /// RET= and ENVID= of the original transaction, passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<crate::queue::Ret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// Arrival time, microseconds since the epoch.
    pub arrival_us: u64,
    /// When qmgr took the message into its active set (for `delays=a/b/..`).
    pub active_us: u64,
    /// Where the message came from (the envelope's): whether it is
    /// DKIM-signed (`dkim.sign`).
    #[serde(default)]
    pub client: crate::queue::Client,
}

/// One recipient of an [`SmtpRequest`], with its RFC 3461 parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SmtpRecipient {
    /// Index of the recipient in the envelope, echoed in the result.
    pub rcpt_index: usize,
    pub address: String,
    /// The address given, when rewriting at queue entry changed it
    /// (`orig_to=` in the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

/// The smtp agent's answer: one result per recipient of the request,
/// and whether the next hop itself was reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SmtpResult {
    pub results: Vec<DeliveryResult>,
    /// `None`: no host was tried (the content could not be read, a
    /// signature could not be made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<HopStatus>,
    /// With the metrics on: what the agent counted since its last answer
    /// (outbound TLS handshakes), and the agent's process in the first
    /// answer on a connection ([`Started`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<crate::metrics::registry::Registry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Started>,
}

/// What a delivery learned of its next hop, as distinct from its
/// recipients' outcomes (Postfix's `hop_status`, which the smtp client
/// sets on a site failure and qmgr throttles the destination by).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HopStatus {
    /// A session existed with one of its hosts: whatever the replies to
    /// MAIL, RCPT or DATA, the destination answers.
    Reached,
    /// No session with any of its hosts: every address refused, was
    /// unreachable or timed out, sent no greeting or a refusing one, or
    /// refused EHLO/HELO or TLS; or its name could not be resolved now.
    /// `dsn` and `reason` are the last host's failure (a temporary one).
    Unreachable { dsn: Enhanced, reason: String },
}

/// Write one value as a JSON line.
pub async fn write_line<W, T>(w: &mut W, value: &T) -> std::io::Result<()>
where
    W: AsyncWriteExt + Unpin,
    T: Serialize,
{
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Read one JSON line; `Ok(None)` at end of stream.
pub async fn read_line<R, T>(r: &mut R) -> std::io::Result<Option<T>>
where
    R: AsyncBufReadExt + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A role's error that restarting cannot cure (its configuration, its
/// sandbox, a queue owned by another queue manager): the role exits with
/// sysexits' EX_CONFIG (78), and the supervisor stops instead of
/// restarting it forever (systemd: `RestartPreventExitStatus=78`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unrecoverable(pub String);

/// The exit status of a role that cannot run as configured.
pub const EX_CONFIG: i32 = 78;

/// qmgr's sockets besides its control socket, when handed over (by the
/// supervisor or systemd).
pub(crate) struct QmgrSide {
    /// The world-connectable socket on which only the listing is served.
    pub showq: Option<std::os::unix::net::UnixListener>,
    /// The metrics role's socket (0600): the exposition, nothing else.
    pub metrics: Option<std::os::unix::net::UnixListener>,
}
