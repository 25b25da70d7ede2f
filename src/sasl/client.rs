//! SMTP AUTH on the client side (RFC 4954): the login the smtp client
//! gives a relay host that wants one, as Postfix's `smtp_sasl_auth_enable`
//! with `smtp_sasl_password_maps` does, with the mechanisms PLAIN (RFC
//! 4616) and LOGIN.
//!
//! * [`Logins`] finds the login for a server in the tables of
//!   `relay.sasl_password_files`, by Postfix's keys ([`lookup_keys`]);
//! * [`choose`] picks the mechanism from the server's EHLO `AUTH` line:
//!   PLAIN, else LOGIN;
//! * [`Exchange`] is the conversation without I/O: the AUTH command, then
//!   the answer to each `334` challenge. The smtp client does the talking
//!   (`crate::smtp`'s `auth`).
//!
//! SECURITY: the password leaves this module only inside the base64 lines
//! [`Exchange`] returns, which go to the wire and nowhere else; `Debug`
//! of a [`Login`] hides it, and no error text here quotes a table's value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::Mechanism;
use crate::config::Config;
use crate::maps::Table;
use crate::transport::Nexthop;

/// A user name and password for one server: a password table's
/// `user:password` value.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    password: String,
}

impl Login {
    /// Postfix's split of a table value: the user name up to the first
    /// `:`, the password after it (empty when there is no `:`).
    pub fn parse(value: &str) -> Login {
        let (user, password) = value.split_once(':').unwrap_or((value, ""));
        Login {
            user: user.to_string(),
            password: password.to_string(),
        }
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The keys a server's login is looked up by, in Postfix's order
/// (`smtp_sasl_passwd_lookup`): the server's host name (the MX host, the
/// relay host's name, an address literal's address), then the next hop
/// as `relay.host` or a transport names it (`[smtp.example.com]:587`,
/// `example.com`), its port also by the service name Postfix's tables
/// often use (`[smtp.example.com]:submission`). Each key once.
pub fn lookup_keys(host: &str, nexthop: &Nexthop) -> Vec<String> {
    let mut keys = vec![host.to_ascii_lowercase(), nexthop.to_string()];
    let service = match nexthop.port {
        Some(25) => Some("smtp"),
        Some(465) => Some("smtps"),
        Some(587) => Some("submission"),
        _ => None,
    };
    if let Some(service) = service {
        let bare = Nexthop {
            port: None,
            ..nexthop.clone()
        };
        keys.push(format!("{bare}:{service}"));
    }
    keys.dedup();
    keys
}

/// The tables of `relay.sasl_password_files`, opened through `config`
/// (which holds the `[maps]` of `inline:NAME`).
pub struct Logins<'a> {
    pub config: &'a Config,
}

impl Logins<'_> {
    /// Whether any table is configured (else no server gets a login).
    pub fn configured(&self) -> bool {
        !self.config.relay.sasl_password_files.is_empty()
    }

    /// The login for the server `host` of `nexthop`: the first key of
    /// [`lookup_keys`] found, each key in every table in order (Postfix's
    /// `maps_find`). `Err` when a table cannot be opened or read now: the
    /// caller cannot know whether a login is due, and defers.
    pub fn find(&self, host: &str, nexthop: &Nexthop) -> Result<Option<Login>, String> {
        let specs = &self.config.relay.sasl_password_files;
        if specs.is_empty() {
            return Ok(None);
        }
        let tables = specs
            .iter()
            .map(|spec| Table::open(spec, self.config).map_err(|e| e.to_string()))
            .collect::<Result<Vec<Table>, String>>()?;
        for key in lookup_keys(host, nexthop) {
            for table in &tables {
                if let Some(value) = table.get(&key).map_err(|e| e.to_string())? {
                    return Ok(Some(Login::parse(&value)));
                }
            }
        }
        Ok(None)
    }
}

/// The mechanism to use among those a server offers (its EHLO `AUTH`
/// line, any case): PLAIN, else LOGIN; `None` when it offers neither.
pub fn choose<'a>(offered: impl IntoIterator<Item = &'a str> + Clone) -> Option<Mechanism> {
    Mechanism::ALL.into_iter().find(|m| {
        offered
            .clone()
            .into_iter()
            .any(|o| o.eq_ignore_ascii_case(m.name()))
    })
}

/// One authentication, without I/O: [`Exchange::command`] first, then
/// [`Exchange::answer`] for each `334` challenge until the server says
/// 235 (or refuses).
pub struct Exchange<'a> {
    mechanism: Mechanism,
    login: &'a Login,
    /// Challenges answered so far.
    answered: u8,
}

