//! STAND-IN for the lookup tables (the maps branch replaces this whole
//! directory; when merging, the maps branch wins).
//!
//! It implements exactly the API of the shared contract (/work/maps-api.md)
//! for the two table types the policy branch needs to run its own tests:
//! `inline:NAME` (the TOML table `[maps.NAME]`) and `static:VALUE`. Every
//! other type (`hash:`, `regexp:`, `pcre:`, ...) opens as a table that is
//! unavailable, so a restriction that uses one answers `451 4.3.0`.

pub mod access;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;

pub use self::access::{Action, parse_action};

/// Why a table cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The table cannot be read or parsed now: the caller answers
    /// `451 4.3.0` / defers.
    #[error("{0}")]
    Unavailable(String),
    /// The spec itself is wrong: a configuration error.
    #[error("{0}")]
    Spec(String),
}

/// One opened table; `Clone` is cheap.
#[derive(Clone)]
pub struct Table {
    inner: Arc<Inner>,
}

struct Inner {
    spec: String,
    kind: Kind,
}

enum Kind {
    Inline(BTreeMap<String, String>),
    Static(String),
    /// A type only the real maps module reads (stand-in).
    Unsupported,
}

impl Table {
    /// Opens a table from its spec (stand-in: `inline:NAME`, `static:VALUE`).
    pub fn open(spec: &str, config: &Config) -> Result<Table, MapError> {
        let Some((kind, rest)) = spec.split_once(':') else {
            return Err(MapError::Spec(format!(
                "{spec:?}: a table is written type:name"
            )));
        };
        let kind = match kind {
            "inline" => match config.maps.get(rest) {
                Some(map) => Kind::Inline(map.clone()),
                None => {
                    return Err(MapError::Spec(format!(
                        "{spec}: no table [maps.{rest}] in the configuration"
                    )));
                }
            },
            "static" => Kind::Static(rest.to_string()),
            "hash" | "texthash" | "regexp" | "pcre" | "cidr" | "cdb" => Kind::Unsupported,
            other => {
                return Err(MapError::Spec(format!(
                    "{spec}: unknown table type {other:?}"
                )));
            }
        };
        Ok(Table {
            inner: Arc::new(Inner {
                spec: spec.to_string(),
                kind,
            }),
        })
    }

    /// The spec as written.
    pub fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// regexp/pcre: queried once with the whole string.
    pub fn is_pattern(&self) -> bool {
        let s = self.spec();
        s.starts_with("regexp:") || s.starts_with("pcre:")
    }

    /// One query.
    pub fn get(&self, key: &str) -> Result<Option<String>, MapError> {
        match &self.inner.kind {
            Kind::Inline(map) => Ok(map.get(&key.to_ascii_lowercase()).cloned()),
            Kind::Static(value) => Ok(Some(value.clone())),
            Kind::Unsupported => Err(MapError::Unavailable(format!(
                "{}: this table type is not available in this build (stand-in maps)",
                self.spec()
            ))),
        }
    }
}
