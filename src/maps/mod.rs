//! Lookup tables in Postfix's formats, for smtpd's restrictions (access(5)
//! lookups, [`access`]) and for header and body checks
//! ([`crate::content`]).
//!
//! A table is opened from its spec ([`Table::open`]):
//!
//! | spec | what |
//! |---|---|
//! | `hash:/path`, `texthash:/path` | a postmap source file (`key value` lines, `#` comments, continuation lines start with whitespace; keys lower-cased). postern reads the text itself: there is no `.db` to build. `btree:`, `cdb:`, `lmdb:`, `dbm:` and `sdbm:` are read the same way, so a Postfix configuration's specs keep working. |
//! | `regexp:/path`, `pcre:/path` | regexp_table(5), pcre_table(5) (see [`pattern`]) |
//! | `inline:NAME` | the TOML table `[maps.NAME]` |
//! | `inline:{ key=value, { key = value } }` | Postfix's inline table |
//! | `regexp:{ {/re/ result}, … }`, `pcre:{ … }` | inline pattern tables |
//! | `static:VALUE`, `static:{ VALUE }` | always VALUE |
//!
//! Files are read again when they change (checked at most once a
//! second, [`crate::watch::stamp`]), without a reload. A table whose file
//! has errors is refused when opened ([`MapError::Spec`]); an edit that
//! breaks it later is logged as a warning and the last good version kept
//! serving, so a typo does not open or close the gates (Postfix's postmap
//! also leaves the old database in place when a rebuild fails). A file
//! that disappears makes lookups fail ([`MapError::Unavailable`]: the
//! caller defers) until it is back.
//!
//! Opened tables are shared process-wide by spec, so every session and
//! every restriction that names the same table uses one copy and one
//! reload.

pub mod access;
pub mod cli;
pub(crate) mod pattern;
pub(crate) mod spec;
pub mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

pub use self::access::{Action, parse_action};
pub use self::spec::Kind;
pub(crate) use self::text::Diagnostic;

use self::pattern::{Engine, PatternTable};
use crate::config::Config;
use crate::watch::{CHECK_EVERY, Stamp, stamp};

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The table cannot be read or parsed now (a file vanished, a syntax
    /// error appeared after an edit): the caller answers 451 4.3.0
    /// "Server configuration error" / defers, as Postfix does.
    #[error("{0}")]
    Unavailable(String),
    /// The spec itself is wrong (unknown type, relative path, unknown
    /// inline table name): a configuration error.
    #[error("{0}")]
    Spec(String),
}

impl Kind {
    fn engine(self) -> Option<Engine> {
        match self {
            Kind::Regexp => Some(Engine::Regexp),
            Kind::Pcre => Some(Engine::Pcre),
            _ => None,
        }
    }
}

/// One opened table, shared (`Clone` is cheap: an Arc inside). Files are
/// read again when they change (checked at most once a second).
#[derive(Clone)]
pub struct Table {
    inner: Arc<Inner>,
}

struct Inner {
    spec: String,
    kind: Kind,
    source: Source,
}

enum Source {
    Fixed(Arc<Data>),
    File {
        path: PathBuf,
        state: Mutex<FileState>,
    },
}

struct FileState {
    /// The last version that parsed without errors.
    data: Arc<Data>,
    stamp: Stamp,
    checked: Instant,
    /// Why the file cannot be read now (it vanished): lookups fail.
    gone: Option<String>,
}

/// A table's content.
pub enum Data {
    Exact(HashMap<String, String>),
    Patterns(PatternTable),
    Static(String),
    /// A `cidr:` table's entries, in file order.
    Cidr(Vec<(ipnet::IpNet, String)>),
}

impl Data {
    /// The value for `key` (already lower-cased for exact tables).
    fn lookup(&self, key: &[u8]) -> Option<String> {
        match self {
            Data::Exact(m) => m.get(String::from_utf8_lossy(key).as_ref()).cloned(),
            Data::Patterns(p) => p.lookup(key),
            Data::Static(v) => Some(v.clone()),
            Data::Cidr(entries) => {
                let key = String::from_utf8_lossy(key);
                let key = key.trim_start_matches('[').trim_end_matches(']');
                let ip = key.parse::<std::net::IpAddr>().ok()?.to_canonical();
                entries
                    .iter()
                    .find(|(net, _)| net.contains(&ip))
                    .map(|(_, v)| v.clone())
            }
        }
    }