impl<'a> Exchange<'a> {
    pub fn new(mechanism: Mechanism, login: &'a Login) -> Exchange<'a> {
        Exchange {
            mechanism,
            login,
            answered: 0,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The AUTH command: `AUTH PLAIN` with its response at once (RFC
    /// 4954's initial response: `NUL user NUL password`, base64, no
    /// authorization identity), or `AUTH LOGIN`.
    pub fn command(&self) -> String {
        match self.mechanism {
            Mechanism::Plain => {
                let response = format!("\0{}\0{}", self.login.user, self.login.password);
                format!("AUTH PLAIN {}", STANDARD.encode(response))
            }
            Mechanism::Login => "AUTH LOGIN".to_string(),
        }
    }

    /// The answer to a `334` challenge (its text, base64): LOGIN's user
    /// name, then its password, in that order whatever the prompts say
    /// (`Username:`, aiosmtpd's `User Name`), as Cyrus's LOGIN client
    /// does. `None` when the mechanism has nothing more to say (PLAIN
    /// after its initial response, LOGIN after the password): the caller
    /// cancels with `*`.
    pub fn answer(&mut self, _challenge: &str) -> Option<String> {
        let field = match (self.mechanism, self.answered) {
            (Mechanism::Login, 0) => &self.login.user,
            (Mechanism::Login, 1) => &self.login.password,
            _ => return None,
        };
        self.answered += 1;
        Some(encode(field))
    }
}

/// RFC 4954's base64 of a response; `=` for an empty one.
fn encode(field: &str) -> String {
    if field.is_empty() {
        "=".to_string()
    } else {
        STANDARD.encode(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{decode_response, login_step, plain};

    fn nexthop(text: &str) -> Nexthop {
        Nexthop::parse(text).unwrap()
    }

    #[test]
    fn keys_follow_postfix_host_then_next_hop() {
        assert_eq!(
            lookup_keys("smtp.example.com", &nexthop("[smtp.example.com]:587")),
            [
                "smtp.example.com",
                "[smtp.example.com]:587",
                "[smtp.example.com]:submission"
            ]
        );
        assert_eq!(
            lookup_keys("mx1.example.com", &nexthop("example.com")),
            ["mx1.example.com", "example.com"]
        );
        assert_eq!(
            lookup_keys("127.0.0.1", &nexthop("[127.0.0.1]:2525")),
            ["127.0.0.1", "[127.0.0.1]:2525"]
        );
        assert_eq!(
            lookup_keys("Relay.Example", &nexthop("relay.example:smtp")),
            ["relay.example", "relay.example:25", "relay.example:smtp"]
        );
    }

    #[test]
    fn logins_come_from_the_first_key_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sasl_passwd");
        std::fs::write(
            &file,
            "# provider\n[smtp.example.com]:587 alice:s3cret:with:colons\n\
             smtp.example.com   bob:by-host\nother.example carol\n",
        )
        .unwrap();
        let mut config = Config::builtin();
        config.relay.sasl_password_files = vec![format!("texthash:{}", file.display())];
        let logins = Logins { config: &config };
        assert!(logins.configured());
        let hop = nexthop("[smtp.example.com]:587");
        // The host name comes first, as in Postfix.
        let found = logins.find("smtp.example.com", &hop).unwrap().unwrap();
        assert_eq!(found.user, "bob");
        // An address that is not the host: the next hop.
        let found = logins.find("192.0.2.1", &hop).unwrap().unwrap();
        assert_eq!(
            (found.user.as_str(), found.password.as_str()),
            ("alice", "s3cret:with:colons")
        );
        let found = logins
            .find("other.example", &nexthop("[other.example]"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.user.as_str(), found.password.as_str()),
            ("carol", "")
        );
        assert_eq!(logins.find("x.example", &nexthop("x.example")), Ok(None));
        assert!(!format!("{found:?}").contains("s3cret"));

        config.relay.sasl_password_files = vec![format!("hash:{}/missing", dir.path().display())];
        let logins = Logins { config: &config };
        let e = logins.find("x.example", &nexthop("x.example")).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        config.relay.sasl_password_files.clear();
        let logins = Logins { config: &config };
        assert!(!logins.configured());
        assert_eq!(logins.find("x.example", &nexthop("x.example")), Ok(None));
    }

    #[test]
    fn plain_is_preferred_then_login() {
        assert_eq!(choose(["LOGIN", "PLAIN"]), Some(Mechanism::Plain));
        assert_eq!(choose(["cram-md5", "login"]), Some(Mechanism::Login));
        assert_eq!(choose(["CRAM-MD5", "XOAUTH2"]), None);
        assert_eq!(choose([]), None);
    }

    /// What goes on the wire decodes, with the server side's own parsers,
    /// to the login and password.
    #[test]
    fn the_exchange_encodes_as_rfc_4616_and_login_want() {
        let login = Login::parse("alice:pass word");
        let mut plain_exchange = Exchange::new(Mechanism::Plain, &login);
        let command = plain_exchange.command();
        assert_eq!(command, "AUTH PLAIN AGFsaWNlAHBhc3Mgd29yZA==");
        let response = decode_response(command.rsplit(' ').next().unwrap()).unwrap();
        let c = plain(&response).unwrap();
        assert_eq!((c.authzid.as_str(), c.login.as_str()), ("", "alice"));
        assert_eq!(c.password, "pass word");
        // PLAIN has said everything in its command.
        assert_eq!(plain_exchange.answer(""), None);

        let mut login_exchange = Exchange::new(Mechanism::Login, &login);
        assert_eq!(login_exchange.command(), "AUTH LOGIN");
        let user = login_exchange.answer(crate::sasl::LOGIN_USERNAME).unwrap();
        let password = login_exchange.answer("UGFzc3dvcmQA").unwrap();
        assert_eq!(user, "YWxpY2U=");
        assert_eq!(
            login_step(&decode_response(&user).unwrap()).unwrap(),
            "alice"
        );
        assert_eq!(
            login_step(&decode_response(&password).unwrap()).unwrap(),
            "pass word"
        );
        // A third challenge gets nothing: the caller cancels.
        assert_eq!(login_exchange.answer(""), None);

        let empty = Login::parse("bob");
        let mut e = Exchange::new(Mechanism::Login, &empty);
        e.answer("");
        assert_eq!(e.answer("").as_deref(), Some("="));
    }
}
