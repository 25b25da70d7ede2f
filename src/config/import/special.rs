//! The main.cf parameters whose postern key takes another form: the
//! identity, local domains and mailbox, networks, relay host, transport
//! files, TLS, SASL and the restriction lists; and the Postfix defaults
//! that differ from postern's, written out so that the result behaves as
//! Postfix did.

use toml::Value as V;

use super::parse::split_list;
use super::restrictions;
use super::translate::{Work, boolean, restriction_stage, server_name, strings};

impl Work<'_> {
    /// Translates `name` if it is one of these; `false` if not.
    pub(crate) fn special(&mut self, name: &str, raw: &str, origin: &str) -> bool {
        let value = self.x.expand(raw).trim().to_string();
        match name {
            // Used by the listeners and the defaults below.
            "inet_interfaces"
            | "inet_protocols"
            | "mynetworks_style"
            | "home_mailbox"
            | "mail_spool_directory"
            | "smtpd_tls_cert_file"
            | "smtpd_tls_key_file"
            | "smtpd_tls_eccert_file"
            | "smtpd_tls_eckey_file" => {}
            "myhostname" | "mydomain" => self.identity(name, raw),
            "myorigin" => self.origin(raw, &value, origin),
            "mydestination" => self.local_domains(raw, origin),
            "alias_maps" => self.alias_files(&value, origin),
            "mynetworks" => self.networks(&value, origin),
            "relayhost" => self.relay_host(raw, origin),
            "transport_maps" => self.transport_files(&value, origin),
            "disable_vrfy_command" => match boolean(&value) {
                Ok(b) => self.set("smtpd.vrfy", V::Boolean(!b), name),
                Err(e) => self.leave_out(origin, name, &e),
            },
            "smtp_sasl_security_options" => {
                let noplaintext = split_list(&value).iter().any(|w| w == "noplaintext");
                self.set("relay.sasl_plaintext", V::Boolean(!noplaintext), name);
            }
            "default_transport" | "local_transport" | "relay_transport" => {
                self.class_transport(name, &value, origin)
            }
            "unknown_local_recipient_reject_code" if value == "550" => {
                self.note(
                    origin,
                    name,
                    "550: what postern answers for an unknown local user",
                );
            }
            "smtpd_sasl_security_options"
                if split_list(&value).iter().all(|w| w == "noanonymous") =>
            {
                self.note(
                    origin,
                    name,
                    "noanonymous: postern never offers anonymous AUTH",
                );
            }
            "smtp_tls_CApath" if value.trim_end_matches('/') == "/etc/ssl/certs" => {
                self.note(
                    origin,
                    name,
                    "the system's CA certificates: what postern trusts by default",
                );
            }
            "smtpd_use_tls" | "smtpd_enforce_tls" => self.old_tls(name, &value, origin),
            "smtp_tls_security_level" => self.outbound_tls(&value, origin),
            "smtpd_sasl_type" => self.sasl_type(name, &value, origin),
            "smtpd_sasl_path" => self.sasl_path(name, &value, origin),
            "mailbox_transport" if !value.is_empty() => {
                self.mailbox_transport(name, &value, origin)
            }
            "maps_rbl_domains" => self.set(
                "restrictions.rbl_domains",
                strings(split_list(&value)),
                name,
            ),
            _ => match restriction_stage(name) {
                Some(stage) => {
                    let list = restrictions::list(self, &value, stage, name, origin);
                    self.set(
                        &format!("restrictions.{}", stage.name()),
                        strings(list),
                        name,
                    );
                }
                None => return false,
            },
        }
        true
    }

    fn identity(&mut self, name: &str, raw: &str) {
        let Some(target) = server_name(name) else {
            return;
        };
        let kept = self.x.expand_keeping(raw, &server_name).trim().to_string();
        self.set(&format!("server.{target}"), V::String(kept), name);
    }

    /// Debian's myorigin may name a file whose first line is the value.
    fn origin(&mut self, raw: &str, value: &str, origin: &str) {
        if !value.starts_with('/') {
            self.identity("myorigin", raw);
            return;
        }
        match self.read_file(value) {
            Ok(text) => {
                let first = text.lines().next().unwrap_or("").trim().to_string();
                self.note(
                    origin,
                    "myorigin",
                    &format!("the first line of {value} (Debian's form)"),
                );
                self.set("server.origin", V::String(first), "myorigin");
            }
            Err(e) => self.leave_out(
                origin,
                "myorigin",
                &format!("cannot read the file it names: {e}"),
            ),
        }
    }

    fn local_domains(&mut self, raw: &str, origin: &str) {
        let kept = self.x.expand_keeping(raw, &server_name);
        let mut out = Vec::new();
        for item in split_list(&kept) {
            if item.starts_with('/') {
                match self.read_file(&item) {
                    Ok(text) => out.extend(file_words(&text)),
                    Err(e) => self.leave_out(origin, "mydestination", &format!("cannot read {e}")),
                }
            } else if item.contains(':') {
                self.leave_out(
                    origin,
                    "mydestination",
                    &format!(
                        "{item}: a table of local domains is not supported (list the domains)"
                    ),
                );
            } else {
                out.push(item);
            }
        }
        self.set("local.domains", strings(out), "mydestination");
    }

    fn alias_files(&mut self, value: &str, origin: &str) {
        let mut out = Vec::new();
        for item in split_list(value) {
            let item = item.strip_prefix("proxy:").unwrap_or(&item).to_string();
            match item.split_once(':') {
                Some(("hash" | "texthash" | "btree" | "cdb" | "lmdb" | "dbm", path))
                    if path.starts_with('/') =>
                {
                    out.push(path.to_string())
                }
                _ if item.starts_with('/') => out.push(item),
                _ => self.leave_out(
                    origin,
                    "alias_maps",
                    &format!("{item}: postern reads aliases(5) files only"),
                ),
            }
        }
        self.set("local.alias_files", strings(out), "alias_maps");
    }

    fn networks(&mut self, value: &str, origin: &str) {
        let mut out = Vec::new();
        for item in split_list(value) {
            if item.starts_with('/') {
                match self.read_file(&item) {
                    Ok(text) => out.extend(file_words(&text).iter().map(|n| network(n))),
                    Err(e) => self.leave_out(origin, "mynetworks", &format!("cannot read {e}")),
                }
            } else if item.starts_with('!') || super::translate::is_table_spec(&item) {
                self.leave_out(
                    origin,
                    "mynetworks",
                    &format!("{item}: only addresses and networks are supported"),
                );
            } else {
                out.push(network(&item));
            }
        }
        self.set("relay.networks", strings(out), "mynetworks");
    }

    fn relay_host(&mut self, raw: &str, origin: &str) {
        let kept = self.x.expand_keeping(raw, &server_name);
        let hosts = split_list(&kept);
        match hosts.as_slice() {
            [] => {}
            [one] => self.set("relay.host", V::String(one.clone()), "relayhost"),
            [first, ..] => {
                self.set("relay.host", V::String(first.clone()), "relayhost");
                self.leave_out(
                    origin,
                    "relayhost",
                    &format!("several relay hosts: postern takes one ({first})"),
                );
            }
        }
    }

    fn transport_files(&mut self, value: &str, origin: &str) {
        let mut out = Vec::new();
        for item in split_list(value) {
            let Some(spec) = restrictions::table(self, &item, "transport_maps", origin) else {
                continue;
            };
            match spec.split_once(':') {
                Some(("hash" | "texthash" | "btree" | "cdb" | "lmdb" | "dbm" | "sdbm", path)) => {
                    out.push(path.to_string())
                }
                _ => self.leave_out(
                    origin,
                    "transport_maps",
                    &format!(
                        "{spec}: postern reads transport(5) text files only (hash:, texthash:)"
                    ),
                ),
            }
        }
        self.set("relay.transport_files", strings(out), "transport_maps");
    }

    /// A transport for a whole address class: `error:` and `discard:`
    /// become entries of `relay.transport` (the local domains and `*`);
    /// the default transports need nothing.
    fn class_transport(&mut self, name: &str, value: &str, origin: &str) {
        let (kind, _) = value.split_once(':').unwrap_or((value, ""));
        let default = match name {
            "default_transport" => "smtp",
            "local_transport" => "local",
            _ => "relay",
        };
        if kind == default || (name == "relay_transport" && kind == "smtp") {
            return;
        }
        if !matches!(kind, "error" | "discard") {
            self.leave_out(origin, name, &format!("{value}: postern delivers locally, by SMTP, or with error:/discard: entries of relay.transport"));
            return;
        }
        let entry = if value.contains(':') {
            value.to_string()
        } else {
            format!("{value}:")
        };
        let domains = self.local_domain_names();
        match name {
            "default_transport" => {
                // Everything else: the local domains stay local.
                let mut table: Vec<(String, String)> = domains
                    .into_iter()
                    .map(|d| (d, "local:".to_string()))
                    .collect();
                table.push(("*".to_string(), entry));
                self.transport_entries(table, name);
            }
            "local_transport" if domains.is_empty() => {
                self.note(
                    origin,
                    name,
                    "no local domains (mydestination is empty): nothing is delivered locally",
                );
            }
            "local_transport" => {
                let table = domains.into_iter().map(|d| (d, entry.clone())).collect();
                self.transport_entries(table, name);
            }
            _ if self.x.value("relay_domains").trim().is_empty() => {
                self.note(origin, name, "relay_domains is empty: no effect");
            }
            _ => self.leave_out(
                origin,
                name,
                &format!("{value}: a transport for relay_domains is not supported"),
            ),
        }
    }

    /// mydestination's domains as literal names (transport table keys).
    fn local_domain_names(&mut self) -> Vec<String> {
        let value = self.x.value("mydestination");
        split_list(&value)
            .into_iter()
            .filter(|d| !d.contains([':', '/']))
            .map(|d| d.to_ascii_lowercase())
            .collect()
    }

    /// Adds entries to `relay.transport` (an inline table).
    fn transport_entries(&mut self, entries: Vec<(String, String)>, from: &str) {
        let mut table = toml::map::Map::new();
        if let Some(V::Table(t)) = self.entry("relay.transport") {
            table = t;
        }
        for (key, value) in entries {
            table.insert(key, V::String(value));
        }
        self.set("relay.transport", V::Table(table), from);
    }

    fn old_tls(&mut self, name: &str, value: &str, origin: &str) {
        match boolean(value) {
            Ok(true) => {
                let level = if name == "smtpd_enforce_tls" {
                    "encrypt"
                } else {
                    "may"
                };
                if !self.cf.params.contains_key("smtpd_tls_security_level") {
                    self.set("tls.inbound", V::String(level.into()), name);
                }
            }
            Ok(false) => {}
            Err(e) => self.leave_out(origin, name, &e),
        }
    }

    fn outbound_tls(&mut self, value: &str, origin: &str) {
        let name = "smtp_tls_security_level";
        let level = match value {
            "" => return,
            "none" | "may" | "encrypt" | "verify" => value,
            "secure" => "verify",
            "dane" => {
                self.leave_out(origin, name, "dane: postern has no DANE; written as \"may\" (TLS when offered, certificate not checked)");
                "may"
            }
            other => {
                self.leave_out(
                    origin,
                    name,
                    &format!("{other}: not supported (none, may, encrypt, verify)"),
                );
                return;
            }
        };
        self.set("tls.outbound", V::String(level.into()), name);
    }

    pub(crate) fn sasl_type(&mut self, name: &str, value: &str, origin: &str) {
        match value {
            "dovecot" => self.set("sasl.backend", V::String("dovecot".into()), name),
            other => self.leave_out(origin, name, &format!("{other}: postern asks Dovecot (or its own password file: sasl.backend = \"passwd\")")),
        }
    }

    /// Dovecot's socket: relative to Postfix's queue directory.
    pub(crate) fn sasl_path(&mut self, name: &str, value: &str, origin: &str) {
        if value.starts_with("inet:") {
            self.leave_out(
                origin,
                name,
                &format!("{value}: postern reaches Dovecot by its Unix socket only"),
            );
            return;
        }
        let path = if value.starts_with('/') {
            value.to_string()
        } else {
            format!("{}/{value}", self.x.value("queue_directory"))
        };
        if self.x.value("smtpd_sasl_type") != "dovecot" && !self.is_set("sasl.backend") {
            return;
        }
        self.set("sasl.dovecot_socket", V::String(path), name);
    }

    /// `mailbox_transport`: an LMTP server as `local.mailbox_transport`
    /// takes it. A relative `lmtp:unix:private/dovecot-lmtp` lies in
    /// Postfix's queue directory, where Postfix looks for it: resolved
    /// against `queue_directory` (said so in the report: the socket
    /// must be there for postern too, as Dovecot's `service lmtp`
    /// listener put it for Postfix); `lmtp:host:port` is written
    /// `lmtp:inet:host:port`. Anything else (a master.cf `pipe` service
    /// such as `dovecot` or `cyrus`) is left out.
    pub(crate) fn mailbox_transport(&mut self, name: &str, value: &str, origin: &str) {
        let (transport, nexthop) = value.split_once(':').unwrap_or((value, ""));
        let nexthop = nexthop.trim();
        let written = if !transport.eq_ignore_ascii_case("lmtp") {
            value.to_string()
        } else if let Some(path) = nexthop.strip_prefix("unix:")
            && !path.starts_with('/')
            && !path.is_empty()
        {
            let queue = self.x.value("queue_directory");
            let full = format!("lmtp:unix:{}/{path}", queue.trim_end_matches('/'));
            self.note(
                origin,
                name,
                &format!(
                    "{value}: Postfix's socket path is relative to queue_directory; \
                     written as {full:?}"
                ),
            );
            full
        } else if nexthop.starts_with("unix:")
            || nexthop.starts_with("inet:")
            || nexthop.starts_with('[')
        {
            format!("lmtp:{nexthop}")
        } else {
            format!("lmtp:inet:{nexthop}")
        };
        match crate::transport::syntax::parse_mailbox_transport(&written) {
            Ok(_) => self.set("local.mailbox_transport", V::String(written), name),
            Err(why) => self.leave_out(
                origin,
                name,
                &format!("local.mailbox_transport: {value}: {why}"),
            ),
        }
    }

    /// What Postfix does by default and postern does not.
    pub(crate) fn defaults_that_differ(&mut self) {
        let given = |w: &Self, n: &str| w.cf.params.contains_key(n);
        self.mailbox();
        if !given(self, "alias_maps") {
            let files = strings(vec!["/etc/aliases".to_string()]);
            self.set("local.alias_files", files, "alias_maps (Postfix's default)");
        }
        if !given(self, "smtpd_relay_restrictions") {
            let value = self.x.value("smtpd_relay_restrictions");
            let list = restrictions::list(
                self,
                &value,
                crate::policy::element::Stage::Relay,
                "smtpd_relay_restrictions",
                "main.cf",
            );
            self.set(
                "restrictions.relay",
                strings(list),
                "smtpd_relay_restrictions (Postfix's default)",
            );
        }
        if !given(self, "smtpd_tls_chain_files") {
            self.chain_from_cert_and_key();
        }
        if !given(self, "mynetworks") {
            let style = self.x.value("mynetworks_style");
            self.note("main.cf", "mynetworks", &format!("not set: Postfix trusts the networks of this host's interfaces (mynetworks_style = {style}); postern trusts 127.0.0.0/8 and ::1 (relay.networks)"));
        }
    }

    /// home_mailbox, else mail_spool_directory/$user (mbox).
    fn mailbox(&mut self) {
        let home = self.x.value("home_mailbox");
        if !home.trim().is_empty() {
            self.set(
                "local.mailbox",
                V::String(home.trim().into()),
                "home_mailbox",
            );
            return;
        }
        let spool = self.x.value("mail_spool_directory");
        let spool = spool.trim();
        let mailbox = match spool.strip_suffix('/') {
            Some(dir) => format!("{dir}/$user/"),
            None => format!("{spool}/$user"),
        };
        let from = if self.cf.params.contains_key("mail_spool_directory") {
            "mail_spool_directory"
        } else {
            "mail_spool_directory (Postfix's default: mbox)"
        };
        self.set("local.mailbox", V::String(mailbox), from);
    }

    fn chain_from_cert_and_key(&mut self) {
        let mut files = Vec::new();
        for (cert, key) in [
            ("smtpd_tls_cert_file", "smtpd_tls_key_file"),
            ("smtpd_tls_eccert_file", "smtpd_tls_eckey_file"),
        ] {
            let cert_file = self.x.value(cert).trim().to_string();
            if cert_file.is_empty() {
                continue;
            }
            let key_file = self.x.value(key).trim().to_string();
            files.push(if key_file.is_empty() {
                cert_file.clone()
            } else {
                key_file
            });
            files.push(cert_file);
        }
        if !files.is_empty() {
            self.set(
                "tls.chain_files",
                strings(files),
                "smtpd_tls_key_file, smtpd_tls_cert_file",
            );
        }
    }
}

/// The words of a list file (`/etc/postfix/mynetworks`): `#` comments
/// and blank lines skipped.
fn file_words(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(split_list)
        .collect()
}

/// Postfix's `[2001:db8::]/32` as `2001:db8::/32`.
fn network(item: &str) -> String {
    match item.strip_prefix('[') {
        Some(rest) => rest.replacen(']', "", 1),
        None => item.to_string(),
    }
}
