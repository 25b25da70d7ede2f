//! The system calls that have no safe wrapper, each with its SAFETY
//! argument. The rest of the crate forbids `unsafe`.
//!
//! * [`listen_fds`]: take the sockets handed over by the systemd
//!   socket-activation protocol (`LISTEN_PID`, `LISTEN_FDS`,
//!   `LISTEN_FDNAMES`), from systemd or from `postern start`.
//! * [`spawn_with_fds`]: start a daemon the way systemd would: its sockets
//!   at fd 3.., `LISTEN_PID` set to the child's own pid (known only after
//!   fork, which is why std's `Command` cannot do it), optionally as
//!   another user.
//! * [`pass_fds`] and [`inherited_fd`]: a local-worker's lanes, pipes at
//!   fd 3.. of the child, placed after fork and taken over by the child.
//! * [`heap_use`], [`release_free_memory`]: glibc's `mallinfo2` and
//!   `malloc_trim` (qmgr gives back what its allocator keeps after a pass
//!   over the queue, issue 22).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// First fd passed by socket activation (SD_LISTEN_FDS_START).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Sockets received by socket activation, with their names
/// (`LISTEN_FDNAMES`; `unknown` when unnamed or when the list is short).
/// Empty when the variables are absent, malformed, meant for another
/// process, or name an fd that is not open. The variables are removed so
/// that children do not see them, and the fds are made close-on-exec
/// (both by the sd-notify crate, which reads the protocol; the names are
/// read here, because sd-notify refuses a list of names whose length
/// differs from the count, and postern has always taken such a list).
pub fn listen_fds() -> Vec<(String, OwnedFd)> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // SAFETY: called at daemon start, before any other thread exists
    // (`main` calls it before building the tokio runtime).
    let fds = unsafe { sd_notify::listen_fds_and_unset_env() };
    // SAFETY: as above.
    unsafe { std::env::remove_var("LISTEN_FDNAMES") };
    let Ok(fds) = fds else {
        return Vec::new();
    };
    let mut names = names.split(':');
    fds.map(|fd| {
        let name = names.next().filter(|n| !n.is_empty()).unwrap_or("unknown");
        // SAFETY: the protocol hands us ownership of fds 3..3+LISTEN_FDS,
        // nothing else in this process owns them, and sd-notify proved each
        // open (its fcntl would have failed). Each fd is wrapped exactly
        // once: the variables are gone, so no second call sees them.
        (name.to_string(), unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .collect()
}

/// The user a child becomes.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Fork and exec `program` with `args` (argv[1..]) and exactly the
/// environment `env`, plus `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID`
/// for `fds` (moved to 3, 4, ... in order). The child dies with SIGTERM when
/// the parent dies. Returns the child's pid.
pub(crate) fn spawn_with_fds(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    fds: &[(&str, RawFd)],
    user: Option<&Credentials>,
) -> io::Result<i32> {
    // Everything the child needs is allocated here, before fork: between
    // fork and exec only async-signal-safe calls are made.
    let (argv_c, envp_c) = exec_strings(program, args, env, fds)?;
    // "LISTEN_PID=" followed by room for the digits, NUL-terminated; the
    // child fills in its pid.
    let mut pid_buf = [0u8; 32];
    pid_buf[..11].copy_from_slice(b"LISTEN_PID=");
    let pid_buf_ptr = pid_buf.as_mut_ptr();
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
    if !fds.is_empty() {
        envp.push(pid_buf_ptr as *const libc::c_char);
    }
    envp.push(std::ptr::null());
    let src: Vec<RawFd> = fds.iter().map(|(_, fd)| *fd).collect();
    let high = src.iter().copied().max().unwrap_or(0).max(2) + src.len() as RawFd + 4;
    let groups: Vec<libc::gid_t> = user.map(|u| u.groups.clone()).unwrap_or_default();
    let parent = std::process::id() as libc::pid_t;

    // SAFETY: fork in a possibly multi-threaded process: the child only
    // calls async-signal-safe functions (fcntl, dup2, setgroups, setgid,
    // setuid, prctl, getpid, getppid, signal, execve, _exit) on memory
    // prepared above, then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // Child.
    // SAFETY: see above; every pointer refers to memory owned by this
    // stack frame, which the child's copy of the address space keeps alive
    // until execve or _exit.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // The supervisor blocks the signals it waits for; a daemon starts
        // with none blocked.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        child_move_fds(&src, high);
        if let Some(u) = user
            && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(u.gid) != 0
                || libc::setuid(u.uid) != 0)
        {
            libc::_exit(126);
        }
        if !src.is_empty() {
            child_write_pid(pid_buf_ptr.add(11));
        }
        libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
        libc::_exit(127);
    }
}

