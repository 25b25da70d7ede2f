//! Postfix's defaults for the parameters the importer expands or
//! translates, as `postconf -d` of Postfix 3.7 (Debian 12) prints them.
//! Those that depend on `compatibility_level` are computed from it as
//! Postfix does (`mynetworks_style`, `relay_domains`,
//! `smtpd_relay_restrictions`); `myhostname` comes from `--hostname` or
//! `gethostname()`, `mydomain` from it.

use super::parse::MainCf;

/// `postconf -d` values that do not depend on anything but the host name.
const FIXED: &[(&str, &str)] = &[
    ("alias_database", "hash:/etc/aliases"),
    ("alias_maps", "hash:/etc/aliases, nis:mail.aliases"),
    ("command_directory", "/usr/sbin"),
    ("compatibility_level", "0"),
    ("config_directory", "/etc/postfix"),
    ("daemon_directory", "/usr/lib/postfix/sbin"),
    ("data_directory", "/var/lib/postfix"),
    ("default_database_type", "hash"),
    ("default_privs", "nobody"),
    ("default_transport", "smtp"),
    ("home_mailbox", ""),
    ("html_directory", "/usr/share/doc/postfix/html"),
    ("inet_interfaces", "all"),
    ("inet_protocols", "all"),
    (
        "local_recipient_maps",
        "proxy:unix:passwd.byname $alias_maps",
    ),
    ("local_transport", "local:$myhostname"),
    ("mail_name", "Postfix"),
    ("mail_owner", "postfix"),
    ("mail_spool_directory", "/var/mail"),
    ("mail_version", "3.7.11"),
    ("mailbox_command", ""),
    ("mailq_path", "/usr/bin/mailq"),
    ("manpage_directory", "/usr/share/man"),
    ("message_size_limit", "10240000"),
    ("meta_directory", "/etc/postfix"),
    ("milter_default_action", "tempfail"),
    (
        "mydestination",
        "$myhostname, localhost.$mydomain, localhost",
    ),
    ("myorigin", "$myhostname"),
    ("newaliases_path", "/usr/bin/newaliases"),
    ("process_id", ""),
    ("process_name", "postconf"),
    ("proxy_interfaces", ""),
    ("queue_directory", "/var/spool/postfix"),
    ("readme_directory", "/usr/share/doc/postfix"),
    ("recipient_delimiter", ""),
    ("relay_transport", "relay"),
    ("relayhost", ""),
    ("sample_directory", "/etc/postfix"),
    ("sendmail_path", "/usr/sbin/sendmail"),
    ("service_name", ""),
    ("setgid_group", "postdrop"),
    ("shlib_directory", "/usr/lib/postfix"),
    ("smtp_tls_security_level", ""),
    ("smtpd_banner", "$myhostname ESMTP $mail_name"),
    ("smtpd_sasl_auth_enable", "no"),
    ("smtpd_sasl_path", "smtpd"),
    ("smtpd_sasl_type", "cyrus"),
    ("smtpd_tls_auth_only", "no"),
    ("smtpd_tls_security_level", ""),
    ("stress", ""),
    ("virtual_transport", "virtual"),
];

/// The defaults, for one host name.
pub(crate) struct Defaults {
    hostname: String,
    domain: String,
}

impl Defaults {
    /// With `hostname` (`--hostname`), else `gethostname()`; without a
    /// dot, `.localdomain` is appended, as Postfix does.
    pub(crate) fn new(hostname: Option<&str>) -> Defaults {
        let name = match hostname {
            Some(h) => h.to_string(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_string()),
        };
        let hostname = if name.contains('.') {
            name
        } else {
            format!("{name}.localdomain")
        };
        let domain = hostname
            .split_once('.')
            .map_or("localdomain", |(_, d)| d)
            .to_string();
        Defaults { hostname, domain }
    }

    /// The default of `name` given main.cf (its `compatibility_level`),
    /// unexpanded; `None` for a parameter without a known default.
    pub(crate) fn get(&self, name: &str, cf: &MainCf) -> Option<String> {
        let level = cf
            .params
            .get("compatibility_level")
            .map_or("0", |p| p.value.as_str());
        let below = |than: u32| compat_major(level) < than;
        Some(match name {
            "myhostname" => self.hostname.clone(),
            "mydomain" => self.domain.clone(),
            "mynetworks_style" if below(2) => "subnet".into(),
            "mynetworks_style" => "host".into(),
            "relay_domains" if below(2) => "$mydestination".into(),
            "relay_domains" => String::new(),
            "smtpd_relay_restrictions" if below(1) => String::new(),
            "smtpd_relay_restrictions" => {
                "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination".into()
            }
            _ => FIXED.iter().find(|(n, _)| *n == name)?.1.to_string(),
        })
    }
}

/// The major number of a compatibility level (`3.6` → 3, `2` → 2).
fn compat_major(level: &str) -> u32 {
    level
        .split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0)
}
