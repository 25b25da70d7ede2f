//! `postern daemon smtp`: the SMTP and LMTP delivery agent (Postfix
//! smtp(8) and lmtp(8)).
//!
//! # Security
//!
//! `smtp` runs as the postern user with no capabilities. Its Landlock room
//! (see [`crate::sandbox`]) lets it read system files (`/etc`, so
//! /etc/resolv.conf and /etc/ssl/certs, and the certificates under
//! /usr/share/ca-certificates), its configuration, the queue and the
//! password tables of its relay logins (`relay.sasl_password_files`)
//! and the DKIM private keys (`dkim.keys`: its room alone has them, so
//! smtpd never can read one), write nothing, connect out over TCP, and
//! connect to the Unix sockets of its `lmtp:unix:` next hops (their
//! directories, taken at its start). It trusts qmgr's requests (only the
//! postern user can connect) but still refuses a content path outside the
//! queue, and never puts a control character of an address into a command.
//! It trusts nothing the remote server says: replies are parsed by a
//! bounded sans-IO parser (`reply`: lines cut at 512 bytes, a line of
//! more than 4096 bytes or a reply of more than 100 lines refused, so a
//! reply never takes more than about 400 KiB; control characters and
//! invalid UTF-8 replaced), every read and write has its stage's
//! timeout, data that arrives after a STARTTLS reply ends the session, and
//! a server's certificate is trusted only at `verify`. A relay login's
//! password goes only to the server it is for, only over TLS unless
//! `relay.sasl_plaintext` says otherwise, and never into a log line or a
//! delivery's reason.
//!
//! # What it does
//!
//! Delivers mail to other hosts. qmgr sends one
//! [`SmtpRequest`](crate::ipc::SmtpRequest) per message and next hop (the
//! relay host, a transport table's `smtp:[host]:port`, or the recipients'
//! domain for MX delivery), with the recipients that go there; `smtp`
//! answers one [`SmtpResult`](crate::ipc::SmtpResult), one result per
//! recipient.
//!
//! An `lmtp:` next hop (a transport table entry, `virtual.transport`, or
//! `local.mailbox_transport` for the mailboxes local passed to qmgr:
//! `lmtp:unix:/run/dovecot/lmtp`, `lmtp:inet:host:port`) is delivered the
//! same way in LMTP mode (RFC 2033): over TCP or a Unix-domain socket,
//! `LHLO` instead of EHLO, no STARTTLS, AUTH or DKIM signing, and after
//! the data one reply per accepted recipient, each that recipient's
//! outcome. The steps:
//!
//! 1. a delivery slot for the next hop: at most
//!    `smtp.destination_concurrency_limit` at once (`pool`);
//! 2. an idle session to the same next hop, kept from an earlier message
//!    for `smtp.connection_cache_time`, is used again after an RSET (a
//!    stale one is simply replaced, without counting as a failure);
//! 3. else the next hop's hosts (`dns`): `[host]` and address literals
//!    without MX lookup, `host` by its MX records (preference order,
//!    random among equals; no MX: the host's own addresses; a null MX
//!    bounces `5.1.10`; an MX naming `server.hostname` and those after it
//!    are dropped, `5.4.6 mail for DOMAIN loops back to myself` if none is
//!    left); NXDOMAIN bounces `5.4.4`, a temporary DNS failure defers
//!    `4.4.3`, with Postfix's texts (`Host or domain name not found. Name
//!    service error for name=... type=MX: Host not found, try again`);
//! 4. each address in turn (`client`): connect (from `smtp.bind_address`),
//!    greeting, EHLO (HELO when EHLO is refused), STARTTLS at
//!    `tls.outbound` (`tls`), EHLO again, AUTH when
//!    `relay.sasl_password_files` has a login for the server (`auth`:
//!    PLAIN, else LOGIN; without TLS only with `relay.sasl_plaintext`;
//!    `4.7.0 SASL authentication failed; cannot authenticate to server
//!    HOST[IP]: ...` where it cannot be given, `SASL authentication failed;
//!    server HOST[IP] said: 535 ...` deferred when it is refused); a
//!    failure there leaves the recipients for the next address: `connect
//!    to HOST[IP]:PORT: Connection refused` (4.4.1), `host HOST[IP]
//!    refused to talk to me: REPLY` (a 5xx greeting only defers, as Postfix's
//!    `smtp_skip_5xx_greeting`), `conversation with HOST[IP] timed out
//!    while receiving the initial server greeting` (4.4.2);
//! 5. before the first transaction, DKIM signing (`dkim`, see
//!    [`crate::dkim`]): mail of an origin `dkim.sign` names whose
//!    `From:` domain has keys gets one `DKIM-Signature:` per key, sent
//!    before the content in every transaction (`ID: DKIM-Signature field
//!    added (s=SELECTOR, d=DOMAIN)`, as OpenDKIM logs it); a key that
//!    cannot be used defers the message `4.7.5`;
//! 6. the transaction (`transaction`): MAIL FROM with SIZE, BODY=8BITMIME,
//!    SMTPUTF8, RET and ENVID as the server supports them, RCPT TO with
//!    NOTIFY and ORCPT, DATA, the content in wire form (`content`: CRLF,
//!    dot-stuffed), all pipelined when the server offers PIPELINING. A
//!    message above the server's SIZE bounces `5.3.4` unsent; one that
//!    needs SMTPUTF8 (an address is not ASCII) bounces `5.6.7` where it is
//!    not offered. Each recipient gets its own outcome: `2xx` to the end
//!    of the data sent, `5xx` bounced, `4xx` deferred — and a deferred
//!    recipient is tried at the next host, as in Postfix, until the last
//!    one (at most 5 addresses and 2 sessions per delivery).
//!
//! Remote replies are quoted in the reason (`host HOST[IP] said: 550 5.1.1
//! <b@x>: unknown user (in reply to RCPT TO command)`), in
//! `DeliveryResult::remote_mta` (`dns; HOST`) and `diagnostic` (`smtp;
//! REPLY`) for the DSN, and in the log line, Postfix's shape:
//! `ID: to=<rcpt>, relay=host[ip]:port, [conn_use=N, ]delay=1.2,
//! delays=a/b/c/d, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)`
//! (`relay=none` when no session was made).
//!
//! TLS levels (`tls.outbound`, Postfix `smtp_tls_security_level`): `none`;
//! `may` (STARTTLS when offered, any certificate; a failed handshake is
//! retried once in plain text); `encrypt` (STARTTLS required, any
//! certificate: `4.7.4 TLS is required, but was not offered by host
//! HOST[IP]`); `verify` (required and verified against `tls.ca_file` or the
//! system's roots, for the next hop's host or the MX host's name:
//! `4.7.5 Server certificate not trusted` / `not verified`).
//!
//! # Inputs and outputs
//!
//! * In: connections on the `smtp-client` socket (0600, the postern
//!   user's: only qmgr), one JSON request a line. Requests are worked on
//!   concurrently (on one connection and across connections); the results
//!   on one connection come back in the order of the requests. The content
//!   is read from the queue, read-only, in chunks, where the request says.
//! * Out: SMTP over TCP to other hosts; results to qmgr; log lines
//!   (`postern/smtp`) with the journal fields `QUEUE_ID`, `RECIPIENT`,
//!   `STATUS`. With the metrics on (`metrics.listen`), a result carries
//!   what the agent counted since the last one (its TLS handshakes,
//!   `postern_tls_handshakes_total{direction="outbound"}`), and the first
//!   result on a connection the agent's process ([`crate::ipc::Started`]).
//!
//! # Specifications
//!
//! RFC 5321 (SMTP, MX handling), RFC 2920 (PIPELINING), RFC 3207
//! (STARTTLS), RFC 4954 (AUTH) with RFC 4616 (PLAIN), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
//! RFC 3461 (DSN parameters), RFC 3463 / RFC 2034 (enhanced status codes),
//! RFC 7505 (null MX), RFC 6376 and RFC 8463 (DKIM signing); Postfix
//! smtp(8) for texts, limits and log lines.
//!
//! # Service manager and reload
//!
//! `READY=1` once the socket is served, `STATUS=smtp: N deliveries in
//! progress`, `STOPPING=1` on SIGTERM (see [`crate::notify`]). SIGHUP
//! reloads the configuration in place: requests that arrive afterwards use
//! the new one (a new resolver, TLS settings, connection cache and DKIM keys);
//! deliveries in progress finish with theirs.
//!
//! # Configuration
//!
//! * `smtp.port` (the `smtp` service, 25), `dns.servers`,
//!   `smtp.helo_name` (`smtp_helo_name`), `smtp.bind_address`
//!   (`smtp_bind_address`)
//! * `smtp.connect_timeout`, `smtp.helo_timeout`, `smtp.starttls_timeout`,
//!   `smtp.mail_timeout`, `smtp.rcpt_timeout`, `smtp.data_init_timeout`,
//!   `smtp.data_xfer_timeout`, `smtp.data_done_timeout`,
//!   `smtp.quit_timeout` (Postfix's `smtp_*_timeout`)
//! * `smtp.destination_concurrency_limit`,
//!   `smtp.destination_recipient_limit` (a larger request is sent as
//!   several transactions), `smtp.connection_cache_time`
//! * `tls.outbound`, `tls.ca_file`
//! * `relay.sasl_password_files` (`smtp_sasl_password_maps`; a login
//!   found is `smtp_sasl_auth_enable`), `relay.sasl_plaintext`
//!   (`smtp_sasl_security_options` without `noplaintext`)
//! * `dkim.keys`, `dkim.headers`, `dkim.canonicalization`, `dkim.sign`
//!   with `relay.networks` (OpenDKIM's KeyTable, SignHeaders,
//!   Canonicalization, InternalHosts)
//! * `server.hostname` (`myhostname`: the MX loop check)
//! * `queue.directory`: where the content lies
//! * fixed, Postfix's defaults: `smtp_skip_5xx_greeting = yes`,
//!   `smtp_skip_quit_response = yes`, `smtp_mx_address_limit = 5`,
//!   `smtp_mx_session_limit = 2`, `smtp_rset_timeout = 20s`
//!
//! Not done: SASL mechanisms other than PLAIN and LOGIN (CRAM-MD5,
//! XOAUTH2), logins by sender (`smtp_sender_dependent_authentication`),
//! the 535 cache (`smtp_sasl_auth_cache_name`), DANE, the EHLO loop check
//! (a server that greets with our own name), `relayed` DSNs for servers
//! without DSN.

