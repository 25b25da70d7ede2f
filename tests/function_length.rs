//! The length of the functions of `src/` (issue 17): none of 100 lines or
//! more outside test code, so that each says what it does on a screen or
//! two and a long one is split along its seams into named helpers.
//!
//! A function's length is from the line of its `fn` to the line of its
//! closing brace (doc comments and attributes not counted), measured from
//! the source text by a small lexer that knows strings, raw strings,
//! characters, lifetimes and comments, so that a brace inside one is not
//! counted. Test code is not measured: items under `#[cfg(test)]` and the
//! files that hold test modules (named `*tests*.rs`, or under a `tests/`
//! directory).
//!
//! `cargo test --test function_length -- --nocapture` prints the longest
//! functions; `POSTERN_SRC=DIR` measures another tree.

use std::path::{Path, PathBuf};

/// A function of this many lines or more fails the test.
const LIMIT: usize = 100;

/// The source files to measure, test files left out.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                source_files(&path, out);
            }
        } else if name.ends_with(".rs") && !name.contains("tests") {
            out.push(path);
        }
    }
}

/// What the lexer gives: an identifier or keyword, or one character of
/// punctuation; literals and comments are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Word(String),
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// From 1.
    line: usize,
}

impl Token {
    fn is(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }

    fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            Kind::Punct(_) => None,
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Rust source as tokens (enough of Rust's lexical grammar to find items
/// and match braces).
fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Advances over chars[from..to], counting newlines.
    let skip = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
        to
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip(i, block_comment_end(&chars, i), &mut line);
        } else if c == '"' {
            i = skip(i, string_end(&chars, i + 1), &mut line);
        } else if let Some(end) = raw_string_end(&chars, i) {
            i = skip(i, end, &mut line);
        } else if (c == 'b' || c == 'c') && next == Some('"') {
            i = skip(i, string_end(&chars, i + 2), &mut line);
        } else if c == 'b' && next == Some('\'') {
            i = char_end(&chars, i + 1).unwrap_or(i + 2);
        } else if c == '\'' {
            // A character literal, or a lifetime or label (`'a`).
            match char_end(&chars, i) {
                Some(end) => i = end,
                None => {
                    i += 1;
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
        } else if is_ident(c) {
            let start = i;
            if c == 'r' && next == Some('#') {
                i += 2; // a raw identifier: `r#fn` is no `fn`
            }
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(Token {
                kind: Kind::Word(word),
                line,
            });
        } else {
            if c == '\n' {
                line += 1;
            } else if !c.is_whitespace() {
                tokens.push(Token {
                    kind: Kind::Punct(c),
                    line,
                });
            }
            i += 1;
        }
    }
    tokens
}

/// The end (exclusive) of a `/* */` comment starting at `at`; they nest.
fn block_comment_end(chars: &[char], at: usize) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end (exclusive) of a string whose text starts at `from` (after the
/// opening quote), with backslash escapes.
fn string_end(chars: &[char], from: usize) -> usize {
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end (exclusive) of a raw string (`r"…"`, `r#"…"#`, `br#"…"#`,
/// `cr"…"`) starting at `at`, if one starts there.
fn raw_string_end(chars: &[char], at: usize) -> Option<usize> {
    if at > 0 && is_ident(chars[at - 1]) {
        return None; // inside a word: `for"` is not `r"`
    }
    let mut i = at;
    if matches!(chars.get(i), Some('b' | 'c')) {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

/// The end (exclusive) of a character literal whose quote is at `at`, or
/// none when the quote starts a lifetime or a label.
fn char_end(chars: &[char], at: usize) -> Option<usize> {
    match chars.get(at + 1)? {
        '\\' => {
            // After the backslash and the escaped character (`'\''`).
            let mut i = at + 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            Some(i + 1)
        }
        _ if chars.get(at + 2) == Some(&'\'') => Some(at + 3),
        _ => None,
    }
}

/// A function: its name, the line of its `fn` and how many lines it takes.
#[derive(Debug)]
struct Function {
    name: String,
    line: usize,
    lines: usize,
}

/// The index of the token after the group (`{}`, `()`, `[]`) that opens
/// at `open`.
fn group_end(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct('{' | '(' | '[') => depth += 1,
            Kind::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// The end of the item starting at `from`: after its `;` or its block,
/// whichever comes first outside parentheses and brackets (`[u8; 4]`).
/// With the index of the block's `{`, if it has one.
fn item_end(tokens: &[Token], from: usize) -> (usize, Option<usize>) {
    let mut i = from;
    while i < tokens.len() {
        match tokens[i].kind {
            Kind::Punct(';') => return (i + 1, None),
            Kind::Punct('{') => return (group_end(tokens, i), Some(i)),
            Kind::Punct('(' | '[') => i = group_end(tokens, i),
            _ => i += 1,
        }
    }
    (tokens.len(), None)
}

/// The end of what an attribute at `from` is on (the attribute itself
/// and any more after it skipped): an item, or a field, a variant, a
/// statement or a match arm, which end at their `,` or at the brace that
/// closes what holds them.
fn attributed_end(tokens: &[Token], mut from: usize) -> usize {
    while tokens.get(from).is_some_and(|t| t.is('#')) {
        from = group_end(tokens, from + 1);
    }
    let mut i = from;
    if tokens.get(i).and_then(Token::word) == Some("pub") {
        i += 1;
        if tokens.get(i).is_some_and(|t| t.is('(')) {
            i = group_end(tokens, i);
        }
    }
    const ITEMS: [&str; 14] = [
        "fn", "mod", "impl", "struct", "enum", "union", "trait", "type", "const", "static", "use",
        "extern", "unsafe", "async",
    ];
    let word = tokens.get(i).and_then(Token::word).unwrap_or("");
    if ITEMS.contains(&word) || tokens.get(i + 1).is_some_and(|t| t.is('!')) {
        return item_end(tokens, i).0;
    }
    while i < tokens.len() {
        match tokens[i].kind {
            Kind::Punct(';' | ',') => return i + 1,
            Kind::Punct('}' | ')' | ']') => return i,
            Kind::Punct('{' | '(' | '[') => i = group_end(tokens, i),
            _ => i += 1,
        }
    }
    tokens.len()
}

/// Whether an attribute `#[cfg(test)]` starts at `at`.
fn cfg_test(tokens: &[Token], at: usize) -> bool {
    let shape = ["#", "[", "cfg", "(", "test", ")", "]"];
    tokens.len() >= at + shape.len()
        && shape.iter().zip(&tokens[at..]).all(|(s, t)| match &t.kind {
            Kind::Word(w) => w == s,
            Kind::Punct(c) => s.len() == 1 && s.starts_with(*c),
        })
}

/// Every function in `tokens` outside `#[cfg(test)]` items, nested ones
/// (in impls, modules, other functions) included.
fn functions(tokens: &[Token]) -> Vec<Function> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if cfg_test(tokens, i) {
            i = attributed_end(tokens, i);
            continue;
        }
        if tokens[i].word() == Some("fn")
            && let Some(name) = tokens.get(i + 1).and_then(Token::word)
            && let (end, Some(_)) = item_end(tokens, i + 2)
        {
            out.push(Function {
                name: name.to_string(),
                line: tokens[i].line,
                lines: tokens[end - 1].line - tokens[i].line + 1,
            });
        }
        i += 1;
    }
    out
}

/// Every function of the tree's source files, with its file.
fn measure(src: &Path) -> Vec<(String, Function)> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        for f in functions(&lex(&text)) {
            out.push((format!("src/{shown}"), f));
        }
    }
    out.sort_by(|a, b| b.1.lines.cmp(&a.1.lines).then(a.0.cmp(&b.0)));
    out
}

#[test]
fn no_function_is_100_lines_or_longer() {
    let src = std::env::var_os("POSTERN_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let all = measure(&src);
    assert!(all.len() > 100, "too few functions found in {src:?}");
    println!("the longest functions of {}:", src.display());
    for (file, f) in all.iter().take(15) {
        println!("{:>5} {file}:{}: {}", f.lines, f.line, f.name);
    }
    let long: Vec<String> = all
        .iter()
        .filter(|(_, f)| f.lines >= LIMIT)
        .map(|(file, f)| format!("{file}:{}: {} ({} lines)", f.line, f.name, f.lines))
        .collect();
    assert!(
        long.is_empty(),
        "functions of {LIMIT} lines or more (split each along its seams into named helpers):\n{}",
        long.join("\n")
    );
}

#[test]
fn braces_in_literals_and_comments_are_not_counted() {
    let text = r####"
fn a() {
    let s = "}}}";
    let r = r#"{"#;
    let c = '{';
    let b = b'}';
    let e = '\'';
    let l: &'static str = "x";
    // }
    /* } /* nested } */ } */
    'outer: loop { break 'outer; }
}
fn b(x: [u8; 4]) -> [u8; 2] {
    [x[0], x[1]]
}
trait T { fn c(&self); fn d() {} }
type F = fn(u8) -> u8;
#[cfg(test)]
mod tests {
    fn hidden() {}
}
#[cfg(test)]
fn helper() {}
fn r#match() {}
struct S {
    #[cfg(test)]
    field: u8,
}
impl S { fn after_a_test_field<A, B>(&self) -> Result<(), A> where B: Clone, {} }
"####;
    let found: Vec<(String, usize, usize)> = functions(&lex(text))
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    let expected = [
        ("a", 2, 11),
        ("b", 13, 3),
        ("d", 16, 1),
        ("r#match", 24, 1),
        ("after_a_test_field", 29, 1),
    ];
    let expected: Vec<(String, usize, usize)> = expected
        .iter()
        .map(|&(n, l, c)| (n.to_string(), l, c))
        .collect();
    assert_eq!(found, expected);
}
