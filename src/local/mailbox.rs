//! From a queued recipient to a place on disk: the local part and the
//! address written in `Delivered-To:` ([`LocalRecipient`]), and the mailbox
//! that `local.mailbox` (Postfix `home_mailbox`) names for a user
//! ([`Mailbox`]): a Maildir when the setting ends in `/`, else an mbox
//! file, either in the home directory (`mbox`) or in a spool directory
//! shared by all users (`/var/mail/$user`). For a spool, [`spool_group`]
//! says which group the user's delivery child must be lent so that it can
//! create lock files there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where mbox files live when `local.mailbox` is empty (Postfix
/// `mail_spool_directory`).
const MAIL_SPOOL_DIRECTORY: &str = "/var/mail";

/// A recipient of the local agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalRecipient {
    /// The local part, lower-cased: the user name to look up.
    pub user: String,
    /// `user@domain`, lower-cased: the `Delivered-To:` value and the loop
    /// check key.
    pub address: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecipientError {
    #[error("null username in \"{0}\"")]
    NullUser(String),
}

impl LocalRecipient {
    /// Parse `local@domain` or a bare `local` (which gets `default_domain`,
    /// Postfix's `myorigin`). The domain is already known to be local.
    pub(crate) fn parse(
        recipient: &str,
        default_domain: &str,
    ) -> Result<LocalRecipient, RecipientError> {
        let (local, domain) = match recipient.rsplit_once('@') {
            Some((local, domain)) if !domain.is_empty() => (local, domain),
            Some((local, _)) => (local, default_domain),
            None => (recipient, default_domain),
        };
        if local.is_empty() {
            return Err(RecipientError::NullUser(recipient.to_string()));
        }
        let user = local.to_ascii_lowercase();
        let address = format!("{user}@{}", domain.to_ascii_lowercase());
        Ok(LocalRecipient { user, address })
    }
}

/// The mailbox of one user: what kind, and where. The delivery child
/// receives it in its job and writes it as the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mailbox {
    /// A Maildir (the configured path ended in `/`): one file per message,
    /// no lock (see `maildir`).
    Maildir(PathBuf),
    /// An mbox file: messages appended under a dot-lock and an `fcntl`
    /// lock (see `mbox`).
    Mbox(PathBuf),
}

impl Mailbox {
    /// Resolve `local.mailbox` for a user: `$user`, `${user}`, `$home`,
    /// `${home}` are expanded (other `$` text is kept as written); a
    /// relative result lies under the home directory; a trailing `/` means
    /// Maildir. An empty setting means the mbox `/var/mail/USER`.
    pub(crate) fn resolve(template: &str, user: &str, home: &Path) -> Mailbox {
        if template.is_empty() {
            return Mailbox::Mbox(Path::new(MAIL_SPOOL_DIRECTORY).join(user));
        }
        let expanded = expand(template, user, home);
        let maildir = expanded.ends_with('/');
        let path = Path::new(&expanded);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            home.join(path)
        };
        if maildir {
            Mailbox::Maildir(path)
        } else {
            Mailbox::Mbox(path)
        }
    }

    /// The spool directory of an mbox: its directory, when that is not the
    /// user's home directory or below it (`/var/mail` for `/var/mail/bob`).
    /// A spool is shared by all users, so creating lock files there may need
    /// its group (see [`spool_group`]). Maildirs have none.
    pub(crate) fn spool_directory(&self, home: &Path) -> Option<&Path> {
        let Mailbox::Mbox(path) = self else {
            return None;
        };
        let in_home = home.has_root() && home != Path::new("/") && path.starts_with(home);
        if in_home {
            return None;
        }
        path.parent().filter(|p| !p.as_os_str().is_empty())
    }
}

/// The group a delivery child needs beside its own to lock mailboxes in a
/// spool directory of this `mode` and `gid`: the directory's group when it
/// is group-writable and not world-writable (Debian's `/var/mail`,
/// `root:mail` 2775), as Postfix delivers there with the spool's gid. A
/// world-writable (sticky, 1777) spool needs nothing. Group 0 is never
/// lent: a spool writable by root's group is root's business.
pub(crate) fn spool_group(mode: u32, gid: u32) -> Option<u32> {
    let group_writable = mode & 0o020 != 0;
    let world_writable = mode & 0o002 != 0;
    (group_writable && !world_writable && gid != 0).then_some(gid)
}

