//! Several hosts for one next hop, and sessions used again.

use std::net::SocketAddr;

use super::server::{Script, refused_port, start};
use super::*;
use crate::ipc::DeliveryStatus::{Deferred, Sent};
use crate::ipc::HopStatus;
use crate::smtp::dns::Target;

fn target(host: &str, addr: SocketAddr) -> Target {
    Target {
        host: host.into(),
        addr: addr.into(),
    }
}

#[tokio::test]
async fn a_refused_connection_moves_on_to_the_next_host() {
    let dead: SocketAddr = format!("127.0.0.1:{}", refused_port().await)
        .parse()
        .unwrap();
    let server = start(Script::default()).await;
    let s = setup(|_| {});
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    let targets = vec![
        target("mx1.x.example", dead),
        target("mx2.x.example", server.addr),
    ];
    let result = s.agent.deliver_via(&r, Some(targets)).await;
    let res = &result.results[0];
    assert_eq!(res.status, Sent);
    assert_eq!(res.remote_mta.as_deref(), Some("dns; mx2.x.example"));
    assert_eq!(server.messages().len(), 1);
    // One host answered: the next hop is not dead.
    assert_eq!(result.hop, Some(HopStatus::Reached));
}

#[tokio::test]
async fn when_every_host_fails_the_last_error_decides() {
    let dead1: SocketAddr = format!("127.0.0.1:{}", refused_port().await)
        .parse()
        .unwrap();
    let dead2: SocketAddr = format!("127.0.0.1:{}", refused_port().await)
        .parse()
        .unwrap();
    let s = setup(|_| {});
    let r = request(s.queue.path(), dead2.port(), &["b@x.example"], MESSAGE);
    let targets = vec![
        target("mx1.x.example", dead1),
        target("mx2.x.example", dead2),
    ];
    let result = s.agent.deliver_via(&r, Some(targets)).await;
    let res = &result.results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.4.1"));
    assert_eq!(
        res.reason,
        format!(
            "connect to mx2.x.example[127.0.0.1]:{}: Connection refused",
            dead2.port()
        )
    );
    assert_eq!(res.remote_mta, None);
    // No session anywhere: qmgr hears that the next hop is unreachable,
    // with the last failure.
    assert_eq!(
        result.hop,
        Some(HopStatus::Unreachable {
            dsn: res.dsn,
            reason: res.reason.clone()
        })
    );
}

/// A 4xx greeting, or a server that closes before greeting, is no
/// session either; a recipient refused in a session is.
#[tokio::test]
async fn a_refusing_or_silent_server_is_unreachable_a_refused_recipient_is_not() {
    let busy = start(Script {
        greeting: Some("421 4.3.2 too busy".into()),
        ..Script::default()
    })
    .await;
    let s = setup(|_| {});
    let r = request(s.queue.path(), busy.addr.port(), &["b@x.example"], MESSAGE);
    let result = s
        .agent
        .deliver_via(&r, Some(vec![target("mx1", busy.addr)]))
        .await;
    assert!(
        matches!(&result.hop, Some(HopStatus::Unreachable { dsn, reason })
            if dsn.as_str() == "4.3.2" && reason.contains("refused to talk to me: 421 4.3.2 too busy")),
        "{result:?}"
    );

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((c, _)) = silent.accept().await {
            drop(c);
        }
    });
    let result = s
        .agent
        .deliver_via(&r, Some(vec![target("mx1", silent_addr)]))
        .await;
    assert!(
        matches!(&result.hop, Some(HopStatus::Unreachable { reason, .. })
            if reason.contains("initial server greeting")),
        "{result:?}"
    );

    let refusing = start(Script {
        rcpt: vec![("b@".into(), "450 4.2.0 mailbox busy".into())],
        ..Script::default()
    })
    .await;
    let result = s
        .agent
        .deliver_via(&r, Some(vec![target("mx1", refusing.addr)]))
        .await;
    assert_eq!(result.results[0].status, Deferred);
    assert_eq!(result.hop, Some(HopStatus::Reached));
}

#[tokio::test]
async fn a_4xx_recipient_is_tried_at_the_next_host() {
    let greylisting = start(Script {
        rcpt: vec![("bob@".into(), "451 4.7.1 Greylisted".into())],
        ..Script::default()
    })
    .await;
    let backup = start(Script::default()).await;
    let s = setup(|_| {});
    let r = request(
        s.queue.path(),
        backup.addr.port(),
        &["bob@x.example", "carol@x.example"],
        MESSAGE,
    );
    let targets = vec![
        target("mx1.x.example", greylisting.addr),
        target("mx2.x.example", backup.addr),
    ];
    let results = s.agent.deliver_via(&r, Some(targets)).await.results;
    assert!(results.iter().all(|r| r.status == Sent), "{results:?}");
    // carol went to the first host, bob to the second.
    assert_eq!(results[0].remote_mta.as_deref(), Some("dns; mx2.x.example"));
    assert_eq!(results[1].remote_mta.as_deref(), Some("dns; mx1.x.example"));
    assert_eq!(
        (greylisting.messages().len(), backup.messages().len()),
        (1, 1)
    );
    assert!(backup.commands().iter().all(|c| !c.contains("carol")));
}

#[tokio::test]
async fn a_refusing_greeting_moves_on() {
    let refusing = start(Script {
        greeting: Some("554 5.7.1 no".into()),
        ..Script::default()
    })
    .await;
    let good = start(Script::default()).await;
    let s = setup(|_| {});
    let r = request(s.queue.path(), good.addr.port(), &["b@x.example"], MESSAGE);
    let targets = vec![target("mx1", refusing.addr), target("mx2", good.addr)];
    assert_eq!(
        s.agent.deliver_via(&r, Some(targets)).await.results[0].status,
        Sent
    );
}

#[tokio::test]
async fn the_connection_is_used_again_for_the_next_message() {
    let server = start(Script::default()).await;
    let s = setup(|_| {});
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(s.agent.idle_sessions(), 1);
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(server.accepts(), 1);
    assert_eq!(server.messages().len(), 2);
    let commands = server.commands();
    let rset = commands.iter().position(|c| c == "RSET").unwrap();
    assert!(commands[rset + 1].starts_with("MAIL FROM:"), "{commands:?}");
    assert_eq!(commands.iter().filter(|c| c.starts_with("EHLO")).count(), 1);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_cache_time() {
    let server = start(Script::default()).await;
    let s = setup(|c| c.smtp.connection_cache_time = std::time::Duration::from_millis(100));
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(s.agent.idle_sessions(), 0);
    assert_eq!(server.commands().last().map(String::as_str), Some("QUIT"));
    // The next message needs a new connection.
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn a_stale_cached_connection_is_replaced_without_failure() {
    // The server hangs at RSET: the probe times out, a new connection
    // follows.
    let server = start(Script {
        hang_at: Some("RSET"),
        ..Script::default()
    })
    .await;
    let s = setup(|c| c.smtp.mail_timeout = std::time::Duration::from_millis(300));
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn large_requests_are_split_by_the_recipient_limit() {
    let server = start(Script::default()).await;
    let s = setup(|c| c.smtp.destination_recipient_limit = 2);
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["a@x", "b@x", "c@x"],
        MESSAGE,
    );
    assert!(deliver(&s, &r).await.iter().all(|r| r.status == Sent));
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.accepts(), 1);
}
