#!/bin/bash
# verify-systemd.sh: the Debian package on a real systemd (PID 1), as a
# new user installs and uses it (issue 15). A minimal Debian 12 root is
# booted with systemd-nspawn (private network: nothing leaves, no port of
# the host is taken); inside, the package is installed with apt, and the
# installed system is used the way its users use it:
#
#   - units active, smtpd socket-activated, listeners exactly as
#     /etc/postern/postern.toml says (ss), nothing on 587;
#   - mail from root and from an ordinary user with `mail`, and a
#     cron-style `sendmail -t`, lands in Maildirs;
#   - with the mail system stopped, `sendmail` of an ordinary user exits
#     0 and the message arrives once it runs again;
#   - `systemctl reload postern.target` works; with a broken
#     configuration the services' reload and `postern reload` fail while
#     the old configuration keeps serving (systemd 252 reports a target's
#     reload as done whatever its services answered);
#   - kill -9 of every daemon is recovered by systemd;
#   - `postern status` tells the truth;
#   - a queue and run directory moved in the file are followed by the
#     units (the generator's drop-ins) on the fresh system;
#   - issue 18, on the fresh system: [submission] listeners on 587
#     (STARTTLS) and 465 (TLS from the first byte) with a self-signed
#     key and chain under /etc/postern and a `postern passwd` login reach
#     smtpd through postern-submission.socket and postern-submissions.socket;
#     swaks with AUTH PLAIN delivers through both, without AUTH gets 530
#     5.7.0; ss shows exactly the configured listeners, and nothing on 587
#     or 465 once the keys are gone again; without the generator the
#     submission units are skipped (their condition: the generator's
#     drop-in), and postern.target restarts and smtpd runs regardless;
#   - issue 23, on the fresh system: with metrics off nothing of the
#     endpoint listens (qmgr's metrics.sock included); [metrics] listen
#     brings postern-metrics.socket and metrics.sock, a restart of smtpd
#     by systemd is counted, and a scrape counts
#     the mail sent; off again, both gone;
#   - purge leaves no alternatives and no units.
#
# Twice: on a fresh system, and over an installed Postfix.
#
#   packaging/verify-systemd.sh [path/to/postern_*.deb]
#
# Run as root from the source tree; without an argument the newest
# ../postern_*.deb is taken (packaging/verify-deb.sh builds it). The
# Debian root is debootstrapped once (~1 min, needs the Debian mirror) and
# cached as a tar in $POSTERN_CI_CACHE (default /var/cache/postern-ci).
# Where systemd-nspawn cannot boot a container, the script says so loudly
# and exits 0 (POSTERN_REQUIRE_SYSTEMD=1 makes that a failure).
set -euo pipefail

say() { printf '== %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
skip() {
    printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf '!! SKIPPED: the systemd container test cannot run here: %s\n' "$*" >&2
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
    [ "${POSTERN_REQUIRE_SYSTEMD:-0}" = 1 ] && exit 1
    exit 0
}

CACHE=${POSTERN_CI_CACHE:-/var/cache/postern-ci}
# Bump when the package list changes: a new name makes a new cache.
IMAGE=$CACHE/bookworm-systemd-2.tar
INCLUDE=systemd,systemd-sysv,dbus,procps,iproute2,swaks,cron
# Installed in the image after debootstrap (its --include cannot
# configure them): swaks's STARTTLS and TLS-on-connect (submission).
INSTALL="libnet-ssleay-perl"
PREFETCH="bsd-mailx postfix adduser"

make_image() {
    [ -f "$IMAGE" ] && return 0
    command -v debootstrap >/dev/null || skip "debootstrap is not installed"
    say "debootstrap bookworm (cached afterwards in $IMAGE)"
    local tmp
    tmp=$(mktemp -d "$CACHE/build.XXXXXX")
    if ! debootstrap --variant=minbase --include="$INCLUDE" bookworm "$tmp/root" >"$tmp/debootstrap.log" 2>&1; then
        tail -n 20 "$tmp/debootstrap.log" >&2
        rm -rf "$tmp"
        skip "debootstrap failed (no Debian mirror?)"
    fi
    # What the test installs inside, fetched now: the container has no
    # network.
    chroot "$tmp/root" apt-get update -qq
    # shellcheck disable=SC2086
    chroot "$tmp/root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $INSTALL >/dev/null
    # shellcheck disable=SC2086
    chroot "$tmp/root" apt-get install -y -qq --download-only $PREFETCH >/dev/null
    tar -C "$tmp" -cf "$tmp/image.tar" root
    mv "$tmp/image.tar" "$IMAGE"
    rm -rf "$tmp"
}

NSPAWN_PID=
CT=
ROOT=

boot() {
    ROOT=$1
    systemd-nspawn -D "$ROOT" --boot --private-network --machine="postern-ci-$$" \
        --register=no --keep-unit \
        --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self' \
        --console=pipe </dev/null >"$ROOT.nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    local i
    for i in $(seq 1 100); do
        CT=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
        [ -n "$CT" ] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$CT" ]; then
        cat "$ROOT.nspawn.log" >&2 || true
        skip "systemd-nspawn did not boot the container"
    fi
    local state=
    # Until its bus is up, systemctl cannot even ask.
    for i in $(seq 1 100); do
        state=$(ct timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
        [ -n "$state" ] && break
        sleep 0.2
    done
    echo "container systemd (pid $CT on the host): $state"
    case $state in
        running | degraded) ;;
        *) skip "the container's systemd did not come up ($state)" ;;
    esac
}

