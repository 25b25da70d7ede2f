//! A `dkim.keys` entry (OpenDKIM's KeyTable value
//! `domain:selector:/path/to/key.pem`) and the default of `dkim.headers`,
//! as the configuration reads them. A leaf of syntax: it names nothing of
//! the crate but [`crate::wire`], never `crate::config`
//! (`tests/imports.rs`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// One `dkim.keys` entry: OpenDKIM's KeyTable value
/// `domain:selector:/path/to/key.pem`, the domain and selector
/// lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub domain: String,
    pub selector: String,
    pub path: PathBuf,
}

impl KeyEntry {
    pub fn parse(text: &str) -> Result<KeyEntry, String> {
        const FORM: &str = "expected domain:selector:/path/to/key.pem";
        let mut parts = text.splitn(3, ':');
        let (Some(domain), Some(selector), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(FORM.to_string());
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        crate::wire::hostname::check_hostname(&domain)
            .map_err(|e| format!("domain {domain:?}: {e}"))?;
        let selector = selector.to_ascii_lowercase();
        check_selector(&selector)?;
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!("the key file must be an absolute path ({FORM})"));
        }
        Ok(KeyEntry {
            domain,
            selector,
            path,
        })
    }

    /// Where its public key is published: `SELECTOR._domainkey.DOMAIN`.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

impl fmt::Display for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.domain,
            self.selector,
            self.path.display()
        )
    }
}

/// RFC 6376 section 3.1: a selector is one or more DNS labels.
pub fn check_selector(selector: &str) -> Result<(), String> {
    crate::wire::hostname::check_hostname(selector)
        .map_err(|e| format!("selector {selector:?}: {e}"))?;
    if selector.parse::<IpAddr>().is_ok() || selector.contains('_') {
        return Err(format!(
            "selector {selector:?}: letters, digits, `-` and dots only"
        ));
    }
    Ok(())
}

/// `dkim.headers` by default: what OpenDKIM and rspamd sign, `From` twice
/// (a second `From:` added later breaks the signature).
pub fn default_headers() -> Vec<String> {
    [
        "From",
        "From",
        "Reply-To",
        "Subject",
        "Date",
        "To",
        "Cc",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect()
}
