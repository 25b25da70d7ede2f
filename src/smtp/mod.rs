//! `postern daemon smtp`: the SMTP delivery agent (Postfix smtp(8)).
//!
//! Under construction (issue 7): it answers every request with a
//! deferral, so mail for other domains waits in the queue as before.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio::net::UnixListener;

use crate::config::Config;
use crate::ipc::{DeliveryResult, DeliveryStatus, SmtpRequest, SmtpResult, read_line, write_line};
use crate::notify::reload::Reload;

/// Serve qmgr's requests on the `smtp-client` socket.
pub async fn run(
    _config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    _reload: Reload,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    crate::notify::ready();
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            while let Ok(Some(req)) = read_line::<_, SmtpRequest>(&mut r).await {
                let results = req
                    .recipients
                    .iter()
                    .map(|rc| DeliveryResult {
                        rcpt_index: rc.rcpt_index,
                        status: DeliveryStatus::Deferred,
                        dsn: "4.3.0".into(),
                        reason: "delivery to other domains is not available yet".into(),
                        forward: Vec::new(),
                        remote_mta: None,
                        diagnostic: None,
                    })
                    .collect();
                if write_line(&mut w, &SmtpResult { results }).await.is_err() {
                    break;
                }
            }
        });
    }
}
