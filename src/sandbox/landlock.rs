//! Applying a [`Profile`] with Landlock.
//!
//! The ruleset handles every right the landlock crate knows (up to ABI 10:
//! filesystem, TCP bind/connect, Unix socket resolution, abstract-socket and
//! signal scopes); the kernel keeps those it supports (best effort), and
//! the result says which ABI it enforced. ABI 4 (Linux 6.7) is the first
//! that covers everything a profile relies on (truncation, TCP): below it,
//! or without Landlock, the daemon warns, or refuses to start with
//! `sandbox.require = true`.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, LandlockStatus, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::Profile;

/// The newest ABI this build knows; the kernel may offer less.
const TARGET: ABI = ABI::V10;
/// The first ABI that enforces all a profile means.
const COMPLETE: ABI = ABI::V4;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot build the Landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error(
        "Landlock is required (sandbox.require = true) but {0}; refusing to start without the sandbox"
    )]
    Required(String),
    #[error("cannot drop privileges: {0}")]
    Privileges(String),
}

/// What the kernel enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// The Landlock ABI in force; `None`: Landlock is unavailable.
    pub abi: Option<i32>,
    /// Every requested right is enforced.
    pub complete: bool,
    /// Paths of the profile that do not exist (and so have no rule).
    pub missing: Vec<PathBuf>,
}

impl Confinement {
    /// One log line for the record, a warning when the sandbox is partial.
    pub fn log(&self, role: &str) {
        match self.abi {
            None => log::warn!(
                "{role}: {}: the daemon runs without its filesystem and network sandbox (set sandbox.require = true to refuse this)",
                unavailable(crate::sys::landlock_version_errno())
            ),
            Some(abi) if abi < COMPLETE as i32 => log::warn!(
                "{role}: Landlock ABI {abi} lacks some rights (ABI 4, Linux 6.7, has all): the sandbox is partial"
            ),
            Some(abi) => log::info!("{role}: sandboxed (Landlock ABI {abi})"),
        }
    }
}

/// Why Landlock cannot be used, from the errno of its version query.
fn unavailable(errno: Option<i32>) -> String {
    match errno {
        Some(libc::ENOSYS) => "Landlock is not available in this kernel".to_string(),
        Some(libc::EOPNOTSUPP) => {
            "Landlock is built into this kernel but not enabled (add landlock to the lsm= boot parameter)"
                .to_string()
        }
        Some(e) => format!(
            "Landlock's system calls are refused ({}): a system-call filter forbids them, \
             e.g. a container's seccomp filter (systemd-nspawn needs \
             --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self')",
            std::io::Error::from_raw_os_error(e)
        ),
        None => "Landlock refused this ruleset".to_string(),
    }
}

/// Apply `profile` to this thread and everything it starts afterwards.
pub fn confine(profile: &Profile, require: bool) -> Result<Confinement, SandboxError> {
    let mut missing = Vec::new();
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let exec = read | AccessFs::Execute;
    let all_fs = AccessFs::from_all(TARGET);
    let file_write = AccessFs::WriteFile | AccessFs::ReadFile | AccessFs::Truncate;

    let mut ruleset = Ruleset::default();
    if profile.restrict_fs {
        ruleset = ruleset.handle_access(all_fs)?;
    }
    if profile.tcp_connect.is_some() {
        ruleset = ruleset.handle_access(AccessNet::from_all(TARGET))?;
    }
    let mut scopes: BitFlags<Scope> = Scope::Signal.into();
    // systemd may hand an abstract NOTIFY_SOCKET (`@…`); only then must
    // abstract sockets stay reachable.
    if !std::env::var("NOTIFY_SOCKET").is_ok_and(|s| s.starts_with('@')) {
        scopes |= Scope::AbstractUnixSocket;
    }
    ruleset = ruleset.scope(scopes)?;
    let mut created: RulesetCreated = ruleset.create()?;
    if profile.restrict_fs {
        let mut add = |paths: &[PathBuf], access: BitFlags<AccessFs>| {
            let mut rules = Vec::new();
            for p in paths {
                match PathFd::new(p) {
                    Ok(fd) => rules.push(PathBeneath::new(fd, access)),
                    Err(_) => missing.push(p.clone()),
                }
            }
            rules
        };
        let mut rules = add(&profile.read, read);
        rules.extend(add(&profile.exec, exec));
        rules.extend(add(&profile.write, all_fs));
        rules.extend(add(&profile.unix_sockets, AccessFs::ResolveUnix.into()));
        rules.extend(add(&profile.write_existing, AccessFs::WriteFile.into()));
        for file in &profile.write_files {
            match PathFd::new(file) {
                Ok(fd) => rules.push(PathBeneath::new(fd, file_write)),
                Err(_) => missing.push(file.clone()),
            }
        }
        for rule in rules {
            created = created.add_rule(rule)?;
        }
    }
    if let Some(ports) = &profile.tcp_connect {
        for port in ports {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
    }
    let status = created.restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => Some(kernel_abi.unwrap_or(effective_abi as i32)),
        _ => None,
    };
    let abi = abi.filter(|_| status.ruleset != RulesetStatus::NotEnforced);
    let complete = abi.is_some_and(|a| a >= COMPLETE as i32);
    if require && !complete {
        return Err(SandboxError::Required(match abi {
            None => unavailable(crate::sys::landlock_version_errno()),
            Some(a) => format!("this kernel offers only ABI {a} (4 or newer is needed)"),
        }));
    }
    Ok(Confinement {
        abi,
        complete,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_says_why_landlock_is_unavailable() {
        assert_eq!(
            unavailable(Some(libc::ENOSYS)),
            "Landlock is not available in this kernel"
        );
        assert!(unavailable(Some(libc::EOPNOTSUPP)).contains("lsm="));
        let filtered = unavailable(Some(libc::EPERM));
        assert!(filtered.contains("system-call filter"), "{filtered}");
        assert!(!filtered.contains("not available in this kernel"));
        // This machine answers the query.
        assert_eq!(crate::sys::landlock_version_errno(), None);
    }
}
