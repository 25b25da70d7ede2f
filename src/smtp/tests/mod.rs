//! The agent against scripted SMTP servers on loopback (`server`):
//! deliveries (`delivery`), hosts and connection reuse (`hosts`), the
//! resolver against a DNS server of its own (`dns`),
//! STARTTLS (`starttls`), AUTH to the server (`auth`), LMTP mode
//! (`lmtp`), and the qmgr
//! socket (`socket`).

mod auth;
mod delivery;
mod dns;
mod hosts;
mod lmtp;
mod server;
mod socket;
mod starttls;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, TlsLevel};
use crate::ipc::{DeliveryResult, SmtpRecipient, SmtpRequest};
use crate::queue::{Body, ContentRef};
use crate::transport::Nexthop;

use super::Agent;

/// A configuration for tests: the queue in `queue`, short timeouts, no TLS.
pub(crate) fn config(queue: &Path) -> Config {
    let mut c = Config::builtin();
    c.queue.directory = queue.to_path_buf();
    c.server.hostname = "client.test".into();
    c.smtp.helo_name = "client.test".into();
    // Never asked: the tests use address literals or resolved hosts.
    c.dns.servers = vec!["127.0.0.1:9".parse().unwrap()];
    c.tls.outbound = TlsLevel::None;
    let t = Duration::from_secs(5);
    c.smtp.connect_timeout = t;
    c.smtp.helo_timeout = t;
    c.smtp.starttls_timeout = t;
    c.smtp.mail_timeout = t;
    c.smtp.rcpt_timeout = t;
    c.smtp.data_init_timeout = t;
    c.smtp.data_xfer_timeout = t;
    c.smtp.data_done_timeout = t;
    c.smtp.quit_timeout = t;
    c
}

pub(crate) struct Setup {
    pub queue: tempfile::TempDir,
    pub agent: Agent,
}

pub(crate) fn setup(tweak: impl FnOnce(&mut Config)) -> Setup {
    let queue = tempfile::tempdir().unwrap();
    let mut c = config(queue.path());
    tweak(&mut c);
    let agent = Agent::new(Arc::new(c));
    Setup { queue, agent }
}

/// A request for `content` to `[127.0.0.1]:port`, for `recipients`.
pub(crate) fn request(queue: &Path, port: u16, recipients: &[&str], content: &[u8]) -> SmtpRequest {
    std::fs::create_dir_all(queue.join("incoming")).unwrap();
    let mut segment = b"RECORD HEADER".to_vec();
    segment.extend_from_slice(content);
    std::fs::write(queue.join("incoming/S1.log"), segment).unwrap();
    SmtpRequest {
        id: "0000000000001A".parse().unwrap(),
        sender: "alice@example.org".into(),
        recipients: recipients
            .iter()
            .enumerate()
            .map(|(i, a)| SmtpRecipient {
                rcpt_index: i + 10,
                address: a.to_string(),
                original: None,
                orcpt: None,
                notify: None,
            })
            .collect(),
        nexthop: Nexthop::parse(&format!("[127.0.0.1]:{port}")).unwrap(),
        content: ContentRef::Segment {
            path: "incoming/S1.log".into(),
            offset: 13,
            len: content.len() as u64,
        },
        size: content.len() as u64,
        body: Body::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        arrival_us: 1_000_000,
        active_us: 1_100_000,
        client: Default::default(),
    }
}

pub(crate) const MESSAGE: &[u8] = b"Subject: test\n\nhello\n.\n..two\n.dot first\nlast line\n";

/// Deliver and return the results.
pub(crate) async fn deliver(s: &Setup, r: &SmtpRequest) -> Vec<DeliveryResult> {
    let result = s.agent.deliver(r).await;
    assert_eq!(result.results.len(), r.recipients.len());
    for (res, rc) in result.results.iter().zip(&r.recipients) {
        assert_eq!(res.rcpt_index, rc.rcpt_index);
    }
    result.results
}

/// Start a server with `script`, deliver `MESSAGE` to `recipients`
/// through it under a tweaked test configuration.
pub(crate) async fn exchange(
    script: server::Script,
    tweak: impl FnOnce(&mut Config),
    recipients: &[&str],
) -> (server::Server, Vec<DeliveryResult>) {
    let server = server::start(script).await;
    let s = setup(tweak);
    let r = request(s.queue.path(), server.addr.port(), recipients, MESSAGE);
    let results = deliver(&s, &r).await;
    (server, results)
}
