//! Where one recipient goes: qmgr's routing decision, a pure function of
//! the address, the transport table and the configuration (Postfix's
//! trivial-rewrite resolve step, in its order):
//!
//! 1. the transport table's answer for the address (see
//!    [`crate::transport::TransportTable`] for the lookup order):
//!    `local:` → the local agent; `error:text` → bounce now with that text
//!    (its status code when it opens with a 5.x.x one, else 5.0.0);
//!    `discard:text` → reported delivered, nothing delivered;
//!    `smtp:nexthop` → SMTP to that next hop; `smtp:` → the default route;
//!    `lmtp:nexthop` → the smtp agent in LMTP mode, to that next hop;
//!    a broken entry → defer (4.3.0) until the table is fixed;
//! 2. no answer: a local domain (`local.domains`, Postfix mydestination)
//!    or a bare name → the local agent; a virtual mailbox domain
//!    (`virtual.mailbox_domains`) → `virtual.transport`, as a transport
//!    table answer (a domain table that cannot be read defers, 4.3.0);
//! 3. the default route: `relay.host` (Postfix relayhost) when set, else
//!    the recipient's domain with MX lookup, or the address literal of a
//!    `user@[192.0.2.1]` recipient without it.

use crate::config::Config;
use crate::outcome::{Enhanced, code};
use crate::transport::{Nexthop, Transport, TransportTable, split_status};

/// The routing decision for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The local delivery agent.
    Local,
    /// The smtp delivery agent, to this next hop (in LMTP mode when the
    /// next hop's `lmtp` is set).
    Smtp(Nexthop),
    /// Bounce at once (an `error:` entry): `dsn` is 5.x.x.
    Bounce { dsn: Enhanced, reason: String },
    /// Report delivered, deliver nothing (a `discard:` entry): `dsn` is 2.x.x.
    Discard { dsn: Enhanced, reason: String },
    /// Try again later (a broken table entry, an unreadable table file).
    Defer { dsn: Enhanced, reason: String },
}

/// Route `address` (as queued) with `table` and `cfg`.
pub fn route(address: &str, table: &TransportTable, cfg: &Config) -> Route {
    let domain = address.rsplit_once('@').map(|(_, d)| d);
    match table.lookup(address, &cfg.local.recipient_delimiter) {
        Some(Ok(t)) => of_transport(t, domain.unwrap_or(""), cfg),
        Some(Err(broken)) => Route::Defer {
            dsn: code::SYSTEM_TEMP,
            reason: format!("transport table entry unusable: {broken}"),
        },
        None => match domain {
            None => Route::Local,
            Some(d) if cfg.is_local_domain(d.strip_suffix('.').unwrap_or(d)) => Route::Local,
            Some(d) => virtual_mailbox_route(d, cfg).unwrap_or_else(|| default_route(d, cfg)),
        },
    }
}

/// A virtual mailbox domain's recipients go to `virtual.transport`
/// (`None`: `domain` is not one).
fn virtual_mailbox_route(domain: &str, cfg: &Config) -> Option<Route> {
    match crate::virtual_mailbox::is_domain(cfg, domain) {
        Ok(false) => None,
        Ok(true) => Some(match &cfg.r#virtual.transport {
            Some(t) => of_transport(t, domain, cfg),
            // The configuration refuses this; a defer, should it happen.
            None => Route::Defer {
                dsn: code::SYSTEM_TEMP,
                reason: "virtual.transport is not set".into(),
            },
        }),
        Err(e) => Some(Route::Defer {
            dsn: code::SYSTEM_TEMP,
            reason: format!("virtual.mailbox_domains lookup failed: {e}"),
        }),
    }
}

