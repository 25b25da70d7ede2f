# Pure helpers for postern's Nix files: builtins only, no nixpkgs, so that
# nix/check.sh can evaluate them where no nixpkgs is at hand.
let
  inherit (builtins)
    attrNames concatStringsSep filter isAttrs isBool isFloat isInt isList
    isString mapAttrs match replaceStrings toJSON;

  # Aliases as the module takes them (a string, or a list of targets) to
  # what postern reads in [local.aliases]: an aliases(5) right-hand side.
  aliasValue = v: if isList v then concatStringsSep ", " v else v;

  # TOML strings: basic strings, with what TOML requires escaped.
  tomlString = s:
    "\"" + replaceStrings
      [ "\\" "\"" "\n" "\r" "\t" ]
      [ "\\\\" "\\\"" "\\n" "\\r" "\\t" ]
      s + "\"";

  tomlKey = k: if match "[A-Za-z0-9_-]+" k != null then k else tomlString k;

  # A value inside a table: scalars, arrays, and tables inline.
  tomlValue = v:
    if isString v then tomlString v
    else if isBool v then (if v then "true" else "false")
    else if isInt v || isFloat v then toJSON v
    else if isList v then "[" + concatStringsSep ", " (map tomlValue v) + "]"
    else if isAttrs v then
      "{ " + concatStringsSep ", "
        (map (k: "${tomlKey k} = ${tomlValue v.${k}}") (attrNames v)) + " }"
    else throw "postern: cannot render ${builtins.typeOf v} as TOML";
in
rec {
  # The settings with the module's `aliases` merged into [local.aliases]
  # (the option wins over the same name in settings.local.aliases).
  mergeAliases = settings: aliases:
    if aliases == { } then settings
    else
      let
        local = settings.local or { };
      in
      settings // {
        local = local // {
          aliases = (local.aliases or { }) // mapAttrs (_: aliasValue) aliases;
        };
      };

  # A minimal TOML renderer for the shape postern.toml has: top-level
  # tables ([server], [local], ...) of strings, ints, bools, lists and
  # inline tables. The module uses pkgs.formats.toml; this one exists so
  # that the rendering can be checked with builtins only (nix/check.sh).
  toTOML = settings:
    let
      tables = filter (k: isAttrs settings.${k}) (attrNames settings);
      top = filter (k: !(isAttrs settings.${k})) (attrNames settings);
      line = t: k: "${tomlKey k} = ${tomlValue t.${k}}\n";
      section = name:
        "\n[${tomlKey name}]\n"
        + concatStringsSep "" (map (line settings.${name}) (attrNames settings.${name}));
    in
    concatStringsSep "" (map (line settings) top)
    + concatStringsSep "" (map section tables);
}