/// argv (the program, then `args`) and the environment (`env` without any
/// `LISTEN_*`, then `LISTEN_FDS` and `LISTEN_FDNAMES` for `fds`) as C
/// strings, made before the fork.
fn exec_strings(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    fds: &[(&str, RawFd)],
) -> io::Result<(Vec<CString>, Vec<CString>)> {
    let mut argv = vec![CString::new(program.as_os_str().as_bytes())?];
    for a in args {
        argv.push(CString::new(a.as_bytes())?);
    }
    let mut envp = Vec::new();
    for (k, v) in env {
        if k.starts_with("LISTEN_") {
            continue;
        }
        envp.push(CString::new(format!("{k}={v}"))?);
    }
    if !fds.is_empty() {
        envp.push(CString::new(format!("LISTEN_FDS={}", fds.len()))?);
        let names: Vec<&str> = fds.iter().map(|(n, _)| *n).collect();
        envp.push(CString::new(format!("LISTEN_FDNAMES={}", names.join(":")))?);
    }
    Ok((argv, envp))
}

/// In the forked child: the descriptors `src` to 3, 4, … in order, by way
/// of copies above `high` (a source may sit where another goes), or
/// `_exit(126)`.
///
/// # Safety
///
/// Only between fork and exec in the child; it makes only
/// async-signal-safe calls (fcntl, dup2, _exit) and allocates nothing.
unsafe fn child_move_fds(src: &[RawFd], high: RawFd) {
    let mut tmp = [0 as RawFd; 64];
    // SAFETY: as the function's contract says; the calls take plain
    // integers.
    unsafe {
        if src.len() > tmp.len() {
            libc::_exit(126);
        }
        for (i, fd) in src.iter().enumerate() {
            tmp[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, high);
            if tmp[i] < 0 {
                libc::_exit(126);
            }
        }
        for (i, fd) in tmp.iter().take(src.len()).enumerate() {
            if libc::dup2(*fd, LISTEN_FDS_START + i as RawFd) < 0 {
                libc::_exit(126);
            }
        }
    }
}

/// In the forked child: its pid in decimal and a NUL at `out`.
///
/// # Safety
///
/// Only between fork and exec in the child; `out` must have room for 11
/// bytes (10 digits and the NUL). Only getpid, no allocation.
unsafe fn child_write_pid(out: *mut u8) {
    // SAFETY: getpid is async-signal-safe; the writes stay within the 11
    // bytes the caller guarantees (a pid has at most 10 digits).
    unsafe {
        let mut n = libc::getpid() as u32;
        let mut digits = [0u8; 12];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for j in 0..len {
            *out.add(j) = digits[len - 1 - j];
        }
        *out.add(len) = 0;
    }
}

/// The login name of `uid`, or the number as text when it has none.
pub(crate) fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Whether `name` is in a list of user names from the configuration
/// (`*` is anyone).
pub(crate) fn user_listed(list: &[String], name: &str) -> bool {
    list.iter().any(|u| u == "*" || u == name)
}

/// Credentials of a user from the password and group databases.
pub(crate) fn user_credentials(name: &str) -> io::Result<Option<Credentials>> {
    let Some(user) = nix::unistd::User::from_name(name).map_err(io::Error::from)? else {
        return Ok(None);
    };
    let cname = CString::new(name)?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(io::Error::from)?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Ok(Some(Credentials {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    }))
}

/// Wait for one of the (blocked) signals in `set`, at most `timeout`.
pub(crate) fn sigtimedwait(
    set: &nix::sys::signal::SigSet,
    timeout: std::time::Duration,
) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    let raw: &libc::sigset_t = set.as_ref();
    // SAFETY: `raw` and `ts` are valid for the duration of the call; a null
    // siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(raw, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Let SIGPIPE end the process quietly, as it does for C programs: for
