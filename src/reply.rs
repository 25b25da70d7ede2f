//! SMTP replies: the code, the enhanced status code and the text live here,
//! in one place, so that the reply a client sees and the log line that
//! records a reject are built from the same value.

use std::fmt;

/// One SMTP reply (RFC 5321 section 4.2) with an optional RFC 3463 enhanced
/// status code. Multi-line replies are written with `lines`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<&'static str>,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            text: text.into(),
        }
    }

    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply as it goes on the wire, CRLF terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        format!("{self}\r\n").into_bytes()
    }

    // Replies shared by several commands. Texts are Postfix's, because
    // clients and log parsers depend on them.

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }
    pub fn mail_ok() -> Reply {
        Reply::new(250, "2.1.0", "Ok")
    }
    pub fn rcpt_ok() -> Reply {
        Reply::new(250, "2.1.5", "Ok")
    }
    pub fn start_data() -> Reply {
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
    }
    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }
    pub fn relay_denied(rcpt: &str) -> Reply {
        Reply::new(554, "5.7.1", format!("<{rcpt}>: Relay access denied"))
    }
    pub fn unknown_local_user(rcpt: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown in local recipient table"),
        )
    }
    pub fn temporary_lookup_failure(rcpt: &str) -> Reply {
        Reply::new(451, "4.3.0", format!("<{rcpt}>: Temporary lookup failure"))
    }
    pub fn size_exceeds_limit() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
    }
    pub fn message_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Error: message file too big")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Error: too many recipients")
    }
    pub fn need_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: need MAIL command")
    }
    pub fn need_rcpt() -> Reply {
        Reply::new(503, "5.5.1", "Error: need RCPT command")
    }
    pub fn nested_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: nested MAIL command")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1", "Error: no valid recipients")
    }
    /// 502, as Postfix's smtpd sends it (not 500).
    pub fn not_recognized() -> Reply {
        Reply::new(502, "5.5.2", "Error: command not recognized")
    }
    /// RFC 6531 section 3.7.4.1.
    pub fn must_declare_smtputf8() -> Reply {
        Reply::new(
            553,
            "5.6.7",
            "Must declare SMTPUTF8 to send unicode address",
        )
    }
    pub fn vrfy_disabled() -> Reply {
        Reply::new(502, "5.5.1", "VRFY command is disabled")
    }
    pub fn sync_error() -> Reply {
        Reply::new(554, "5.5.0", "Error: SMTP protocol synchronization")
    }
    pub fn queue_write_error() -> Reply {
        Reply::new(451, "4.3.0", "Error: queue file write error")
    }
    pub fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }
    pub fn too_many_errors(hostname: &str) -> Reply {
        Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
    }
    pub fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Error: too many connections"),
        )
    }
    pub fn too_many_connections_from(hostname: &str, ip: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Error: too many connections from {ip}"),
        )
    }
    pub fn bare_lf(hostname: &str) -> Reply {
        Reply::new(
            550,
            "5.5.2",
            format!("{hostname} Error: bare <LF> received"),
        )
    }
    pub fn command_too_long(hostname: &str) -> Reply {
        Reply::new(500, "5.5.2", format!("{hostname} Error: command too long"))
    }
    pub fn shutting_down(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, closing transmission channel"),
        )
    }
}

impl fmt::Display for Reply {
    /// Single-line form `CODE X.Y.Z text`; multi-line text (embedded `\n`)
    /// becomes `CODE-...` continuation lines joined with CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            if i > 0 {
                f.write_str("\r\n")?;
            }
            match self.enhanced {
                Some(e) => write!(f, "{}{sep}{e} {line}", self.code)?,
                None => write!(f, "{}{sep}{line}", self.code)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_denied_is_postfix_text() {
        assert_eq!(
            Reply::relay_denied("u@elsewhere.example").to_string(),
            "554 5.7.1 <u@elsewhere.example>: Relay access denied"
        );
    }

    #[test]
    fn multiline() {
        let r = Reply::plain(250, "a\nb");
        assert_eq!(r.to_string(), "250-a\r\n250 b");
    }
}
