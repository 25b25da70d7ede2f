//! The password and group databases as the daemons ask them for every
//! message: smtpd's local recipient check (is there such a user?) and
//! local's account of each recipient (passwd entry and groups).
//!
//! An NSS lookup reads `/etc/passwd` (and `getgrouplist` `/etc/group`)
//! from the start each time: about 50,000 instructions per message in
//! smtpd alone, a fifth of its work (docs/performance.md, issue 22). This
//! cache answers repeats. An answer, found or not found, is kept for
//! [`TTL`] and only while `/etc/passwd` and `/etc/group` stay as they were
//! (inode, size, modification time): a user added to or removed from the
//! files counts at the next message, one from another NSS source (LDAP,
//! systemd-userdb) within a minute. Failed lookups are not kept.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::User;

/// How long an answer is used while the files stay the same.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// Entries kept at most (the whole cache starts again beyond).
const CAPACITY: usize = 4096;
const FILES: [&str; 2] = ["/etc/passwd", "/etc/group"];

type Stamp = [Option<(u64, u64, i64, i64)>; 2];

struct Cached {
    at: Instant,
    user: Option<User>,
    /// The supplementary groups, once someone asked for them.
    groups: Option<Vec<u32>>,
}

#[derive(Default)]
struct Cache {
    stamp: Option<Stamp>,
    entries: HashMap<String, Cached>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn stamp() -> Stamp {
    FILES.map(|f| {
        std::fs::metadata(f)
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    })
}

/// The cache as of now: emptied when the files changed.
fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    let now = stamp();
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(Cache::default);
    if cache.stamp != Some(now) {
        cache.entries.clear();
        cache.stamp = Some(now);
    }
    f(cache)
}

fn fresh(c: &Cached) -> bool {
    c.at.elapsed() < TTL
}

/// The passwd entry of `name` (blocking: NSS may take its time).
pub(crate) fn user(name: &str) -> nix::Result<Option<User>> {
    Ok(lookup(name, false)?.map(|(user, _)| user))
}

/// The passwd entry of `name` and the groups it is in (blocking).
pub(crate) fn user_and_groups(name: &str) -> nix::Result<Option<(User, Vec<u32>)>> {
    Ok(lookup(name, true)?.map(|(user, groups)| (user, groups.unwrap_or_default())))
}

/// The cached answer for `name` (with its groups when `groups`), or NSS's.
fn lookup(name: &str, groups: bool) -> nix::Result<Option<(User, Option<Vec<u32>>)>> {
    let hit = with_cache(|c| {
        c.entries
            .get(name)
            .filter(|e| fresh(e) && (!groups || e.user.is_none() || e.groups.is_some()))
            .map(|e| e.user.clone().map(|u| (u, e.groups.clone())))
    });
    if let Some(found) = hit {
        return Ok(found);
    }
    let found = match User::from_name(name)? {
        None => None,
        Some(user) => {
            let list = if groups {
                Some(groups_of(&user)?)
            } else {
                None
            };
            Some((user, list))
        }
    };
    keep(name, found.clone());
    Ok(found)
}

/// The groups `user` is in, its primary group first.
pub(crate) fn groups_of(user: &User) -> nix::Result<Vec<u32>> {
    let cname = CString::new(user.name.clone()).map_err(|_| nix::errno::Errno::EINVAL)?;
    Ok(nix::unistd::getgrouplist(&cname, user.gid)?
        .into_iter()
        .map(|g| g.as_raw())
        .collect())
}

fn keep(name: &str, found: Option<(User, Option<Vec<u32>>)>) {
    let (user, groups) = match found {
        Some((user, groups)) => (Some(user), groups),
        None => (None, None),
    };
    with_cache(|c| {
        if c.entries.len() >= CAPACITY {
            c.entries.clear();
        }
        c.entries.insert(
            name.to_string(),
            Cached {
                at: Instant::now(),
                user,
                groups,
            },
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_nss_does_and_again_from_the_cache() {
        let root = user("root").unwrap().expect("root exists");
        assert_eq!(root.uid.as_raw(), 0);
        assert_eq!(user("root").unwrap().map(|u| u.uid.as_raw()), Some(0));
        let (again, groups) = user_and_groups("root").unwrap().unwrap();
        assert_eq!(again.uid.as_raw(), 0);
        assert!(groups.contains(&0), "{groups:?}");
        assert!(user("no-such-user-postern-test").unwrap().is_none());
        assert!(user("no-such-user-postern-test").unwrap().is_none());
        assert!(
            user_and_groups("no-such-user-postern-test")
                .unwrap()
                .is_none()
        );
    }
}
