#!/bin/sh
# What can be checked of nix/ and flake.nix without nixpkgs or a Nix store
# (see nix/README.md): every .nix file parses; the settings-to-TOML
# rendering and the aliases merge (nix/lib.nix, builtins only) evaluate;
# postern accepts the rendered example and refuses a mistyped key.
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

echo "nix/check.sh: all good"
