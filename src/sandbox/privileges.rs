//! Dropping privileges: the user switch and the capability sets.
//!
//! Capabilities are per thread, so this runs while the daemon has exactly
//! one thread (before the tokio runtime). Whatever started the daemon, the
//! result is the same:
//!
//! * smtpd, qmgr, smtp: the `server.user` account (when started as root),
//!   every capability set empty (bounding, permitted, effective,
//!   inheritable, ambient), `no_new_privs`;
//! * local: root with [`LOCAL_KEEPS`] in permitted and effective and in the
//!   bounding set, nothing inheritable or ambient, `no_new_privs` (its
//!   children can have at most what it has);
//! * a local delivery child ([`drop_all`] after it became its user): every
//!   set empty, the bounding set too.

use caps::{CapSet, Capability, CapsHashSet};

use super::SandboxError;
use crate::config::Config;

/// Who a role runs as when started as root (as another user, everything
/// runs as that user with no capabilities); each role's is in its row of
/// the role table (`crate::role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// `server.user`, every capability set empty.
    MailUser,
    /// root, keeping only these capabilities.
    Root(&'static [Capability]),
}

/// What local keeps: switching its children to the recipient
/// (`SETUID`, `SETGID`), letting them empty their bounding set
/// (`SETPCAP`), and reading the queue files of the postern user
/// (`DAC_READ_SEARCH`: read-only, where `DAC_OVERRIDE` would also write),
/// and stopping a hung child that has become another user (`KILL`).
pub const LOCAL_KEEPS: [Capability; 5] = [
    Capability::CAP_KILL,
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_DAC_READ_SEARCH,
];

/// The privilege step of `role`, which runs as `run_as` (its row of the
/// role table).
pub fn drop_for(role: &str, run_as: RunAs, config: &Config) -> Result<(), SandboxError> {
    let root = nix::unistd::geteuid().is_root();
    match run_as {
        RunAs::Root(keeps) if root => keep_only(keeps),
        RunAs::Root(_) => drop_all(),
        RunAs::MailUser if root => {
            let name = &config.server.user;
            let creds = crate::sys::user_credentials(name)
                .map_err(|e| fail(format!("cannot look up server.user {name:?}: {e}")))?
                .ok_or_else(|| {
                    fail(format!(
                        "the user {name:?} (server.user) does not exist; create it with: useradd --system --user-group --home-dir {} --shell /usr/sbin/nologin {name}",
                        config.queue.directory.display()
                    ))
                })?;
            if creds.uid == 0 {
                return Err(fail(format!(
                    "server.user {name:?} is root; {role} never runs as root"
                )));
            }
            empty_bounding_set()?;
            become_user(creds.uid, creds.gid)?;
            drop_all()
        }
        _ => drop_all(),
    }
}

/// Become `uid`:`gid` with no supplementary groups, for good.
fn become_user(uid: u32, gid: u32) -> Result<(), SandboxError> {
    use nix::unistd::{Gid, Uid};
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[gid]).map_err(|e| fail(format!("setgroups: {e}")))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail(format!("setgid: {e}")))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail(format!("setuid: {e}")))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail("could regain root after the switch".to_string()));
    }
    Ok(())
}

/// Empty every capability set, the bounding set as far as allowed (it
/// needs `CAP_SETPCAP`; under systemd the unit's `CapabilityBoundingSet`
/// has emptied it already), and set `no_new_privs`.
pub fn drop_all() -> Result<(), SandboxError> {
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        empty_bounding_set()?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| fail(format!("cannot clear {set:?}: {e}")))?;
    }
    no_new_privs()
}

/// Keep exactly `keep` (root's local): in the bounding, permitted and
/// effective sets; nothing inheritable or ambient.
fn keep_only(keep: &[Capability]) -> Result<(), SandboxError> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| fail(format!("cannot drop {cap} from the bounding set: {e}")))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| fail(format!("ambient: {e}")))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail(format!("inheritable: {e}")))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| fail(format!("effective: {e}")))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail(format!("permitted: {e}")))?;
    no_new_privs()
}

/// Empty the bounding set (needs `CAP_SETPCAP`; a no-op when it is
/// empty already).
pub fn empty_bounding_set() -> Result<(), SandboxError> {
    for cap in caps::read(None, CapSet::Bounding).unwrap_or_default() {
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(|e| fail(format!("cannot drop {cap} from the bounding set: {e}")))?;
    }
    Ok(())
}

fn no_new_privs() -> Result<(), SandboxError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail(format!("no_new_privs: {e}")))
}

fn fail(message: String) -> SandboxError {
    SandboxError::Privileges(message)
}
