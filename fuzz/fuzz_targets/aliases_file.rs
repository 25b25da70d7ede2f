//! Fuzz target: the aliases(5) parser and the expansion never panic.
//!
//! The input (lossy UTF-8) is parsed as an aliases file and as an
//! `:include:` file; every entry it defines renders to text that parses
//! back to the same names and targets. Then a fixed tiny table, layered
//! under the parsed one, is expanded from a few names, with every
//! `:include:` file reading as the fuzz input itself (so includes nest and
//! loop), under both Postfix's and permissive context options.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use postern::aliases::{self, Allow, ExpandOptions, Table};

const FIXED: &str = "\
a: b, c@example.com, |/bin/true
b: a, :include:/fuzz, \\b
c: c, /var/mail/c/
loop: loop2
loop2: loop
";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (parsed, _) = aliases::parse(&text, Path::new("/fuzz"));
    let _ = aliases::parse_include(&text, Path::new("/fuzz"));

    let rendered = parsed.render();
    let (reparsed, _) = aliases::parse(&rendered, Path::new("/rendered"));
    for (name, entry) in parsed.iter().filter(|(_, e)| !e.targets.is_empty()) {
        let back = reparsed.get(name).map(|e| &e.targets);
        assert_eq!(back, Some(&entry.targets), "{name}\n{rendered}");
    }

    let (fixed, _) = aliases::parse(FIXED, Path::new("/fixed"));
    let table = Table::layered([fixed, parsed]);
    let permissive = ExpandOptions {
        delimiter: Some("+-".to_string()),
        local_domains: vec!["example.com".to_string()],
        allow_commands: Allow {
            alias: true,
            forward: true,
            include: true,
        },
        allow_files: Allow {
            alias: true,
            forward: true,
            include: true,
        },
        max_depth: 100,
    };
    let first = text.split([':', '\n']).next().unwrap_or("");
    for options in [ExpandOptions::default(), permissive] {
        for name in ["a", "loop", "postmaster", "x+y", first] {
            let _ = aliases::expand(&table, name, &options, |_| Ok(text.to_string()));
        }
    }
});