/// the commands that print (`postern config show | head`), not for the
/// daemons or `sendmail`, which must see a closed socket as an error.
pub fn die_on_sigpipe() {
    // SAFETY: SIG_DFL is no handler; nothing runs in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The errno of Landlock's version query (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`), or `None` when it answers: tells a
/// kernel without Landlock (ENOSYS), one with it disabled (EOPNOTSUPP)
/// and a system-call filter that refuses it (EPERM and the like, e.g. a
/// container's seccomp filter) apart.
pub(crate) fn landlock_version_errno() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query reads no memory (NULL attributes, size 0).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v < 0).then(|| io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit,
/// as far as the kernel allows (`fs.nr_open`); returns the soft limit in
/// effect afterwards (`u64::MAX` for unlimited). smtpd needs a descriptor
/// per connection, and systemd's default soft limit is 1024.
pub(crate) fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit for the duration of the call;
        // raising the soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(as_u64(lim.rlim_max));
        }
    }
    Ok(as_u64(soft))
}

fn as_u64(limit: libc::rlim_t) -> u64 {
    if limit == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        limit
    }
}

/// Have `cmd`'s child find `fds[i]` at descriptor `3 + i`, without
/// close-on-exec (a local-worker's lanes). Placed after fork: each source
/// is first duplicated above every target, so placing one cannot close
/// another (nor std's own stdio descriptors, which it has placed by then).
/// The duplicates stay open, close-on-exec, until `cmd` is dropped.
pub(crate) fn pass_fds(cmd: &mut std::process::Command, fds: &[OwnedFd]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let n = RawFd::try_from(fds.len()).map_err(|_| io::Error::other("too many descriptors"))?;
    let base = 3 + n;
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: F_DUPFD_CLOEXEC reads no memory; `fd` is open (owned).
        let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` was just returned by fcntl and is owned by no one else.
        high.push(unsafe { OwnedFd::from_raw_fd(dup) });
    }
    let raw: Vec<RawFd> = high.iter().map(|fd| fd.as_raw_fd()).collect();
    let hold = std::sync::Arc::new(high);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only dup2, which is async-signal-safe; it allocates nothing. `hold`
    // keeps the sources open for as long as `cmd` (and so the closure)
    // lives; no target equals a source (all sources are at `base` or above).
    unsafe {
        cmd.pre_exec(move || {
            let _ = &hold;
            for (i, &fd) in raw.iter().enumerate() {
                if libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// Take over descriptor `fd` inherited from the parent (see [`pass_fds`]),
/// made close-on-exec (a command the worker runs must not get it). Each
/// descriptor can be taken once: a second call for it is an error, as is
/// one that is not open.
pub(crate) fn inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    static TAKEN: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if fd < 3 || taken.contains(&fd) {
        return Err(io::Error::other(format!("descriptor {fd} cannot be taken")));
    }
    // SAFETY: F_SETFD reads no memory; an fd that is not open gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("descriptor {fd}: {e}")));
    }
    taken.push(fd);
    // SAFETY: `fd` is open (F_SETFD succeeded), was inherited (it is not one
    // of std's 0-2), and is taken only once in this process (`TAKEN`), so
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What the C allocator holds (glibc's `mallinfo2`), in bytes: in use by
/// live allocations (large ones served by their own mmap included), and
/// free but kept in its arenas.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeapUse {
    pub in_use: u64,
    pub free_kept: u64,
}

/// [`HeapUse`] now (zeros where the C library is not glibc).
pub(crate) fn heap_use() -> HeapUse {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a struct by
        // value; it only reads the allocator's statistics (under its locks).
        let m = unsafe { libc::mallinfo2() };
        HeapUse {
            in_use: (m.uordblks + m.hblkhd) as u64,
            free_kept: m.fordblks as u64,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    HeapUse::default()
}

/// Give the memory the C allocator keeps free back to the kernel
/// (glibc's `malloc_trim(0)`: the top of every arena, and the whole free
/// pages inside them, by `madvise(MADV_DONTNEED)`). glibc gives back only
/// the top of the main heap on its own, so a daemon whose working set
/// shrinks after a large transient one (a pass over the queue) otherwise
/// keeps its peak. A no-op where the C library is not glibc.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and only works on the allocator's
    // own free lists (under its locks); no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
