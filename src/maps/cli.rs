//! `postern map build FILE` (postmap FILE) and `postern map query TABLE
//! KEY` (postmap -q KEY TABLE).
//!
//! There is nothing to compile: the daemons read the text files
//! themselves and notice changes. `build` checks a file's syntax the way
//! the daemons will read it; `query` makes one lookup with exactly the key
//! given (no access(5) key walk), as postmap -q does.

use std::path::Path;

use super::text::Diagnostic;
use super::{Data, Kind, MapError, Table};
use crate::config::Config;

/// The table type and path of `postern map build`'s argument: `type:FILE`,
/// or FILE with `-t type`, or FILE alone (hash, Postfix's
/// default_database_type).
pub(crate) fn build_target<'a>(
    file: &'a str,
    ty: Option<&'a str>,
) -> Result<(Kind, &'a Path), MapError> {
    let (ty, path) = match file.split_once(':') {
        Some((t, p)) if Kind::from_type(t).is_some() => (t, p),
        _ => (ty.unwrap_or("hash"), file),
    };
    match Kind::from_type(ty) {
        Some(k @ (Kind::Hash | Kind::Regexp | Kind::Pcre | Kind::Cidr)) => Ok((k, Path::new(path))),
        _ => Err(MapError::Spec(format!(
            "{ty:?}: not a file table type (hash, texthash, regexp, pcre, cidr)"
        ))),
    }
}

/// Every problem in the file, in order (errors and warnings).
pub fn build(file: &str, ty: Option<&str>) -> Result<Vec<Diagnostic>, MapError> {
    let (kind, path) = build_target(file, ty)?;
    let bytes = std::fs::read(path)
        .map_err(|e| MapError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    let (_, diags) = Data::parse(
        kind,
        &path.display().to_string(),
        &String::from_utf8_lossy(&bytes),
    );
    Ok(diags)
}

/// One lookup; a bare absolute path is taken as `hash:PATH`.
pub fn query(table: &str, key: &str, config: &Config) -> Result<Option<String>, MapError> {
    let spec = if table.starts_with('/') {
        format!("hash:{table}")
    } else {
        table.to_string()
    };
    Table::open(&spec, config)?.get(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_reports_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h");
        std::fs::write(&f, "/ok/ OK\n\n/bad/z REJECT\n").unwrap();
        let name = f.display().to_string();
        let diags = build(&format!("pcre:{name}"), None).unwrap();
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].to_string(),
            format!("{name}:3: error: unknown pcre flag 'z'")
        );
        assert_eq!(build(&name, Some("regexp")).unwrap().len(), 1);
        // As a hash file the same lines are fine.
        assert!(build(&name, None).unwrap().is_empty());
        assert!(build(&name, Some("inline")).is_err());
    }

    #[test]
    fn query_exact_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("access");
        std::fs::write(&f, "example.com REJECT\n").unwrap();
        let c = Config::builtin();
        let name = f.display().to_string();
        assert_eq!(
            query(&name, "EXAMPLE.com", &c).unwrap().as_deref(),
            Some("REJECT")
        );
        // One key, no parent-domain walk.
        assert_eq!(
            query(&format!("hash:{name}"), "a.example.com", &c).unwrap(),
            None
        );
    }
}