/// One pass over the template, so a `$` inside the substituted values is
/// never expanded again.
fn expand(template: &str, user: &str, home: &Path) -> String {
    let home = home.to_string_lossy();
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match name {
            "user" => out.push_str(user),
            "home" => out.push_str(&home),
            _ => out.push_str(&rest[at..at + 1 + used]),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        let r = LocalRecipient::parse("Bob@Example.ORG", "origin.test").unwrap();
        assert_eq!(r.user, "bob");
        assert_eq!(r.address, "bob@example.org");
        let r = LocalRecipient::parse("alice", "origin.test").unwrap();
        assert_eq!(r.address, "alice@origin.test");
        let r = LocalRecipient::parse("a@b@host", "o").unwrap();
        assert_eq!(r.user, "a@b");
        assert_eq!(
            LocalRecipient::parse("@host", "o"),
            Err(RecipientError::NullUser("@host".into()))
        );
        assert!(LocalRecipient::parse("", "o").is_err());
    }

    #[test]
    fn mailbox_paths() {
        let home = Path::new("/home/bob");
        assert_eq!(
            Mailbox::resolve("Maildir/", "bob", home),
            Mailbox::Maildir("/home/bob/Maildir/".into())
        );
        assert_eq!(
            Mailbox::resolve("/srv/mail/$user/", "bob", home),
            Mailbox::Maildir("/srv/mail/bob/".into())
        );
        assert_eq!(
            Mailbox::resolve("${home}/x/${user}.d/", "bob", home),
            Mailbox::Maildir("/home/bob/x/bob.d/".into())
        );
        assert_eq!(
            Mailbox::resolve("Mailbox", "bob", home),
            Mailbox::Mbox("/home/bob/Mailbox".into())
        );
        assert_eq!(
            Mailbox::resolve("", "bob", home),
            Mailbox::Mbox("/var/mail/bob".into())
        );
        // Unknown and broken variables stay as written.
        assert_eq!(
            Mailbox::resolve("/m/$other/${x}/${user/", "bob", home),
            Mailbox::Maildir("/m/$other/${x}/${user/".into())
        );
        // An absolute mbox.
        assert_eq!(
            Mailbox::resolve("/var/spool/mail/$user", "bob", home),
            Mailbox::Mbox("/var/spool/mail/bob".into())
        );
        // A `$` inside the home directory is not expanded again.
        assert_eq!(
            Mailbox::resolve("$home/M/", "bob", Path::new("/h/$user")),
            Mailbox::Maildir("/h/$user/M/".into())
        );
    }

    #[test]
    fn spool_directories() {
        let home = Path::new("/home/bob");
        let spool = |m: &str, h: &Path| {
            Mailbox::resolve(m, "bob", h)
                .spool_directory(h)
                .map(Path::to_path_buf)
        };
        assert_eq!(spool("", home), Some("/var/mail".into()));
        assert_eq!(spool("/srv/mail/$user", home), Some("/srv/mail".into()));
        assert_eq!(spool("mbox", home), None);
        assert_eq!(spool("$home/mail/inbox", home), None);
        assert_eq!(spool("Maildir/", home), None);
        assert_eq!(spool("/var/mail/$user/", home), None);
        // A home directory of `/` holds every path: not counted as one.
        assert_eq!(
            spool("/var/mail/$user", Path::new("/")),
            Some("/var/mail".into())
        );
        assert_eq!(
            spool("/var/mail/$user", Path::new("")),
            Some("/var/mail".into())
        );
    }

    #[test]
    fn spool_groups() {
        assert_eq!(spool_group(0o2775, 8), Some(8));
        assert_eq!(spool_group(0o775, 8), Some(8));
        assert_eq!(spool_group(0o1777, 0), None);
        assert_eq!(spool_group(0o1777, 8), None);
        assert_eq!(spool_group(0o755, 8), None);
        assert_eq!(spool_group(0o2775, 0), None);
    }
}