shutdown_ct() {
    if [ -n "$CT" ]; then
        kill -s SIGRTMIN+4 "$CT" 2>/dev/null || true
    fi
    if [ -n "$NSPAWN_PID" ]; then
        local i
        for i in $(seq 1 100); do
            kill -0 "$NSPAWN_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$NSPAWN_PID" 2>/dev/null || true
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    CT= NSPAWN_PID=
}

# Run a command inside the container, with a clean environment.
ct() {
    nsenter -t "$CT" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}
# The same, as the ordinary user alice (a login-less su).
as_alice() {
    ct setpriv --reuid=alice --regid=alice --init-groups \
        env HOME=/home/alice USER=alice LOGNAME=alice "$@"
}

# Wait until $2 messages with token $3 are in $1's Maildir/new.
wait_mail() {
    local home=$1 want=$2 token=$3 i n=0
    for i in $(seq 1 150); do
        n=$(ct sh -c "grep -l -r -F '$token' '$home/Maildir/new' 2>/dev/null | wc -l")
        [ "$n" -ge "$want" ] && break
        sleep 0.2
    done
    [ "$n" = "$want" ] || {
        ct journalctl -u 'postern-*' --no-pager -n 60 || true
        fail "$home: $n message(s) with $token, not $want"
    }
    echo "$home/Maildir/new: $n message(s) with $token"
}

listeners() {
    ct ss -ltnH | awk '{print $4}' | sort | tr '\n' ' '
}

# Issue 16: queue.directory and server.run_directory elsewhere; the
# generator's drop-ins make the units follow (ReadWritePaths= under
# ProtectSystem=strict, the sockets' ListenStream=), and sendmail, mail
# and mailq find the new sockets from the file.
moved_paths() {
    local token=$1
    say "[fresh] a queue and run directory elsewhere follow the file"
    ct cp /etc/postern/postern.toml /etc/postern/postern.toml.good
    ct sed -i -e 's|^directory = "/var/spool/postern"|directory = "/srv/postern/queue"|' \
        -e 's|^user = "postern"|user = "postern"\nrun_directory = "/run/postern-mx"|' \
        /etc/postern/postern.toml
    ct install -d -o postern -g postern -m 0711 /srv/postern/queue
    ct postern check
    ct systemctl stop postern.target postern-smtpd.socket postern-submit.socket \
        postern-qmgr.socket postern-showq.socket postern-local.socket postern-smtp.socket
    ct systemctl daemon-reload
    ct systemctl start postern.target
    ct systemctl cat postern-qmgr.service | grep -F 'ReadWritePaths=-/srv/postern/queue' ||
        fail "no ReadWritePaths= for the moved queue"
    ct sh -c 'ss -lxH | grep -F /run/postern-mx/submit.sock' || fail "submit.sock is not in /run/postern-mx"
    as_alice sh -c "printf 'To: alice\nSubject: $token moved\n\nmoved queue\n' | /usr/sbin/sendmail -t"
    ct sh -c "echo 'moved, from root' | mail -s '$token moved root' alice"
    wait_mail /home/alice 7 "$token"
    ct ls /srv/postern/queue
    ct test -d /srv/postern/queue/incoming -a -d /srv/postern/queue/maildrop ||
        fail "the daemons did not make their directories in the moved queue"
    as_alice mailq || fail "mailq with the moved run directory"
    ct mv /etc/postern/postern.toml.good /etc/postern/postern.toml
    ct systemctl stop postern.target postern-smtpd.socket postern-submit.socket \
        postern-qmgr.socket postern-showq.socket postern-local.socket postern-smtp.socket
    ct systemctl daemon-reload
    ct systemctl start postern.target
}

