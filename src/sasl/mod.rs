//! SMTP AUTH on the server side (RFC 4954): the mechanisms PLAIN (RFC
//! 4616) and LOGIN, and the two backends that decide whether a login is
//! good, as Postfix's `smtpd_sasl_type` does: Dovecot's authentication
//! socket ([`dovecot`], `smtpd_sasl_type = dovecot`, the usual setup) and
//! postern's own password file ([`passwd`]: argon2id or SHA-512-crypt
//! hashes, as Dovecot's passwd-file writes them).
//!
//! The client side, the login the smtp client gives a relay host
//! (Postfix's `smtp_sasl_password_maps`), is in [`client`].
//!
//! SECURITY: everything here parses a remote client's input (base64
//! responses of at most [`MAX_RESPONSE`] bytes, decoded strictly; NUL
//! separated fields of at most 255 bytes) or a local daemon's answers
//! (Dovecot's lines, bounded). A password never appears in a log line or
//! a `Debug` output; comparisons of hashes are the hash crates' own
//! constant-time ones. smtpd asks through [`server`]: AUTH is offered
//! only over TLS (`sasl.tls_only`), on the submission listeners (and on
//! port 25 only with `sasl.smtpd_listeners`), with a per-client failure
//! limit and delay and the log line fail2ban reads.

pub mod client;
pub mod dovecot;
pub mod passwd;
pub mod server;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The longest base64 response taken from a client (Postfix's
/// `line_length_limit` bounds it the same way).
pub const MAX_RESPONSE: usize = 12288;
/// RFC 4616: each of authzid, authcid and passwd is at most 255 octets.
const MAX_FIELD: usize = 255;

/// A SASL mechanism postern offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// As EHLO lists them.
    pub const ALL: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    /// The mechanism an AUTH command names (case-insensitive, RFC 4954).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// A login and its password, as a client gave them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as (PLAIN's authzid); empty: the login's own.
    pub authzid: String,
    /// The login (PLAIN's authcid, LOGIN's user name).
    pub login: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("login", &self.login)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why a client's response cannot be used (RFC 4954's 501 answers).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// `*`: the client cancelled (501 5.7.0).
    #[error("authentication cancelled")]
    Cancelled,
    #[error("response too long")]
    TooLong,
    /// Not base64, not UTF-8, or not the mechanism's shape (501 5.5.2).
    #[error("invalid response: {0}")]
    Invalid(&'static str),
}

/// A base64 response line as bytes: `*` cancels, `=` is empty (RFC 4954).
pub fn decode_response(line: &str) -> Result<Vec<u8>, ResponseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_RESPONSE {
        return Err(ResponseError::TooLong);
    }
    match line {
        "*" => Err(ResponseError::Cancelled),
        "=" => Ok(Vec::new()),
        text => STANDARD
            .decode(text)
            .map_err(|_| ResponseError::Invalid("not base64")),
    }
}

/// PLAIN's response: `authzid NUL authcid NUL passwd` (RFC 4616).
pub fn plain(response: &[u8]) -> Result<Credentials, ResponseError> {
    let mut fields = response.split(|b| *b == 0);
    let (Some(authzid), Some(login), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ResponseError::Invalid(
            "PLAIN needs three NUL-separated fields",
        ));
    };
    if login.is_empty() || password.is_empty() {
        return Err(ResponseError::Invalid("empty login or password"));
    }
    Ok(Credentials {
        authzid: field(authzid)?,
        login: field(login)?,
        password: field(password)?,
    })
}

/// One of LOGIN's answers (the user name, then the password).
pub fn login_step(response: &[u8]) -> Result<String, ResponseError> {
    if response.is_empty() || response.contains(&0) {
        return Err(ResponseError::Invalid("empty or with a NUL"));
    }
    field(response)
}

fn field(bytes: &[u8]) -> Result<String, ResponseError> {
    if bytes.len() > MAX_FIELD {
        return Err(ResponseError::TooLong);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ResponseError::Invalid("not UTF-8"))
}

/// LOGIN's challenges, base64 as sent: `Username:` and `Password:`.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// What a backend said about a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Good: the authenticated login (the backend's spelling of it).
    Ok { login: String },
    /// Wrong login or password (535 5.7.8); `reason` is for the log only.
    Fail { reason: String },
    /// The backend cannot answer now (454 4.7.0).
    Unavailable { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_takes_three_fields_and_nothing_else() {
        let c = plain(b"\0alice\0secret").unwrap();
        assert_eq!((c.authzid.as_str(), c.login.as_str()), ("", "alice"));
        assert_eq!(c.password, "secret");
        assert_eq!(plain(b"bob\0alice\0pw").unwrap().authzid, "bob");
        for bad in [
            &b"alice\0secret"[..],
            b"\0\0pw",
            b"\0alice\0",
            b"a\0b\0c\0d",
            b"",
        ] {
            assert!(plain(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            plain(&[b"\0".as_slice(), &[b'a'; 256], b"\0pw"].concat()),
            Err(ResponseError::TooLong)
        );
        assert!(plain(b"\0\xff\0pw").is_err());
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn responses_are_base64_or_the_two_words() {
        assert_eq!(decode_response("*\r\n"), Err(ResponseError::Cancelled));
        assert_eq!(decode_response("="), Ok(Vec::new()));
        assert_eq!(
            decode_response("AGFsaWNlAHNlY3JldA==").unwrap(),
            b"\0alice\0secret"
        );
        assert!(decode_response("not base64!").is_err());
        assert_eq!(
            decode_response(&"A".repeat(MAX_RESPONSE + 4)),
            Err(ResponseError::TooLong)
        );
        assert_eq!(STANDARD.decode(LOGIN_USERNAME).unwrap(), b"Username:");
        assert_eq!(STANDARD.decode(LOGIN_PASSWORD).unwrap(), b"Password:");
        assert_eq!(Mechanism::from_name("login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        assert_eq!(login_step(b"alice").unwrap(), "alice");
        assert!(login_step(b"").is_err());
    }
}
