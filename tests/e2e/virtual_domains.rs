//! Many domains on one host (issue 21, part 2): virtual alias domains
//! (`[virtual]`), relay domains for a backup MX (`relay.domains`,
//! `relay.recipient_maps`), canonical mapping and masquerading
//! (`[rewrite]`), all applied as a message enters the queue, for SMTP
//! clients and local submissions alike.

use crate::common::*;
use crate::outbound::after_received;
use crate::outbound::sink::{Script, Sink};

/// The message the tests send (CRLF, no final dot).
const MESSAGE: &str = "From: Sender <s@example.org>\r\nTo: list@v1.example\r\nSubject: many domains\r\n\r\nfirst line\r\n..a dotted line\r\nlast line";

/// A postern with two virtual alias domains: `v1.example` from a hash
/// file (its bare domain key makes it one, Postfix's default
/// `virtual_alias_domains = $virtual_alias_maps`), `v2.example` from an
/// inline table with a catch-all; `remote.example` goes to `sink`.
fn multi_domain(sink: &Sink) -> Postern {
    multi_domain_for(sink, "127.0.0.0/8")
}

/// As [`multi_domain`], `relay.networks` being `networks`.
fn multi_domain_for(sink: &Sink, networks: &str) -> Postern {
    let me = me();
    let p = Postern::configure(
        &format!(
            "[relay]\nnetworks = [\"{networks}\"]\n\
             transport = {{ \"remote.example\" = \"smtp:[127.0.0.1]:{port}\" }}\n\n\
             [virtual]\nalias_maps = [\"hash:{{dir}}/virtual\", \
             \"inline:{{ v2.example=domain, {{team@v2.example = {me}@localhost, nobody@localhost}}, @v2.example=nobody@localhost }}\"]\n",
            port = sink.port()
        ),
        &[],
        None,
    );
    p.edit_config("[local]\n", "[local]\nrecipient_delimiter = \"+\"\n");
    write_file(
        &p.dir.path().join("virtual"),
        format!(
            "# the domain itself: v1.example is a virtual alias domain\n\
             v1.example        virtual\n\
             ann@v1.example    {me}@localhost\n\
             bob@v1.example    nobody@localhost\n\
             list@v1.example   ann@v1.example, bob@v1.example,\n  ann@v1.example\n\
             far@v1.example    someone@remote.example\n\
             tag@v1.example    {me}@localhost\n\
             loopa@v1.example  loopb@v1.example\n\
             loopb@v1.example  loopa@v1.example\n"
        )
        .as_bytes(),
    );
    // A local alias to an address in an alias domain: its forwarded copy
    // is rewritten as it is queued.
    write_file(&p.dir.path().join("aliases"), b"fwd: ann@v1.example\n");
    let mut p = p;
    p.launch();
    p
}

