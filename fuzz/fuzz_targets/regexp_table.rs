//! Fuzz target: the regexp and pcre table parsers, their lookups, and the
//! header/body check inspector never panic (and never stall: pcre has its
//! match limit).
//!
//! The first byte picks the engine, the first line is a subject, the rest
//! a table file; the table is queried with the subject and with each of
//! its own lines. Then the input, as a message, goes through the content
//! inspector with fixed tables: with tables whose actions keep every line
//! the content comes out unchanged, fed whole or in small pieces.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use postern::content::{ContentChecks, Context, Inspector};
use postern::maps::{Data, Kind, Table};

const KEEP: &str = "\
/^Subject: .*\\bmoney\\b/ WARN
if /^content-type:/
/boundary/ DUNNO
endif
/^(a+)+$/ WARN slow
!/./ OK
";

const CHANGE: &str = "\
/^X-/ IGNORE
/^Subject: (.*)/ REPLACE Subject: [x] $1
/^From:/ PREPEND X-Seen: yes
/spam/ HOLD
/^To:/ REDIRECT a@b.example
";

/// Compiled once: the tables that keep every line.
static KEEPING: LazyLock<ContentChecks> = LazyLock::new(|| {
    ContentChecks::new(
        vec![table(Kind::Pcre, KEEP)],
        vec![table(Kind::Regexp, KEEP)],
        vec![table(Kind::Pcre, KEEP)],
    )
});
static CHANGING: LazyLock<(Table, Table)> =
    LazyLock::new(|| (table(Kind::Regexp, CHANGE), table(Kind::Pcre, CHANGE)));

fn table(kind: Kind, text: &str) -> Table {
    let (data, _) = Data::parse(kind, "/fuzz", text);
    Table::fixed("fuzz", kind, data)
}

fn inspect(checks: &ContentChecks, message: &[u8], chunk: usize) -> Vec<u8> {
    let mut i = Inspector::new(checks.clone(), Context::default());
    let mut out = Vec::new();
    for piece in message.chunks(chunk.max(1)) {
        i.feed(piece, &mut |b| out.extend_from_slice(b));
        let _ = i.take_log();
    }
    i.finish(&mut |b| out.extend_from_slice(b));
    let _ = i.verdict();
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let kind = if first & 1 == 0 { Kind::Regexp } else { Kind::Pcre };
    let text = String::from_utf8_lossy(rest);
    let (subject, file) = text.split_once('\n').unwrap_or((&text, ""));
    let t = table(kind, file);
    let _ = t.get(subject);
    for line in file.lines().take(20) {
        let _ = t.get(line);
    }

    let chunk = usize::from(first >> 1) + 1;
    assert_eq!(inspect(&KEEPING, rest, usize::MAX), rest);
    assert_eq!(inspect(&KEEPING, rest, chunk), rest);
    let (header, body) = CHANGING.clone();
    let change = ContentChecks::new(vec![header], vec![], vec![body, t]);
    assert_eq!(
        inspect(&change, rest, usize::MAX),
        inspect(&change, rest, chunk)
    );
});
