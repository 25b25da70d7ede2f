//! The RFC 7208 test suite (issue 19): every case of the openspf.org
//! suite (`tests/data/spf/rfc7208-tests.yml`; its README says where it
//! comes from, its licence is beside it) run through postern's SPF
//! evaluation, `auth_results::Verifier::spf` (mail-auth's check_host on
//! our hickory resolver), against the DNS data each scenario defines,
//! served by the tests' DNS server on 127.0.0.1 (`outbound::dns`). No
//! daemon runs, no query leaves the machine.
//!
//! The suite as its own driver runs it (pyspf's `test/testspf.py`):
//! - a case is check_host() for the MAIL FROM identity, or, when
//!   `mailfrom` is empty, for the HELO identity (`postmaster@helo`):
//!   `SpfChecks::mail_from` or `SpfChecks::helo`;
//! - `result` is one result or a list of results any of which passes;
//! - `explanation` is the fail's explanation; `DEFAULT` is the one the
//!   driver configures for a record without `exp=`, which mail-auth has no
//!   setting for: no explanation is taken as `DEFAULT`;
//! - zone data: records as given (`TXT`/`SPF` a string or a list of
//!   character-strings of one record; `MX` `[preference, exchange]`); a
//!   name's `SPF` (type 99) records are copied to TXT when it lists no
//!   `TXT`, so that implementations of either type see the same policy
//!   (RFC 7208 dropped type 99: what postern asks is TXT alone); a value
//!   `NONE` is no record; `TIMEOUT` makes the name's other types (all of
//!   them, when it lists nothing) time out: the server does not answer.
//!   Names not listed are NXDOMAIN (the driver makes no difference
//!   between NXDOMAIN and an empty answer; SPF makes none either).
//!
//! The test passes while every failing case is listed, with its reason,
//! in `tests/data/spf/known-failures.txt`; it writes the count and every
//! failure (expected against got) to the test's standard error, where
//! `cargo test` shows it even when the test passes. A new failure fails
//! the test; a listed case that passes now is named, to be taken off.
//!
//! `SPF_SUITE_CASE=case-id cargo test --test e2e spf_suite` runs that
//! case alone and shows what it asked the DNS server and what mail-auth
//! said: how a failure is looked into.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::SpfOutput;
use postern::auth_results::{Identity, Verifier, spf_name};
use yaml_rust2::{Yaml, YamlLoader};

use crate::outbound::dns::{DnsServer, Zone};

const SUITE: &str = include_str!("../data/spf/rfc7208-tests.yml");
const KNOWN_FAILURES: &str = include_str!("../data/spf/known-failures.txt");

/// The receiving host's name (the `%{r}` macro).
const AUTHSERV_ID: &str = "mx.test";

/// One document of the suite: its DNS data and its cases.
struct Scenario {
    description: String,
    zone: Zone,
    cases: Vec<Case>,
}

struct Case {
    id: String,
    spec: String,
    host: String,
    helo: String,
    mailfrom: String,
    /// Any of these passes.
    results: Vec<String>,
    explanation: Option<String>,
}

