//! DKIM signing of a request's message before it is sent (see
//! [`crate::dkim`]): when its origin is one `dkim.sign` names and its
//! `From:` domain has keys, one pass over the content in the form the
//! receiver gets (CRLF, not dot-stuffed) makes the `DKIM-Signature:`
//! fields that every transaction then sends before the content.

use crate::config::Config;
use crate::dkim::{self, Keys, Pass};
use crate::ipc::SmtpRequest;
use crate::outcome::code;
use crate::wire::data::{DataWriter, StoredCr};

use super::content::Content;
use super::outcome::Outcome;

/// A header section longer than this is not looked at further for its
/// `From:` (the signing pass still reads the whole message).
const HEADER_LOOK: usize = 256 * 1024;

/// The `DKIM-Signature:` fields for `request` (empty: not signed), or
/// the deferral of every recipient: `4.7.5` when a key of the domain
/// cannot be used, `4.3.0` when the content cannot be read.
pub(super) async fn signatures(
    keys: &Keys,
    config: &Config,
    request: &SmtpRequest,
    content: &mut Content,
) -> Result<Vec<u8>, Outcome> {
    // LMTP delivers into this system's own mailboxes: nothing to sign.
    if keys.is_empty() || request.nexthop.lmtp || !dkim::eligible(config, &request.client) {
        return Ok(Vec::new());
    }
    let unreadable = |e: std::io::Error| {
        Outcome::deferred(
            code::SYSTEM_TEMP,
            format!("cannot read the message content: {e}"),
        )
    };
    content.rewind().await.map_err(unreadable)?;
    let mut form = DataWriter::message(StoredCr::LineEnd);
    let (mut chunk, mut crlf) = (Vec::new(), Vec::new());
    let mut ended = false;
    // The header section first: the From: domain picks the keys.
    while dkim::sign::header_end(&crlf).is_none() && crlf.len() < HEADER_LOOK {
        content.next_chunk(&mut chunk).await.map_err(unreadable)?;
        if chunk.is_empty() {
            form.finish(&mut crlf);
            ended = true;
            break;
        }
        form.write(&chunk, &mut crlf);
    }
    let head = &crlf[..dkim::sign::header_end(&crlf).unwrap_or(crlf.len())];
    let Some(domain) = dkim::sign::from_domain(head) else {
        return Ok(Vec::new());
    };
    let signers = keys.for_domain(&domain).map_err(|reason| {
        log::warn!(queue_id = request.id.as_str(); "{}: {reason}", request.id);
        Outcome::deferred(code::CRYPTO_FAILURE, reason)
    })?;
    if signers.is_empty() {
        return Ok(Vec::new());
    }
    let mut pass = Pass::new(&signers);
    pass.write(&crlf);
    while !ended {
        content.next_chunk(&mut chunk).await.map_err(unreadable)?;
        crlf.clear();
        if chunk.is_empty() {
            form.finish(&mut crlf);
            ended = true;
        } else {
            form.write(&chunk, &mut crlf);
        }
        pass.write(&crlf);
    }
    let signed = pass.finish().map_err(|reason| {
        log::warn!(queue_id = request.id.as_str(); "{}: {reason}", request.id);
        Outcome::deferred(code::CRYPTO_FAILURE, reason)
    })?;
    for (d, s) in &signed.signatures {
        // OpenDKIM's line.
        log::info!(
            queue_id = request.id.as_str();
            "{}: DKIM-Signature field added (s={s}, d={d})",
            request.id
        );
    }
    Ok(signed.fields)
}
