//! SASL authentication to the server (RFC 4954), once the session is
//! established (after EHLO, and after STARTTLS and the second EHLO), when
//! `relay.sasl_password_files` has a login for it (Postfix's
//! `smtp_sasl_auth_enable`, `smtp_sasl_password_maps`): AUTH PLAIN, or
//! AUTH LOGIN when the server offers LOGIN and not PLAIN
//! ([`crate::sasl::client`] says what to send).
//!
//! Where the login cannot be given, the recipients are deferred (4.7.0)
//! and the next host is tried, as Postfix does (the failed session counts
//! as one of the two per delivery, so a wrong password is not tried at
//! every address of the relay host), in its words:
//!
//! * without TLS, unless `relay.sasl_plaintext`: `SASL authentication
//!   failed; cannot authenticate to server HOST[IP]: the session is not
//!   encrypted ...`, the password unsent (Postfix's `noplaintext`);
//! * no `AUTH` in the EHLO reply, or no mechanism postern speaks: `...
//!   cannot authenticate to server HOST[IP]: no mechanism available ...`
//!   (Postfix sends the mail without a login when AUTH is not offered at
//!   all; a relay host that wants one would refuse it, so postern waits);
//! * the server refuses (535): `SASL authentication failed; server
//!   HOST[IP] said: 535 5.7.8 ...`, deferred with the reply's code made
//!   temporary (Postfix's `smtp_sasl_auth_soft_bounce = yes`): a wrong
//!   password is fixed by the administrator, and the mail waits for it.
//!
//! The AUTH exchange runs under `smtp.helo_timeout`. Nothing of the login
//! is logged; the reason names the server and quotes its reply only.

use crate::outcome::code;
use crate::sasl::client::{Exchange, Login, choose};

use super::client::{AUTH, HostFailure, Session};
use super::reply::Reply;

/// Give `login` to the server of `s` (see the module documentation);
/// `plaintext` allows it without TLS.
pub(crate) async fn authenticate(
    s: &mut Session,
    login: &Login,
    plaintext: bool,
) -> Result<(), HostFailure> {
    let who = s.namaddr();
    let cannot = |why: &str| {
        format!("SASL authentication failed; cannot authenticate to server {who}: {why}")
    };
    if !s.tls && !plaintext {
        let reason = cannot(
            "the session is not encrypted (no TLS), and the password is not sent in plain text \
             (relay.sasl_plaintext = false)",
        );
        return Err(s.local_failure(code::SECURITY_TEMP, reason));
    }
    if s.features.auth.is_empty() {
        let reason = cannot("no mechanism available (the server offers no AUTH)");
        return Err(s.local_failure(code::SECURITY_TEMP, reason));
    }
    let Some(mechanism) = choose(s.features.auth.iter().map(String::as_str)) else {
        let reason = cannot(&format!(
            "no mechanism available (the server offers {}; postern speaks PLAIN and LOGIN)",
            s.features.auth.join(" ")
        ));
        return Err(s.local_failure(code::SECURITY_TEMP, reason));
    };
    let mut exchange = Exchange::new(mechanism, login);
    let t = s.timeouts.helo;
    let mut reply = s
        .command(&exchange.command(), t, AUTH)
        .await
        .map_err(|b| s.failed(&b))?;
    while reply.code() == 334 {
        let challenge = reply.texts().next().unwrap_or("").trim().to_string();
        let Some(answer) = exchange.answer(&challenge) else {
            // RFC 4954: `*` cancels; the server's 501 is of no interest.
            let _ = s.command("*", t, AUTH).await;
            let reason = cannot(&format!(
                "unexpected server challenge after the {} response",
                exchange.mechanism().name()
            ));
            return Err(s.local_failure(code::PROTOCOL_TEMP, reason));
        };
        reply = s
            .command(&answer, t, AUTH)
            .await
            .map_err(|b| s.failed(&b))?;
    }
    if reply.is_positive() {
        return Ok(());
    }
    let reason = format!(
        "SASL authentication failed; server {who} said: {}",
        reply.text()
    );
    // Deferred, with the reply's enhanced code made temporary.
    let mut failure = s.refused(&reply, reason, true);
    if !has_enhanced_code(&reply) {
        failure.outcome.dsn = code::SECURITY_TEMP;
    }
    Err(failure)
}

/// Whether the reply's code says more than its class (`5.7.8`, not the
/// `5.0.0` derived for a reply without one).
fn has_enhanced_code(reply: &Reply) -> bool {
    ![code::OK, code::TEMP, code::PERM].contains(&reply.dsn())
}
