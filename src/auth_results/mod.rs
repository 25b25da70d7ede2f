//! Verification on arrival (RFC 8601): a message's DKIM signatures
//! (RFC 6376), SPF for the HELO and MAIL FROM identities (RFC 7208) and
//! DMARC (RFC 7489), written as one `Authentication-Results:` field with
//! this host's authserv-id (`server.hostname`).
//!
//! The checks are mail-auth's (the crate that signs, `crate::dkim`), on a
//! hickory resolver built by [`crate::dns::auth_resolver`] from `dns.servers`
//! as smtpd's and the smtp client's are: UDP and TCP only, TLS settings
//! that load no certificate (mail-auth's own constructors would load the
//! system's CA certificates, which smtpd's sandbox cannot read). One
//! message's TXT answers are asked once ([`Memo`]): SPF for HELO and MAIL
//! FROM and DMARC often ask the same names.
//!
//! Every check has a deadline ([`CHECK_DEADLINE`]); a check that passes
//! it, or a DNS failure, is a `temperror` in the field, never a reason to
//! refuse the message here (the policy elements that act on the results
//! are later work).
//!
//! The field is in the stored form (LF line ends, continuation lines
//! folded with a tab). [`is_ours`] tells a field that claims this host's
//! authserv-id: one that arrived with the message is a forgery, removed
//! before the message is stored (RFC 8601 section 5).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    MessageAuthenticator, Parameters, ResolverCache, SpfOutput, SpfResult, Txt,
};

/// The longest each of the three checks (DKIM, SPF, DMARC) may take.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// The wait for one DNS answer (2 attempts).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The field's name, as written.
pub const FIELD_NAME: &str = "Authentication-Results";

/// What the client said: its address, HELO name and MAIL FROM (empty for
/// the null sender).
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    pub client_ip: IpAddr,
    pub helo: &'a str,
    pub mail_from: &'a str,
}

/// The checks, on a resolver of their own.
pub struct Verifier {
    auth: MessageAuthenticator,
    authserv_id: String,
    /// Fixed TXT answers (unit tests): every name not listed is NXDOMAIN,
    /// no query leaves the process.
    #[cfg(test)]
    fixed: Option<HashMap<Box<str>, Txt>>,
}

impl Verifier {
    /// A verifier asking `servers` (the system's resolver when empty),
    /// naming itself `authserv_id`.
    pub fn new(servers: &[SocketAddr], authserv_id: &str) -> Result<Verifier, String> {
        let (resolver, _) = crate::dns::auth_resolver(servers, QUERY_TIMEOUT)?;
        Ok(Verifier {
            auth: MessageAuthenticator(resolver),
            authserv_id: authserv_id.to_string(),
            #[cfg(test)]
            fixed: None,
        })
    }

    /// The `Authentication-Results:` field for a message in the stored
    /// form (LF line ends), with its line end, in the stored form.
    pub async fn field(&self, stored: &[u8], who: &Identity<'_>) -> String {
        self.report(stored, who, None).await.field
    }

    /// SPF for the HELO and the MAIL FROM identities (for the null
    /// sender MAIL FROM's result is HELO's, RFC 7208 section 2.4). Run at
    /// RCPT when a restriction asks for it, else with the message.
    pub async fn spf(&self, who: &Identity<'_>) -> SpfChecks {
        self.spf_with(who, &self.memo()).await
    }

    async fn spf_with(&self, who: &Identity<'_>, memo: &Memo) -> SpfChecks {
        let id = self.authserv_id.as_str();
        // An IPv4-mapped address is the IPv4 client it is (RFC 7208
        // section 5); mail-auth would match it as IPv6.
        let ip = who.client_ip.to_canonical();
        let helo_domain = helo_domain(who.helo);
        let helo = self
            .spf_one(SpfParameters::verify_ehlo(ip, helo_domain, id), memo)
            .await
            .unwrap_or_else(|| timed_out_spf(helo_domain));
        let mail_from = if who.mail_from.is_empty() {
            helo.clone()
        } else {
            let params = SpfParameters::verify_mail_from(ip, helo_domain, id, who.mail_from);
            self.spf_one(params, memo)
                .await
                .unwrap_or_else(|| timed_out_spf(domain_of(who.mail_from)))
        };
        SpfChecks { helo, mail_from }
    }