#[test]
fn virtual_aliases_deliver_once_to_local_maildirs_and_a_remote_host() {
    if !is_root() {
        eprintln!("skipped: needs root (delivers to two users)");
        return;
    }
    let sink = Sink::start("127.0.0.1", Script::accept());
    let p = multi_domain(&sink);
    let me = p.user.clone();

    // A list, one of its members again, and an inline alias naming the
    // same two users: each mailbox gets the message once.
    let id = send(
        &p,
        "s@example.org",
        &["list@v1.example", "bob@v1.example", "team@v2.example"],
        MESSAGE,
    );
    p.wait_log(&format!("{id}: removed"), 1, 30);
    let mine = p.wait_delivered(&me, 1, 10);
    let nobody = p.wait_delivered("nobody", 1, 10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(p.delivered(&me).len(), 1, "{}", p.log());
    assert_eq!(p.delivered("nobody").len(), 1, "{}", p.log());
    let sent = lf(format!("{MESSAGE}\r\n").as_bytes());
    for file in [&mine[0], &nobody[0]] {
        assert_eq!(
            String::from_utf8_lossy(&body_after_added_headers(file)),
            String::from_utf8_lossy(&sent).replace("\n..", "\n."),
        );
    }
    let log = p.log();
    assert!(
        log.contains(&format!(
            "{id}: to=<{me}@localhost>, orig_to=<list@v1.example>, relay=local"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{id}: to=<nobody@localhost>, orig_to=<list@v1.example>, relay=local"
        )),
        "{log}"
    );

    // An alias to another host: the message goes there, to the alias's
    // target, with the original recipient as ORCPT.
    let id = send(&p, "s@example.org", &["far@v1.example"], MESSAGE);
    let got = sink.wait_messages(1, 30, || p.log()).remove(0);
    assert_eq!(got.recipients, ["someone@remote.example"]);
    assert_eq!(got.sender, "s@example.org");
    let commands = sink.seen().commands;
    assert!(
        commands
            .iter()
            .any(|c| c.contains("<someone@remote.example> ORCPT=rfc822;far@v1.example")),
        "no ORCPT in {commands:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(after_received(&got.data)),
        MESSAGE.replace("\r\n..", "\r\n.").to_string() + "\r\n"
    );
    p.wait_log(
        &format!("{id}: to=<someone@remote.example>, orig_to=<far@v1.example>, relay=127.0.0.1["),
        1,
        30,
    );
    p.wait_log(&format!("{id}: removed"), 1, 30);

    // The catch-all of v2.example, and an extension carried over from the
    // key that matched without it.
    let id = send(&p, "s@example.org", &["whoever@v2.example"], MESSAGE);
    p.wait_log(&format!("{id}: removed"), 1, 30);
    p.wait_delivered("nobody", 2, 10);
    let id = send(&p, "s@example.org", &["tag+news@v1.example"], MESSAGE);
    p.wait_log(
        &format!("{id}: to=<{me}+news@localhost>, orig_to=<tag+news@v1.example>, relay=local"),
        1,
        30,
    );
    p.wait_delivered(&me, 2, 10);

    // /etc/aliases → an alias domain: local forwards a copy, which the
    // virtual aliases take to the mailbox.
    let id = send(&p, "s@example.org", &["fwd@localhost"], MESSAGE);
    // The whole line (a read of the log may end inside it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let line = loop {
        let log = p.log();
        let found = log.lines().find(|l| {
            l.contains(&format!("{id}: to=<fwd@localhost>")) && l.contains("forwarded as")
        });
        if let Some(l) = found {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no \"forwarded as\" line for {id} in:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let new_id = line
        .rsplit("forwarded as ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    p.wait_log(
        &format!("{new_id}: to=<{me}@localhost>, orig_to=<ann@v1.example>, relay=local"),
        1,
        30,
    );
    p.wait_delivered(&me, 3, 10);
}

#[test]
fn virtual_alias_unknown_users_loops_and_relay_control() {
    let sink = Sink::start("127.0.0.1", Script::accept());
    let p = multi_domain_for(&sink, "127.0.0.1/32");
    let mut c = p.client();
    c.cmd("EHLO c.example");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    // No alias for the address in an alias domain.
    assert_eq!(
        c.cmd("RCPT TO:<nobody-here@v1.example>"),
        "550 5.1.1 <nobody-here@v1.example>: Recipient address rejected: User unknown in virtual alias table"
    );
    // Subdomains are not alias domains (not in Postfix's
    // parent_domain_matches_subdomains), nor ours.
    assert_eq!(
        c.cmd("RCPT TO:<x@sub.v1.example>"),
        "250 2.1.5 Ok",
        "127.0.0.1 is in relay.networks: relayed"
    );
    c.cmd("RSET");
    // A loop (a → b → a) passes the nesting limit when the message enters
    // the queue: not taken, try again later, as Postfix's cleanup says.
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<loopa@v1.example>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    assert_eq!(
        c.cmd(&format!("{MESSAGE}\r\n.")),
        "451 4.6.0 Alias expansion error"
    );
    c.cmd("QUIT");
    p.wait_log(
        "unreasonable virtual_alias_maps map nesting for loopa@v1.example",
        1,
        5,
    );
    p.wait_log("reject: END-OF-MESSAGE from", 1, 5);

    // An outsider (not in relay.networks) may send to the alias domains,
    // not elsewhere.
    let mut c = p.client_from("127.0.0.3");
    c.cmd("EHLO outsider.example");
    assert_eq!(c.cmd("MAIL FROM:<o@outsider.example>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<ann@v1.example>"), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.example>"),
        "554 5.7.1 <x@elsewhere.example>: Relay access denied"
    );
    c.cmd("QUIT");
}

#[test]
fn virtual_aliases_apply_to_local_submissions() {
    let sink = Sink::start("127.0.0.1", Script::accept());
    let p = multi_domain(&sink);
    let out = crate::sendmail::sendmail(
        &p,
        &["far@v1.example"],
        b"Subject: cron\n\nfrom cron\n",
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.wait_messages(1, 30, || p.log()).remove(0);
    assert_eq!(got.recipients, ["someone@remote.example"]);
}

/// A backup MX (or a gateway) for relay.example: it takes mail for the
/// domain and its subdomains from anyone, refuses the users
/// `relay.recipient_maps` does not know, and hands the rest to the
/// internal server (a transport entry to 127.0.0.2).
#[test]
fn virtual_relay_domains_backup_mx_to_an_internal_server() {
    let internal = Sink::start("127.0.0.2", Script::accept());
    let p = Postern::start(&format!(
        "[relay]\nnetworks = [\"127.0.0.1/32\"]\n\
         domains = [\"relay.example\"]\n\
         recipient_maps = [\"inline:{{ ann@relay.example=OK, @sub.relay.example=OK }}\"]\n\
         transport = {{ \"relay.example\" = \"smtp:[127.0.0.2]:{port}\", \".relay.example\" = \"smtp:[127.0.0.2]:{port}\" }}\n\n\
         [verify]\ninbound = false\n",
        port = internal.port()
    ));
    let mut c = p.client_from("127.0.0.3");
    c.cmd("EHLO outsider.example");
    assert_eq!(c.cmd("MAIL FROM:<o@outsider.example>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<ann@relay.example>"), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<bob@relay.example>"),
        "550 5.1.1 <bob@relay.example>: Recipient address rejected: User unknown in relay recipient table"
    );
    // relay.domains matches subdomains (parent_domain_matches_subdomains);
    // the table's @domain key takes every user there.
    assert_eq!(c.cmd("RCPT TO:<x@sub.relay.example>"), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<x@other.example>"),
        "554 5.7.1 <x@other.example>: Relay access denied"
    );
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!("{MESSAGE}\r\n."));
    let id = queue_id(&r);
    c.cmd("QUIT");
    let got = internal.wait_messages(1, 30, || p.log()).remove(0);
    let mut rcpts = got.recipients.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["ann@relay.example", "x@sub.relay.example"]);
    assert_eq!(got.sender, "o@outsider.example");
    assert_eq!(
        String::from_utf8_lossy(after_received(&got.data)),
        MESSAGE.replace("\r\n..", "\r\n.").to_string() + "\r\n"
    );
    p.wait_log(&format!("{id}: removed"), 1, 30);
}

/// `rewrite.sender_canonical_maps` then `canonical_maps`, then
/// masquerading: the receiving side sees the rewritten envelope sender,
/// recipient and header addresses.
#[test]
fn virtual_canonical_and_masquerade_rewrite_envelope_and_headers() {
    let sink = Sink::start("127.0.0.1", Script::accept());
    let p = Postern::start(&format!(
        "[relay]\ntransport = {{ \"remote.example\" = \"smtp:[127.0.0.1]:{port}\" }}\n\n\
         [rewrite]\nsender_canonical_maps = [\"inline:{{ joe@host.example.com=joseph@host.example.com }}\"]\n\
         canonical_maps = [\"inline:{{ old@remote.example=new@remote.example }}\"]\n\
         masquerade_domains = [\"example.com\"]\nmasquerade_exceptions = [\"root\"]\n",
        port = sink.port()
    ));
    let message = "From: Joe <joe@host.example.com>\r\nSender: other@mx.host.example.com\r\n\
                   To: \"Old, Friend\" <old@remote.example>, b@remote.example\r\n\
                   Subject: joe@host.example.com\r\n\r\nFrom: joe@host.example.com\r\n";
    send(&p, "joe@host.example.com", &["old@remote.example"], message);
    let got = sink.wait_messages(1, 30, || p.log()).remove(0);
    assert_eq!(got.sender, "joseph@example.com");
    assert_eq!(got.recipients, ["new@remote.example"]);
    // The headers of mail from this host too (canonical, masquerading);
    // the subject and the body are left alone.
    assert_eq!(
        String::from_utf8_lossy(after_received(&got.data)),
        "From: Joe <joseph@example.com>\r\nSender: other@example.com\r\n\
         To: \"Old, Friend\" <new@remote.example>, b@remote.example\r\n\
         Subject: joe@host.example.com\r\n\r\nFrom: joe@host.example.com\r\n\r\n"
    );
    send(&p, "root@host.example.com", &["x@remote.example"], MESSAGE);
    let got = sink.wait_messages(2, 30, || p.log()).remove(1);
    assert_eq!(got.sender, "root@host.example.com");
}

/// `postern check` of the test configuration plus `tables`, which must
/// fail: what it said.
fn check_fails(tables: &str) -> String {
    let p = Postern::configure(tables, &[], None);
    let out = p.postern(&["check"]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    text
}

#[test]
fn virtual_check_says_reject_unverified_recipient_is_not_supported() {
    let text = check_fails("[restrictions]\nrecipient = [\"reject_unverified_recipient\"]\n");
    assert!(
        text.contains("reject_unverified_recipient") && text.contains("not supported yet"),
        "{text}"
    );
}

#[test]
fn virtual_check_names_both_keys_of_a_domain_in_two_classes() {
    let text = check_fails(
        "[virtual]\nalias_maps = [\"inline:{ localhost=domain, a@localhost=b@localhost }\"]\n",
    );
    assert!(
        text.contains(
            "localhost is in both local.domains (mydestination) and virtual.alias_domains"
        ),
        "{text}"
    );
}