    /// Parses a file's text as a table of `kind` (Hash, Regexp or Pcre);
    /// `file` names it in diagnostics.
    pub fn parse(kind: Kind, file: &str, text: &str) -> (Data, Vec<Diagnostic>) {
        if kind == Kind::Cidr {
            let (entries, d) = text::parse_cidr(file, text);
            return (Data::Cidr(entries), d);
        }
        match kind.engine() {
            Some(engine) => {
                let (t, d) = PatternTable::parse(engine, file, text);
                (Data::Patterns(t), d)
            }
            None => {
                let (m, d) = text::parse_hash(file, text);
                (Data::Exact(m), d)
            }
        }
    }
}

/// Tables opened so far, by spec (with an inline table's content).
static OPENED: LazyLock<Mutex<HashMap<String, Table>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Table {
    /// Open a table from its spec (see the module documentation). `config`
    /// supplies the `[maps.NAME]` tables of `inline:NAME`.
    pub(crate) fn open(spec: &str, config: &Config) -> Result<Table, MapError> {
        let spec = spec.trim();
        let (ty, rest) = spec
            .split_once(':')
            .ok_or_else(|| MapError::Spec(format!("{spec:?}: expected type:name")))?;
        let kind = Kind::from_type(ty).ok_or_else(|| {
            MapError::Spec(format!(
                "{spec:?}: unsupported table type {ty:?} (hash, texthash, regexp, pcre, cidr, inline, static)"
            ))
        })?;
        let named = (kind == Kind::Inline && !rest.trim_start().starts_with('{'))
            .then(|| config.maps.get(rest.trim()))
            .map(|m| {
                m.ok_or_else(|| {
                    MapError::Spec(format!(
                        "{spec:?}: there is no table [maps.{}]",
                        rest.trim()
                    ))
                })
            })
            .transpose()?;
        // The cache key determines the content: an inline table's entries
        // are part of it (a reload may change them).
        let key = match named {
            Some(m) => format!("{spec}\0{m:?}"),
            None => spec.to_string(),
        };
        let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = opened.get(&key) {
            return Ok(t.clone());
        }
        let source = match (kind, named) {
            (_, Some(m)) => Source::Fixed(Arc::new(Data::Exact(m.clone().into_iter().collect()))),
            (Kind::Static, None) => {
                let value = rest.trim();
                let value = value
                    .strip_prefix('{')
                    .and_then(|v| v.strip_suffix('}'))
                    .unwrap_or(value)
                    .trim();
                Source::Fixed(Arc::new(Data::Static(value.to_string())))
            }
            (_, None) if rest.trim_start().starts_with('{') => {
                Source::Fixed(Arc::new(inline_data(kind, spec, rest)?))
            }
            (Kind::Inline, None) => unreachable_inline(spec)?,
            (_, None) => open_file(kind, spec, rest)?,
        };
        let table = Table {
            inner: Arc::new(Inner {
                spec: spec.to_string(),
                kind,
                source,
            }),
        };
        opened.insert(key, table.clone());
        Ok(table)
    }

    /// A table over given content, not shared (tests, the policy tracer's
    /// what-if runs).
    pub fn fixed(spec: &str, kind: Kind, data: Data) -> Table {
        Table {
            inner: Arc::new(Inner {
                spec: spec.to_string(),
                kind,
                source: Source::Fixed(Arc::new(data)),
            }),
        }
    }

    /// The spec as written (for logs and the tracer).
    pub(crate) fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// regexp/pcre/cidr: queried once with the whole string, no partial
    /// keys.
    pub(crate) fn is_pattern(&self) -> bool {
        matches!(self.inner.kind, Kind::Regexp | Kind::Pcre | Kind::Cidr)
    }

    /// One query: the exact (lower-cased) key for hash/inline/static; the
    /// first matching pattern for regexp/pcre (with $1… substituted).
    pub fn get(&self, key: &str) -> Result<Option<String>, MapError> {
        self.get_bytes(key.as_bytes())
    }

    /// [`Table::get`] for input that need not be UTF-8 (message headers
    /// and body lines).
    pub(crate) fn get_bytes(&self, key: &[u8]) -> Result<Option<String>, MapError> {
        let data = self.data()?;
        if self.is_pattern() {
            Ok(data.lookup(key))
        } else {
            let lower = String::from_utf8_lossy(key).to_lowercase();
            Ok(data.lookup(lower.as_bytes()))
        }
    }

    /// The content now, read again if the file changed.
    fn data(&self) -> Result<Arc<Data>, MapError> {
        let (path, state) = match &self.inner.source {
            Source::Fixed(d) => return Ok(d.clone()),
            Source::File { path, state } => (path, state),
        };
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if st.checked.elapsed() >= CHECK_EVERY {
            st.checked = Instant::now();
            let now = stamp(path);
            if now != st.stamp {
                st.stamp = now;
                self.reread(path, &mut st);
            }
        }
        match &st.gone {
            Some(why) => Err(MapError::Unavailable(format!("{}: {why}", self.inner.spec))),
            None => Ok(st.data.clone()),
        }
    }

    fn reread(&self, path: &Path, st: &mut FileState) {
        let spec = &self.inner.spec;
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                log::warn!("table {spec}: cannot read {}: {e}", path.display());
                st.gone = Some(e.to_string());
                return;
            }
        };
        st.gone = None;
        let (data, diags) = Data::parse(self.inner.kind, &path.display().to_string(), &text);
        let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.error).collect();
        if let Some(first) = errors.first() {
            log::warn!(
                "table {spec} has changed but has {} error(s) (the first: {first}); the previous version stays in use",
                errors.len()
            );
            return;
        }
        for d in &diags {
            log::warn!("{d}");
        }
        log::info!("table {spec} has changed -- reloaded");
        st.data = Arc::new(data);
    }
}

