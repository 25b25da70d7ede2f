#!/bin/sh
# What can be checked of nix/ and flake.nix without nixpkgs or a Nix store
# (see nix/README.md): every .nix file parses; the settings-to-TOML
# rendering and the aliases merge (nix/lib.nix, builtins only) evaluate;
# postern accepts the rendered example and refuses a mistyped key; the
# module's smtpd socket (lib.smtpdSocket) is what postern-generator writes
# for the same smtpd.listen, and its default is postern's.
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

echo "== nix-instantiate --parse ($(nix-instantiate --version))"
for f in flake.nix nix/*.nix; do
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

echo "== a mistyped key is refused (as the module's build-time check would)"
nix-instantiate --eval --strict --json \
    -E 'let l = import ./nix/lib.nix; in l.toTOML { smtpd.lisen = [ "0.0.0.0:25" ]; }' \
    | jq -r . >"$tmp/bad.toml"
if "$postern" config show --config "$tmp/bad.toml" >/dev/null 2>"$tmp/err"; then
    echo "nix/check.sh: postern accepted smtpd.lisen" >&2
    exit 1
fi
cat "$tmp/err"

echo "== the VM test's server and client settings are accepted"
for node in server client; do
    nix-instantiate --eval --strict --json -E "
      let l = import ./nix/lib.nix;
          p = ((import ./nix/test.nix { module = null; }).nodes.$node { }).services.postern;
      in l.toTOML (l.mergeAliases p.settings (p.aliases or { }))" \
        | jq -r . >"$tmp/$node.toml"
    "$postern" config show --non-default --config "$tmp/$node.toml" >/dev/null
    echo "ok   $node"
done

echo "== lib.defaultListen is postern's built-in smtpd.listen"
: >"$tmp/empty.toml"
builtin=$("$postern" config show --config "$tmp/empty.toml" | sed -n 's/^listen = //p')
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
    '[ "[::1]:25" "0.0.0.0:587" "127.0.0.1:25" ]' '[ ]' 'null'; do
    settings="{ smtpd.listen = $listen; }"
    [ "$listen" = null ] && settings='{ }'
    nix-instantiate --eval --strict --json \
        -E "let l = import ./nix/lib.nix; s = l.smtpdSocket $settings; in
            (map (a: \"ListenStream=\" + a) s.listenStreams)
            ++ (if s.socketConfig ? BindIPv6Only then [ \"BindIPv6Only=both\" ] else [ ])
            ++ (if s.socketConfig ? FreeBind then [ \"FreeBind=yes\" ] else [ ])" \
        | jq -r '.[]' >"$tmp/nix.lines"
    nix-instantiate --eval --strict --json \
        -E "(import ./nix/lib.nix).toTOML $settings" | jq -r . >"$tmp/gen.toml"
    rm -rf "$tmp/gen"
    "$postern" --config "$tmp/gen.toml" generate systemd "$tmp/gen" 2>/dev/null
    grep -E '^(ListenStream=.|BindIPv6Only=|FreeBind=)' \
        "$tmp/gen/postern-smtpd.socket.d/50-postern-listen.conf" >"$tmp/gen.lines" || true
    if ! cmp -s "$tmp/nix.lines" "$tmp/gen.lines"; then
        echo "nix/check.sh: smtpd.listen = $listen: the module and the generator differ" >&2
        diff "$tmp/nix.lines" "$tmp/gen.lines" >&2 || true
        exit 1
    fi
    echo "ok   $listen: $(tr '\n' ' ' <"$tmp/nix.lines")"
done
if nix-instantiate --eval --strict -E \
    '(import ./nix/lib.nix).smtpdSocket { smtpd.listen = [ "127.0.0.1:0" ]; }' >/dev/null 2>"$tmp/err"; then
    echo "nix/check.sh: port 0 was taken for a socket unit" >&2
    exit 1
fi
grep -F 'port 0' "$tmp/err"

echo "nix/check.sh: all good"
