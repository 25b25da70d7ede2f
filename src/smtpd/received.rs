//! The Received header smtpd prepends (RFC 5321 section 4.4), in
//! Postfix's shape:
//!
//! ```text
//! (continuation lines start with a tab)
//! Received: from HELO (NAME [ADDR])
//!     by HOSTNAME (postern) with ESMTP id QUEUEID
//!     for <RCPT>; DATE
//! ```
//!
//! With several recipients the `by` line ends in `;` and the date follows
//! on its own line, so the list of recipients is not disclosed. NAME is
//! the client's verified name or `unknown`; ADDR is an IPv4 address as it
//! is, an IPv6 address as RFC 5321's address literal has it
//! (`IPv6:2001:db8::1`), as Postfix writes them.

use std::net::IpAddr;

/// Where a message came from, for its Received header.
pub(crate) struct Origin<'a> {
    pub helo: Option<&'a str>,
    pub client_name: &'a str,
    pub client_addr: IpAddr,
    /// The TLS protocol and cipher (`TLSv1.3`, `TLS_AES_256_GCM_SHA384
    /// (256/256 bits)`), inside TLS.
    pub tls: Option<(String, String)>,
}

/// The header, LF line ends, including the final LF. Inside TLS, as
/// Postfix: `(using TLSv1.3 with cipher … (256/256 bits))` and `(No
/// client certificate requested)` after the `from` line.
pub(crate) fn received_header(
    origin: &Origin<'_>,
    hostname: &str,
    protocol: &str,
    id: &str,
    recipients: &[String],
) -> String {
    let client_name = origin.client_name;
    let from = origin.helo.unwrap_or(client_name);
    let tls = match &origin.tls {
        Some((version, cipher)) => format!(
            "\t(using {version} with cipher {cipher})\n\t(No client certificate requested)\n"
        ),
        None => String::new(),
    };
    let client_addr = match origin.client_addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    let date = crate::wire::date::local_now();
    let by = format!("\tby {hostname} (postern) with {protocol} id {id}");
    match recipients {
        [one] => format!(
            "Received: from {from} ({client_name} [{client_addr}])\n{tls}{by}\n\tfor <{one}>; {date}\n"
        ),
        _ => {
            format!("Received: from {from} ({client_name} [{client_addr}])\n{tls}{by};\n\t{date}\n")
        }
    }
}

/// The Received header of a local submission, as Postfix's pickup writes
/// it: `Received: by HOST (postern, from userid UID)` / `\tid QID; DATE`.
pub(crate) fn local_received_header(hostname: &str, uid: u32, id: &str) -> String {
    let date = crate::wire::date::local_now();
    format!("Received: by {hostname} (postern, from userid {uid})\n\tid {id}; {date}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_recipient() {
        let origin = Origin {
            helo: Some("client.example"),
            client_name: "unknown",
            client_addr: [127, 0, 0, 1].into(),
            tls: None,
        };
        let h = received_header(
            &origin,
            "mail.example",
            "ESMTP",
            "0123456789ABCA",
            &["u@example".into()],
        );
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines[0],
            "Received: from client.example (unknown [127.0.0.1])"
        );
        assert_eq!(
            lines[1],
            "\tby mail.example (postern) with ESMTP id 0123456789ABCA"
        );
        assert!(lines[2].starts_with("\tfor <u@example>; "));
        assert!(h.ends_with('\n'));
    }

    #[test]
    fn several_recipients_hidden() {
        let origin = Origin {
            helo: None,
            client_name: "localhost",
            client_addr: "::1".parse().unwrap(),
            tls: None,
        };
        let h = received_header(&origin, "m", "SMTP", "X", &["a@b".into(), "c@d".into()]);
        assert!(h.starts_with("Received: from localhost (localhost [IPv6:::1])\n"));
        assert!(!h.contains("a@b"));
        assert!(h.lines().nth(1).unwrap().ends_with(';'));
    }

    #[test]
    fn tls_is_said_as_postfix_says_it() {
        let origin = Origin {
            helo: Some("pc"),
            client_name: "unknown",
            client_addr: [192, 0, 2, 1].into(),
            tls: Some((
                "TLSv1.3".into(),
                "TLS_AES_256_GCM_SHA384 (256/256 bits)".into(),
            )),
        };
        let h = received_header(&origin, "m", "ESMTPSA", "X", &["a@b".into()]);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines[1],
            "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))"
        );
        assert_eq!(lines[2], "\t(No client certificate requested)");
        assert_eq!(lines[3], "\tby m (postern) with ESMTPSA id X");
    }
}