/// What a case came to: `None` when it passed, else what was got
/// against what was expected.
struct Outcome {
    scenario: String,
    id: String,
    spec: String,
    failure: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_test_suite() {
    let scenarios = scenarios(SUITE);
    if let Ok(id) = std::env::var("SPF_SUITE_CASE") {
        return trace(&scenarios, &id).await;
    }
    let known = known_failures(KNOWN_FAILURES);
    let mut outcomes = Vec::new();
    for scenario in &scenarios {
        outcomes.extend(run_scenario(scenario).await);
    }
    let ids: Vec<&str> = outcomes.iter().map(|o| o.id.as_str()).collect();
    for id in known.keys() {
        assert!(ids.contains(id), "known-failures.txt names no case: {id}");
    }
    let report = report(&outcomes, &known);
    // Written past libtest's capture (which takes print! and eprint!
    // alone), so that a passing run shows it too.
    let _ = std::io::stderr().lock().write_all(report.text.as_bytes());
    assert!(
        report.new_failures.is_empty(),
        "failures not in tests/data/spf/known-failures.txt: {:?}",
        report.new_failures
    );
}

/// One case alone: the questions it asked, what it got.
async fn trace(scenarios: &[Scenario], id: &str) {
    let (scenario, case) = scenarios
        .iter()
        .find_map(|s| s.cases.iter().find(|c| c.id == id).map(|c| (s, c)))
        .unwrap_or_else(|| panic!("no case {id}"));
    let dns = DnsServer::start(scenario.zone.clone());
    let verifier = Verifier::new(&[dns.addr], AUTHSERV_ID).expect("a verifier");
    let got = got(&verifier, &case.host, &case.helo, &case.mailfrom).await;
    let mut text = format!("{id} ({}, spec {}):\n", scenario.description, case.spec);
    for (name, rtype) in dns.queries() {
        text.push_str(&format!("  asked {name} {rtype}\n"));
    }
    text.push_str(&format!("  got {got:?}\n"));
    let verdict = judge(case, got).unwrap_or_else(|| "passes".to_string());
    text.push_str(&format!("  {verdict}\n"));
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Every case of one scenario, at once (on its own DNS server and
/// verifier): the cases that wait out a timeout then wait together.
async fn run_scenario(scenario: &Scenario) -> Vec<Outcome> {
    let dns = DnsServer::start(scenario.zone.clone());
    let verifier = Arc::new(Verifier::new(&[dns.addr], AUTHSERV_ID).expect("a verifier"));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, case) in scenario.cases.iter().enumerate() {
        let verifier = verifier.clone();
        let (host, helo, mailfrom) = (case.host.clone(), case.helo.clone(), case.mailfrom.clone());
        tasks.spawn(async move { (n, got(&verifier, &host, &helo, &mailfrom).await) });
    }
    let mut got = tasks.join_all().await;
    got.sort_by_key(|(n, _)| *n);
    drop(dns);
    scenario
        .cases
        .iter()
        .zip(got)
        .map(|(case, (_, got))| Outcome {
            scenario: scenario.description.clone(),
            id: case.id.clone(),
            spec: case.spec.clone(),
            failure: judge(case, got),
        })
        .collect()
}

/// The result of the identity the case checks, with its explanation;
/// `Err` when the case cannot be run (its host is not an address).
async fn got(
    verifier: &Verifier,
    host: &str,
    helo: &str,
    mailfrom: &str,
) -> Result<SpfOutput, String> {
    let client_ip: IpAddr = host
        .parse()
        .map_err(|_| format!("host {host:?} is not an IP address"))?;
    let who = Identity {
        client_ip,
        helo,
        mail_from: mailfrom,
    };
    let checks = verifier.spf(&who).await;
    Ok(if mailfrom.is_empty() {
        checks.helo
    } else {
        checks.mail_from
    })
}

/// `None` when `got` is what the case expects.
fn judge(case: &Case, got: Result<SpfOutput, String>) -> Option<String> {
    let expected = match &case.explanation {
        Some(exp) => format!("{} (exp {exp:?})", case.results.join(" or ")),
        None => case.results.join(" or "),
    };
    let got = match got {
        Ok(got) => got,
        Err(e) => return Some(format!("expected {expected}, not run: {e}")),
    };
    // RFC 7208's names, as the suite writes them.
    let result = spf_name(got.result());
    let explanation = got.explanation().unwrap_or("DEFAULT");
    let result_ok = case.results.iter().any(|r| *r == result);
    let explanation_ok = case.explanation.as_deref().is_none_or(|e| e == explanation);
    if result_ok && explanation_ok {
        return None;
    }
    let got = match &case.explanation {
        Some(_) => format!("{result} (exp {explanation:?})"),
        None => result.to_string(),
    };
    Some(format!("expected {expected}, got {got}"))
}

struct Report {
    text: String,
    new_failures: Vec<String>,
}

/// The count, every failure (a known one with its reason), and the
/// known failures that pass now.
fn report(outcomes: &[Outcome], known: &BTreeMap<&str, &str>) -> Report {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    let mut text = format!(
        "\nRFC 7208 test suite (tests/data/spf): {} of {} cases pass, {} fail ({} of them known)\n",
        outcomes.len() - failed.len(),
        outcomes.len(),
        failed.len(),
        failed
            .iter()
            .filter(|o| known.contains_key(o.id.as_str()))
            .count(),
    );
    let mut new_failures = Vec::new();
    for o in &failed {
        let failure = o.failure.as_deref().unwrap_or_default();
        let why = match known.get(o.id.as_str()) {
            Some(reason) => format!("known: {reason}"),
            None => {
                new_failures.push(o.id.clone());
                "NEW".to_string()
            }
        };
        text.push_str(&format!(
            "  FAIL {} ({}, spec {}): {failure}\n       {why}\n",
            o.id, o.scenario, o.spec
        ));
    }
    for o in outcomes.iter().filter(|o| o.failure.is_none()) {
        if known.contains_key(o.id.as_str()) {
            text.push_str(&format!(
                "  PASSES NOW (take it off known-failures.txt): {}\n",
                o.id
            ));
        }
    }
    Report { text, new_failures }
}

/// `case-id: reason` lines; `#` starts a comment line.
fn known_failures(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (id, reason) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("known-failures.txt: no reason: {l}"));
            (id.trim(), reason.trim())
        })
        .collect()
}

