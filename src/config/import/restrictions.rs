//! Restriction lists element by element, and table specs: each element
//! postern knows (`crate::policy`'s parser says) is kept as written; one it
//! lacks is left out and named. Tables keep their files; `proxy:` is
//! dropped; a type postern cannot read (mysql:, ldap:, …) is left out.

use super::parse::split_list;
use super::translate::Work;
use crate::policy::element::{Stage, parse_list};

/// The Postfix restrictions that take an argument (so that an unknown one
/// is reported with it, and its argument is not taken for a restriction).
const WITH_ARGUMENT: &[&str] = &[
    "check_ccert_access",
    "check_client_a_access",
    "check_client_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_etrn_access",
    "check_helo_a_access",
    "check_helo_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_policy_service",
    "check_recipient_a_access",
    "check_recipient_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_reverse_client_hostname_a_access",
    "check_reverse_client_hostname_access",
    "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_sasl_access",
    "check_sender_a_access",
    "check_sender_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "check_spf",
    "permit_dnswl_client",
    "permit_rhswl_client",
    "reject_rbl",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_recipient",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_sender",
    "sleep",
];

/// Restrictions postern does not have as elements but does otherwise:
/// reported as notes, not as left out.
const COVERED: &[(&str, &str)] = &[(
    "reject_unauth_pipelining",
    "postern refuses unauthorized pipelining for every client (smtpd.forbid_unauth_pipelining, on by default)",
)];

/// The table types postern reads.
const TABLE_TYPES: &[&str] = &[
    "hash", "texthash", "btree", "cdb", "lmdb", "dbm", "sdbm", "regexp", "pcre", "cidr", "inline",
    "static",
];

/// The elements of the list `value` postern knows, each as one string
/// (`check_client_access hash:/etc/postfix/access`).
pub(crate) fn list(
    w: &mut Work,
    value: &str,
    stage: Stage,
    param: &str,
    origin: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut tokens = split_list(value).into_iter();
    while let Some(token) = tokens.next() {
        let name = token.to_ascii_lowercase();
        let mut element = token.clone();
        let mut argument = None;
        if WITH_ARGUMENT.contains(&name.as_str()) {
            match tokens.next() {
                Some(a) => argument = Some(a),
                None => {
                    w.leave_out(origin, param, &format!("`{token}` without its argument"));
                    continue;
                }
            }
        }
        // Tables: the bare one, or the argument of check_*_access.
        let table = match &argument {
            Some(a) if name.starts_with("check_") && name.ends_with("_access") => Some(a.clone()),
            None if token.contains(':') => Some(token.clone()),
            _ => None,
        };
        if let Some(spec) = table {
            // An unreadable table's element is left out (reported there).
            let Some(kept) = self::table(w, &spec, param, origin) else {
                continue;
            };
            match &argument {
                Some(_) => argument = Some(kept),
                None => element = kept,
            }
        }
        if let Some(a) = &argument {
            element = format!("{element} {a}");
        }
        match parse_list(stage, &[&element]) {
            Ok(_) => out.push(element),
            Err(e) => unknown(w, &name, &element, &e.reason, param, origin),
        }
    }
    out
}

fn unknown(w: &mut Work, name: &str, element: &str, reason: &str, param: &str, origin: &str) {
    if let Some((_, note)) = COVERED.iter().find(|(n, _)| *n == name) {
        w.note(origin, param, &format!("`{element}`: {note}"));
        return;
    }
    let why = if reason.starts_with("unknown restriction") {
        "postern has no such restriction".to_string()
    } else {
        reason.to_string()
    };
    w.leave_out(origin, param, &format!("`{element}`: {why}"));
}

/// A table spec postern reads (`proxy:` dropped, with a note), or `None`
/// (reported) for a type it cannot.
pub(crate) fn table(w: &mut Work, spec: &str, param: &str, origin: &str) -> Option<String> {
    let spec = match spec.strip_prefix("proxy:") {
        Some(inner) => {
            w.note(
                origin,
                param,
                &format!("{spec}: proxy: dropped (postern opens its tables itself)"),
            );
            inner
        }
        None => spec,
    };
    let (kind, name) = spec.split_once(':').unwrap_or((spec, ""));
    if TABLE_TYPES.contains(&kind) {
        if !matches!(kind, "inline" | "static") && !name.starts_with('/') {
            w.leave_out(origin, param, &format!("{spec}: not an absolute path"));
            return None;
        }
        return Some(spec.to_string());
    }
    w.leave_out(origin, param, &format!("{spec}: table type {kind}: not supported (postern reads hash, texthash, cdb, lmdb, regexp, pcre, cidr, inline and static tables)"));
    None
}

#[cfg(test)]
mod tests {
    use super::super::defaults::Defaults;
    use super::super::parse::main_cf;
    use super::*;

    /// The kept elements and the report's texts (left out ones marked `!`).
    fn translate(value: &str, stage: Stage) -> (Vec<String>, Vec<String>) {
        let cf = main_cf("", "main.cf").unwrap();
        let defaults = Defaults::new(Some("mx.example.com"));
        let mut w = Work::new(&cf, &defaults, None);
        let kept = list(&mut w, value, stage, "smtpd_x_restrictions", "main.cf:1");
        let (_, items) = w.into_parts();
        let texts = items
            .iter()
            .map(|i| format!("{}{}", if i.left_out { "!" } else { "" }, i.text))
            .collect();
        (kept, texts)
    }

    #[test]
    fn elements_postern_knows_are_kept_with_their_arguments() {
        let (kept, report) = translate(
            "permit_mynetworks, check_client_access proxy:hash:/etc/postfix/access,\n  reject_rbl_client zen.spamhaus.org=127.0.0.[2..11] cidr:/etc/postfix/block.cidr",
            Stage::Client,
        );
        assert_eq!(
            kept,
            [
                "permit_mynetworks",
                "check_client_access hash:/etc/postfix/access",
                "reject_rbl_client zen.spamhaus.org=127.0.0.[2..11]",
                "cidr:/etc/postfix/block.cidr",
            ]
        );
        assert_eq!(report.len(), 1);
        assert!(report[0].contains("proxy: dropped"), "{report:?}");
    }

    #[test]
    fn what_postern_lacks_is_named_and_left_out() {
        let (kept, report) = translate(
            "check_sender_access mysql:/etc/postfix/s.cf, reject_unknown_reverse_client_hostname, check_sender_mx_access hash:/etc/x, reject_unauth_pipelining, reject",
            Stage::Sender,
        );
        assert_eq!(kept, ["reject"]);
        assert!(
            report[0].starts_with("!mysql:/etc/postfix/s.cf: table type mysql: not supported"),
            "{report:?}"
        );
        assert_eq!(
            report[1],
            "!`reject_unknown_reverse_client_hostname`: postern has no such restriction"
        );
        assert_eq!(
            report[2],
            "!`check_sender_mx_access hash:/etc/x`: postern has no such restriction"
        );
        assert!(
            report[3].starts_with("`reject_unauth_pipelining`: postern refuses"),
            "{report:?}"
        );
        assert_eq!(report.len(), 4);
    }

    #[test]
    fn a_relative_table_path_is_refused() {
        let (kept, report) = translate("check_helo_access pcre:helo_access", Stage::Helo);
        assert!(kept.is_empty());
        assert_eq!(report, ["!pcre:helo_access: not an absolute path"]);
    }
}
