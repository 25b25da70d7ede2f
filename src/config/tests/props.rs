//! Property tests: no text makes the loader panic, and generated valid
//! configurations survive printing and reading back.

use proptest::prelude::*;

use super::{parse, to_toml};

/// A valid TOML line for some key, or nothing.
fn key_value() -> impl Strategy<Value = Vec<(&'static str, &'static str, String)>> {
    let name = "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z][a-z0-9]{0,8}){0,3}";
    let duration = prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        (0u64..3000, "[smhdw]").prop_map(|(n, u)| format!("\"{n}{u}\"")),
    ];
    let positive = prop_oneof![
        (1u64..100_000).prop_map(|n| n.to_string()),
        (1u64..3000, "[smhdw]").prop_map(|(n, u)| format!("\"{n}{u}\"")),
    ];
    let quoted = |s: String| toml_edit::Value::from(s).to_string();
    let template = prop_oneof![
        Just("$hostname".to_string()),
        Just("${domain}".to_string()),
        Just("$(myhostname)".to_string()),
        "[a-z][a-z0-9]{0,7}",
    ];
    let domain =
        proptest::collection::vec(template.clone(), 1..4).prop_map(move |parts| parts.join("."));
    let network = prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| ipnet::Ipv4Net::new(a.into(), l)
            .unwrap()
            .trunc()
            .to_string()),
        (any::<[u16; 8]>(), 0u8..=128).prop_map(|(a, l)| format!(
            "[{}]/{l}",
            ipnet::Ipv6Net::new(a.into(), l).unwrap().trunc().addr()
        )),
        any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
    ];
    let listen = prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(a, p)| std::net::SocketAddr::from((a, p)).to_string()),
        (any::<[u16; 8]>(), any::<u16>())
            .prop_map(|(a, p)| std::net::SocketAddr::from((a, p)).to_string()),
    ];
    let strings = |s: BoxedStrategy<String>| {
        proptest::collection::vec(s, 0..4).prop_map(move |v| {
            format!(
                "[{}]",
                v.into_iter().map(quoted).collect::<Vec<_>>().join(", ")
            )
        })
    };
    let candidates: Vec<BoxedStrategy<(&'static str, &'static str, String)>> = vec![
        name.prop_map(move |h| ("server", "hostname", quoted(h)))
            .boxed(),
        name.prop_map(move |h| ("server", "domain", quoted(h)))
            .boxed(),
        domain
            .clone()
            .prop_map(move |h| ("server", "origin", quoted(h)))
            .boxed(),
        "[a-z][a-z0-9_]{0,10}"
            .prop_map(move |u| ("server", "user", quoted(u)))
            .boxed(),
        "(/[a-z$]{1,5}){1,3}"
            .prop_map(move |p| ("server", "run_directory", quoted(p.replace('$', "$$"))))
            .boxed(),
        strings(domain.boxed())
            .prop_map(|v| ("local", "domains", v))
            .boxed(),
        "[a-z]{1,5}(/[a-z]{1,5}|/\\$user|/\\$home|\\$\\{user\\}|\\$\\{home\\}){0,4}/?"
            .prop_map(move |m| ("local", "mailbox", quoted(m)))
            .boxed(),
        duration
            .clone()
            .prop_map(|d| ("local", "worker_idle", d))
            .boxed(),
        (1usize..64)
            .prop_map(|n| ("local", "concurrency_per_user", n.to_string()))
            .boxed(),
        strings(network.boxed())
            .prop_map(|v| ("relay", "networks", v))
            .boxed(),
        "(/[a-z]{1,5}){1,3}"
            .prop_map(move |p| ("queue", "directory", quoted(p)))
            .boxed(),
        any::<u32>()
            .prop_map(|n| ("queue", "large_message_threshold", n.to_string()))
            .boxed(),
        positive
            .clone()
            .prop_map(|d| ("queue", "run_delay", d))
            .boxed(),
        duration
            .clone()
            .prop_map(|d| ("queue", "maximal_lifetime", d))
            .boxed(),
        duration
            .clone()
            .prop_map(|d| ("queue", "move_deferred_after", d))
            .boxed(),
        strings(listen.boxed())
            .prop_map(|v| ("smtpd", "listen", v))
            .boxed(),
        "[ -#%-~]{1,40}"
            .prop_map(move |b| ("smtpd", "banner", quoted(format!("$hostname {b}"))))
            .boxed(),
        any::<u32>()
            .prop_map(|n| ("smtpd", "message_size_limit", n.to_string()))
            .boxed(),
        (1u32..100_000)
            .prop_map(|n| ("smtpd", "recipient_limit", n.to_string()))
            .boxed(),
        (512u32..100_000)
            .prop_map(|n| ("smtpd", "line_length_limit", n.to_string()))
            .boxed(),
        positive.prop_map(|d| ("smtpd", "timeout", d)).boxed(),
        (1u32..1000)
            .prop_map(|n| ("smtpd", "hard_error_limit", n.to_string()))
            .boxed(),
        (0u32..1000)
            .prop_map(|n| ("smtpd", "junk_command_limit", n.to_string()))
            .boxed(),
        duration
            .clone()
            .prop_map(|d| ("smtpd", "session_time_limit", d))
            .boxed(),
        (1u32..1000)
            .prop_map(|n| ("smtpd", "max_connections", n.to_string()))
            .boxed(),
        any::<u64>()
            .prop_map(|n| ("queue", "minfree", (n >> 1).to_string()))
            .boxed(),
        (0u32..1000)
            .prop_map(|n| ("smtpd", "max_connections_per_client", n.to_string()))
            .boxed(),
        any::<bool>()
            .prop_map(|b| ("smtpd", "vrfy", b.to_string()))
            .boxed(),
        prop_oneof![Just("normalize"), Just("reject")]
            .prop_map(move |v| ("smtpd", "forbid_bare_newline", quoted(v.to_string())))
            .boxed(),
        any::<bool>()
            .prop_map(|b| ("smtpd", "forbid_unauth_pipelining", b.to_string()))
            .boxed(),
    ];
    // The backoffs must stay ordered, also against the other's default
    // (300s, 4000s).
    let secs = |n: u64| format!("\"{n}s\"");
    let backoff = prop_oneof![
        (1u64..100_000, 1u64..100_000).prop_map(move |(a, b)| vec![
            ("queue", "minimal_backoff", secs(a.min(b))),
            ("queue", "maximal_backoff", secs(a.max(b))),
        ]),
        (1u64..=4000).prop_map(move |n| vec![("queue", "minimal_backoff", secs(n))]),
        (300u64..100_000).prop_map(move |n| vec![("queue", "maximal_backoff", secs(n))]),
    ];
    let mut all: Vec<_> = candidates
        .into_iter()
        .map(|s| proptest::option::of(s.prop_map(|kv| vec![kv])).boxed())
        .collect();
    all.push(proptest::option::of(backoff).boxed());
    all.prop_map(|v| v.into_iter().flatten().flatten().collect())
}

