#!/usr/bin/python3
"""The milter of `bench/run --milter` (issue 20): libmilter through
Debian's python3-milter (pymilter), the same for postern and Postfix.

    bench/benchmilter.py SOCKET

SOCKET is libmilter's: inet:PORT@127.0.0.1 (or unix:/path). It prints
"ready" once it listens and runs until killed.

It does the whole protocol and decides nothing: every callback is defined
(so nothing is negotiated away: the MTA sends CONNECT, HELO, MAIL, RCPT,
DATA, each header, the end of the headers, the body and the end of the
message, and waits for each answer), each answers CONTINUE, and at the end
of every message it adds one field, `X-Milter: seen`, by which bench/run
checks that every delivered message went through it. It keeps no state
and looks at no macro: what it costs is libmilter's and Python's per
callback, which bench/run measures as the milter's own CPU.

Not tests/milter/testmilter.py: that one is driven by the Subject's words
(the benchmark's Subject has none of them), and it keeps every header, the
body and the macros of every stage for its report, work a milter that
only passes mail on would not do. (Nor bench/milter.py: that name would
shadow pymilter's C module, `milter`, which `Milter` imports.)
"""

import sys

import Milter
import milter

HEADER = ("X-Milter", "seen")


class BenchMilter(Milter.Base):
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    def hello(self, name):
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        return Milter.CONTINUE

    def data(self):
        return Milter.CONTINUE

    def header(self, name, value):
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        return Milter.CONTINUE

    def eom(self):
        self.addheader(*HEADER)
        return Milter.CONTINUE

    def abort(self):
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    Milter.factory = BenchMilter
    listen = milter.main

    def ready():
        print("ready", flush=True)
        listen()

    # runmilter opens the socket and then calls milter.main: say "ready"
    # in between.
    milter.main = ready
    Milter.runmilter("postern-bench", sys.argv[1], timeout=60)


if __name__ == "__main__":
    main()
