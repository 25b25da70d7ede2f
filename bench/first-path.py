#!/usr/bin/env python3
"""Quick measurement of the first mail path (issue 2's "Measure").

Starts a release build of postern on 127.0.0.1 with a temporary queue and
Maildir, then
  1. sends one 100 MiB message and reports smtpd's peak RSS (VmHWM);
  2. sends N messages (default 1000) over C sessions (default 10) and
     reports accepted/s, delivered/s (until the last file is in
     Maildir/new, every message found exactly once) and the peak RSS of
     every postern process.

Usage: bench/first-path.py [--messages N] [--sessions C] [--big-mib M]
The full benchmark beside Postfix is issue 3 (bench/run).
"""
import argparse, os, pwd, re, shutil, smtplib, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def postern_pids():
    out = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\0')
        except OSError:
            continue
        if cmd and cmd[0].endswith(b'/postern') and b'daemon' in cmd:
            out.append((int(pid), cmd[cmd.index(b'daemon') + 1].decode()))
    return out


def hwm(pid):
    try:
        for line in open(f'/proc/{pid}/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1])  # KiB
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak RSS per role, sampled (worker children come and go)."""
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {}
        self.stop = False

    def run(self):
        while not self.stop:
            for pid, role in postern_pids():
                self.peak[(pid, role)] = max(self.peak.get((pid, role), 0), hwm(pid))
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', type=int, default=1000)
    ap.add_argument('--sessions', type=int, default=10)
    ap.add_argument('--big-mib', type=int, default=100)
    args = ap.parse_args()

    subprocess.run(['cargo', 'build', '--release', '--quiet'], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, 'target/release/postern')
    d = tempfile.mkdtemp(prefix='postern-bench')
    os.chmod(d, 0o755)
    os.mkdir(f'{d}/mail'); os.chmod(f'{d}/mail', 0o1777)
    user = pwd.getpwuid(os.geteuid()).pw_name
    conf = f'{d}/postern.toml'
    open(conf, 'w').write(f'''
[server]
hostname = "bench.example"
run_directory = "{d}/run"
[queue]
directory = "{d}/queue"
[local]
mailbox = "{d}/mail/$user/Maildir/"
domains = ["localhost"]
[smtpd]
listen = ["127.0.0.1:0"]
message_size_limit = 0
''')
    log = open(f'{d}/log', 'w')
    proc = subprocess.Popen([binary, '--config', conf, 'start', '--foreground'], stdout=log, stderr=log)
    try:
        port = None
        for _ in range(500):
            m = re.search(r'listening on 127\.0\.0\.1:(\d+)', open(f'{d}/log').read())
            if m and os.path.exists(f'{d}/run/status.json'):
                port = int(m.group(1)); break
            time.sleep(0.02)
        assert port, open(f'{d}/log').read()
        new = f'{d}/mail/{user}/Maildir/new'
        rcpt = f'{user}@localhost'

        def count():
            try:
                return len(os.listdir(new))
            except FileNotFoundError:
                return 0

        # 1. one big message
        sampler = Sampler(); sampler.start()
        big = b'Subject: big\r\n\r\n' + (b'x' * 998 + b'\r\n') * (args.big_mib * 1024 * 1024 // 1000)
        t0 = time.time()
        with smtplib.SMTP('127.0.0.1', port) as s:
            s.sendmail('bench@example.org', [rcpt], big)
        while count() < 1:
            time.sleep(0.05)
        big_secs = time.time() - t0
        time.sleep(0.3)
        smtpd_peak = max(v for (p, r), v in sampler.peak.items() if r == 'smtpd')
        print(f'{args.big_mib} MiB message: {big_secs:.2f} s end to end; smtpd peak RSS {smtpd_peak/1024:.1f} MiB')
        for f in os.listdir(new):
            os.unlink(os.path.join(new, f))

        # 2. many small messages over several sessions
        body = b'Subject: bench\r\n\r\n' + b'0123456789abcdef' * 120 + b'\r\n'  # ~2 KiB
        per = args.messages // args.sessions
        def session(n):
            with smtplib.SMTP('127.0.0.1', port) as s:
                for i in range(per):
                    s.sendmail('bench@example.org', [rcpt], body.replace(b'bench', f'bench {n}-{i}'.encode(), 1))
        t0 = time.time()
        threads = [threading.Thread(target=session, args=(n,)) for n in range(args.sessions)]
        for t in threads: t.start()
        for t in threads: t.join()
        accepted = time.time() - t0
        total = per * args.sessions
        while count() < total:
            time.sleep(0.01)
        delivered = time.time() - t0
        time.sleep(0.5)
        assert count() == total, f'{count()} files for {total} messages'
        sampler.stop = True
        print(f'{total} messages (~2 KiB) over {args.sessions} sessions: accepted {total/accepted:.0f}/s, delivered {total/delivered:.0f}/s end to end')
        roles = {}
        for (p, r), v in sampler.peak.items():
            roles[r] = max(roles.get(r, 0), v)
        print('peak RSS by role (MiB): ' + ', '.join(f'{r} {v/1024:.1f}' for r, v in sorted(roles.items())))
        print(f'sum of peaks of all processes: {sum(sampler.peak.values())/1024:.1f} MiB')
    finally:
        proc.terminate(); proc.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
