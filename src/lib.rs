//! postern: a mail transfer agent for Linux servers.
//!
//! One library, one binary. The binary (`src/main.rs`) only dispatches; each
//! role lives in its own module (`smtpd`, `qmgr`, `local`) and the roles meet
//! only in the shared modules: the queue, the IPC types, the configuration.
//! See `docs/architecture.md` for the map.

pub mod address;
pub(crate) mod agent;
pub mod aliases;
pub mod check;
pub mod config;
pub mod content;
pub(crate) mod dns;
pub(crate) mod dsn;
pub mod ipc;
pub mod local;
pub mod logging;
pub mod maildrop;
pub mod mailq;
pub mod maps;
pub(crate) mod notify;
pub mod policy;
pub mod qmgr;
pub mod queue;
pub(crate) mod reply;
pub mod sandbox;
pub mod sendmail;
pub mod smtp;
pub mod smtpd;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod systemd;
pub mod transport;
pub(crate) mod watch;
pub mod wire;
