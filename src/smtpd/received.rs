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

/// The header, LF line ends, including the final LF.
pub(crate) fn received_header(
    helo: Option<&str>,
    client_name: &str,
    client_addr: IpAddr,
    hostname: &str,
    protocol: &str,
    id: &str,
    recipients: &[String],
) -> String {
    let from = helo.unwrap_or(client_name);
    let client_addr = match client_addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    let date = crate::wire::date::local_now();
    let by = format!("\tby {hostname} (postern) with {protocol} id {id}");
    match recipients {
        [one] => format!(
            "Received: from {from} ({client_name} [{client_addr}])\n{by}\n\tfor <{one}>; {date}\n"
        ),
        _ => format!("Received: from {from} ({client_name} [{client_addr}])\n{by};\n\t{date}\n"),
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
        let h = received_header(
            Some("client.example"),
            "unknown",
            [127, 0, 0, 1].into(),
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
        let h = received_header(
            None,
            "localhost",
            "::1".parse().unwrap(),
            "m",
            "SMTP",
            "X",
            &["a@b".into(), "c@d".into()],
        );
        assert!(h.starts_with("Received: from localhost (localhost [IPv6:::1])\n"));
        assert!(!h.contains("a@b"));
        assert!(h.lines().nth(1).unwrap().ends_with(';'));
    }
}
