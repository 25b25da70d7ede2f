# Pure helpers for postern's Nix files: builtins only, no nixpkgs, so that
# nix/check.sh can evaluate them where no nixpkgs is at hand.
let
  inherit (builtins)
    any attrNames concatStringsSep elemAt filter foldl' fromJSON isAttrs
    isBool isFloat isInt isList isString mapAttrs match replaceStrings
    toJSON;

  # "ip:port" (postern's smtpd.listen syntax, "[v6]:port" for IPv6) as
  # { host; port; }, the host without brackets.
  splitListen = a:
    let
      v6 = match "\\[([^]]*)]:([0-9]+)" a;
      v4 = match "([^]:[]*):([0-9]+)" a;
      m = if v6 != null then v6 else v4;
    in
    if m == null then throw "postern: smtpd.listen: ${a} is not ip:port"
    else { host = elemAt m 0; port = fromJSON (elemAt m 1); };

  # The wildcard addresses ("0.0.0.0", "::" however written) and loopback.
  isWildcard = host: host == "0.0.0.0" || match "[0:]*" host != null;
  isIPv6Wildcard = host: host != "0.0.0.0" && isWildcard host;
  isLoopback = host: match "127\\..*" host != null || match "[0:]*:0*1" host != null;

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
  # postern's built-in smtpd.listen (src/config/defaults.rs), what
  # postern listens on when the settings name none; nix/check.sh compares
  # it with `postern config show` of an empty file.
  defaultListen = [ "127.0.0.1:2525" ];

  # smtpd.listen of the settings, postern's default when they have none.
  listenOf = settings: (settings.smtpd or { }).listen or defaultListen;

  # postern-smtpd.socket from smtpd.listen, as postern-generator writes it
  # for the Debian units (src/systemd/generator.rs): the ListenStream=
  # values and the [Socket] settings (BindIPv6Only=both when [::] is one,
  # as postern takes it for IPv4 too; FreeBind= for a specific address
  # other than loopback). Port 0 (any free port) cannot be a socket
  # unit's: evaluation fails. No listener: listenStreams is empty, and the
  # module then has no postern-smtpd.socket at all.
  smtpdSocket = settings:
    let
      listen = listenOf settings;
      hosts = map (a: (splitListen a).host) listen;
      port0 = filter (a: (splitListen a).port == 0) listen;
    in
    if port0 != [ ] then
      throw "postern: smtpd.listen: ${concatStringsSep ", " port0}: port 0 (any free port) cannot be a systemd socket's"
    else {
      listenStreams = listen;
      socketConfig =
        (if any isIPv6Wildcard hosts then { BindIPv6Only = "both"; } else { })
        // (if any (h: !(isWildcard h) && !(isLoopback h)) hosts then { FreeBind = true; } else { });
    };

  # The TCP ports smtpd.listen opens to the network (not loopback), for
  # the firewall; each once.
  firewallPorts = settings:
    foldl' (ports: p: if builtins.elem p ports then ports else ports ++ [ p ]) [ ]
      (map (a: a.port) (filter (a: !(isLoopback a.host)) (map splitListen (listenOf settings))));

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
