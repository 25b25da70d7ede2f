#!/bin/sh
# What can be checked of nix/ and flake.nix without nixpkgs or a Nix store
# (see nix/README.md): every .nix file parses; the settings-to-TOML
# rendering and the aliases merge (nix/lib.nix, builtins only) evaluate;
# postern accepts the rendered example and refuses a mistyped key; the
# module's smtpd socket (lib.smtpdSocket) and submission sockets
# (lib.tcpSocket) are what postern-generator writes for the same keys, and
# its defaults (listener, directories,
# socket names, tmpfiles) are postern's and systemd/'s, its units those
# of systemd/ key for key; the module itself
# evaluates (nix/tests/eval.nix) beside stand-ins for the NixOS options it
# sets, for a server, a null client, moved directories, a submission
# server, a bad key and refused settings, and each rendered file goes
# through the build-time
# check (`postern check --no-system`) as the module's runCommand runs it.
#
# The evaluation uses nix/tests/minilib.nix, a stand-in for nixpkgs' lib;
# with NIXPKGS=/path/to/nixpkgs (a checkout) it runs again on
# "$NIXPKGS/lib", the real module system.
#
# Usage: nix/check.sh   (from anywhere; POSTERN= names the binary,
# default target/debug/postern of this tree). Installs Debian's nix-bin
# when nix-instantiate is missing.
set -eu
cd "$(dirname "$0")/.."
postern=${POSTERN:-target/debug/postern}

if ! command -v nix-instantiate >/dev/null 2>&1; then
    apt-get install -y nix-bin >/dev/null
fi
if [ ! -x "$postern" ]; then
    echo "nix/check.sh: no postern binary at $postern (cargo build, or set POSTERN=)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Files $1 and $2 must be the same; else the message $3 and the diff.
same() {
    cmp -s "$1" "$2" && return 0
    echo "nix/check.sh: $3" >&2
    diff "$1" "$2" >&2 || true
    exit 1
}