mod auth;
mod client;
mod content;
mod deliver;
mod dkim;
mod dns;
mod outcome;
mod pool;
pub mod reply;
mod tls;
mod transaction;

use std::sync::Arc;

use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::agent::{DeliveryAgent, Live};
use crate::config::Config;
use crate::ipc::{self, DeliveryStatus, SmtpRequest, SmtpResult};
use crate::notify::{self, reload::Reload};
use crate::outcome::code;

pub(crate) use deliver::Agent;

/// Requests in flight on one qmgr connection, at most; more wait to be
/// read.
const IN_FLIGHT_PER_CONNECTION: usize = 256;

/// Serve qmgr's requests on the `smtp-client` socket until SIGTERM;
/// SIGHUP reloads the configuration for new requests.
pub(crate) async fn run(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    reload: Reload,
) -> anyhow::Result<()> {
    notify::until_terminated(serve(config, listener, Some(reload))).await
}

/// [`run`] without signals (tests): serve `listener`, reloading on
/// SIGHUP when `reload` is given.
pub(crate) async fn serve(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    // Outbound TLS handshakes, sent to qmgr with the results.
    crate::metrics::registry::sink::enable(!config.metrics.listen.is_empty());
    let live = Arc::new(Live::new(Agent::new(config)));
    crate::agent::serve(listener, live, reload).await
}

