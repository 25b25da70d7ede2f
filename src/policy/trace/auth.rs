//! The DKIM, SPF and DMARC results of `postern policy test --message`:
//! the checks smtpd runs on arrival ([`crate::auth_results::Verifier`],
//! on `dns.servers`) for the probe's client address, HELO name and
//! sender, and the `Authentication-Results:` field they make ([`super::message`]
//! runs them, in smtpd's order).
//!
//! The records behind the results are looked up again for the reader:
//! the TXT record starting `v=spf1` at each domain SPF checked, and the
//! DMARC record the verdict applied (found by walking up from
//! `_dmarc.<From: domain>` to the record equal to the one mail-auth
//! used). Includes and redirects of an SPF record are not shown.
//!
//! Only DMARC's verdict can refuse the message (`p=reject` and
//! `verify.dmarc_reject`, [`super::message`]); the rest informs.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::Dmarc;
use mail_auth::{DmarcOutput, SpfOutput, SpfResult};
use serde::Serialize;

use super::Detail;
use crate::auth_results::{Report as Verified, spf_name};
use crate::policy::dns::{Answer, Resolver, Rtype};

/// What the checks found, and the records they used.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AuthReport {
    /// Why smtpd would not verify this message (`the client is in
    /// relay.networks`, …): the results are then for information, and
    /// smtpd adds no field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_verified: Option<&'static str>,
    /// `Authentication-Results:` fields claiming this host's name that
    /// smtpd would take away before verifying.
    #[serde(skip_serializing_if = "is_zero")]
    pub removed: usize,
    /// Each DKIM signature's result as the field has it (`dkim=pass
    /// header.d=… header.s=… header.b=…`); one `dkim=none` without.
    pub dkim: Vec<String>,
    /// MAIL FROM's, then HELO's.
    pub spf: Vec<SpfReport>,
    pub dmarc: DmarcReport,
    /// The `Authentication-Results:` field smtpd would add (LF line ends).
    pub field: String,
}

/// One SPF identity.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SpfReport {
    /// `mailfrom` or `helo`.
    pub identity: &'static str,
    /// The domain whose record was asked (for the null sender, the HELO
    /// name: RFC 7208 section 2.4).
    pub domain: String,
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`,
    /// `permerror` (RFC 8601's words).
    pub result: &'static str,
    /// The SPF record's text.
    pub record: Option<String>,
    /// Why there is no record to show (`no SPF record`, `several SPF
    /// records`, `not known: temporary DNS failure`); neither when SPF
    /// had no domain to ask (no HELO name, an address literal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Without one record: what DNS answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<Detail>,
}

/// The DMARC verdict.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DmarcReport {
    /// The `dmarc=` part as the field has it.
    pub verdict: String,
    /// `pass`, `fail`, `none`, `temperror`, `permerror`.
    pub result: String,
    /// The From: domain (empty without one, or with several).
    pub domain: String,
    /// What the record asks for that domain (`none`, `quarantine`,
    /// `reject`: `p=`, or `sp=`/`np=` for a subdomain, one step milder
    /// with `t=y`); `None` without a record.
    pub policy: Option<String>,
    /// Where the record is (`_dmarc.example.org`).
    pub record_name: Option<String>,
    pub record: Option<String>,
    /// Why there is no record to show (`no DMARC record`, `not found
    /// again`: applied, but not in DNS now, `not known: temporary DNS
    /// failure`); neither without a From: domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Without a record: what DNS answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<Detail>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The report for what the verifier found, with the records from `dns`;
/// `not_verified`: why smtpd would not verify the message; `removed`:
/// the fields with our name taken away first.
pub(super) async fn explain(
    verified: Verified,
    dns: &Resolver,
    not_verified: Option<&'static str>,
    removed: usize,
) -> AuthReport {
    let spf = vec![
        spf_report("mailfrom", &verified.spf.mail_from, dns).await,
        spf_report("helo", &verified.spf.helo, dns).await,
    ];
    let dmarc = dmarc_report(verified.dmarc.as_ref(), &verified.dmarc_part, dns).await;
    AuthReport {
        not_verified,
        removed,
        dkim: verified.dkim,
        spf,
        dmarc,
        field: verified.field,
    }
}

async fn spf_report(identity: &'static str, spf: &SpfOutput, dns: &Resolver) -> SpfReport {
    let domain = spf.domain().trim_end_matches('.').to_string();
    let mut report = SpfReport {
        identity,
        result: spf_name(spf.result()),
        domain,
        record: None,
        missing: None,
        lookups: Vec::new(),
    };
    // SPF asked nothing (an empty HELO name, an address literal).
    if !is_name(&report.domain) {
        return report;
    }
    // Its DNS failed: asking again would wait as long for nothing.
    if spf.result() == SpfResult::TempError {
        report.missing = Some(TEMPORARY.to_string());
        return report;
    }
    let answer = dns.lookup(&report.domain, Rtype::Txt).await;
    let records: Vec<&String> = match &answer {
        Answer::Found(texts) => texts.iter().filter(|t| is_spf(t)).collect(),
        _ => Vec::new(),
    };
    match records.as_slice() {
        [one] => report.record = Some(one.to_string()),
        none_or_several => {
            report.missing = Some(match none_or_several {
                [] => "no SPF record".to_string(),
                _ => "several SPF records".to_string(),
            });
            report.lookups.push(dns_detail(&report.domain, &answer));
        }
    }
    report
}