/// Renders key/values as TOML, one table per section in first-seen order.
fn render(lines: &[(&str, &str, String)]) -> String {
    let mut out = String::new();
    for table in super::super::keys::tables() {
        out.push_str(&format!("[{table}]\n"));
        for (_, key, value) in lines.iter().filter(|(t, _, _)| *t == table) {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text);
    }

    #[test]
    fn arbitrary_toml_ish_text_never_panics(
        text in "(\\[[a-z.]{0,12}\\]\n|[a-z_.]{1,20} = (\"[$a-z{}()./:0-9\\[\\]]{0,20}\"|-?[0-9]{1,12}|true|\\[\"[0-9.:/\\[\\]a-f]{0,20}\"\\])\n){0,8}"
    ) {
        let _ = parse(&text);
    }

    #[test]
    fn generated_configs_round_trip(lines in key_value()) {
        let text = render(&lines);
        let config = match parse(&text) {
            Ok(config) => config,
            Err(e) => panic!("{e}\n{text}"),
        };
        for non_default in [false, true] {
            let shown = to_toml(&config, non_default);
            let reread = parse(&shown);
            prop_assert!(reread.is_ok(), "{:?}\n{}", reread, shown);
            prop_assert_eq!(reread.unwrap(), config.clone(), "{}", shown);
        }
    }
}
