//! End to end: the real daemons (`postern start --foreground`) on
//! loopback, real sockets, real queue files, real Maildirs. One test
//! binary; each module is one concern.

mod aliases;
mod bdat;
mod bounce;
mod check_no_system;
mod checks;
mod client_names;
mod common;
mod config;
mod crash;
mod damage;
mod dkim;
mod forward;
mod golden;
mod import_postfix;
mod journal;
mod lmtp;
mod logs;
mod mailbox_transport;
mod maildrop;
mod metrics;
mod milter;
mod milter_real;
mod misconfig;
mod nixos;
mod notify;
mod outbound;
mod policy;
mod queue;
mod routing;
mod sandbox;
mod sasl;
mod sendmail;
mod smtp;
mod spf_suite;
mod starttls;
mod stress;
mod submission;
mod supervisor;
mod systemctl;
mod testssl;
mod units;
mod user;
mod verify;
mod virtual_domains;