/// Why a record is not shown when the check met a DNS failure.
const TEMPORARY: &str = "not known: temporary DNS failure";

/// Whether SPF looks `domain` up: not empty, not an address literal.
fn is_name(domain: &str) -> bool {
    !domain.is_empty() && domain.parse::<std::net::IpAddr>().is_err()
}

/// A TXT record that is an SPF record (RFC 7208 section 4.5): `v=spf1`
/// alone or followed by a space, in any case.
fn is_spf(text: &str) -> bool {
    let head = text.get(..6).unwrap_or("");
    head.eq_ignore_ascii_case("v=spf1") && matches!(text.as_bytes().get(6), None | Some(b' '))
}

async fn dmarc_report(dmarc: Option<&DmarcOutput>, part: &str, dns: &Resolver) -> DmarcReport {
    let result = part
        .strip_prefix("dmarc=")
        .and_then(|rest| rest.split([' ', ';']).next())
        .unwrap_or("")
        .to_string();
    let mut report = DmarcReport {
        verdict: part.to_string(),
        result,
        domain: dmarc.map_or("", |d| d.domain()).to_string(),
        policy: None,
        record_name: None,
        record: None,
        missing: None,
        lookups: Vec::new(),
    };
    let Some(dmarc) = dmarc else {
        return report;
    };
    // No From: domain to check.
    if report.domain.is_empty() {
        return report;
    }
    // The DNS failed: asking again would wait as long for nothing.
    if report.result == "temperror" {
        report.missing = Some(TEMPORARY.to_string());
        return report;
    }
    let applied = dmarc.dmarc_record();
    report.missing = Some(match applied {
        Some(_) => "not found again".to_string(),
        None => "no DMARC record".to_string(),
    });
    if applied.is_some() {
        report.policy = Some(dmarc.policy().to_string());
    }
    // From the From: domain up: the first record that is the one applied
    // (none applied: the From: domain's answer says why).
    for name in walk(dmarc.domain()) {
        let name = format!("_dmarc.{name}");
        let answer = dns.lookup(&name, Rtype::Txt).await;
        let found = match &answer {
            Answer::Found(texts) => texts.iter().find(|t| {
                Dmarc::parse(t.as_bytes()).is_ok_and(|d| applied.is_some_and(|a| *a == d))
            }),
            _ => None,
        };
        if let Some(text) = found {
            report.record = Some(text.clone());
            report.record_name = Some(name);
            report.missing = None;
            report.lookups.clear();
            return report;
        }
        report.lookups.push(dns_detail(&name, &answer));
        if applied.is_none() {
            break;
        }
    }
    report
}

/// `a.b.example.org`, `b.example.org`, `example.org`, `org`.
fn walk(domain: &str) -> impl Iterator<Item = &str> {
    let domain = domain.trim_end_matches('.');
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, up)| up))
}

fn dns_detail(name: &str, answer: &Answer) -> Detail {
    Detail::Dns {
        name: name.to_string(),
        rtype: Rtype::Txt.as_str(),
        answer: answer.to_string(),
    }
}

impl AuthReport {
    /// The report for a terminal, after the message's checks.
    pub(crate) fn text(&self, out: &mut String) {
        match self.not_verified {
            None => {
                *out += "\nauthentication: as smtpd would verify the message at the end of DATA\n"
            }
            Some(why) => {
                *out += &format!(
                    "\nauthentication: smtpd would not verify this message ({why}) nor add the \
                     field below; the results, for information\n"
                )
            }
        }
        if self.removed > 0 {
            *out += &format!(
                "  removed first: {} Authentication-Results field(s) claiming this host's name\n",
                self.removed
            );
        }
        for part in &self.dkim {
            *out += &format!("  DKIM → {part}\n");
        }
        for spf in &self.spf {
            let what = if spf.identity == "helo" {
                "HELO"
            } else {
                "MAIL FROM"
            };
            let domain = match spf.domain.as_str() {
                "" => "(no domain)",
                d => d,
            };
            *out += &format!("  SPF {what} {domain} → {}\n", spf.result);
            if let Some(record) = shown(&spf.record, &spf.missing) {
                *out += &format!("    · SPF record of {}: {record}\n", spf.domain);
            }
            for d in &spf.lookups {
                *out += &format!("    · {}\n", super::detail_text(d));
            }
        }
        let d = &self.dmarc;
        *out += &format!("  DMARC → {}\n", d.verdict);
        if let Some(policy) = &d.policy {
            *out += &format!("    · policy: {policy}\n");
        }
        if let Some(record) = shown(&d.record, &d.missing) {
            let name = d
                .record_name
                .as_deref()
                .map_or(String::new(), |n| format!("{n} "));
            *out += &format!("    · DMARC record of {}: {name}{record}\n", d.domain);
        }
        for l in &d.lookups {
            *out += &format!("    · {}\n", super::detail_text(l));
        }
        for line in self.field.lines() {
            *out += &format!("  {line}\n");
        }
    }
}

