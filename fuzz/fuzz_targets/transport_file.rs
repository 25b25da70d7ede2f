//! Fuzz target: the transport(5) file parser, the lookup and the routing
//! decision never panic.
//!
//! The input (lossy UTF-8) is parsed as a transport file; every entry
//! renders to text that parses back to the same entry. Then a few
//! addresses, and every line of the input taken as an address, are looked
//! up and routed with the parsed table (with and without a relay host),
//! and each line is also parsed as a transport result and a next hop,
//! whose rendering parses back to the same value.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use postern::config::Config;
use postern::qmgr::route::route;
use postern::transport::{Nexthop, Transport, TransportTable, lookup_keys, parse_file};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, _) = parse_file(&text, Path::new("/fuzz"));
    let (again, _) = parse_file(&file.to_string(), Path::new("/fuzz"));
    let good = |f: &postern::transport::TransportFile| {
        f.entries()
            .filter(|(_, v)| v.is_ok())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(good(&file), good(&again), "{file}");

    let mut inline = BTreeMap::new();
    inline.insert("inline.example".to_string(), Transport::Local);
    let table = TransportTable::new(&inline, vec![file]);
    let mut cfg = Config::builtin();
    cfg.local.domains = vec!["localhost".into(), "mail.example".into()];
    cfg.local.recipient_delimiter = "+-".into();
    let fixed = [
        "user+ext@a.b.example.com",
        "root",
        "u@[192.0.2.1]",
        "u@[ipv6:::1]",
        "u@inline.example",
        "@",
        "x@",
    ];
    for line in text.lines().chain(fixed) {
        for delimiter in ["", "+-"] {
            let _ = lookup_keys(line, delimiter);
            let _ = table.lookup(line, delimiter);
        }
        let _ = route(line, &table, &cfg);
        if let Ok(t) = Transport::parse(line) {
            assert_eq!(Transport::parse(&t.to_string()).as_ref(), Ok(&t), "{line:?}");
        }
        if let Ok(n) = Nexthop::parse(line) {
            assert_eq!(Nexthop::parse(&n.to_string()).as_ref(), Ok(&n), "{line:?}");
        }
    }
    cfg.relay.host = Nexthop::parse("[relay.example]:2525").ok();
    for line in text.lines().chain(fixed) {
        let _ = route(line, &table, &cfg);
    }
});