    /// Every check for a message in the stored form: DKIM, SPF (`spf`
    /// when the transaction already has it) and DMARC, and the field that
    /// says so.
    pub async fn report(
        &self,
        stored: &[u8],
        who: &Identity<'_>,
        spf: Option<SpfChecks>,
    ) -> Report {
        let crlf = crlf_form(stored);
        let memo = self.memo();
        let id = self.authserv_id.as_str();
        let message = AuthenticatedMessage::parse(&crlf);
        let spf = match spf {
            Some(spf) => spf,
            None => self.spf_with(who, &memo).await,
        };
        let spf_part = spf_parts(id, who, &spf.helo, &spf.mail_from);
        let Some(message) = message else {
            let dkim = vec![";\r\n\tdkim=none (no header section)".to_string()];
            let dmarc_part = ";\r\n\tdmarc=none (no header section)".to_string();
            return Report::new(id, dkim, spf, spf_part, None, dmarc_part);
        };
        let dkim = deadline(
            self.auth
                .verify_dkim(Parameters::new(&message).with_txt_cache(&memo)),
        )
        .await;
        let dkim_parts = dkim_parts(id, &message, dkim.as_deref());
        let spf_domain = if who.mail_from.is_empty() {
            helo_domain(who.helo)
        } else {
            domain_of(who.mail_from)
        };
        let (dmarc, dmarc_part) = match &dkim {
            Some(dkim) => {
                let params = DmarcParameters::new(&message, dkim, spf_domain, &spf.mail_from);
                let params = Parameters::new(params).with_txt_cache(&memo);
                match deadline(self.auth.verify_dmarc(params)).await {
                    Some(dmarc) => {
                        let part =
                            after_id(id, AuthenticationResults::new(id).with_dmarc_result(&dmarc));
                        (Some(dmarc), part)
                    }
                    None => (None, ";\r\n\tdmarc=temperror (timeout)".to_string()),
                }
            }
            None => (None, ";\r\n\tdmarc=temperror (dkim timed out)".to_string()),
        };
        Report::new(id, dkim_parts, spf, spf_part, dmarc, dmarc_part)
    }

    async fn spf_one(&self, params: SpfParameters<'_>, memo: &Memo) -> Option<SpfOutput> {
        deadline(
            self.auth
                .verify_spf(Parameters::new(params).with_txt_cache(memo)),
        )
        .await
    }

    fn memo(&self) -> Memo {
        Memo {
            answers: Mutex::new(HashMap::new()),
            #[cfg(test)]
            fixed: self.fixed.clone(),
        }
    }
}

/// The SPF results of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfChecks {
    /// The HELO identity's.
    pub helo: SpfOutput,
    /// The MAIL FROM identity's (HELO's for the null sender).
    pub mail_from: SpfOutput,
}

/// What the checks found for one message.
#[derive(Clone, Debug)]
pub struct Report {
    /// The `Authentication-Results:` field, in the stored form.
    pub field: String,
    /// One part per DKIM signature, as written in the field
    /// (`dkim=pass header.d=… header.s=…`); one `dkim=none` without.
    pub dkim: Vec<String>,
    pub spf: SpfChecks,
    /// DMARC's verdict; `None` when it did not run (a timeout, no header
    /// section).
    pub dmarc: Option<DmarcOutput>,
    /// The `dmarc=` part, as written in the field.
    pub dmarc_part: String,
}

impl Report {
    fn new(
        id: &str,
        dkim: Vec<String>,
        spf: SpfChecks,
        spf_part: String,
        dmarc: Option<DmarcOutput>,
        dmarc_part: String,
    ) -> Report {
        let mut field = format!("{FIELD_NAME}: {id}");
        dkim.iter().for_each(|part| field.push_str(part));
        field.push_str(&spf_part);
        field.push_str(&dmarc_part);
        let unfold = |part: &str| part.trim_start_matches(";\r\n\t").replace("\r\n\t", " ");
        Report {
            field: stored_form(field),
            dkim: dkim.iter().map(|p| unfold(p)).collect(),
            spf,
            dmarc,
            dmarc_part: unfold(&dmarc_part),
        }
    }
}

/// An SPF result as RFC 7208 names it (`pass`, `softfail`, …): the
/// field's word and the key `check_spf` looks up.
pub fn spf_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// `None` once [`CHECK_DEADLINE`] has passed.
async fn deadline<T>(check: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(CHECK_DEADLINE, check).await.ok()
}

fn timed_out_spf(domain: &str) -> SpfOutput {
    SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError)
}

/// The domain of an address (the address itself when it has no `@`).
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

/// The HELO name as SPF takes it: an address literal without brackets
/// (`[192.0.2.1]` → `192.0.2.1`).
fn helo_domain(helo: &str) -> &str {
    helo.trim_start_matches('[').trim_end_matches(']')
}

/// The `dkim=` parts: one per signature, `dkim=none` for none. A body
/// that does not match its hash is `fail` (RFC 6376 section 6.1.3: a
/// PERMFAIL, the message changed after signing); mail-auth says
/// `neutral` (as Gmail writes it).
fn dkim_parts(
    id: &str,
    message: &AuthenticatedMessage<'_>,
    dkim: Option<&[DkimOutput<'_>]>,
) -> Vec<String> {
    let from = message.from.first().map_or("", String::as_str);
    match dkim {
        None => vec![";\r\n\tdkim=temperror (timeout)".to_string()],
        Some([]) => vec![";\r\n\tdkim=none (no signature)".to_string()],
        Some(dkim) => dkim
            .iter()
            .map(|d| {
                let part = after_id(id, AuthenticationResults::new(id).with_dkim_result(d, from));
                match d.result() {
                    DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
                        part.replacen("dkim=neutral", "dkim=fail", 1)
                    }
                    _ => part,
                }
            })
            .collect(),
    }
}

