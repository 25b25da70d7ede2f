//! `mailq` / `postern queue list`: the queue in Postfix's `postqueue -p`
//! layout (the long-ID variant, since postern's IDs are 14 characters), or
//! one JSON object per message as `postqueue -j` prints.

use std::fmt::Write;

use crate::ipc::QueueEntry;

/// The whole report, as `postqueue -p` prints it with long queue IDs.
pub fn format(entries: &[QueueEntry], local_time: impl Fn(u64) -> String) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out = String::new();
    // Postfix: "%-17s %8s %-19s %s\n" with these four titles.
    out.push_str("----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n");
    let mut total = 0u64;
    for e in entries {
        total += e.message_size;
        let flag = match e.queue_name.as_str() {
            "active" => "*",
            "hold" => "!",
            _ => "",
        };
        let id = format!(
            "{}{flag}{}",
            e.queue_id,
            if e.forced_expire { "#" } else { "" }
        );
        let time: String = local_time(e.arrival_time).chars().take(19).collect();
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.sender
        };
        let _ = writeln!(out, "{id:<17} {:>8} {time:<19} {sender}", e.message_size);
        let mut previous: Option<&str> = None;
        for r in &e.recipients {
            let reason = r.delay_reason.as_deref();
            if reason != previous {
                let shown = reason.unwrap_or("reason unavailable");
                if reason.is_some() || previous.is_some() {
                    // Postfix: printf("%*s(%s)\n", max(0, 76 - strlen(reason)), "", reason)
                    let pad = 76usize.saturating_sub(shown.chars().count());
                    let _ = writeln!(out, "{:pad$}({shown})", "");
                }
                previous = reason;
            }
            let _ = writeln!(out, "{:47}{}", "", r.address);
        }
        out.push('\n');
    }
    let n = entries.len();
    let _ = writeln!(
        out,
        "-- {} Kbytes in {n} Request{}.",
        total / 1024,
        if n == 1 { "" } else { "s" }
    );
    out
}

/// One JSON object per line (`postqueue -j`).
pub fn format_json(entries: &[QueueEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        if let Ok(line) = serde_json::to_string(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::QueueRecipient;

    fn entry(
        id: &str,
        queue: &str,
        size: u64,
        sender: &str,
        rcpts: &[(&str, Option<&str>)],
    ) -> QueueEntry {
        QueueEntry {
            queue_name: queue.into(),
            queue_id: id.into(),
            arrival_time: 0,
            message_size: size,
            forced_expire: false,
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|(a, r)| QueueRecipient {
                    address: a.to_string(),
                    delay_reason: r.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn postfix_layout() {
        let entries = vec![
            entry(
                "66150C9C0B42FA",
                "deferred",
                2345,
                "alice@example.com",
                &[
                    (
                        "bob@example.net",
                        Some("connect to mx.example.net[192.0.2.1]:25: Connection refused"),
                    ),
                    ("carol@example.net", None),
                ],
            ),
            entry(
                "66150C9C0B42FB",
                "hold",
                100,
                "",
                &[("dan@example.net", None)],
            ),
        ];
        let text = format(&entries, |_| "Thu Nov 24 18:22:48".to_string());
        let expected = "\
----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------
66150C9C0B42FA        2345 Thu Nov 24 18:22:48 alice@example.com
                 (connect to mx.example.net[192.0.2.1]:25: Connection refused)
                                               bob@example.net
                                                          (reason unavailable)
                                               carol@example.net

66150C9C0B42FB!        100 Thu Nov 24 18:22:48 MAILER-DAEMON
                                               dan@example.net

-- 2 Kbytes in 2 Requests.
";
        assert_eq!(text, expected);
        assert_eq!(format(&[], |_| String::new()), "Mail queue is empty\n");
        let one = format(&entries[1..], |_| String::new());
        assert!(one.ends_with("-- 0 Kbytes in 1 Request.\n"), "{one}");
    }

    #[test]
    fn json_lines_in_postfix_order() {
        let e = entry("66150C9C0B42FA", "active", 1, "a@b", &[("c@d", Some("x"))]);
        assert_eq!(
            format_json(&[e]),
            "{\"queue_name\":\"active\",\"queue_id\":\"66150C9C0B42FA\",\"arrival_time\":0,\"message_size\":1,\"forced_expire\":false,\"sender\":\"a@b\",\"recipients\":[{\"address\":\"c@d\",\"delay_reason\":\"x\"}]}\n"
        );
    }
}
