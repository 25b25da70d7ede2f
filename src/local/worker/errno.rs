//! How a mailbox's system errors become delivery statuses, the same for
//! Maildir and mbox (Postfix `mbox_dsn`, with one deliberate difference).

use std::io;

use crate::ipc::DeliveryStatus;

/// Delivery status and enhanced code for an error writing a mailbox, as
/// Postfix maps `errno`: `EDQUOT`/`EFBIG` bounce (5.2.2, mailbox full),
/// `ENOSPC`/`EIO` defer (4.3.0, mail system trouble). Permission and other
/// unexpected errors defer (4.2.0) instead of bouncing (5.2.0), so that an
/// administrator can repair a mailbox without mail being returned.
pub(crate) fn status(e: &io::Error) -> (DeliveryStatus, &'static str) {
    match e.raw_os_error() {
        Some(libc::EDQUOT | libc::EFBIG) => (DeliveryStatus::Bounced, "5.2.2"),
        Some(libc::ENOSPC | libc::EIO) => (DeliveryStatus::Deferred, "4.3.0"),
        Some(_) => (DeliveryStatus::Deferred, "4.2.0"),
        None => (DeliveryStatus::Deferred, "4.3.0"),
    }
}

/// True for `EACCES`/`EPERM`: worth a hint to the administrator.
pub(crate) fn is_access_problem(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::strerror;

    #[test]
    fn mapping() {
        let e = io::Error::from_raw_os_error;
        use DeliveryStatus::*;
        assert_eq!(status(&e(libc::EDQUOT)), (Bounced, "5.2.2"));
        assert_eq!(status(&e(libc::EFBIG)), (Bounced, "5.2.2"));
        assert_eq!(status(&e(libc::ENOSPC)), (Deferred, "4.3.0"));
        assert_eq!(status(&e(libc::EIO)), (Deferred, "4.3.0"));
        assert_eq!(status(&e(libc::EAGAIN)), (Deferred, "4.2.0"));
        assert_eq!(status(&e(libc::ESTALE)), (Deferred, "4.2.0"));
        assert_eq!(status(&e(libc::EACCES)), (Deferred, "4.2.0"));
        assert_eq!(status(&io::Error::other("x")), (Deferred, "4.3.0"));
        assert!(is_access_problem(&e(libc::EPERM)));
        assert!(!is_access_problem(&e(libc::ENOSPC)));
        assert_eq!(strerror(&e(libc::ENOSPC)), "No space left on device");
    }
}
