//! The Postfix parameters postern has no key for: one row each, with what
//! the parameter does and what postern does about it. The parameters that
//! have a key are not here: [`super::super::keys::KEYS`] names each key's
//! Postfix parameter.
//!
//! A `Planned` row with a `key` is translated to that key (by its kind,
//! as any other) as soon as the key exists in `KEYS`: merging the key
//! turns its import on, without a change here.

/// What postern does about a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Being built; `key` is the postern key it will become (`""`: not
    /// settled yet).
    Planned { issue: u32, key: &'static str },
    /// Not supported yet, without an issue (README's "Not yet").
    NotYet,
    /// Not planned; the note says why.
    NotPlanned,
    /// Has no effect in postern (nothing to translate): not reported as
    /// left out.
    Ignored,
}

/// One row of the table.
pub(crate) struct Row {
    pub name: &'static str,
    pub status: Status,
    /// What the parameter does (and, for `NotPlanned`, why not).
    pub note: &'static str,
}

const fn planned(name: &'static str, issue: u32, key: &'static str, note: &'static str) -> Row {
    Row {
        name,
        status: Status::Planned { issue, key },
        note,
    }
}

const fn not_yet(name: &'static str, note: &'static str) -> Row {
    Row {
        name,
        status: Status::NotYet,
        note,
    }
}

const fn no(name: &'static str, note: &'static str) -> Row {
    Row {
        name,
        status: Status::NotPlanned,
        note,
    }
}

const fn ignored(name: &'static str, note: &'static str) -> Row {
    Row {
        name,
        status: Status::Ignored,
        note,
    }
}

/// The row of `name`; `postscreen_*` parameters share one.
pub(crate) fn find(name: &str) -> Option<&'static Row> {
    if let Some(row) = ROWS.iter().find(|r| r.name == name) {
        return Some(row);
    }
    if name.starts_with("postscreen_") {
        return ROWS.iter().find(|r| r.name == "postscreen_*");
    }
    None
}

/// Whether `name` is a Postfix parameter the importer knows (a row here,
/// a key's Postfix name, a restriction list): `$name` of one that main.cf
/// does not set is empty, not undefined.
pub(crate) fn is_known(name: &str) -> bool {
    find(name).is_some()
        || crate::config::keys::KEYS.iter().any(|k| k.postfix == name)
        || name.starts_with("smtpd_") && name.ends_with("_restrictions")
}

