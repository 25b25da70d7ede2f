//! The addresses in message headers (canonical(5)'s `header_sender` and
//! `header_recipient` classes, masquerading's too): each address of the
//! sender fields (`From:`, `Sender:`, `Reply-To:`, their `Resent-` forms,
//! `Return-Receipt-To:`, `Errors-To:`) and of the recipient fields
//! (`To:`, `Cc:`, `Bcc:`, `Resent-To:`, `Resent-Cc:`, `Resent-Bcc:`,
//! `Apparently-To:`) rewritten in place; display names, comments, quoted
//! strings and folding are kept as written. Virtual aliases never touch
//! headers (as in Postfix).

/// Which side a field is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Sender,
    Recipient,
}

const SENDER_FIELDS: [&str; 9] = [
    "from",
    "sender",
    "reply-to",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "return-receipt-to",
    "errors-to",
    "disposition-notification-to",
];

const RECIPIENT_FIELDS: [&str; 7] = [
    "to",
    "cc",
    "bcc",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "apparently-to",
];

/// The side of the field `name`, if its addresses are rewritten.
fn side(name: &str) -> Option<Side> {
    let name = name.trim().to_ascii_lowercase();
    if SENDER_FIELDS.contains(&name.as_str()) {
        Some(Side::Sender)
    } else if RECIPIENT_FIELDS.contains(&name.as_str()) {
        Some(Side::Recipient)
    } else {
        None
    }
}

/// `content` (the stored form: LF line ends) with the addresses of its
/// header section rewritten by `rewrite`; `None` when nothing changed.
pub(crate) fn rewrite<E>(
    content: &[u8],
    mut rewrite: impl FnMut(Side, &str) -> Result<String, E>,
) -> Result<Option<Vec<u8>>, E> {
    let end = header_end(content);
    let mut out = Vec::with_capacity(content.len() + 64);
    let mut changed = false;
    let mut at = 0;
    while at < end {
        // One logical field: up to a newline not followed by white space.
        let mut stop = at;
        loop {
            match content[stop..end].iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    stop += nl + 1;
                    if stop >= end || !matches!(content[stop], b' ' | b'\t') {
                        break;
                    }
                }
                None => {
                    stop = end;
                    break;
                }
            }
        }
        let field = &content[at..stop];
        let colon = field.iter().position(|b| *b == b':');
        let which = colon.and_then(|c| std::str::from_utf8(&field[..c]).ok().and_then(side));
        match (which, colon) {
            (Some(which), Some(c)) => {
                let value = &field[c + 1..];
                let new = rewrite_value(value, |a| rewrite(which, a))?;
                out.extend_from_slice(&field[..=c]);
                match new {
                    Some(v) => {
                        changed = true;
                        out.extend_from_slice(&v);
                    }
                    None => out.extend_from_slice(value),
                }
            }
            _ => out.extend_from_slice(field),
        }
        at = stop;
    }
    if !changed {
        return Ok(None);
    }
    out.extend_from_slice(&content[end..]);
    Ok(Some(out))
}

/// Where the header section ends: after the newline before the first
/// empty line (or the end of the content).
fn header_end(content: &[u8]) -> usize {
    if content.first() == Some(&b'\n') {
        return 0;
    }
    content
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(content.len(), |p| p + 1)
}

/// The addresses of one field's value rewritten: an address is what
/// stands in `<…>`, or a word with an `@` outside of quotes, comments and
/// angle brackets. `None`: nothing changed.
fn rewrite_value<E>(
    value: &[u8],
    mut rewrite: impl FnMut(&str) -> Result<String, E>,
) -> Result<Option<Vec<u8>>, E> {
    let spans = address_spans(value);
    let mut out = Vec::with_capacity(value.len());
    let mut last = 0;
    let mut changed = false;
    for (start, stop) in spans {
        let Ok(addr) = std::str::from_utf8(&value[start..stop]) else {
            continue;
        };
        if !addr.contains('@') {
            continue;
        }
        let new = rewrite(addr)?;
        if new != addr {
            out.extend_from_slice(&value[last..start]);
            out.extend_from_slice(new.as_bytes());
            last = stop;
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    out.extend_from_slice(&value[last..]);
    Ok(Some(out))
}

/// The byte ranges of the addresses in a field's value.
fn address_spans(value: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    let mut word: Option<usize> = None;
    let close_word = |word: &mut Option<usize>, i: usize, spans: &mut Vec<(usize, usize)>| {
        if let Some(start) = word.take()
            && value[start..i].contains(&b'@')
        {
            spans.push((start, i));
        }
    };
    while i < value.len() {
        match value[i] {
            b'"' => {
                close_word(&mut word, i, &mut spans);
                i += 1;
                while i < value.len() && value[i] != b'"' {
                    i += if value[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'(' => {
                close_word(&mut word, i, &mut spans);
                i += crate::wire::header::comment_len(&value[i..]);
            }
            b'<' => {
                close_word(&mut word, i, &mut spans);
                let start = i + 1;
                let stop = value[start..]
                    .iter()
                    .position(|b| *b == b'>')
                    .map_or(value.len(), |p| start + p);
                let inner = &value[start..stop];
                // A source route (`<@a,@b:user@host>`) keeps its route.
                let from = inner
                    .iter()
                    .rposition(|b| *b == b':')
                    .filter(|_| inner.first() == Some(&b'@'))
                    .map_or(start, |p| start + p + 1);
                spans.push((from, stop));
                i = stop + 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' | b':' => {
                close_word(&mut word, i, &mut spans);
                i += 1;
            }
            _ => {
                word.get_or_insert(i);
                i += 1;
            }
        }
    }
    close_word(&mut word, value.len().min(i), &mut spans);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masq(content: &str) -> String {
        let r = rewrite::<()>(content.as_bytes(), |side, a| {
            Ok(match side {
                Side::Sender => a.replace("@host.example.com", "@example.com"),
                Side::Recipient => a.replace("@old.example", "@new.example"),
            })
        })
        .unwrap();
        match r {
            Some(v) => String::from_utf8(v).unwrap(),
            None => content.to_string(),
        }
    }

    #[test]
    fn addresses_in_sender_and_recipient_fields() {
        assert_eq!(
            masq(
                "From: Joe <joe@host.example.com>\nTo: a@old.example,\n \"B, b@old.example\" <b@old.example> (c@old.example)\nSubject: joe@host.example.com\n\nFrom: x@host.example.com\n"
            ),
            "From: Joe <joe@example.com>\nTo: a@new.example,\n \"B, b@old.example\" <b@new.example> (c@old.example)\nSubject: joe@host.example.com\n\nFrom: x@host.example.com\n"
        );
        assert_eq!(
            masq("Reply-To: joe@host.example.com\nCc: undisclosed-recipients:;\n\nbody"),
            "Reply-To: joe@example.com\nCc: undisclosed-recipients:;\n\nbody"
        );
        assert_eq!(masq("Subject: x\n\nbody\n"), "Subject: x\n\nbody\n");
        // A group, a source route.
        assert_eq!(
            masq("To: team: a@old.example, <@r.example:b@old.example>;\n\n"),
            "To: team: a@new.example, <@r.example:b@new.example>;\n\n"
        );
    }
}