impl DeliveryAgent for Agent {
    const ROLE: &'static str = "smtp";
    const SOCKET: &'static str = "smtp-client";

    fn config(&self) -> &Arc<Config> {
        Agent::config(self)
    }

    /// A new resolver, TLS settings, connection cache and DKIM keys.
    fn reconfigured(&self, config: Arc<Config>) -> Agent {
        Agent::new(config)
    }

    /// Read requests and start each at once; answer them in order. A
    /// malformed line ends the reading (the requests before it are still
    /// answered).
    async fn serve_connection(live: Arc<Live<Agent>>, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let (queue, mut answers) = mpsc::channel(IN_FLIGHT_PER_CONNECTION);
        let reader = async move {
            let mut read = BufReader::new(read);
            loop {
                let request: SmtpRequest = match ipc::read_line(&mut read).await {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(e) => {
                        log::warn!("bad delivery request, closing the connection: {e}");
                        return;
                    }
                };
                let fallback = internal_error(&request);
                let agent = live.agent();
                let delivering = live.delivering();
                let task = tokio::spawn(async move {
                    let result = agent.deliver(&request).await;
                    drop(delivering);
                    result
                });
                if queue.send((fallback, task)).await.is_err() {
                    return;
                }
            }
        };
        let writer = async move {
            let mut first = true;
            while let Some((fallback, task)) = answers.recv().await {
                let mut result = match task.await {
                    Ok(result) => result,
                    Err(e) => {
                        log::error!("a delivery failed: {e}");
                        fallback
                    }
                };
                if crate::metrics::registry::sink::enabled() {
                    let counts = crate::metrics::registry::sink::take();
                    result.counts = (!counts.is_empty()).then_some(counts);
                    if std::mem::take(&mut first) {
                        result.started = crate::role::me();
                    }
                }
                if let Err(e) = ipc::write_line(&mut write, &result).await {
                    log::warn!("cannot send a delivery result: {e}");
                    // Counted again with the next answer qmgr reads.
                    if let Some(counts) = result.counts {
                        crate::metrics::registry::sink::give_back(counts);
                    }
                    return;
                }
            }
        };
        tokio::join!(reader, writer);
    }
}

/// What qmgr hears about a delivery that died: try again later.
fn internal_error(request: &SmtpRequest) -> SmtpResult {
    SmtpResult {
        results: request
            .recipients
            .iter()
            .map(|r| {
                outcome::Outcome::local(
                    DeliveryStatus::Deferred,
                    code::SYSTEM_TEMP,
                    "internal error in the smtp agent",
                )
                .result(r.rcpt_index)
            })
            .collect(),
        hop: None,
        counts: None,
        started: None,
    }
}

#[cfg(test)]
mod tests;
