#!/usr/bin/python3
"""A milter for postern's milter client tests (issue 20), on libmilter
through Debian's python3-milter (pymilter).

    testmilter.py SOCKET [--leadspc] [--quiet]

SOCKET is libmilter's: unix:/path or inet:PORT@127.0.0.1. It prints
"ready" once it listens.

What it does is driven by what the client sends:

- CONNECT from a host named reject.example, tempfail.example or
  accept.example: that answer. HELO reject-helo: a 554 reply of its own.
- RCPT to a local part reject, tempfail, discard, accept, replycode or
  replycode-multi: that answer (replycode: 550 5.7.1 with its text,
  multi-line: three lines). An unknown command starting with REJECTME:
  reject.
- At the end of the message, each word of the Subject: field:
  addheader, addheader-folded, insheader, chgheader, delheader
  (X-Remove), replacebody (two chunks), addrcpt, addrcpt_par, delrcpt
  (<b@example.net>), chgfrom, quarantine, progress (four progress
  replies 0.4 s apart), report (an X-Test-Report field: JSON of what it
  got: headers, body (its first 4 KiB), envelope, macros stage by
  stage), skip (the body callback answers SKIP after its first chunk);
  and the final answer: reject, tempfail, discard, accept, replycode, replycode-multi,
  else continue.

--leadspc negotiates SMFIP_HDR_LEADSPC. --quiet asks for no CONNECT
(SMFIP_NOCONNECT), no reply to HELO, to each header and to the end of
the headers (SMFIP_NR_*), and only the macros i and {mail_addr} at MAIL
(SMFIR_SETSYMLIST).
"""

import json
import sys
import time

import Milter
import milter

# Macros looked up at each stage for the report.
MACROS = {
    "connect": ["j", "{daemon_name}", "{client_addr}"],
    "helo": ["{tls_version}"],
    "mail": ["i", "{mail_addr}", "{auth_authen}"],
    "rcpt": ["i", "{rcpt_addr}"],
    "data": ["i"],
    "eoh": ["i"],
    "eom": ["i"],
}


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


