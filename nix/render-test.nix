# Evaluate with builtins only:
#   nix-instantiate --eval --strict --json nix/render-test.nix
# The result is a string, postern.toml for nix/example-settings.nix, with
# the aliases merged as nix/module.nix merges them.
let
  lib = import ./lib.nix;
  example = import ./example-settings.nix;
in
lib.toTOML (lib.mergeAliases example.settings example.aliases)
