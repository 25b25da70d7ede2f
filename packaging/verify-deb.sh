#!/bin/bash
# verify-deb.sh: build the postern .deb (or take one), lint it, install it,
# and check it works as the system's MTA: sendmail, mailq and newaliases
# resolve to postern through the alternatives, `mail` to a local user lands
# in that user's Maildir, and a purge gives the alternatives back while the
# user's mail stays.
#
#   packaging/verify-deb.sh [path/to/postern_*.deb]
#
# Run as root from the source tree. Without an argument it builds with
# `dpkg-buildpackage -us -uc -b -d` (-d: the Rust toolchain may come from
# rustup rather than from Debian's cargo/rustc packages).
#
# The package Conflicts with mail-transport-agent, so installing it removes
# another MTA (Postfix, Exim). When one is installed, or always with
# POSTERN_VERIFY_ISOLATE=1, the install/purge part runs in a throw-away
# copy of the system: an overlay of / on a tmpfs, in private mount and
# PID namespaces, chrooted; nothing it does reaches the real system.
# POSTERN_VERIFY_ISOLATE=0 forces a run on the real system.
set -euo pipefail

say() { printf '== %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# Phase 2, on the system (or its overlay copy): install, use, purge.
install_and_use() {
    local deb=$1 user=postern-verify token port=25
    export DEBIAN_FRONTEND=noninteractive

    say "installing $deb"
    apt-get install -y --no-install-recommends "$deb"
    dpkg -s postern | grep -E '^(Status|Version):'
    if dpkg -s bsd-mailx >/dev/null 2>&1; then
        say "bsd-mailx still installed (its mail-transport-agent dependency is postern now)"
    else
        apt-get install -y --no-install-recommends bsd-mailx
    fi

    say "alternatives"
    local link
    for link in /usr/sbin/sendmail /usr/bin/mailq /usr/bin/newaliases /usr/lib/sendmail; do
        printf '%s -> %s -> %s\n' "$link" "$(readlink "$link")" "$(readlink -f "$link")"
        [ "$(readlink -f "$link")" = /usr/sbin/postern ] || fail "$link does not resolve to /usr/sbin/postern"
    done
    update-alternatives --display mta

    say "no set-uid or set-gid file installed"
    local suid
    suid=$(dpkg -L postern | while read -r f; do [ -f "$f" ] && find "$f" -perm /6000; done)
    [ -z "$suid" ] || fail "set-uid/set-gid: $suid"

    say "the postern user and the queue"
    getent passwd postern
    stat -c '%n %A %U:%G' /var/spool/postern /run/postern

    # The default listens on 127.0.0.1:25; another port when 25 is taken.
    if (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null; then
        port=10025
        while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
        say "127.0.0.1:25 is taken: listening on 127.0.0.1:$port"
        sed -i "s/^listen = .*/listen = [\"127.0.0.1:$port\"]/" /etc/postern/postern.toml
    fi
    postern check

    say "the systemd generator writes smtpd.listen into postern-smtpd.socket"
    local gen=/usr/lib/systemd/system-generators/postern-generator gendir want
    [ -x "$gen" ] || fail "$gen is not installed"
    gendir=$(mktemp -d)
    "$gen" "$gendir" "$gendir" "$gendir" || fail "$gen failed"
    cat "$gendir/postern-smtpd.socket.d/50-postern-listen.conf"
    want=$(sed -n 's/^listen = \["\([^"]*\)"\].*/\1/p' /etc/postern/postern.toml)
    grep -qx "ListenStream=$want" "$gendir/postern-smtpd.socket.d/50-postern-listen.conf" ||
        fail "the generated drop-in does not listen on $want"
    [ -L "$gendir/postern-smtpd.socket" ] && fail "the generator masked postern-smtpd.socket"
    # Nothing on 587 or 465 unless the file names it: masked.
    for unit in postern-submission.socket postern-submissions.socket; do
        [ "$(readlink "$gendir/$unit")" = /dev/null ] || fail "the generator did not mask $unit"
    done
    rm -rf "$gendir"

    say "postern passwd: /etc/postern/passwd 0640 root:postern"
    [ "$(stat -c '%a %U:%G' /etc/postern)" = "755 root:root" ] ||
        fail "/etc/postern is $(stat -c '%a %U:%G' /etc/postern), not 755 root:root"
    printf 'verify-secret\n' | postern passwd verify-user
    [ "$(stat -c '%a %U:%G' /etc/postern/passwd)" = "640 root:postern" ] ||
        fail "/etc/postern/passwd is $(stat -c '%a %U:%G' /etc/postern/passwd), not 640 root:postern"
    grep -q '^verify-user:\$argon2id\$' /etc/postern/passwd || fail "no argon2id hash for verify-user"

    say "newaliases by its name"
    newaliases

    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
    local home
    home=$(getent passwd "$user" | cut -d: -f6)

    say "postern start (the supervisor, no systemd)"
    postern start
    local i
    for i in $(seq 1 50); do
        postern status >/dev/null 2>&1 && break
        sleep 0.2
    done
    postern status
    say "mailq by its name"
    mailq

    token="verify-deb-$$-$(date +%s)"
    say "mail -s $token $user"
    printf 'Sent by verify-deb.sh.\n%s\n' "$token" | mail -s "$token" "$user"

    local found=""
    for i in $(seq 1 100); do
        found=$(grep -l -r -F "$token" "$home/Maildir/new" 2>/dev/null | head -n 1 || true)
        [ -n "$found" ] && break
        sleep 0.2
    done
    if [ -z "$found" ]; then
        postern status || true
        mailq || true
        fail "the message did not reach $home/Maildir/new"
    fi
    stat -c '%n %A %U:%G' "$found"
    [ "$(stat -c %U "$found")" = "$user" ] || fail "$found is not owned by $user"
    sed -n '1,/^$/p' "$found" | grep -E '^(Received|From|To|Subject|Return-Path|Delivered-To):' || true

    say "postern stop"
    postern stop
    for i in $(seq 1 50); do
        postern status >/dev/null 2>&1 || break
        sleep 0.2
    done

    say "purge"
    apt-get purge -y postern
    dpkg -s postern >/dev/null 2>&1 && fail "postern is still installed"
    if update-alternatives --query mta >/dev/null 2>&1; then
        update-alternatives --query mta | grep -q /usr/sbin/postern && fail "the mta alternative still names postern"
    fi
    for link in /usr/sbin/sendmail /usr/bin/mailq /usr/bin/newaliases /usr/lib/sendmail; do
        if [ -e "$link" ] || [ -L "$link" ]; then
            [ "$(readlink -f "$link")" = /usr/sbin/postern ] && fail "$link still points to postern"
            printf '%s: now %s\n' "$link" "$(readlink -f "$link")"
        else
            printf '%s: gone\n' "$link"
        fi
    done
    [ -f "$found" ] || fail "the user's mail $found is gone after the purge"
    echo "user's mail kept: $found"
    if getent passwd postern >/dev/null; then echo "postern user kept (Debian policy)"; fi
    if [ -d /var/spool/postern ]; then
        echo "queue kept: $(find /var/spool/postern -type f | wc -l) file(s) in /var/spool/postern"
    else
        echo "queue removed (it was empty)"
    fi
    [ -e /etc/postern/postern.toml ] && fail "/etc/postern/postern.toml survived the purge"
    # The administrator's password file stays (postrm says so).
    [ -f /etc/postern/passwd ] || fail "the purge removed /etc/postern/passwd"
    echo "password file kept: /etc/postern/passwd"
    say "OK"
}

# Run install_and_use in a throw-away overlay copy of the system.
isolated() {
    local deb=$1 scratch rc=0
    scratch=$(mktemp -d /tmp/postern-verify.XXXXXX)
    # shellcheck disable=SC2016
    unshare --mount --pid --fork --propagation private bash -c '
        set -euo pipefail
        s=$1 deb=$2 script=$3
        mount -t tmpfs tmpfs "$s"
        mkdir "$s/upper" "$s/work" "$s/root"
        mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root"
        mount -t proc proc "$s/root/proc"
        mount --rbind /dev "$s/root/dev"
        mount --rbind /sys "$s/root/sys"
        # Fresh /run and /tmp: no /run/systemd/system, so the maintainer
        # scripts take the no-systemd path, as on this machine.
        mount -t tmpfs tmpfs "$s/root/run"
        mkdir -p "$s/root/run/lock"
        mount -t tmpfs tmpfs "$s/root/tmp"
        cp "$deb" "$script" "$s/root/tmp/"
        exec chroot "$s/root" bash "/tmp/${script##*/}" --phase install "/tmp/${deb##*/}"
    ' verify "$scratch" "$deb" "$(readlink -f "$0")" || rc=$?
    rmdir "$scratch" 2>/dev/null || true
    return $rc
}

main() {
    [ "$(id -u)" = 0 ] || fail "run as root"
    if [ "${1:-}" = --phase ]; then
        install_and_use "$3"
        return
    fi

    local deb=${1:-}
    if [ -z "$deb" ]; then
        [ -f debian/control ] || fail "run from the source tree, or give a .deb"
        say "dpkg-buildpackage -us -uc -b -d"
        dpkg-buildpackage -us -uc -b -d
        deb=$(ls -t ../postern_*_"$(dpkg --print-architecture)".deb | head -n 1)
    fi
    deb=$(readlink -f "$deb")
    [ -f "$deb" ] || fail "no such .deb: $deb"

    say "lintian $deb"
    lintian --fail-on error,warning "$deb"
    echo "lintian: no errors, no warnings"

    say "contents: no set-uid or set-gid file"
    local x
    x=$(mktemp -d)
    dpkg-deb -x "$deb" "$x"
    local suid
    suid=$(find "$x" -perm /6000)
    rm -rf "$x"
    [ -z "$suid" ] || fail "set-uid/set-gid in the package: $suid"
    dpkg-deb -c "$deb"

    say "contents: every unit and the generator"
    local contents f
    contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
    for f in /usr/lib/systemd/system/postern.target \
        /usr/lib/systemd/system/postern-smtpd.service \
        /usr/lib/systemd/system/postern-smtpd.socket \
        /usr/lib/systemd/system/postern-submission.socket \
        /usr/lib/systemd/system/postern-submissions.socket \
        /usr/lib/systemd/system/postern-submit.socket \
        /usr/lib/systemd/system-generators/postern-generator; do
        printf '%s\n' "$contents" | grep -qx "\.$f" || fail "$f is not in the package"
        echo "ok   $f"
    done

    local other isolate=${POSTERN_VERIFY_ISOLATE:-}
    other=$(dpkg-query -W -f '${Package} ${Status} ${Provides}\n' 2>/dev/null |
        awk '/ installed/ && /mail-transport-agent/ && $1 != "postern" {print $1}' | tr '\n' ' ')
    if [ -z "$isolate" ]; then
        if [ -n "$other" ]; then isolate=1; else isolate=0; fi
    fi
    if [ "$isolate" = 1 ]; then
        say "installing in an overlay copy of / (installed MTA: ${other:-none}; it stays on the real system)"
        isolated "$deb"
    else
        install_and_use "$deb"
    fi
}

main "$@"