class TestMilter(Milter.Base):
    def __init__(self):
        self.connection = {}
        self.macros = {}
        self.reset()

    def reset(self):
        self.mail = None
        self.rcpts = []
        self.headers = []
        self.body_bytes = b""
        self.chunks = 0
        self.subject = ""
        self.unknown_commands = []

    def record(self, stage):
        for name in MACROS[stage]:
            value = self.getsymval(name)
            if value is not None:
                self.macros[stage + ":" + name] = value

    def connect(self, hostname, family, hostaddr):
        self.record("connect")
        self.connection = {"hostname": hostname, "hostaddr": list(hostaddr) if isinstance(hostaddr, tuple) else hostaddr}
        answers = {
            "reject.example": Milter.REJECT,
            "tempfail.example": Milter.TEMPFAIL,
            "accept.example": Milter.ACCEPT,
        }
        return answers.get(hostname, Milter.CONTINUE)

    def hello(self, name):
        self.record("helo")
        self.connection["helo"] = name
        if name == "reject-helo":
            self.setreply("554", "5.7.1", "no HELO like that")
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.reset()
        self.record("mail")
        self.mail = [sender] + list(params)
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        self.record("rcpt")
        self.rcpts.append([rcpt] + list(params))
        local = rcpt.strip("<>").split("@")[0]
        if local == "replycode":
            self.setreply("550", "5.7.1", "no such user here")
            return Milter.REJECT
        if local == "replycode-multi":
            self.setreply("550", "5.7.1", "first line", "second line", "third line")
            return Milter.REJECT
        answers = {
            "reject": Milter.REJECT,
            "tempfail": Milter.TEMPFAIL,
            "discard": Milter.DISCARD,
            "accept": Milter.ACCEPT,
        }
        return answers.get(local, Milter.CONTINUE)

    def data(self):
        self.record("data")
        return Milter.CONTINUE

    def unknown(self, command):
        command = text(command)
        self.unknown_commands.append(command)
        if command.startswith("REJECTME"):
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append([name, value])
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        self.record("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_bytes += chunk
        self.chunks += 1
        if "skip" in self.subject.split():
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        self.record("eom")
        words = self.subject.split()
        if "progress" in words:
            for _ in range(4):
                time.sleep(0.4)
                self.progress()
        if "addheader" in words:
            self.addheader("X-Added", "added value")
        if "addheader-folded" in words:
            self.addheader("X-Folded", "line one\n\tline two")
        if "insheader" in words:
            self.addheader("X-Inserted", "at the top", 0)
        if "chgheader" in words:
            self.chgheader("Subject", 1, "changed subject")
        if "delheader" in words:
            self.chgheader("X-Remove", 1, "")
        if "replacebody" in words:
            self.replacebody(b"replaced body\r\n")
            self.replacebody(b"in two chunks\r\n")
        if "addrcpt" in words:
            self.addrcpt("<added@example.net>")
        if "addrcpt_par" in words:
            self.addrcpt("<added-par@example.net>", "NOTIFY=NEVER")
        if "delrcpt" in words:
            self.delrcpt("<b@example.net>")
        if "chgfrom" in words:
            self.chgfrom("<new-sender@example.org>", "SIZE=1000")
        if "quarantine" in words:
            self.quarantine("held for review")
        if "report" in words:
            report = {
                "connection": self.connection,
                "mail": self.mail,
                "rcpts": self.rcpts,
                "headers": self.headers,
                # libmilter refuses a field near its 64 KiB packet limit.
                "body": self.body_bytes[:4096].decode("utf-8", "surrogateescape"),
                "body_length": len(self.body_bytes),
                "chunks": self.chunks,
                "macros": self.macros,
                "unknown": self.unknown_commands,
            }
            self.addheader("X-Test-Report", json.dumps(report, sort_keys=True))
        if "replycode" in words:
            self.setreply("550", "5.7.1", "message refused")
            return Milter.REJECT
        if "replycode-multi" in words:
            self.setreply("451", "4.7.1", "try again", "later 100%% sure")
            return Milter.TEMPFAIL
        answers = {
            "reject": Milter.REJECT,
            "tempfail": Milter.TEMPFAIL,
            "discard": Milter.DISCARD,
            "accept": Milter.ACCEPT,
        }
        for word in words:
            if word in answers:
                return answers[word]
        return Milter.CONTINUE

    def abort(self):
        self.reset()
        return Milter.CONTINUE


class QuietMilter(TestMilter):
    """Skips CONNECT, answers neither HELO nor headers nor their end, and
    wants two macros at MAIL."""

    @Milter.nocallback
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    @Milter.noreply
    def hello(self, name):
        return TestMilter.hello(self, name)

    @Milter.noreply
    def header(self, name, value):
        TestMilter.header(self, name, value)
        return Milter.CONTINUE

    @Milter.noreply
    def eoh(self):
        return TestMilter.eoh(self)

    def negotiate(self, opts):
        result = TestMilter.negotiate(self, opts)
        # Not @Milter.symlist: pymilter 1.0.5 hands libmilter bytes where
        # it wants a str (TypeError, and the negotiation falls back to
        # "all options").
        self._ctx.setsymlist(Milter.M_ENVFROM, "i {mail_addr}")
        return result



def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    socket = args[0]
    factory = QuietMilter if "--quiet" in args else TestMilter
    if "--leadspc" in args:
        factory = Milter.header_leading_space(factory)
    Milter.factory = factory
    listen = milter.main

    def ready():
        print("ready", flush=True)
        listen()

    # runmilter opens the socket and then calls milter.main: say "ready"
    # in between.
    milter.main = ready
    Milter.runmilter("postern-test", socket, timeout=60)


if __name__ == "__main__":
    main()
