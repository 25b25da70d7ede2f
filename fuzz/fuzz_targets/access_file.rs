//! Fuzz target: the hash/texthash (postmap source) parser and the access(5)
//! lookups never panic.
//!
//! The first line of the input is a query, the rest a table file. Every key
//! the parser accepts can be found again (case-insensitively); the client,
//! domain and address walks run over the query and over fixed addresses,
//! and every value found is read as an action. The input is also read as
//! a Postfix `inline:{ … }` list.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use postern::maps::text::brace_elements;
use postern::maps::{Data, Kind, Table, access, parse_action};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, file) = text.split_once('\n').unwrap_or((&text, ""));
    let (parsed, _) = Data::parse(Kind::Hash, "/fuzz", file);
    if let Data::Exact(map) = &parsed {
        let keys: Vec<String> = map.keys().cloned().collect();
        let table = Table::fixed("hash:/fuzz", Kind::Hash, Data::Exact(map.clone()));
        for k in keys.iter().take(50) {
            assert!(table.get(k).ok().flatten().is_some(), "{k:?}");
            assert!(table.get(&k.to_uppercase()).is_ok());
        }
    }
    let table = Table::fixed("hash:/fuzz", Kind::Hash, parsed);
    let ips: [IpAddr; 4] = [
        [192, 0, 2, 1].into(),
        "2001:db8::1".parse().unwrap_or([0, 0, 0, 0].into()),
        "::ffff:10.0.0.1".parse().unwrap_or([0, 0, 0, 0].into()),
        query.trim().parse().unwrap_or([127, 0, 0, 1].into()),
    ];
    let mut found = Vec::new();
    for ip in ips {
        found.push(access::client(&table, ip, Some(query)));
        found.push(access::client(&table, ip, None));
    }
    found.push(access::domain(&table, query));
    for delim in ["", "+", "+-"] {
        found.push(access::address(&table, query, delim));
        found.push(access::address(&table, "user+ext@sub.example.com", delim));
        found.push(access::address(&table, "<>", delim));
    }
    for (_, value) in found.into_iter().flatten().flatten() {
        let _ = parse_action(&value);
    }
    let _ = parse_action(query);
    let _ = brace_elements(&text);
});