/// The `spf=` parts: MAIL FROM's (the HELO identity's for the null
/// sender, as RFC 7208 section 2.4 says), then HELO's.
fn spf_parts(id: &str, who: &Identity<'_>, helo: &SpfOutput, mail_from: &SpfOutput) -> String {
    let results = AuthenticationResults::new(id)
        .with_spf_mailfrom_result(mail_from, who.client_ip, who.mail_from, who.helo)
        .with_spf_ehlo_result(helo, who.client_ip, who.helo);
    after_id(id, results)
}

/// mail-auth's rendering of some results, without the authserv-id it
/// starts with: `;\r\n\tmethod=result ...`.
fn after_id(id: &str, results: AuthenticationResults<'_>) -> String {
    let text = results.to_string();
    text.strip_prefix(id).unwrap_or(&text).to_string()
}

/// The field in the stored form: LF line ends, ending with one.
fn stored_form(field: String) -> String {
    let mut field = field.replace("\r\n", "\n");
    field.push('\n');
    field
}

/// The message as the receiver has it (CRLF line ends), as the signer
/// made it ([`crate::dkim::sign::sign_message`]).
fn crlf_form(stored: &[u8]) -> Vec<u8> {
    use crate::wire::data::{DataWriter, StoredCr};
    let mut crlf = Vec::with_capacity(stored.len() + stored.len() / 16 + 2);
    let mut form = DataWriter::message(StoredCr::LineEnd);
    form.write(stored, &mut crlf);
    form.finish(&mut crlf);
    crlf
}

/// Whether an `Authentication-Results:` field's value (after the colon,
/// unfolded or not) claims `authserv_id`: its first token, after any
/// comment, compared without regard to case.
pub fn is_ours(value: &[u8], authserv_id: &str) -> bool {
    let text = String::from_utf8_lossy(value);
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        // A comment before the id (RFC 8601 allows CFWS): skip to its end.
        rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
    }
    let token = rest
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("");
    token.eq_ignore_ascii_case(authserv_id)
}

/// `stored` (a message in the stored form, LF line ends) without the
/// `Authentication-Results:` fields of its header section that claim
/// `authserv_id`, and how many there were; `None` when there are none
/// (nothing to copy). The header section ends at the first line that is
/// neither a field nor a continuation line (an empty line, as a rule).
pub fn without_ours(stored: &[u8], authserv_id: &str) -> Option<(Vec<u8>, usize)> {
    let mut kept = Vec::with_capacity(stored.len());
    let mut removed = 0;
    let mut at = 0;
    while at < stored.len() {
        let end = crate::wire::header::field_end(stored, at);
        if end == at {
            break;
        }
        let field = &stored[at..end];
        let ours = crate::wire::header::colon(field).is_some_and(|colon| {
            field[..colon]
                .trim_ascii_end()
                .eq_ignore_ascii_case(FIELD_NAME.as_bytes())
                && is_ours(&field[colon + 1..], authserv_id)
        });
        if ours {
            removed += 1;
        } else {
            kept.extend_from_slice(field);
        }
        at = end;
    }
    if removed == 0 {
        return None;
    }
    kept.extend_from_slice(&stored[at..]);
    Some((kept, removed))
}

/// One message's TXT answers, asked once.
struct Memo {
    answers: Mutex<HashMap<Box<str>, Txt>>,
    #[cfg(test)]
    fixed: Option<HashMap<Box<str>, Txt>>,
}

impl ResolverCache<Box<str>, Txt> for Memo {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        #[cfg(test)]
        if let Some(fixed) = &self.fixed {
            return Some(fixed.get(name).cloned().unwrap_or_else(tests::nxdomain));
        }
        self.answers.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.answers.lock().ok()?.remove(name)
    }

    fn insert(&self, name: Box<str>, value: Txt, _valid_until: std::time::Instant) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(name, value);
        }
    }
}

/// Why smtpd does not verify a client's mail (`None`: it does): only
/// mail from outside is verified — not with `verify.inbound = false`,
/// nor from a local submission, a client that logged in, or one in
/// `relay.networks` (what `dkim.sign` signs).
pub fn not_verified(
    config: &crate::config::Config,
    client_ip: IpAddr,
    logged_in: bool,
    local: bool,
) -> Option<&'static str> {
    let ip = client_ip.to_canonical();
    if !config.verify.inbound {
        Some("verify.inbound = false")
    } else if local {
        Some("a local submission")
    } else if logged_in {
        Some("the client logged in")
    } else if config.relay.networks.iter().any(|n| n.contains(&ip)) {
        Some("the client is in relay.networks")
    } else {
        None
    }
}

impl Report {
    /// Whether DMARC failed under the domain's `p=reject` (what
    /// `verify.dmarc_reject` acts on).
    pub fn dmarc_rejects(&self) -> bool {
        self.dmarc.as_ref().is_some_and(|d| {
            matches!(d.result(), mail_auth::DmarcResult::Fail(_))
                && d.policy() == mail_auth::dmarc::Policy::Reject
        })
    }
}

#[cfg(test)]
mod tests;
