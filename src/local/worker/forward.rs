//! `~/.forward` (Postfix `local/dotforward.c`): where it is looked for,
//! how it is read (as the user, by the delivery child), and which files are
//! trusted.
//!
//! * [`forward_path`]: Postfix's default `forward_path =
//!   $home/.forward${recipient_delimiter}${extension}, $home/.forward`:
//!   for `bob+list`, `~/.forward+list` first, then `~/.forward`. An
//!   extension holding `/` (or that is `.` or `..`) is not used.
//! * [`read_first`]: the first of them that exists is the one: it must be a
//!   regular file (not a symbolic link: opened with `O_NOFOLLOW`), owned by
//!   the user or by root, writable by neither group nor others, and at most
//!   [`MAX_SIZE`] bytes. A file that fails a check is ignored with a
//!   warning and the mail goes to the mailbox (as in Postfix, the next name
//!   is not tried). A name that does not exist, or that the user may not
//!   look at, is skipped.
//! * The agent reads the text with `aliases::parse_include`: each line not
//!   starting with `#` is an aliases(5) right-hand side (no continuation
//!   lines).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest `.forward` read; a larger one is ignored.
pub(crate) const MAX_SIZE: u64 = 64 * 1024;

/// The names to try, in order, for a user with home directory `home` and
/// the extension `ext` (its delimiter first) of the recipient.
pub(crate) fn forward_path(home: &Path, ext: Option<(char, &str)>) -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(2);
    if let Some((delimiter, ext)) = ext
        && !ext.is_empty()
        && !ext.contains('/')
        && ext != "."
        && ext != ".."
        && !ext.contains('\0')
    {
        paths.push(home.join(format!(".forward{delimiter}{ext}")));
    }
    paths.push(home.join(".forward"));
    paths
}

/// A `.forward` file that passed the checks: its text, non-UTF-8 bytes
/// replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForwardFile {
    pub path: PathBuf,
    pub text: String,
}

/// What looking for a `.forward` found.
#[derive(Debug)]
pub(crate) enum Found {
    /// A file that passed the checks.
    File(ForwardFile),
    /// None of the names exists: the mailbox.
    Nothing,
    /// A file that exists but is not trusted (the warning says why): the
    /// mailbox.
    Ignored(String),
}

/// Look for the first of `paths` that exists, as the user `uid` (the
/// delivery child, already that user). `Err` for errors that may pass (a
/// disk error): the delivery is deferred rather than sent to the mailbox.
pub(crate) fn read_first(paths: &[PathBuf], uid: u32) -> io::Result<Found> {
    for path in paths {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) if is_absent(&e) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Ok(Found::Ignored(format!(
                    "file {} is a symbolic link; ignored",
                    path.display()
                )));
            }
            Err(e) => return Err(e),
        };
        return read_checked(path, file, uid);
    }
    Ok(Found::Nothing)
}

/// Not there as far as this user can tell: skip to the next name.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::EACCES | libc::ENAMETOOLONG)
    )
}

