//! The restrictions on who logged in (SMTP AUTH): `permit_sasl_authenticated`
//! and Postfix's `reject_*sender_login_mismatch`, with the owners of each
//! envelope sender from `sasl.sender_login_maps` (Postfix's
//! `smtpd_sender_login_maps`).

use super::element::LoginCheck;
use super::eval::{Eval, Outcome};
use super::syntax::{SENDER, Target, rejected};
use crate::reply::Reply;

/// What the sender login tables say about a sender.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Owners {
    /// Nobody owns it.
    Nobody,
    /// These logins (lower-cased).
    Logins(Vec<String>),
    /// A table could not be read.
    Failed(String),
}

impl Eval<'_, '_> {
    /// permit_sasl_authenticated: the client logged in.
    pub(super) fn permit_sasl_authenticated(&mut self) -> Outcome {
        match self.ctx.sasl_user {
            Some(login) => {
                self.note(format!("logged in as {login}"));
                Outcome::Permit
            }
            None => self.skip("the client did not log in"),
        }
    }

    /// reject_sender_login_mismatch and its variants, as Postfix's
    /// `reject_auth_sender_login_mismatch` and
    /// `reject_unauth_sender_login_mismatch`.
    pub(super) fn sender_login_mismatch(&mut self, check: LoginCheck) -> Outcome {
        let sender = match self.ctx.sender {
            None => return self.skip("no MAIL FROM given"),
            Some("") => return self.skip("null sender"),
            Some(s) => s,
        };
        let target = Target {
            name: sender.to_string(),
            class: SENDER,
        };
        let owners = self.policy.sender_owners(sender);
        if let Owners::Failed(e) = &owners {
            log::warn!("sasl.sender_login_maps: {e}");
            self.note(format!("lookup failed: {e}"));
            return Outcome::Reject(Reply::server_configuration_error());
        }
        match (self.ctx.sasl_user, check, owners) {
            (Some(_), LoginCheck::Unauthenticated, _) => self.skip("the client logged in"),
            (None, LoginCheck::Authenticated, _) => self.skip("the client did not log in"),
            (Some(_), LoginCheck::Known, Owners::Nobody) => self.skip("nobody owns this sender"),
            (Some(login), _, Owners::Logins(owners))
                if owners.iter().any(|o| o.eq_ignore_ascii_case(login)) =>
            {
                self.note(format!("{login} owns it"));
                Outcome::Dunno
            }
            (Some(login), _, _) => {
                let text = format!("not owned by user {login}");
                Outcome::Reject(rejected(553, "5.7.1", &target, &text))
            }
            (None, _, Owners::Logins(owners)) => {
                self.note(format!("owned by {}", owners.join(", ")));
                Outcome::Reject(rejected(553, "5.7.1", &target, "not logged in"))
            }
            (None, _, _) => self.skip("nobody owns this sender"),
        }
    }
}

/// The keys a sender is looked up by, in order: the address (its
/// extension removed by `delimiter`), then `@domain`.
pub(super) fn sender_keys(sender: &str, delimiter: &str) -> Vec<String> {
    let sender = sender.to_ascii_lowercase();
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return vec![sender];
    };
    let (user, _) = crate::address::split_extension(local, delimiter);
    let mut keys = vec![format!("{user}@{domain}")];
    if user != local {
        keys.insert(0, sender.clone());
    }
    keys.push(format!("@{domain}"));
    keys
}

/// The logins of a table's value: separated by commas or white space.
pub(super) fn logins(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_is_looked_up_by_address_then_domain() {
        assert_eq!(
            sender_keys("Alice@Example.ORG", "+"),
            ["alice@example.org", "@example.org"]
        );
        assert_eq!(
            sender_keys("alice+lists@example.org", "+"),
            [
                "alice+lists@example.org",
                "alice@example.org",
                "@example.org"
            ]
        );
        assert_eq!(sender_keys("bare", "+"), ["bare"]);
    }

    #[test]
    fn logins_are_separated_by_commas_or_spaces() {
        assert_eq!(logins("alice, bob  carol"), ["alice", "bob", "carol"]);
    }
}
