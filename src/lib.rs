//! postern: a mail transfer agent for Linux servers.
//!
//! One library, one binary. The binary (`src/main.rs`) only dispatches; each
//! role lives in its own module (`smtpd`, `qmgr`, `local`, `smtp`, and the
//! clients `sendmail` and `mailq`) and the roles never name each other:
//! they meet in the shared modules (the queue, `ipc` with its socket names
//! and qmgr client, `agent`, the skeleton of the delivery agents, `wire`,
//! the formats on the wire, the configuration). The supervisor names a
//! role only to start it. `tests/imports.rs` keeps it so; see
//! `docs/architecture.md` for the map.

pub mod address;
pub(crate) mod agent;
pub mod aliases;
pub mod auth_results;
pub mod certs;
pub mod check;
pub mod config;
pub mod content;
pub mod dkim;
pub(crate) mod dns;
pub(crate) mod dsn;
pub mod ipc;
pub mod local;
pub mod logging;
pub mod maildrop;
pub mod mailq;
pub mod maps;
pub mod metrics;
pub mod milter;
pub(crate) mod notify;
pub mod outcome;
pub mod policy;
pub mod qmgr;
pub mod qshape;
pub mod queue;
pub mod reply;
pub(crate) mod rewrite;
pub mod role;
pub mod sandbox;
pub mod sasl;
pub mod sendmail;
pub mod smtp;
pub mod smtpd;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod systemd;
pub mod transport;
pub(crate) mod users;
pub mod virtual_mailbox;
pub(crate) mod watch;
pub mod wire;
