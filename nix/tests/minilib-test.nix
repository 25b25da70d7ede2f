# The module-system behaviour nix/tests/eval.nix relies on, checked on
# whichever lib is given: nix/tests/minilib.nix must agree with nixpkgs'
# lib here (nix/check.sh runs it on both when NIXPKGS is set).
#   nix-instantiate --eval --strict nix/tests/minilib-test.nix [--arg lib ...]
# Evaluates to "ok", or throws naming the first behaviour that differs.
{ lib ? import ./minilib.nix }:
let
  inherit (lib) mkOption mkIf mkMerge mkDefault mkForce mkOverride types;

  eval = modules: (lib.evalModules { inherit modules; }).config;
  fails = x: !(builtins.tryEval (builtins.deepSeq x x)).success;

  decl = {
    options = {
      flag = mkOption { type = types.bool; default = false; };
      name = mkOption { type = types.str; default = "none"; };
      list = mkOption { type = types.listOf types.str; default = [ ]; };
      port = mkOption { type = types.port; default = 25; };
      maybe = mkOption { type = types.nullOr types.int; default = null; };
      either = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; };
      units = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options = {
            description = mkOption { type = types.str; default = "unit ${name}"; };
            after = mkOption { type = types.listOf types.str; default = [ ]; };
          };
        }));
      };
      nested.inner = mkOption { type = types.int; default = 1; };
      applied = mkOption { type = types.int; default = 2; apply = x: x * 10; };
    };
  };

  cases = {
    "defaults" =
      let c = eval [ decl ]; in
      c.flag == false && c.name == "none" && c.list == [ ] && c.port == 25 && c.maybe == null
      && c.units == { } && c.nested.inner == 1 && c.applied == 20;
    "lists concatenate in module order" =
      (eval [ decl { list = [ "a" ]; } { list = [ "b" "c" ]; } ]).list == [ "a" "b" "c" ];
    "mkDefault loses to a plain definition" =
      (eval [ decl { name = mkDefault "d"; } { name = "plain"; } ]).name == "plain";
    "mkForce wins" =
      (eval [ decl { name = mkForce "forced"; } { name = "plain"; } ]).name == "forced";
    "mkOverride 900 beats mkDefault" =
      (eval [ decl { name = mkOverride 900 "x"; } { name = mkDefault "y"; } ]).name == "x";
    "mkIf false defines nothing" =
      (eval [ decl { name = mkIf false "no"; } ]).name == "none";
    "mkIf pushed through attribute sets" =
      (eval [ decl (mkIf true { nested.inner = 5; flag = true; }) ]).nested.inner == 5;
    "mkIf false around a set drops all of it" =
      (eval [ decl (mkIf false { nested.inner = 5; flag = true; }) ]).flag == false;
    "mkMerge" =
      (eval [ decl (mkMerge [ { list = [ "a" ]; } (mkIf true { list = [ "b" ]; }) (mkIf false { list = [ "c" ]; }) ]) ]).list == [ "a" "b" ];
    "submodules merge by name, with their own defaults and name" =
      let c = eval [ decl { units.u1.after = [ "x" ]; } { units.u1.after = [ "y" ]; units.u2 = { }; } ]; in
      c.units.u1.after == [ "x" "y" ] && c.units.u2.description == "unit u2";
    "mkIf inside attrsOf drops the element" =
      !((eval [ decl { units.gone = mkIf false { }; } ]).units ? gone);
    "apply" = (eval [ decl { applied = 3; } ]).applied == 30;
    "either takes each side" =
      (eval [ decl { either = "s"; } ]).either == "s" && (eval [ decl { either = [ "l" ]; } ]).either == [ "l" ];
    "an undeclared option is an error" = fails (eval [ decl { nmae = "x"; } ]).name;
    "an undeclared nested option is an error" = fails (eval [ decl { nested.outer = 1; } ]).nested.inner;
    "an undeclared submodule option is an error" = fails (eval [ decl { units.u.descripton = "x"; } ]).units.u.description;
    "a value of the wrong type is an error" = fails (eval [ decl { flag = "yes"; } ]).flag;
    "a port out of range is an error" = fails (eval [ decl { port = 70000; } ]).port;
    "an element of the wrong type is an error" = fails (eval [ decl { list = [ 1 ]; } ]).list;
    "conflicting plain definitions are an error" = fails (eval [ decl { name = "a"; } { name = "b"; } ]).name;
    "null or a value, not both" = (eval [ decl { maybe = 3; } ]).maybe == 3;
    "an option declared twice is an error" =
      fails (eval [ decl { options.flag = mkOption { type = types.bool; }; } ]).flag;
    "module functions get config" =
      (eval [ decl ({ config, ... }: { name = if config.flag then "on" else "off"; }) { flag = true; } ]).name == "on";
    "imports" = (eval [ { imports = [ decl ]; list = [ "i" ]; } ]).list == [ "i" ];
    "lib helpers" =
      lib.optional true 1 == [ 1 ] && lib.optional false 1 == [ ]
      && lib.optionals true [ 1 2 ] == [ 1 2 ]
      && lib.optionalAttrs false { a = 1; } == { }
      && lib.recursiveUpdate { a.b = 1; a.c = 2; } { a.b = 3; } == { a = { b = 3; c = 2; }; }
      && lib.genAttrs [ "x" "y" ] (n: n + n) == { x = "xx"; y = "yy"; }
      && (lib.literalExpression "pkgs.x")._type == "literalExpression"
      && (lib.mkEnableOption "it").default == false;
  };
  failed = builtins.filter (n: !cases.${n}) (builtins.attrNames cases);
in
if failed == [ ] then "ok"
else throw "nix/tests/minilib-test.nix: not as nixpkgs' lib: ${builtins.concatStringsSep "; " failed}"
