//! Fuzz target: `Config::from_toml` never panics on any text, and whatever
//! it accepts prints (`config show`, full and `--non-default`) to TOML that
//! reads back into the same configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text, "fuzz.toml") else {
        return;
    };
    for non_default in [false, true] {
        let shown = config.to_toml(non_default);
        match Config::from_toml(&shown, "shown.toml") {
            Ok(reread) => assert_eq!(reread, config, "{shown}"),
            Err(e) => panic!("printed configuration does not load: {e}\n{shown}"),
        }
    }
});