# Issue 23: the metrics endpoint under systemd. Off (the shipped file):
# nothing of it listens, not even qmgr's metrics.sock (its unit masked by
# the generator). On: postern-metrics.socket on the configured address
# and qmgr's metrics.sock; a scrape (bash's /dev/tcp: the container has
# no HTTP client) counts the mail sent. Off again: gone.
# Scrape the endpoint (bash's /dev/tcp) until a line matches $1, for 10 s
# at most; print the last scrape.
scrape_until() {
    local body=
    for _ in $(seq 1 50); do
        body=$(ct bash -c 'exec 3<>/dev/tcp/127.0.0.1/9154 &&
            printf "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' || true)
        printf '%s\n' "$body" | grep -q "$1" && break
        sleep 0.2
    done
    printf '%s\n' "$body"
}

metrics() {
    local token=metrics-$$ l body
    say "[fresh] metrics off: nothing of the endpoint listens"
    [ "$(ct systemctl show -p LoadState --value postern-qmgr-metrics.socket)" = masked ] ||
        fail "postern-qmgr-metrics.socket is not masked with metrics off"
    if ct sh -c 'ss -lxH | grep -F /run/postern/metrics.sock'; then
        fail "qmgr listens on metrics.sock with metrics off"
    fi
    ct systemctl is-active postern-qmgr.service || fail "qmgr is not running without its metrics socket"

    say "[fresh] metrics on: [metrics] listen = 127.0.0.1:9154"
    ct cp /etc/postern/postern.toml /etc/postern/postern.toml.good
    ct sh -c 'printf "\n[metrics]\nlisten = [\"127.0.0.1:9154\"]\n" >> /etc/postern/postern.toml'
    ct postern check || fail "postern check refuses the metrics configuration"
    ct systemctl daemon-reload
    ct systemctl restart postern.target
    l=$(listeners)
    echo "listening: $l"
    [ "$l" = "127.0.0.1:25 127.0.0.1:9154 " ] || fail "TCP listeners are '$l' with metrics on"
    ct sh -c 'ss -lxH | grep -F /run/postern/metrics.sock' || fail "no metrics.sock with metrics on"
    ct sh -c "echo 'counted' | mail -s '$token' alice"
    wait_mail /home/alice 1 "$token"
    body=$(scrape_until '^postern_deliveries_total{.*transport="local".*} [1-9]')
    printf '%s\n' "$body" | grep -E '^(HTTP/1.1|postern_build_info|postern_deliveries_total|postern_queue_messages)' ||
        true
    printf '%s\n' "$body" | grep -q '^postern_deliveries_total{.*transport="local".*} [1-9]' ||
        fail "the scrape does not count the local delivery"
    ct systemctl is-active postern-metrics.service || fail "postern-metrics.service did not start on the scrape"

    say "[fresh] metrics: a restart of smtpd by systemd is counted"
    printf '%s\n' "$body" | grep -q '^postern_process_start_time_seconds{role="qmgr"} [1-9]' ||
        fail "no start time of qmgr in the scrape"
    local pid
    pid=$(ct systemctl show -p MainPID --value postern-smtpd.service)
    ct kill -9 "$pid"
    body=$(scrape_until '^postern_process_restarts_total{role="smtpd"} 1$')
    printf '%s\n' "$body" | grep -E '^postern_process_(restarts_total|start_time_seconds)' || true
    printf '%s\n' "$body" | grep -q '^postern_process_restarts_total{role="smtpd"} 1$' ||
        fail "the scrape does not count smtpd's restart by systemd"

    say "[fresh] metrics off again: gone"
    ct mv /etc/postern/postern.toml.good /etc/postern/postern.toml
    ct systemctl daemon-reload
    ct systemctl restart postern.target
    l=$(listeners)
    [ "$l" = "127.0.0.1:25 " ] || fail "TCP listeners are '$l' after metrics went"
    if ct sh -c 'ss -lxH | grep -F /run/postern/metrics.sock'; then
        fail "metrics.sock still listening after metrics went"
    fi
    ct systemctl is-active postern-metrics.service && fail "postern-metrics.service still runs after metrics went"
    ct systemctl is-active postern.target postern-qmgr.service || fail "postern is down after metrics went"
}

# Issue 18: submission (587, 465) with SMTP AUTH against the password
# file, as an administrator sets it up: a key and certificate readable by
# the group postern, a login made with `postern passwd`, the keys in
# postern.toml, daemon-reload, restart.
submission() {
    local token=sub-$$ out rc
    say "[fresh] submission on 587 and 465: units from the [submission] keys"
    # A self-signed key and certificate, made on the host (the container
    # has no openssl), kept as Postfix's smtpd_tls_chain_files takes
    # them: the key, then its chain, here in two files.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=mail.test.example -days 2 \
        -keyout "$ROOT/etc/postern/key.pem" -out "$ROOT/etc/postern/cert.pem" 2>/dev/null
    ct chown root:postern /etc/postern/key.pem /etc/postern/cert.pem
    ct chmod 0640 /etc/postern/key.pem
    printf 'sub-secret\n' | ct postern passwd alice
    ct stat -c '%n %a %U:%G' /etc/postern/key.pem /etc/postern/passwd
    ct cp /etc/postern/postern.toml /etc/postern/postern.toml.good
    ct sh -c 'cat >> /etc/postern/postern.toml' <<'TOML'

[submission]
listen = ["127.0.0.1:587"]
implicit_tls_listen = ["127.0.0.1:465"]

[tls]
chain_files = ["/etc/postern/key.pem", "/etc/postern/cert.pem"]

[sasl]
backend = "passwd"
TOML
    ct postern check || fail "postern check refuses the submission configuration"
    ct systemctl daemon-reload
    ct systemctl restart postern.target
    ct systemctl is-active postern-submission.socket postern-submissions.socket ||
        fail "the submission sockets are not active"
    local l
    l=$(listeners)
    echo "listening: $l"
    [ "$l" = "127.0.0.1:25 127.0.0.1:465 127.0.0.1:587 " ] || {
        ct systemctl --no-pager status 'postern-*.socket' || true
        ct journalctl --no-pager -n 60 || true
        fail "TCP listeners are '$l', the configuration says 127.0.0.1:25, 127.0.0.1:465, 127.0.0.1:587"
    }
    ct postern status | grep -E 'listeners' || true

    local mail=(--from alice@localhost --to alice@localhost --helo client.test.example)
    # swaks to port $1 with TLS flag $2 (--tls: STARTTLS; --tlsc: from
    # the first byte), logged in as alice.
    submit() {
        ct swaks --server "127.0.0.1:$1" "$2" --auth PLAIN --auth-user alice \
            --auth-password sub-secret "${mail[@]}" --header "Subject: $token $1" \
            --body "through $1 ($2), AUTH PLAIN" >"$WORKDIR/swaks-$1.log" 2>&1 || {
            cat "$WORKDIR/swaks-$1.log"
            fail "swaks $2 --auth PLAIN on $1"
        }
        grep -E '(TLS started|250 2.0.0 Ok: queued)' "$WORKDIR/swaks-$1.log"
    }
    submit 587 --tls
    submit 465 --tlsc
    wait_mail /home/alice 2 "$token"
    [ "$(ct sh -c "grep -l -r -F '$token' /home/alice/Maildir/new | xargs grep -l 'with ESMTPSA'" | wc -l)" = 2 ] ||
        fail "not both messages have a Received line with ESMTPSA"

    rc=0
    out=$(ct swaks --server 127.0.0.1:587 --tls "${mail[@]}" --header "Subject: $token anon" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -F '530 5.7.0' || {
        printf '%s\n' "$out"
        fail "MAIL without AUTH on 587 was not refused with 530 5.7.0"
    }
    [ "$rc" != 0 ] || fail "swaks without AUTH exited 0"

    say "[fresh] the [submission] keys gone: nothing on 587 or 465"
    ct mv /etc/postern/postern.toml.good /etc/postern/postern.toml
    ct systemctl daemon-reload
    ct systemctl restart postern.target
    l=$(listeners)
    echo "listening: $l"
    [ "$l" = "127.0.0.1:25 " ] || fail "TCP listeners are '$l' after the submission keys went"
    [ "$(ct systemctl show -p LoadState --value postern-submission.socket)" = masked ] ||
        fail "postern-submission.socket is not masked"

    say "[fresh] without the generator: the submission units are skipped, nothing breaks"
    ct chmod -x /usr/lib/systemd/system-generators/postern-generator
    ct systemctl daemon-reload
    ct systemctl restart postern.target || fail "systemctl restart postern.target without the generator"
    ct systemctl show -p Id -p LoadState -p ActiveState -p ConditionResult \
        postern-submission.socket postern-submissions.socket
    [ "$(ct systemctl show -p ConditionResult --value postern-submission.socket)" = no ] ||
        fail "postern-submission.socket was not skipped without the generator"
    ct systemctl is-active postern.target postern-smtpd.socket postern-smtpd.service ||
        fail "postern.target or smtpd is down without the generator"
    l=$(listeners)
    echo "listening: $l"
    [ "$l" = "127.0.0.1:25 " ] || fail "TCP listeners are '$l' without the generator"
    ct chmod +x /usr/lib/systemd/system-generators/postern-generator
    ct systemctl daemon-reload
    ct systemctl restart postern.target
}

check_installed_system() {
    local variant=$1
    say "[$variant] units active, smtpd socket-activated"
    ct systemctl is-active postern.target postern-smtpd.socket postern-submit.socket \
        postern-qmgr.service postern-local.socket postern-smtp.socket
    ct systemctl --no-pager --failed
    [ -z "$(ct systemctl list-units --failed --no-legend 'postern*')" ] || fail "failed postern units"

    say "[$variant] listeners as /etc/postern/postern.toml says"
    ct grep -E '^listen' /etc/postern/postern.toml
    local l
    l=$(listeners)
    echo "listening: $l"
    [ "$l" = "127.0.0.1:25 " ] || fail "TCP listeners are '$l', the configuration says 127.0.0.1:25 only"

    say "[$variant] mail from root, from alice, and cron-style sendmail -t"
    ct useradd --create-home --shell /bin/sh alice
    local token=ct-$$-$variant
    ct sh -c "echo 'from root' | mail -s '$token root' alice"
    as_alice sh -c "echo 'from alice' | mail -s '$token alice' root"
    as_alice sh -c "printf 'To: alice\nSubject: $token cron\n\nfrom cron\n' | /usr/sbin/sendmail -t"
    wait_mail /home/alice 2 "$token"
    wait_mail /root 1 "$token"
    ct sh -c 'stat -c "%U %a %n" /home/alice/Maildir/new/* | head -n 3'
    ct sh -c 'journalctl -q -t postern/smtpd --no-pager | grep -E "uid=[0-9]+ from=" | tail -n 3'

    say "[$variant] postern status tells the truth"
    ct postern status || fail "postern status under systemd"

    say "[$variant] the mail system stopped: sendmail keeps alice's mail"
    ct systemctl stop postern.target postern-smtpd.socket postern-submit.socket
    local rc=0
    as_alice sh -c "printf 'Subject: $token down\n\nwhile down\n' | /usr/sbin/sendmail alice" || rc=$?
    [ "$rc" = 0 ] || fail "sendmail exited $rc while the mail system was stopped"
    ct systemctl start postern.target
    wait_mail /home/alice 3 "$token"

    say "[$variant] systemctl reload postern.target, good and broken"
    ct systemctl reload postern.target || fail "systemctl reload postern.target"
    ct cp /etc/postern/postern.toml /etc/postern/postern.toml.good
    ct sh -c 'printf "\n[smtpd]\nmesage_size_limit = 1\n" >> /etc/postern/postern.toml'
    # systemd 252 reports only the target's own reload job, never the
    # services' it propagates to: the services' reload must fail, and
    # postern reload (which checks first) too.
    if ct systemctl reload postern-smtpd.service; then
        fail "systemctl reload postern-smtpd.service succeeded with a broken configuration"
    fi
    if ct postern reload; then
        fail "postern reload succeeded with a broken configuration"
    fi
    ct systemctl reload postern.target || true
    ct systemctl is-active postern-smtpd.service postern-qmgr.service
    ct sh -c "echo 'after a refused reload' | mail -s '$token reload' alice"
    wait_mail /home/alice 4 "$token"
    ct mv /etc/postern/postern.toml.good /etc/postern/postern.toml

    say "[$variant] kill -9 of every daemon is recovered"
    local unit pid
    for unit in postern-smtpd postern-qmgr postern-local postern-smtp; do
        pid=$(ct systemctl show -p MainPID --value "$unit.service")
        if [ "$pid" != 0 ]; then
            ct kill -9 "$pid"
            echo "$unit: killed $pid"
        fi
    done
    sleep 2
    ct sh -c "echo 'after the kills' | mail -s '$token kill' alice"
    wait_mail /home/alice 5 "$token"
    local st
    st=$(ct postern status) || fail "postern status after the kills"
    printf '%s\n' "$st"
    printf '%s\n' "$st" | grep -Eq '^  qmgr +running \(pid [0-9]+\).*, [1-9][0-9]* restarts$' ||
        fail "postern status does not show qmgr's restart by systemd"

    if [ "$variant" = fresh ]; then
        metrics
        submission
        moved_paths "$token"
    fi

    say "[$variant] purge"
    ct apt-get purge -y -qq postern
    ct sh -c 'ls /usr/lib/systemd/system/postern* 2>/dev/null' && fail "units left after purge"
    if ct update-alternatives --query mta 2>/dev/null | grep -q /usr/sbin/postern; then
        fail "the mta alternative still names postern"
    fi
    [ -z "$(ct sh -c 'systemctl list-units --no-legend "postern*" | grep -v not-found' || true)" ] ||
        fail "postern units still loaded after purge"
    say "[$variant] OK"
}

WORKDIR=
cleanup() {
    shutdown_ct
    [ -n "$WORKDIR" ] && rm -rf "$WORKDIR"
    WORKDIR=
}

run_variant() {
    local variant=$1 deb=$2
    WORKDIR=$(mktemp -d /var/tmp/postern-systemd.XXXXXX)
    trap cleanup EXIT
    tar -C "$WORKDIR" -xf "$IMAGE"
    # Not /tmp: the container's systemd mounts a fresh one.
    cp "$deb" "$WORKDIR/root/opt/postern.deb"
    boot "$WORKDIR/root"
    if [ "$variant" = over-postfix ]; then
        say "[$variant] Debian's postfix first"
        ct sh -c 'echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections'
        ct apt-get install -y -qq --no-install-recommends postfix >/dev/null
        ct systemctl is-active postfix.service || true
    fi
    say "[$variant] apt-get install ./postern.deb bsd-mailx"
    ct apt-get install -y -qq --no-install-recommends /opt/postern.deb bsd-mailx
    check_installed_system "$variant"
    cleanup
    trap - EXIT
}

main() {
    [ "$(id -u)" = 0 ] || fail "run as root"
    command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (Debian: systemd-container)"
    local deb=${1:-}
    if [ -z "$deb" ]; then
        deb=$(ls -t ../postern_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1 || true)
    fi
    [ -n "$deb" ] && [ -f "$deb" ] || fail "no .deb (build one with packaging/verify-deb.sh)"
    deb=$(readlink -f "$deb")
    mkdir -p "$CACHE"
    make_image
    run_variant fresh "$deb"
    run_variant over-postfix "$deb"
    say "verify-systemd: OK"
}

main "$@"