/// The suite's documents, as scenarios.
fn scenarios(yaml: &str) -> Vec<Scenario> {
    let docs = YamlLoader::load_from_str(yaml).expect("the suite is YAML");
    let scenarios: Vec<Scenario> = docs.iter().map(scenario).collect();
    let mut ids: Vec<&str> = scenarios
        .iter()
        .flat_map(|s| s.cases.iter().map(|c| c.id.as_str()))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "case names repeat across scenarios");
    scenarios
}

fn scenario(doc: &Yaml) -> Scenario {
    let description = text(&doc["description"]);
    let cases = doc["tests"]
        .as_hash()
        .expect("a scenario's tests")
        .iter()
        .map(|(id, t)| Case {
            id: text(id),
            spec: text(&t["spec"]),
            host: text(&t["host"]),
            helo: text(&t["helo"]),
            mailfrom: text(&t["mailfrom"]),
            results: match &t["result"] {
                Yaml::Array(list) => list.iter().map(text).collect(),
                one => vec![text(one)],
            },
            explanation: match &t["explanation"] {
                Yaml::BadValue => None,
                exp => Some(text(exp)),
            },
        })
        .collect();
    let mut zone = Zone::new();
    for (name, entries) in doc["zonedata"].as_hash().expect("a scenario's zonedata") {
        zone = add_name(
            zone,
            &text(name),
            entries.as_vec().expect("a name's records"),
        );
    }
    Scenario {
        description,
        zone,
        cases,
    }
}

/// One name's records, as the suite's driver reads them (see the top).
fn add_name(mut zone: Zone, name: &str, entries: &[Yaml]) -> Zone {
    let lists_txt = entries.iter().any(|e| !e["TXT"].is_badvalue());
    for entry in entries {
        if entry.as_str() == Some("TIMEOUT") {
            zone = zone.silent_otherwise(name);
            continue;
        }
        let (rtype, value) = entry
            .as_hash()
            .and_then(|h| h.iter().next())
            .unwrap_or_else(|| panic!("{name}: a record is `TYPE: value`: {entry:?}"));
        let rtype = text(rtype);
        if value.as_str() == Some("NONE") {
            continue;
        }
        zone = match rtype.as_str() {
            "TXT" | "SPF" => {
                let strings = strings(value);
                let strings: Vec<&str> = strings.iter().map(String::as_str).collect();
                assert!(
                    strings.iter().all(|s| s.len() <= 255),
                    "{name}: a long string"
                );
                match rtype.as_str() {
                    "SPF" if !lists_txt => zone.spf(name, &strings).txt_strings(name, &strings),
                    "SPF" => zone.spf(name, &strings),
                    _ => zone.txt_strings(name, &strings),
                }
            }
            "A" => zone.a(name, &text(value)),
            "AAAA" => zone.aaaa(name, &text(value)),
            "MX" => {
                let pref = value[0].as_i64().expect("an MX preference");
                let pref = u16::try_from(pref).expect("an MX preference");
                zone.mx(name, pref, &text(&value[1]))
            }
            "PTR" => zone.ptr_at(name, &text(value)),
            "CNAME" => zone.cname(name, &text(value)),
            other => panic!("{name}: record type {other} unknown to the harness"),
        };
    }
    zone
}

/// A TXT or SPF value: one string, or a list of the record's strings.
fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Array(list) => list.iter().map(text).collect(),
        one => vec![text(one)],
    }
}

/// A scalar as the text it was written as (a plain `1.2` or `10` read as
/// a number, too); a missing key is empty.
fn text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null | Yaml::BadValue => String::new(),
        other => panic!("a scalar, not {other:?}"),
    }
}