echo "== nix-instantiate --parse ($(nix-instantiate --version))"
for f in flake.nix nix/*.nix nix/tests/*.nix; do
    nix-instantiate --parse "$f" >/dev/null
    echo "ok   $f"
done

echo "== nix-instantiate --eval --strict nix/render-test.nix"
nix-instantiate --eval --strict --json nix/render-test.nix | jq -r . >"$tmp/postern.toml"
cat "$tmp/postern.toml"

echo "== postern config show --non-default --config <rendered>"
"$postern" config show --non-default --config "$tmp/postern.toml"

echo "== the aliases option reaches [local.aliases]"
"$postern" config show --config "$tmp/postern.toml" \
    | grep -F 'root = "alice, bob@example.net"'

echo "== a mistyped key is refused (as the module's build-time check refuses it)"
nix-instantiate --eval --strict --json \
    -E 'let l = import ./nix/lib.nix; in l.toTOML { smtpd.lisen = [ "0.0.0.0:25" ]; }' \
    | jq -r . >"$tmp/bad.toml"
if "$postern" check --no-system --config "$tmp/bad.toml" 2>"$tmp/err"; then
    echo "nix/check.sh: postern accepted smtpd.lisen" >&2
    exit 1
fi
cat "$tmp/err"
grep -qF 'unknown key `smtpd.lisen`' "$tmp/err"

echo "== the VM test's server and client settings are accepted"
for node in server client; do
    nix-instantiate --eval --strict --json -E "
      let l = import ./nix/lib.nix;
          p = ((import ./nix/test.nix { module = null; }).nodes.$node { }).services.postern;
      in l.toTOML (l.mergeAliases p.settings (p.aliases or { }))" \
        | jq -r . >"$tmp/$node.toml"
    "$postern" check --no-system --config "$tmp/$node.toml" 2>/dev/null
    echo "ok   $node"
done

echo "== lib.defaultListen is postern's built-in smtpd.listen"
: >"$tmp/empty.toml"
# (smtpd.listen: [submission] has a listen key too.)
builtin=$("$postern" config show --config "$tmp/empty.toml" | sed -n '/^\[smtpd\]$/,/^\[/s/^listen = //p')
fromnix=$(nix-instantiate --eval --strict --json -E '(import ./nix/lib.nix).defaultListen' | jq -c .)
[ "$(printf '%s' "$builtin" | tr -d ' ')" = "$fromnix" ] || {
    echo "nix/check.sh: lib.defaultListen $fromnix, postern's default $builtin" >&2
    exit 1
}
echo "ok   $fromnix"

echo "== the module's postern-smtpd.socket is what postern-generator writes"
# For each smtpd.listen: lib.smtpdSocket (the module) and `postern
# generate systemd` (the Debian units) give the same ListenStream= lines
# and the same BindIPv6Only=/FreeBind=.
for listen in '[ "127.0.0.1:25" ]' '[ "[::]:25" "192.0.2.7:2525" ]' \
    '[ "[::1]:25" "0.0.0.0:587" "127.0.0.1:25" ]' '[ "[::]:25" "0.0.0.0:25" ]' \
    '[ ]' 'null'; do
    settings="{ smtpd.listen = $listen; }"
    [ "$listen" = null ] && settings='{ }'
    nix-instantiate --eval --strict --json \
        -E "let l = import ./nix/lib.nix; s = l.smtpdSocket $settings; in
            (map (a: \"ListenStream=\" + a) s.listenStreams)
            ++ (if s.socketConfig ? BindIPv6Only then [ (\"BindIPv6Only=\" + s.socketConfig.BindIPv6Only) ] else [ ])
            ++ (if s.socketConfig ? FreeBind then [ \"FreeBind=yes\" ] else [ ])" \
        | jq -r '.[]' >"$tmp/nix.lines"
    nix-instantiate --eval --strict --json \
        -E "(import ./nix/lib.nix).toTOML $settings" | jq -r . >"$tmp/gen.toml"
    rm -rf "$tmp/gen"
    "$postern" --config "$tmp/gen.toml" generate systemd "$tmp/gen" 2>/dev/null
    grep -E '^(ListenStream=.|BindIPv6Only=|FreeBind=)' \
        "$tmp/gen/postern-smtpd.socket.d/50-postern-listen.conf" >"$tmp/gen.lines" || true
    same "$tmp/nix.lines" "$tmp/gen.lines" "smtpd.listen = $listen: the module and the generator differ"
    echo "ok   $listen: $(tr '\n' ' ' <"$tmp/nix.lines")"
done
if nix-instantiate --eval --strict -E \
    '(import ./nix/lib.nix).smtpdSocket { smtpd.listen = [ "127.0.0.1:0" ]; }' >/dev/null 2>"$tmp/err"; then
    echo "nix/check.sh: port 0 was taken for a socket unit" >&2
    exit 1
fi
grep -F 'port 0' "$tmp/err"

echo "== the module's submission sockets are what postern-generator writes (issue 18)"
# Each TCP socket of lib.tcpSockets (unit, key) against the generator's
# drop-in for that unit, for settings with all three keys set.
for sub in '{ listen = [ "[::]:587" ]; implicit_tls_listen = [ "0.0.0.0:465" "[::]:465" ]; }' \
    '{ listen = [ "127.0.0.1:587" "192.0.2.7:587" ]; }' '{ }'; do
    settings="{ smtpd.listen = [ \"127.0.0.1:25\" ]; submission = $sub;
        tls.chain_files = [ \"/etc/postern/key.pem\" ]; sasl.backend = \"passwd\"; }"
    nix-instantiate --eval --strict --json -E "(import ./nix/lib.nix).toTOML $settings" | jq -r . >"$tmp/gen.toml"
    rm -rf "$tmp/gen"
    "$postern" --config "$tmp/gen.toml" generate systemd "$tmp/gen" 2>/dev/null
    for unit in $(nix-instantiate --eval --strict --json -E \
        'map (t: t.unit) (import ./nix/lib.nix).tcpSockets' | jq -r '.[]'); do
        nix-instantiate --eval --strict --json \
            -E "let l = import ./nix/lib.nix; t = builtins.head (builtins.filter (t: t.unit == \"$unit\") l.tcpSockets);
                    s = l.tcpSocket t.key (t.listenOf $settings); in
                (map (a: \"ListenStream=\" + a) s.listenStreams)
                ++ (if s.socketConfig ? BindIPv6Only then [ (\"BindIPv6Only=\" + s.socketConfig.BindIPv6Only) ] else [ ])
                ++ (if s.socketConfig ? FreeBind then [ \"FreeBind=yes\" ] else [ ])" \
            | jq -r '.[]' >"$tmp/nix.lines"
        grep -E '^(ListenStream=.|BindIPv6Only=|FreeBind=)' \
            "$tmp/gen/$unit.socket.d/50-postern-listen.conf" >"$tmp/gen.lines" || true
        same "$tmp/nix.lines" "$tmp/gen.lines" "submission = $sub: $unit: the module and the generator differ"
        # No listener: the generator masks the unit, the module has none.
        if [ -s "$tmp/nix.lines" ]; then
            [ ! -L "$tmp/gen/$unit.socket" ] || { echo "nix/check.sh: $unit masked" >&2; exit 1; }
        else
            [ "$(readlink "$tmp/gen/$unit.socket")" = /dev/null ] || { echo "nix/check.sh: $unit not masked" >&2; exit 1; }
        fi
        echo "ok   $unit, submission = $sub: $(tr '\n' ' ' <"$tmp/nix.lines")"
    done
done

echo "== lib's directories, user and socket names are postern's"
if [ "$(id -u)" = 0 ]; then
    # As root (and as the postern user) postern's defaults are the
    # system's; an ordinary user gets per-user directories.
    "$postern" config show --config "$tmp/empty.toml" >"$tmp/defaults.toml"
    for pair in "directory defaultQueueDirectory" "run_directory defaultRunDirectory" "user defaultUser"; do
        set -- $pair
        builtin=$(sed -n "s/^$1 = //p" "$tmp/defaults.toml")
        fromnix=$(nix-instantiate --eval --strict --json -E "(import ./nix/lib.nix).$2")
        [ "$builtin" = "$fromnix" ] || {
            echo "nix/check.sh: lib.$2 is $fromnix, postern's default $1 is $builtin" >&2
            exit 1
        }
        echo "ok   $1 = $fromnix"
    done
else
    echo "skip the directories: postern's system defaults show only to root"
fi
for name in submit qmgr showq local smtp; do
    const=$(echo "$name" | tr a-z A-Z)_SOCKET
    insrc=$(sed -n "s/^pub\(([a-z]*)\)\{0,1\} const $const: \&str = \(\"[^\"]*\"\);/\2/p" src/ipc/names.rs)
    fromnix=$(nix-instantiate --eval --strict --json -E "(import ./nix/lib.nix).socketFiles.$name")
    [ -n "$insrc" ] && [ "$insrc" = "$fromnix" ] || {
        echo "nix/check.sh: lib.socketFiles.$name is $fromnix, src/ipc/names.rs $const is '$insrc'" >&2
        exit 1
    }
    echo "ok   $name: $fromnix"
done

echo "== lib.tmpfilesRules for the default directories is systemd/postern.tmpfiles"
grep -v '^#' systemd/postern.tmpfiles | tr -s ' ' >"$tmp/tmpfiles.unit"
nix-instantiate --eval --strict --json -E '(import ./nix/lib.nix).tmpfilesRules {
    queueDir = (import ./nix/lib.nix).defaultQueueDirectory;
    runDir = (import ./nix/lib.nix).defaultRunDirectory; }' | jq -r '.[]' >"$tmp/tmpfiles.nix"
same "$tmp/tmpfiles.unit" "$tmp/tmpfiles.nix" "the module's tmpfiles rules and systemd/postern.tmpfiles differ"
echo "ok   $(wc -l <"$tmp/tmpfiles.nix") rules"

echo "== /run/wrappers/bin/sendmail: argv[0] by a full path is sendmail"
# NixOS's wrapper execs its source with the caller's argv, so argv[0] is
# "sendmail" or "/run/wrappers/bin/sendmail"; postern must act as sendmail.
mkdir -p "$tmp/run/wrappers/bin"
ln -s "$(realpath "$postern")" "$tmp/run/wrappers/bin/sendmail"
"$tmp/run/wrappers/bin/sendmail" --help | grep -q '^Usage: sendmail ' || {
    echo "nix/check.sh: postern called as .../wrappers/bin/sendmail is not sendmail" >&2
    exit 1
}
echo "ok   $tmp/run/wrappers/bin/sendmail --help: Usage: sendmail ..."

# The package the evaluation test names: a directory with bin/postern.
mkdir -p "$tmp/pkg/bin"
ln -s "$(realpath "$postern")" "$tmp/pkg/bin/postern"
ln -s postern "$tmp/pkg/bin/sendmail"

# The units key for key: one "Section.Key word" line per
# whitespace-separated word of each setting (an empty setting: the key and
# nothing), booleans as yes/no, sorted. From a unit file of systemd/:
unit_tokens() {
    awk '
        /^[[:space:]]*(#|;|$)/ { next }
        /^\[/ { section = substr($0, 2, length($0) - 2); next }
        {
            i = index($0, "="); key = substr($0, 1, i - 1); value = substr($0, i + 1)
            n = split(value, words, /[[:space:]]+/)
            if (n == 0) print section "." key " "
            for (j = 1; j <= n; j++) if (words[j] != "") print section "." key " " words[j]
        }' "$1" | sed 's/ true$/ yes/; s/ false$/ no/' | LC_ALL=C sort
}
# From the module's unit $1 in the evaluation's JSON $2 (case asShipped),
# as NixOS writes it (a list: one line per element), with the package's
# store paths as systemd/ names them.
module_tokens() {
    jq -r --arg u "$1" '
        .asShipped.units[$u] as $x
        | def words: if type == "boolean" then (if . then "yes" else "no" end)
                     else tostring | [splits("[[:space:]]+")] | map(select(. != ""))
                          | if . == [] then "" else .[] end end;
          def each: if type == "array" then .[] else . end;
          ( [ "Unit.Description", $x.description ],
            ( $x.requires[] | [ "Unit.Requires", . ] ),
            ( $x.wants[] | [ "Unit.Wants", . ] ),
            ( $x.after[] | [ "Unit.After", . ] ),
            ( $x.partOf[] | [ "Unit.PartOf", . ] ),
            ( $x.wantedBy[] | [ "Install.WantedBy", . ] ),
            ( $x.unitConfig | to_entries[] | .key as $k | .value | each | [ "Unit." + $k, . ] ),
            ( ($x.serviceConfig // {}) | to_entries[] | .key as $k | .value | each | [ "Service." + $k, . ] ),
            ( ($x.listenStreams // [])[] | [ "Socket.ListenStream", . ] ),
            ( ($x.socketConfig // {}) | to_entries[] | .key as $k | .value | each | [ "Socket." + $k, . ] ) )
        | select(.[1] != "" or .[0] != "Unit.Description")
        | .[0] as $k | .[1] | words | "\($k) \(.)"' "$2" \
      | sed "s|^\([^ ]*\) $tmp/pkg/bin/postern\$|\1 /usr/sbin/postern|
             s|^\([^ ]*\) /nix/store/[^ ]*-coreutils/bin/kill\$|\1 /bin/kill|" \
      | LC_ALL=C sort
}

# The evaluation test (nix/tests/eval.nix) with one lib: the module's
# cases evaluated and checked, each rendered file through the build-time
# script, and what must not evaluate refused with the right message.
eval_test() {
    what=$1 libexpr=$2
    echo "== the module system ($what): nix/tests/minilib-test.nix"
    nix-instantiate --eval --strict nix/tests/minilib-test.nix --arg lib "$libexpr"

    echo "== the module ($what): nix/tests/eval.nix"
    nix-instantiate --eval --strict --json -A cases nix/tests/eval.nix --arg lib "$libexpr" \
        --argstr package "$tmp/pkg" >"$tmp/eval.json"
    for case in $(jq -r 'keys[]' "$tmp/eval.json"); do
        jq -r ".$case.checked[]" "$tmp/eval.json" | sed "s/^/ok   $case: /"
    done

    echo "== flake.nix ($what) with a stand-in nixpkgs input"
    nix-instantiate --eval --strict --json -A flake nix/tests/eval.nix --arg lib "$libexpr" \
        --argstr package "$tmp/pkg" | jq -r '.[] | "ok   " + .'

    echo "== the module's units ($what) are systemd/'s, key for key"
    # Defaults, and smtpd.listen as the shipped unit's ListenStream=; the
    # store path of postern for /usr/sbin/postern, coreutils' kill for
    # /bin/kill.
    # The submission and metrics units of systemd/ start only with the
    # generator's drop-in, the metrics service only without its mask
    # (ConditionPathExists= of paths under /run/systemd/generator/); the
    # module has no generator: its units exist only for listeners the
    # settings name. Those conditions are left out of the comparison;
    # their loopback placeholders are asShipped's listeners.
    for f in systemd/*.service systemd/*.socket systemd/postern.target; do
        u=$(basename "$f")
        unit_tokens "$f" | grep -v "^Unit.ConditionPathExists !\?/run/systemd/generator/postern-" >"$tmp/unit.tokens" || true
        module_tokens "$u" "$tmp/eval.json" >"$tmp/module.tokens"
        same "$tmp/unit.tokens" "$tmp/module.tokens" \
            "$u: the module's unit is not systemd/$u (< systemd/, > module)"
        echo "ok   $u ($(wc -l <"$tmp/unit.tokens") words)"
    done

    echo "== moved directories ($what): the module follows them as postern-generator does"
    # The Debian units learn a moved queue and run directory from the
    # generator's paths drop-ins (ReadWritePaths=, the sockets'
    # ListenStream=); the module must name the same paths for the case
    # `moved`.
    jq -r '.moved.rendered' "$tmp/eval.json" >"$tmp/moved.toml"
    rm -rf "$tmp/genm"
    "$postern" --config "$tmp/moved.toml" generate systemd "$tmp/genm" 2>/dev/null
    found=0
    for f in "$tmp"/genm/*.d/50-postern-paths.conf; do
        [ -e "$f" ] || continue
        u=$(basename "$(dirname "$f")" .d)
        for line in $(grep -E '^(ReadWritePaths|ListenStream)=.' "$f"); do
            key=${line%%=*} value=${line#*=}
            case $key in
                ReadWritePaths) filter='.serviceConfig.ReadWritePaths | index([$v]) != null' ;;
                ListenStream) filter='.listenStreams == [$v]' ;;
            esac
            jq -e --arg u "$u" --arg v "$value" ".moved.units[\$u] | $filter" "$tmp/eval.json" >/dev/null || {
                echo "nix/check.sh: the generator gives $u $key=$value, the module does not" >&2
                jq --arg u "$u" '.moved.units[$u]' "$tmp/eval.json" >&2
                exit 1
            }
            found=$((found + 1))
        done
    done
    if [ "$found" = 0 ]; then
        echo "skip this postern's generator writes no paths drop-ins (it predates moved directories)"
    else
        echo "ok   $found paths of the generator's drop-ins are the module's"
    fi

    echo "== the build-time check ($what) on each case's rendered file"
    for case in server nullClient moved submission submissionOwn badKey; do
        mkdir -p "$tmp/build/$case"
        jq -r ".$case.rendered" "$tmp/eval.json" >"$tmp/build/$case/rendered.toml"
        jq -r ".$case.buildScript" "$tmp/eval.json" >"$tmp/build/$case/script"
        # As the runCommand runs it: sh -e, $rendered and $out set.
        if (cd "$tmp/build/$case" && rendered=$PWD/rendered.toml out=$PWD/out sh -e ./script) \
            2>"$tmp/build/$case/err"; then
            built=yes
        else
            built=no
        fi
        case $case:$built in
            badKey:no)
                grep -F 'unknown key `smtpd.lisen`; did you mean `listen`?' "$tmp/build/$case/err" || {
                    cat "$tmp/build/$case/err" >&2
                    echo "nix/check.sh: $case: refused, but not for smtpd.lisen" >&2
                    exit 1
                }
                echo "ok   badKey: the build fails, naming the key" ;;
            badKey:yes)
                echo "nix/check.sh: the build accepted smtpd.lisen" >&2
                exit 1 ;;
            *:yes)
                cmp -s "$tmp/build/$case/out" "$tmp/build/$case/rendered.toml" || {
                    echo "nix/check.sh: $case: the output is not the rendered file" >&2
                    exit 1
                }
                echo "ok   $case: built" ;;
            *)
                cat "$tmp/build/$case/err" >&2
                echo "nix/check.sh: $case: the build-time check failed" >&2
                exit 1 ;;
        esac
    done

    echo "== what must not evaluate ($what)"
    for probe in "typo:The option \`services.postern.enableSubmision' does not exist" \
        "strict:The option \`systemd.services.postern-smtpd.serviceConfg' does not exist"; do
        attr=${probe%%:*} want=${probe#*:}
        if nix-instantiate --eval --strict -A "$attr" nix/tests/eval.nix --arg lib "$libexpr" \
            --argstr package "$tmp/pkg" >/dev/null 2>"$tmp/err"; then
            echo "nix/check.sh: $attr evaluated" >&2
            exit 1
        fi
        grep -qF "$want" "$tmp/err" || {
            cat "$tmp/err" >&2
            echo "nix/check.sh: $attr: not the message wanted ($want)" >&2
            exit 1
        }
        echo "ok   $attr: $want"
    done
}

eval_test "stand-in lib" 'import ./nix/tests/minilib.nix'
if [ -n "${NIXPKGS:-}" ]; then
    eval_test "nixpkgs lib from $NIXPKGS" "import $(realpath "$NIXPKGS")/lib"
else
    echo "skip nixpkgs' lib: NIXPKGS is not set (a nixpkgs checkout runs the same test on it)"
fi

echo "nix/check.sh: all good"