/// Where a transport result sends a recipient of `domain`.
fn of_transport(t: &Transport, domain: &str, cfg: &Config) -> Route {
    match t {
        Transport::Local => Route::Local,
        Transport::Smtp(Some(nexthop)) => Route::Smtp(nexthop.clone()),
        Transport::Smtp(None) => default_route(domain, cfg),
        Transport::Lmtp(nexthop) => Route::Smtp(nexthop.clone()),
        Transport::Error(text) => {
            let (dsn, text) = split_status(text, b'5', code::PERM);
            Route::Bounce {
                dsn,
                reason: if text.is_empty() {
                    "mail for this address is not accepted (transport table)".into()
                } else {
                    text.to_string()
                },
            }
        }
        Transport::Discard(text) => {
            let (dsn, text) = split_status(text, b'2', code::OK);
            Route::Discard {
                dsn,
                reason: if text.is_empty() {
                    "discarded".into()
                } else {
                    format!("discarded: {text}")
                },
            }
        }
    }
}

/// The relay host when set, else the domain itself: with MX lookup for a
/// name, without for an address literal.
fn default_route(domain: &str, cfg: &Config) -> Route {
    if let Some(relay) = &cfg.relay.host {
        return Route::Smtp(relay.clone());
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.starts_with('[') {
        return match Nexthop::parse(domain) {
            Ok(n) if n.port.is_none() => Route::Smtp(n),
            _ => Route::Bounce {
                dsn: code::BAD_SYSTEM,
                reason: format!("bad address literal {domain:?} in the recipient"),
            },
        };
    }
    if domain.is_empty() {
        return Route::Local;
    }
    Route::Smtp(Nexthop {
        host: domain.to_lowercase(),
        port: None,
        mx: true,
        lmtp: false,
        unix: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::transport::parse_file;

    fn config() -> Config {
        let mut c = Config::builtin();
        c.local.domains = vec!["mail.test.example".into(), "localhost".into()];
        c.local.recipient_delimiter = "+".into();
        c
    }

    fn table(text: &str) -> TransportTable {
        let (f, _) = parse_file(text, Path::new("t"));
        TransportTable::new(&Default::default(), vec![f])
    }

    fn hop(text: &str) -> Route {
        Route::Smtp(Nexthop::parse(text).unwrap())
    }

    #[test]
    fn without_a_table_local_domains_go_local_the_rest_by_mx() {
        let (c, t) = (config(), TransportTable::default());
        assert_eq!(route("u@mail.test.example", &t, &c), Route::Local);
        assert_eq!(route("u@LOCALHOST", &t, &c), Route::Local);
        assert_eq!(route("u@localhost.", &t, &c), Route::Local);
        assert_eq!(route("root", &t, &c), Route::Local);
        assert_eq!(route("u@Remote.Example", &t, &c), hop("remote.example"));
        assert_eq!(route("u@[192.0.2.1]", &t, &c), hop("[192.0.2.1]"));
        assert_eq!(
            route("u@[IPv6:2001:db8::1]", &t, &c),
            hop("[ipv6:2001:db8::1]")
        );
        assert!(matches!(route("u@[bad", &t, &c), Route::Bounce { dsn, .. } if dsn == "5.1.2"));
    }

    #[test]
    fn the_relay_host_takes_every_remote_recipient_null_client() {
        let mut c = config();
        c.local.domains = vec!["ws.foo.example".into()];
        c.relay.host = Some(Nexthop::parse("[mail.foo.example]").unwrap());
        let t = TransportTable::default();
        assert_eq!(route("u@ws.foo.example", &t, &c), Route::Local);
        assert_eq!(route("u@foo.example", &t, &c), hop("[mail.foo.example]"));
        assert_eq!(route("u@[192.0.2.1]", &t, &c), hop("[mail.foo.example]"));
        assert_eq!(route("u@localhost", &t, &c), hop("[mail.foo.example]"));
    }

    #[test]
    fn the_table_wins_over_local_domains_and_the_relay_host() {
        let mut c = config();
        c.relay.host = Some(Nexthop::parse("[relay.example]:2525").unwrap());
        let t = table(
            "mail.test.example smtp:[inner.example]\n\
             remote.example    local:\n\
             .sub.example      error:5.7.1 no mail for you\n\
             user@gone.example error:gone for good\n\
             gone.example      error:4.2.0 later\n\
             quiet.example     discard:2.6.0 sink\n\
             silent.example    discard:\n\
             default.example   smtp:\n\
             mx.example        smtp:mx.example:587\n\
             broken.example    nope:\n",
        );
        assert_eq!(route("u@mail.test.example", &t, &c), hop("[inner.example]"));
        assert_eq!(route("u@remote.example", &t, &c), Route::Local);
        assert_eq!(
            route("u@a.sub.example", &t, &c),
            Route::Bounce {
                dsn: crate::outcome::code::NOT_AUTHORIZED,
                reason: "no mail for you".into()
            }
        );
        // `.sub.example` does not match sub.example itself: default route.
        assert_eq!(route("u@sub.example", &t, &c), hop("[relay.example]:2525"));
        assert_eq!(
            route("user+ext@gone.example", &t, &c),
            Route::Bounce {
                dsn: crate::outcome::code::PERM,
                reason: "gone for good".into()
            }
        );
        assert_eq!(
            route("other@gone.example", &t, &c),
            Route::Bounce {
                dsn: crate::outcome::code::PERM,
                reason: "later".into()
            }
        );
        assert_eq!(
            route("u@quiet.example", &t, &c),
            Route::Discard {
                dsn: crate::outcome::code::DISCARDED,
                reason: "discarded: sink".into()
            }
        );
        assert_eq!(
            route("u@silent.example", &t, &c),
            Route::Discard {
                dsn: crate::outcome::code::OK,
                reason: "discarded".into()
            }
        );
        assert_eq!(
            route("u@default.example", &t, &c),
            hop("[relay.example]:2525")
        );
        assert_eq!(route("u@mx.example", &t, &c), hop("mx.example:587"));
        assert!(matches!(
            route("u@broken.example", &t, &c),
            Route::Defer { dsn, reason } if dsn == "4.3.0" && reason.contains("t:10: ")
        ));
        // Without a relay host, `smtp:` is the recipient's own MX.
        c.relay.host = None;
        assert_eq!(route("u@default.example", &t, &c), hop("default.example"));
    }

    #[test]
    fn virtual_mailbox_domains_go_to_the_virtual_transport_unless_the_table_says() {
        let mut c = config();
        c.r#virtual.mailbox_domains = vec!["v.example".into()];
        c.r#virtual.transport = Transport::parse("lmtp:unix:/run/dovecot/lmtp").ok();
        let t = table("boss@v.example lmtp:inet:127.0.0.1:2424\n");
        assert_eq!(
            route("u@V.Example.", &t, &c),
            Route::Smtp(Nexthop::parse_lmtp("unix:/run/dovecot/lmtp").unwrap())
        );
        assert_eq!(
            route("boss@v.example", &t, &c),
            Route::Smtp(Nexthop::parse_lmtp("[127.0.0.1]:2424").unwrap())
        );
        assert_eq!(route("u@remote.example", &t, &c), hop("remote.example"));
        assert_eq!(route("u@mail.test.example", &t, &c), Route::Local);
        c.r#virtual.mailbox_domains = vec!["hash:/nonexistent/postern/vdomains".into()];
        assert!(matches!(
            route("u@v.example", &t, &c),
            Route::Defer { dsn, .. } if dsn == "4.3.0"
        ));
    }

    #[test]
    fn a_star_entry_routes_everything_unmatched() {
        let c = config();
        let t = table("* smtp:[smarthost.example]\nlocalhost local:\n");
        assert_eq!(
            route("u@anything.example", &t, &c),
            hop("[smarthost.example]")
        );
        // `*` also matches local domains: the table comes first (Postfix).
        assert_eq!(
            route("u@mail.test.example", &t, &c),
            hop("[smarthost.example]")
        );
        assert_eq!(route("u@localhost", &t, &c), Route::Local);
        assert_eq!(route("root", &t, &c), Route::Local);
    }
}