fn read_checked(path: &Path, file: File, uid: u32) -> io::Result<Found> {
    let meta = file.metadata()?;
    if let Some(problem) = unsafe_because(meta.is_file(), meta.uid(), meta.mode(), uid) {
        return Ok(Found::Ignored(format!(
            "file {} {problem}; ignored",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_SIZE) as usize);
    file.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Ok(Found::Ignored(format!(
            "file {} is larger than {MAX_SIZE} bytes; ignored",
            path.display()
        )));
    }
    Ok(Found::File(ForwardFile {
        path: path.to_path_buf(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }))
}

/// Why a `.forward` with this status may not be trusted for user `uid`:
/// it must be a regular file owned by the user or root, writable by
/// neither its group nor others (stricter than Postfix, which refuses only
/// world-writable ones: a group-writable file lets others choose where the
/// user's mail goes and which commands run as the user).
pub(crate) fn unsafe_because(regular: bool, owner: u32, mode: u32, uid: u32) -> Option<String> {
    if !regular {
        Some("is not a regular file".into())
    } else if owner != uid && owner != 0 {
        Some(format!("has bad owner uid {owner}"))
    } else if mode & 0o002 != 0 {
        Some("is world-writable".into())
    } else if mode & 0o020 != 0 {
        Some("is group-writable".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_extension_is_tried_first() {
        let home = Path::new("/home/bob");
        assert_eq!(
            forward_path(home, Some(('+', "list"))),
            [
                PathBuf::from("/home/bob/.forward+list"),
                "/home/bob/.forward".into()
            ]
        );
        assert_eq!(
            forward_path(home, Some(('-', "x"))),
            [
                PathBuf::from("/home/bob/.forward-x"),
                "/home/bob/.forward".into()
            ]
        );
        assert_eq!(
            forward_path(home, None),
            [PathBuf::from("/home/bob/.forward")]
        );
        for bad in ["", "a/b", "..", ".", "../../etc/passwd"] {
            assert_eq!(
                forward_path(home, Some(('+', bad))),
                [PathBuf::from("/home/bob/.forward")],
                "{bad}"
            );
        }
    }

    #[test]
    fn safety_checks() {
        assert_eq!(unsafe_because(true, 1000, 0o644, 1000), None);
        assert_eq!(unsafe_because(true, 0, 0o600, 1000), None);
        assert_eq!(unsafe_because(true, 1000, 0o444, 1000), None);
        assert_eq!(
            unsafe_because(true, 1001, 0o644, 1000).as_deref(),
            Some("has bad owner uid 1001")
        );
        assert_eq!(
            unsafe_because(true, 1000, 0o664, 1000).as_deref(),
            Some("is group-writable")
        );
        assert_eq!(
            unsafe_because(true, 1000, 0o646, 1000).as_deref(),
            Some("is world-writable")
        );
        assert_eq!(
            unsafe_because(false, 1000, 0o644, 1000).as_deref(),
            Some("is not a regular file")
        );
    }

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn reads_the_first_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let paths = forward_path(dir.path(), Some(('+', "x")));
        assert!(matches!(read_first(&paths, me()).unwrap(), Found::Nothing));
        std::fs::write(&paths[1], "bob@example.org\n").unwrap();
        match read_first(&paths, me()).unwrap() {
            Found::File(f) => {
                assert_eq!(f.path, paths[1]);
                assert_eq!(f.text, "bob@example.org\n");
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&paths[0], "\\bob\n").unwrap();
        match read_first(&paths, me()).unwrap() {
            Found::File(f) => assert_eq!(f.path, paths[0]),
            other => panic!("{other:?}"),
        }
        // An unsafe first file is not passed over for the second.
        std::fs::set_permissions(&paths[0], std::fs::Permissions::from_mode(0o664)).unwrap();
        match read_first(&paths, me()).unwrap() {
            Found::Ignored(w) => assert_eq!(
                w,
                format!("file {} is group-writable; ignored", paths[0].display())
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn links_directories_and_big_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let forward = dir.path().join(".forward");
        let target = dir.path().join("target");
        std::fs::write(&target, "x\n").unwrap();
        std::os::unix::fs::symlink(&target, &forward).unwrap();
        let paths = [forward.clone()];
        let ignored = |why: &str| match read_first(&paths, me()).unwrap() {
            Found::Ignored(w) => assert!(w.contains(why), "{w}"),
            other => panic!("{other:?}"),
        };
        ignored("is a symbolic link");
        std::fs::remove_file(&forward).unwrap();
        std::fs::create_dir(&forward).unwrap();
        ignored("is not a regular file");
        std::fs::remove_dir(&forward).unwrap();
        std::fs::write(&forward, vec![b'a'; MAX_SIZE as usize + 1]).unwrap();
        ignored("is larger than");
        // Another owner (not root) is refused.
        std::fs::write(&forward, "x\n").unwrap();
        match read_first(&paths, me() + 1).unwrap() {
            Found::Ignored(w) if me() == 0 => panic!("root owns it: {w}"),
            Found::File(_) if me() != 0 => panic!("accepted another owner's file"),
            _ => {}
        }
    }
}
