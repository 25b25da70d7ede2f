//! The checks of a local submitter, by uid: the same for a `submit.sock`
//! session (uid from SO_PEERCRED), a file in the drop directory (uid from
//! its owner), and `sendmail`'s own early answer before it leaves a
//! message there (so that cron and mailx learn at once what smtpd would
//! say later).

use crate::config::Config;
use crate::reply::Reply;

/// May the user `uid` submit mail, and with the envelope sender `sender`
/// (as written inside `<…>`; empty for the null sender)?
/// `smtpd.authorized_submit_users`, then `smtpd.sender_override_users`
/// unless the sender is the user's own address (`user@$origin`).
pub(crate) fn check(config: &Config, uid: u32, sender: &str) -> Result<(), Reply> {
    let name = crate::sys::user_name(uid);
    let listed = |list: &[String]| crate::sys::user_listed(list, &name);
    let cfg = &config.smtpd;
    if !listed(&cfg.authorized_submit_users) {
        return Err(Reply::new(
            550,
            "5.7.1",
            format!("User {name}({uid}) is not allowed to submit mail"),
        ));
    }
    let own = format!("{name}@{}", config.server.origin);
    if !sender.eq_ignore_ascii_case(&own) && !listed(&cfg.sender_override_users) {
        return Err(Reply::new(
            553,
            "5.7.1",
            format!("<{sender}>: Sender address rejected: not owned by user {name}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_users_and_own_sender() {
        let mut c = Config::builtin();
        c.server.origin = "example.org".into();
        c.smtpd.authorized_submit_users = vec!["root".into()];
        c.smtpd.sender_override_users = vec!["root".into()];
        assert!(check(&c, 0, "boss@example.net").is_ok());
        let nobody = crate::sys::user_name(65534);
        let refused = check(&c, 65534, "x@example.org").unwrap_err();
        assert!(refused.to_string().starts_with("550 5.7.1 "), "{refused}");
        c.smtpd.authorized_submit_users = vec!["*".into()];
        assert!(check(&c, 65534, &format!("{nobody}@EXAMPLE.org")).is_ok());
        let forged = check(&c, 65534, "boss@example.org").unwrap_err();
        assert_eq!(
            forged.to_string(),
            format!(
                "553 5.7.1 <boss@example.org>: Sender address rejected: not owned by user {nobody}"
            )
        );
    }
}