/// The table, alphabetical.
pub(crate) static ROWS: &[Row] = &[
    ignored(
        "alias_database",
        "the files newaliases rebuilds; postern reads local.alias_files as text, there is nothing to build",
    ),
    no(
        "allow_min_user",
        "allows recipients that start with '-'; postern refuses them (they could be taken for options)",
    ),
    no(
        "allow_percent_hack",
        "rewrites user%domain to user@domain; postern never does",
    ),
    ignored(
        "append_dot_mydomain",
        "appends .$mydomain to user@host; postern does not (Postfix's default since compatibility level 1)",
    ),
    ignored(
        "biff",
        "notifies the comsat service of new mail; postern does not",
    ),
    no(
        "body_checks_size_limit",
        "how much of each body part body_checks see",
    ),
    not_yet(
        "bounce_queue_lifetime",
        "how long a bounce with a null sender is retried (postern uses queue.maximal_lifetime)",
    ),
    ignored(
        "broken_sasl_auth_clients",
        "also announces AUTH=… for Outlook Express 4 and Office 4 era clients; postern speaks RFC 4954 only",
    ),
    ignored(
        "command_directory",
        "where Postfix's commands are installed",
    ),
    ignored(
        "compatibility_level",
        "selects Postfix's defaults of older versions; the importer applies it, postern has one set of defaults",
    ),
    ignored("daemon_directory", "where Postfix's daemons are installed"),
    ignored(
        "data_directory",
        "Postfix's caches (TLS sessions, postscreen); postern keeps none on disk",
    ),
    ignored(
        "debug_peer_level",
        "verbose logging for debug_peer_list; postern's log level is set with RUST_LOG",
    ),
    ignored("debug_peer_list", "clients logged verbosely"),
    ignored("debugger_command", "debugger run by `postfix -D`"),
    no(
        "default_transport",
        "the transport for mail to other domains; postern delivers by SMTP (relay.host, relay.transport for exceptions)",
    ),
    no("disable_dns_lookups", "obsolete (smtp_dns_support_level)"),
    ignored(
        "enable_long_queue_ids",
        "long queue IDs; postern's queue IDs never repeat",
    ),
    no(
        "enable_original_recipient",
        "records the original recipient (X-Original-To); postern always does",
    ),
    ignored(
        "html_directory",
        "where Postfix's HTML documentation is installed",
    ),
    ignored(
        "inet_protocols",
        "IPv4 and/or IPv6; the importer applies it to the listeners",
    ),
    no(
        "lmtp_generic_maps",
        "rewrites addresses on the way out by LMTP",
    ),
    no(
        "lmtp_tls_mandatory_protocols",
        "TLS versions of the LMTP client; postern's TLS is 1.2 and 1.3 only",
    ),
    no(
        "lmtp_tls_protocols",
        "TLS versions of the LMTP client; postern's TLS is 1.2 and 1.3 only",
    ),
    not_yet(
        "local_recipient_maps",
        "which local users exist, for smtpd's User unknown; postern asks the password database and the aliases",
    ),
    ignored(
        "mail_name",
        "the mail system's name in $smtpd_banner; the importer expands it",
    ),
    ignored(
        "mail_owner",
        "Postfix's user; postern runs as its own user (server.user, default postern)",
    ),
    ignored("mail_version", "Postfix's version"),
    not_yet(
        "mailbox_command",
        "an external program (procmail, Dovecot's deliver) for local delivery",
    ),
    not_yet(
        "mailbox_size_limit",
        "the largest mailbox file local delivery appends to (0: no limit)",
    ),
    planned(
        "mailbox_transport",
        21,
        "local.mailbox_transport",
        "hands local mailbox delivery to another transport (lmtp:unix:…)",
    ),
    ignored("mailq_path", "where Postfix's mailq is installed"),
    ignored(
        "manpage_directory",
        "where Postfix's manual pages are installed",
    ),
    ignored(
        "meta_directory",
        "where Postfix's non-executable files are installed",
    ),
    no(
        "milter_macro_daemon_name",
        "the {daemon_name} macro milters see (ORIGINATING makes OpenDKIM sign); postern sends server.hostname and signs with DKIM itself ([dkim])",
    ),
    ignored(
        "milter_protocol",
        "the milter protocol version offered; postern negotiates version 6",
    ),
    ignored("newaliases_path", "where Postfix's newaliases is installed"),
    no(
        "plaintext_reject_code",
        "the code when TLS is required and absent; postern answers 530 5.7.0 (RFC 3207)",
    ),
    no(
        "postscreen_*",
        "postscreen, the zombie filter in front of smtpd; postern has no postscreen (reject_rbl_client in [restrictions] does the DNSBL part)",
    ),
    ignored("process_id", "set by each Postfix process"),
    ignored("process_name", "set by each Postfix process"),
    ignored(
        "proxy_read_maps",
        "tables proxymap may open; postern opens tables itself (proxy: is dropped)",
    ),
    ignored("proxy_write_maps", "tables proxymap may write"),
    ignored(
        "queue_directory",
        "Postfix's queue; postern keeps its own queue (queue.directory, /var/spool/postern): flush the Postfix queue before switching",
    ),
    ignored(
        "readme_directory",
        "where Postfix's README files are installed",
    ),
    not_yet("recipient_bcc_maps", "a BCC recipient added per recipient"),
    planned(
        "recipient_canonical_classes",
        21,
        "rewrite.recipient_canonical_classes",
        "which addresses recipient_canonical_maps rewrites",
    ),
    no(
        "relay_transport",
        "the transport for relay_domains; postern relays by SMTP",
    ),
    not_yet(
        "relocated_maps",
        "\"user has moved to new_location\" bounces (relocated(5))",
    ),
    ignored(
        "sample_directory",
        "where Postfix's sample files are installed",
    ),
    not_yet("sender_bcc_maps", "a BCC recipient added per sender"),
    planned(
        "sender_canonical_classes",
        21,
        "rewrite.sender_canonical_classes",
        "which addresses sender_canonical_maps rewrites",
    ),
    not_yet(
        "sender_dependent_default_transport_maps",
        "the transport chosen by the sender",
    ),
    not_yet(
        "sender_dependent_relayhost_maps",
        "the relay host chosen by the sender",
    ),
    ignored(
        "sendmail_path",
        "where Postfix's sendmail is installed; postern installs its own",
    ),
    ignored(
        "setgid_group",
        "Postfix's postdrop group; postern's sendmail submits through its socket",
    ),
    ignored(
        "shlib_directory",
        "where Postfix's shared libraries are installed",
    ),
    no(
        "show_user_unknown_table_name",
        "names the table in User unknown replies; postern's reply does not name it",
    ),
    not_yet(
        "smtp_address_preference",
        "IPv4 or IPv6 first when a host has both",
    ),
    ignored(
        "smtp_dns_support_level",
        "DNSSEC for the smtp client (for DANE, which postern does not have)",
    ),
    no(
        "smtp_generic_maps",
        "rewrites addresses on the way out (generic(5))",
    ),
    no(
        "smtp_header_checks",
        "header checks on the way out; postern checks arriving mail only ([checks])",
    ),
    ignored(
        "smtp_sasl_auth_enable",
        "SMTP AUTH in the smtp client; postern logs in whenever relay.sasl_password_files has a login",
    ),
    ignored(
        "smtp_sasl_auth_soft_bounce",
        "defers instead of bouncing on AUTH failure; postern defers",
    ),
    no(
        "smtp_sasl_mechanism_filter",
        "which AUTH mechanisms the smtp client uses; postern uses PLAIN, else LOGIN",
    ),
    no(
        "smtp_sender_dependent_authentication",
        "the login chosen by the sender",
    ),
    no(
        "smtp_tls_CApath",
        "a directory of trusted CA certificates; postern uses tls.ca_file, else the system's",
    ),
    not_yet(
        "smtp_tls_cert_file",
        "a client certificate for the smtp client",
    ),
    not_yet(
        "smtp_tls_key_file",
        "the key of the smtp client's certificate",
    ),
    ignored("smtp_tls_loglevel", "how much of TLS the smtp client logs"),
    no(
        "smtp_tls_mandatory_protocols",
        "TLS versions; postern's TLS is 1.2 and 1.3 only",
    ),
    ignored(
        "smtp_tls_note_starttls_offer",
        "logs servers that offer STARTTLS",
    ),
    not_yet("smtp_tls_policy_maps", "a TLS level per destination"),
    no(
        "smtp_tls_protocols",
        "TLS versions; postern's TLS is 1.2 and 1.3 only",
    ),
    ignored(
        "smtp_tls_session_cache_database",
        "Postfix's TLS session cache; postern keeps sessions in memory",
    ),
    no(
        "smtpd_authorized_xforward_hosts",
        "clients allowed to use XFORWARD (content filters); postern has no XFORWARD",
    ),
    no(
        "smtpd_command_filter",
        "rewrites SMTP commands before smtpd parses them",
    ),
    not_yet("smtpd_data_restrictions", "restrictions at DATA"),
    no("smtpd_discard_ehlo_keywords", "EHLO keywords not announced"),
    not_yet(
        "smtpd_end_of_data_restrictions",
        "restrictions after the message's final dot",
    ),
    not_yet("smtpd_helo_required", "refuses MAIL before HELO/EHLO"),
    ignored(
        "smtpd_proxy_timeout",
        "timeout of smtpd_proxy_filter, which postern does not have",
    ),
    not_yet(
        "smtpd_reject_unlisted_recipient",
        "rejects unknown recipients at RCPT; postern always does for its local domains",
    ),
    not_yet(
        "smtpd_reject_unlisted_sender",
        "rejects unknown senders in our own domains",
    ),
    no(
        "smtpd_restriction_classes",
        "named restriction lists for access tables",
    ),
    no(
        "smtpd_sasl_authenticated_header",
        "writes the login into the Received: field; postern never shows it",
    ),
    ignored(
        "smtpd_sasl_local_domain",
        "the realm appended to logins (Cyrus SASL)",
    ),
    no(
        "smtpd_sasl_security_options",
        "which AUTH mechanisms are offered; postern offers PLAIN and LOGIN, never anonymous",
    ),
    ignored(
        "smtpd_soft_error_limit",
        "errors before smtpd sleeps between replies",
    ),
    not_yet(
        "smtpd_tls_CAfile",
        "CAs for client certificates (postern does not ask for them yet)",
    ),
    not_yet(
        "smtpd_tls_CApath",
        "CAs for client certificates (postern does not ask for them yet)",
    ),
    ignored(
        "smtpd_tls_dh1024_param_file",
        "DH parameters; postern's TLS uses ECDHE only",
    ),
    ignored(
        "smtpd_tls_dh512_param_file",
        "DH parameters (obsolete); postern's TLS uses ECDHE only",
    ),
    ignored(
        "smtpd_tls_eecdh_grade",
        "ECDHE curves; postern chooses them (rustls)",
    ),
    no(
        "smtpd_tls_exclude_ciphers",
        "ciphers removed; postern offers TLS 1.2 and 1.3 AEAD ciphers only (rustls)",
    ),
    ignored("smtpd_tls_loglevel", "how much of TLS smtpd logs"),
    no(
        "smtpd_tls_mandatory_ciphers",
        "cipher grade when TLS is required; postern offers AEAD ciphers only",
    ),
    no(
        "smtpd_tls_mandatory_protocols",
        "TLS versions when TLS is required; postern's TLS is 1.2 and 1.3 only",
    ),
    no(
        "smtpd_tls_protocols",
        "TLS versions; postern's TLS is 1.2 and 1.3 only",
    ),
    no(
        "smtpd_tls_received_header",
        "TLS details in the Received: field",
    ),
    ignored(
        "smtpd_tls_session_cache_database",
        "Postfix's TLS session cache; postern keeps sessions in memory",
    ),
    ignored("smtputf8_enable", "SMTPUTF8 (RFC 6531)"),
    no(
        "swap_bangpath",
        "rewrites site!user to user@site; postern never does",
    ),
    no(
        "tls_high_cipherlist",
        "OpenSSL cipher list; postern's TLS is rustls",
    ),
    no(
        "tls_preempt_cipherlist",
        "server cipher preference; rustls uses its own order",
    ),
    ignored(
        "tls_random_source",
        "entropy for OpenSSL; postern's TLS uses the kernel's",
    ),
    no("tls_server_sni_maps", "a certificate per SNI name"),
    no(
        "tls_ssl_options",
        "OpenSSL options; postern's TLS is rustls (no compression, no renegotiation)",
    ),
    no(
        "unknown_local_recipient_reject_code",
        "the code of User unknown; postern answers 550 (the default)",
    ),
    no(
        "virtual_gid_maps",
        "the group of virtual mailboxes (virtual(8)); postern hands virtual mail to an LMTP server (Dovecot)",
    ),
    no(
        "virtual_mailbox_base",
        "the directory of virtual mailboxes (virtual(8)); postern hands virtual mail to an LMTP server (Dovecot)",
    ),
    planned(
        "virtual_mailbox_domains",
        21,
        "virtual.mailbox_domains",
        "domains with mailboxes of their own",
    ),
    planned(
        "virtual_mailbox_maps",
        21,
        "virtual.mailbox_maps",
        "the valid mailboxes of virtual_mailbox_domains",
    ),
    no(
        "virtual_minimum_uid",
        "the lowest uid of virtual mailboxes (virtual(8))",
    ),
    planned(
        "virtual_transport",
        21,
        "virtual.transport",
        "the transport of virtual_mailbox_domains (lmtp:unix:/path, lmtp:inet:host:port)",
    ),
    no(
        "virtual_uid_maps",
        "the owner of virtual mailboxes (virtual(8)); postern hands virtual mail to an LMTP server (Dovecot)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_each_with_a_note() {
        let lower = |s: &str| s.to_ascii_lowercase();
        for pair in ROWS.windows(2) {
            assert!(
                lower(pair[0].name) < lower(pair[1].name),
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for row in ROWS {
            assert!(!row.note.is_empty(), "{}", row.name);
        }
    }

    #[test]
    fn rows_do_not_shadow_keys() {
        for row in ROWS {
            let key = crate::config::keys::KEYS
                .iter()
                .find(|k| k.postfix == row.name);
            let translated_by_it = matches!(row.status, Status::Planned { key: k, .. } if key.is_some_and(|key| key.dotted() == k));
            assert!(
                key.is_none() || matches!(row.status, Status::Ignored) || translated_by_it,
                "{} is {} in KEYS",
                row.name,
                key.map(|k| k.dotted()).unwrap_or_default()
            );
        }
    }
}
