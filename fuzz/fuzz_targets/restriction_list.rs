//! Fuzz target: the restriction list parser (`crate::policy`) never
//! panics, and every list it accepts prints (each element as Postfix
//! writes it) to text that parses back into the same elements. The same
//! for an access table's result and for DNSBL answer filters.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::policy::{RblFilter, Stage, parse_list, parse_result};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One list item per line.
    let items: Vec<&str> = text.split('\n').collect();
    for stage in Stage::ALL {
        if let Ok(list) = parse_list(stage, &items) {
            let printed: Vec<String> = list.iter().map(|e| e.to_string()).collect();
            match parse_list(stage, &printed) {
                Ok(again) => assert_eq!(again, list, "{printed:?}"),
                Err(e) => panic!("printed list does not parse: {e}: {printed:?}"),
            }
        }
    }
    if let Ok(list) = parse_result(text) {
        let printed: Vec<String> = list.iter().map(|e| e.to_string()).collect();
        assert_eq!(parse_result(&printed.join(", ")).ok(), Some(list), "{printed:?}");
    }
    if let Ok(filter) = RblFilter::parse(text) {
        assert_eq!(RblFilter::parse(&filter.to_string()).ok(), Some(filter));
    }
});
