# Emulates nixos/modules/services/mail/postfix.nix (NixOS/nixpkgs, commit 0177fbb41ef7aba03aba3911861b1bb47b9eed07) for
# the configuration in SOURCE.
pkg = "/nix/store/8kq6zl4j0yq8iyb8m6cc5dx0p7ka6x1l-postfix-3.10.2"
main = {
  "compatibility_level": "3.10.2", "mail_owner": "postfix", "default_privs": "nobody",
  "data_directory": "/var/lib/postfix/data", "queue_directory": "/var/lib/postfix/queue",
  "meta_directory": pkg + "/etc/postfix", "command_directory": pkg + "/bin",
  "sample_directory": "/etc/postfix", "newaliases_path": pkg + "/bin/newaliases",
  "mailq_path": pkg + "/bin/mailq", "readme_directory": False, "sendmail_path": pkg + "/bin/sendmail",
  "daemon_directory": pkg + "/libexec/postfix", "manpage_directory": pkg + "/share/man",
  "html_directory": pkg + "/share/postfix/doc/html", "shlib_directory": False,
  "mail_spool_directory": "/var/spool/mail/", "setgid_group": "postdrop",
  "alias_maps": ["hash:/etc/postfix/aliases"], "transport_maps": ["hash:/etc/postfix/transport"],
  "smtpd_client_restrictions": "reject_rbl_client zen.spamhaus.org",
  "message_size_limit": 10240000, "mydestination": ["$myhostname", "localhost.$mydomain", "localhost"],
  "myhostname": "mail.example.org", "mydomain": "example.org", "mynetworks_style": "host",
  "recipient_delimiter": "+", "relayhost": [], "relay_domains": [],
  "smtp_tls_CAfile": "/etc/ssl/certs/ca-certificates.crt", "smtp_tls_security_level": "may",
  "smtpd_tls_chain_files": ["/var/lib/acme/mail.example.org/key.pem", "/var/lib/acme/mail.example.org/fullchain.pem"],
  "smtpd_tls_security_level": "may",
}
def val(v):
    if isinstance(v, list): return "\n  " + ",\n  ".join(v)
    if v is True: return " yes"
    if v is False: return " no"
    return " " + str(v)
open("main.cf", "w").write("\n".join(f"{k} ={val(main[k])}" for k in sorted(main)))
U = None
# name: (name, type, private, privileged, chroot, wakeup, wakeupUnused, maxproc, command, args)
def svc(name, type="unix", private=U, privileged=U, chroot=U, wakeup=U, wuc=U, maxproc=U, command=None, args=()):
    b = lambda x: "y" if x else "n"
    w = "-" if wakeup is None else str(wakeup) + ("?" if wuc is False else "")
    arg = lambda a: ("\n  " if a.startswith("-") else "") + a
    return [name, type, "-" if private is None else b(private), "-" if privileged is None else b(not privileged),
            "-" if chroot is None else b(chroot), w, "-" if maxproc is None else str(maxproc),
            (command or name) + " " + " ".join(arg(a) for a in args)]
sub = {"milter_macro_daemon_name": "ORIGINATING", "smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth", "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
       "smtpd_sasl_auth_enable": "yes", "smtpd_tls_wrappermode": "yes", "smtpd_tls_security_level": "encrypt"}
master = {
  "pickup": svc("pickup", private=False, wakeup=60, maxproc=1),
  "cleanup": svc("cleanup", private=False, maxproc=0),
  "qmgr": svc("qmgr", private=False, wakeup=300, maxproc=1),
  "tlsmgr": svc("tlsmgr", wakeup=1000, wuc=False, maxproc=1),
  "rewrite": svc("rewrite", command="trivial-rewrite"),
  "bounce": svc("bounce", maxproc=0),
  "defer": svc("defer", maxproc=0, command="bounce"),
  "trace": svc("trace", maxproc=0, command="bounce"),
  "verify": svc("verify", maxproc=1),
  "flush": svc("flush", private=False, wakeup=1000, wuc=False, maxproc=0),
  "proxymap": svc("proxymap", command="proxymap"),
  "proxywrite": svc("proxywrite", maxproc=1, command="proxymap"),
  "showq": svc("showq", private=False),
  "error": svc("error"), "retry": svc("retry", command="error"), "discard": svc("discard"),
  "local": svc("local", privileged=True), "virtual": svc("virtual", privileged=True),
  "lmtp": svc("lmtp"), "anvil": svc("anvil", maxproc=1), "scache": svc("scache", maxproc=1),
  "smtp_inet": svc("smtp", type="inet", private=False, command="smtpd"),
  "smtp": svc("smtp"),
  "relay": svc("relay", command="smtp", args=["-o", "smtp_fallback_relay="]),
  "submissions": svc("submissions", type="inet", private=False, command="smtpd",
      args=[x for k in sorted(sub) for x in ("-o", k + "=" + sub[k])]),
}
labels = ["# service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command + args"]
ldef = ["# ", "", "(yes)", "(yes)", "(no)", "(never)", "(100)", "", ""]
rows = [master[k] for k in sorted(master)]
lines = [labels, ldef] + [r[:-1] + [""] for r in rows]
widths = [0] * len(labels)
for l in lines:
    widths = [max(a, len(b)) for a, b in zip(widths, l)]
pad = lambda w, s: s + " " * (w - len(s)) if w > len(s) else s
fmt = lambda l: "  ".join(pad(w, s) for w, s in zip(widths, l))
full = sum(w + 2 for w in widths)
sep = "# " + "=" * (full + 5)
text = "\n".join([sep, fmt(labels), fmt(ldef), sep]) + "\n" + "\n".join(fmt(r) for r in rows) + "\n" + ""
open("master.cf", "w").write(text)