/// A record as the text shows it: quoted, or why it is missing in
/// parentheses; `None`: no line.
fn shown(record: &Option<String>, missing: &Option<String>) -> Option<String> {
    match (record, missing) {
        (Some(record), _) => Some(format!("{record:?}")),
        (None, Some(why)) => Some(format!("({why})")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_spf_record_is_v_spf1_alone_or_before_a_space() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=x"));
        assert!(!is_spf("v=spf"));
    }

    #[test]
    fn the_dmarc_walk_goes_up_to_the_top_level_domain() {
        assert_eq!(
            walk("a.b.example.org.").collect::<Vec<_>>(),
            ["a.b.example.org", "b.example.org", "example.org", "org"]
        );
    }

    fn spf(domain: &str, result: SpfResult) -> SpfOutput {
        SpfOutput::new(domain.to_string()).with_result(result)
    }

    #[tokio::test]
    async fn the_records_used_are_shown_and_their_absence_said() {
        let dns = Resolver::fixed([
            (
                "example.org",
                Rtype::Txt,
                Answer::Found(vec![
                    "google-site-verification=x".to_string(),
                    "v=spf1 ip4:192.0.2.1 -all".to_string(),
                ]),
            ),
            (
                "_dmarc.example.org",
                Rtype::Txt,
                Answer::Found(vec!["v=DMARC1; p=quarantine; sp=reject".to_string()]),
            ),
        ]);
        let record = Dmarc::parse(b"v=DMARC1; p=quarantine; sp=reject").unwrap();
        let dmarc = DmarcOutput::new("example.org".to_string()).with_record(record.into());
        let verified = Verified {
            field: "Authentication-Results: mx.test;\n\tdkim=none (no signature);\n\tspf=pass\n"
                .to_string(),
            dkim: vec!["dkim=none (no signature)".to_string()],
            spf: crate::auth_results::SpfChecks {
                helo: spf("mail.example.org", SpfResult::None),
                mail_from: spf("example.org", SpfResult::Pass),
            },
            dmarc: Some(dmarc),
            dmarc_part: "dmarc=fail header.from=example.org policy.dmarc=none".to_string(),
        };
        let report = explain(verified, &dns, None, 0).await;
        let mut text = String::new();
        report.text(&mut text);
        assert_eq!(
            text,
            "
authentication: as smtpd would verify the message at the end of DATA
  DKIM → dkim=none (no signature)
  SPF MAIL FROM example.org → pass
    · SPF record of example.org: \"v=spf1 ip4:192.0.2.1 -all\"
  SPF HELO mail.example.org → none
    · SPF record of mail.example.org: (no SPF record)
    · DNS mail.example.org TXT → NXDOMAIN (no such name)
  DMARC → dmarc=fail header.from=example.org policy.dmarc=none
    · policy: none
    · DMARC record of example.org: _dmarc.example.org \"v=DMARC1; p=quarantine; sp=reject\"
  Authentication-Results: mx.test;
  \tdkim=none (no signature);
  \tspf=pass
"
        );
        assert_eq!(report.dmarc.result, "fail");
    }

    #[tokio::test]
    async fn two_spf_records_are_said_and_a_dns_failure_is_not_asked_again() {
        let two = vec!["v=spf1 -all".to_string(), "v=spf1 +all".to_string()];
        let dns = Resolver::fixed([("example.org", Rtype::Txt, Answer::Found(two))]);
        let report = spf_report("mailfrom", &spf("example.org", SpfResult::PermError), &dns).await;
        assert_eq!(report.missing.as_deref(), Some("several SPF records"));
        assert_eq!(report.lookups.len(), 1);
        // Not asked: the fixed answers would have said NXDOMAIN.
        let report = spf_report("helo", &spf("mail.example.org", SpfResult::TempError), &dns).await;
        assert_eq!(
            (report.missing.as_deref(), report.lookups.len()),
            (Some(TEMPORARY), 0)
        );
        // No name to ask: no line at all.
        let report = spf_report("helo", &spf("192.0.2.1", SpfResult::None), &dns).await;
        assert_eq!((report.record, report.missing), (None, None));
    }

    #[tokio::test]
    async fn without_a_dmarc_record_the_from_domains_answer_says_why() {
        let dns = Resolver::fixed([]);
        let dmarc = DmarcOutput::new("example.org".to_string());
        let report = dmarc_report(Some(&dmarc), "dmarc=none header.from=example.org", &dns).await;
        assert_eq!(report.result, "none");
        assert_eq!(report.policy, None);
        assert_eq!(report.record, None);
        let [Detail::Dns { name, answer, .. }] = report.lookups.as_slice() else {
            panic!("{:?}", report.lookups);
        };
        assert_eq!(
            (name.as_str(), answer.as_str()),
            ("_dmarc.example.org", "NXDOMAIN (no such name)")
        );
    }
}