fn unreachable_inline(spec: &str) -> Result<Source, MapError> {
    Err(MapError::Spec(format!(
        "{spec:?}: expected inline:NAME or inline:{{ … }}"
    )))
}

/// `inline:{…}`, `regexp:{…}`, `pcre:{…}`.
fn inline_data(kind: Kind, spec: &str, rest: &str) -> Result<Data, MapError> {
    let elements = text::brace_elements(rest)
        .ok_or_else(|| MapError::Spec(format!("{spec:?}: unbalanced {{ }}")))?;
    match kind.engine() {
        Some(engine) => {
            let lines = elements.into_iter().enumerate().map(|(i, e)| (i + 1, e));
            let (table, diags) = PatternTable::from_lines(engine, spec, lines.collect());
            refuse_errors(&diags)?;
            Ok(Data::Patterns(table))
        }
        None => {
            let mut map = HashMap::new();
            for e in elements {
                let (k, v) = e
                    .split_once('=')
                    .ok_or_else(|| MapError::Spec(format!("{spec:?}: missing '=' in {e:?}")))?;
                map.entry(k.trim().to_lowercase())
                    .or_insert_with(|| v.trim().to_string());
            }
            Ok(Data::Exact(map))
        }
    }
}

fn open_file(kind: Kind, spec: &str, rest: &str) -> Result<Source, MapError> {
    let path = PathBuf::from(rest.trim());
    if !path.is_absolute() {
        return Err(MapError::Spec(format!(
            "{spec:?}: the file must be an absolute path"
        )));
    }
    let st = stamp(&path);
    let bytes = std::fs::read(&path)
        .map_err(|e| MapError::Spec(format!("{spec}: cannot read {}: {e}", path.display())))?;
    let (data, diags) = Data::parse(
        kind,
        &path.display().to_string(),
        &String::from_utf8_lossy(&bytes),
    );
    refuse_errors(&diags)?;
    for d in &diags {
        log::warn!("{d}");
    }
    Ok(Source::File {
        path,
        state: Mutex::new(FileState {
            data: Arc::new(data),
            stamp: st,
            checked: Instant::now(),
            gone: None,
        }),
    })
}

/// A table with errors is not used: the first errors, one a line.
fn refuse_errors(diags: &[Diagnostic]) -> Result<(), MapError> {
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.error)
        .map(|d| d.to_string())
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(MapError::Spec(errors.join("\n")))
}

/// The files of every table spec the configuration names for smtpd's
/// checks (`checks.*`); for the sandbox, which must let smtpd read them.
pub(crate) fn files_of(specs: &[String]) -> Vec<PathBuf> {
    specs
        .iter()
        .flat_map(|s| s.split_whitespace())
        .filter_map(|s| s.split_once(':'))
        .filter(|(t, rest)| Kind::from_type(t).is_some() && rest.starts_with('/'))
        .map(|(_, rest)| PathBuf::from(rest))
        .collect()
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
