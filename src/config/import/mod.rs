//! `postern config import-postfix [DIR]`: a Postfix configuration (main.cf,
//! master.cf and the files they name) turned into a postern.toml that does
//! the same thing, or a precise list of what it cannot do yet.
//!
//! - [`parse`] reads main.cf and master.cf as Postfix does (logical lines,
//!   `#` comments at line start only, the last assignment winning, `-o`
//!   overrides);
//! - [`expand`] expands `$name`, `${name?value}`, `${name:value}` as
//!   `postconf -x` does, with Postfix's defaults ([`defaults`], `postconf
//!   -d` of Postfix 3.7), keeping `$myhostname`, `$mydomain` and
//!   `$myorigin` as `$hostname`, `$domain` and `$origin` where the postern
//!   key expands them itself;
//! - [`translate`] maps each main.cf parameter to its postern key (the
//!   Postfix name of every key is in [`super::keys::KEYS`]), tables kept
//!   where they are (`proxy:` stripped), restriction lists element by
//!   element ([`restrictions`]), master.cf's services to listeners
//!   ([`master`]);
//! - [`params`] is the data table of the Postfix parameters postern has no
//!   key for: what each does, and whether postern plans it;
//! - [`render`] writes the TOML (each key with its Postfix name beside it)
//!   and the report.
//!
//! The result is loaded by the ordinary loader before it is written: a
//! value it refuses (a milter given by host name, a placeholder left in a
//! template) is left out and reported, so the file written always loads.
//! Nothing here needs Postfix installed.

mod defaults;
mod expand;
mod master;
mod params;
mod parse;
mod render;
mod restrictions;
mod special;
mod translate;

use std::path::{Path, PathBuf};

/// What to import.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The directory of main.cf and master.cf (`/etc/postfix`).
    pub dir: PathBuf,
    /// Read the absolute paths the configuration names (`/etc/mailname`,
    /// `/etc/postfix/mynetworks`) under this directory instead of `/`;
    /// the output keeps the paths as written.
    pub root: Option<PathBuf>,
    /// Postfix's `myhostname` default (else `gethostname()`).
    pub hostname: Option<String>,
}

/// The result.
#[derive(Debug)]
pub struct Imported {
    /// The postern.toml text, the report at its end as comments.
    pub toml: String,
    /// The report, for the terminal.
    pub report: String,
    /// Nothing was left out.
    pub complete: bool,
}

/// Why nothing could be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{file}:{line}: {reason}")]
    Syntax {
        file: String,
        line: usize,
        reason: String,
    },
    /// A bug: what was written does not load.
    #[error("the generated configuration does not load: {0}")]
    Generated(String),
}

/// Imports the configuration in `options.dir`.
pub fn import(options: &Options) -> Result<Imported, ImportError> {
    let main_path = options.dir.join("main.cf");
    let master_path = options.dir.join("master.cf");
    let main_name = main_path.display().to_string();
    let master_name = master_path.display().to_string();
    let main = parse::main_cf(&read(&main_path)?, &main_name)?;
    let services = parse::master_cf(&read(&master_path)?, &master_name)?;
    let defaults = defaults::Defaults::new(options.hostname.as_deref());
    let mut work = translate::Work::new(&main, &defaults, options.root.as_deref());
    work.main_cf();
    master::translate(&mut work, &services);
    work.finish();
    let (entries, items) = render::validated(work.into_parts())?;
    let complete = !items.iter().any(|i| i.left_out);
    let header = render::header(&main_name, &master_name);
    let report = render::report(&items, complete);
    let toml = render::toml(&header, &entries, &report);
    Ok(Imported {
        toml,
        report,
        complete,
    })
}

fn read(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|cause| ImportError::Read {
        path: path.display().to_string(),
        cause,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
