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

  # The TCP socket units, each from one key, as the role table has them
  # (src/role.rs: smtpd's sockets `smtp`, `submission`, `submissions`)
  # and postern-generator writes them for the Debian units: the unit (its
  # name without .socket), the LISTEN_FDNAMES name, the key, and the
  # key's listeners in the settings (the submission keys name none by
  # default).
  tcpSockets = [
    {
      unit = "postern-smtpd";
      name = "smtp";
      key = "smtpd.listen";
      description = "postern SMTP socket (smtpd.listen)";
      listenOf = listenOf;
    }
    {
      unit = "postern-submission";
      name = "submission";
      key = "submission.listen";
      description = "postern submission socket (submission.listen)";
      listenOf = settings: (settings.submission or { }).listen or [ ];
    }
    {
      unit = "postern-submissions";
      name = "submissions";
      key = "submission.implicit_tls_listen";
      description = "postern submissions socket (submission.implicit_tls_listen)";
      listenOf = settings: (settings.submission or { }).implicit_tls_listen or [ ];
    }
  ];

  # A TCP socket unit from the listeners `listen` of `key`, as
  # postern-generator writes it for the Debian units
  # (src/systemd/generator.rs): the ListenStream= values and the [Socket]
  # settings (BindIPv6Only=both when [::] is one, as postern takes it for
  # IPv4 too, but ipv6-only as soon as an IPv4 address shares a [::]'s
  # port, as `postern start` binds that pair; FreeBind= for a specific
  # address other than loopback). Port 0 (any free port) cannot be a
  # socket unit's: evaluation fails. No listener: listenStreams is empty,
  # and the module then has no such socket unit at all.
  tcpSocket = key: listen:
    let
      split = map splitListen listen;
      hosts = map (a: a.host) split;
      port0 = filter (a: (splitListen a).port == 0) listen;
      isIPv4 = a: match ".*:.*" a.host == null;
      v6Wildcards = filter (a: isIPv6Wildcard a.host) split;
      v6Only = any (w: any (a: isIPv4 a && a.port == w.port) split) v6Wildcards;
    in
    if port0 != [ ] then
      throw "postern: ${key}: ${concatStringsSep ", " port0}: port 0 (any free port) cannot be a systemd socket's"
    else {
      listenStreams = listen;
      socketConfig =
        (if v6Only then { BindIPv6Only = "ipv6-only"; }
         else if v6Wildcards != [ ] then { BindIPv6Only = "both"; }
         else { })
        // (if any (h: !(isWildcard h) && !(isLoopback h)) hosts then { FreeBind = true; } else { });
    };

  # postern-smtpd.socket from smtpd.listen (postern's default when unset).
  smtpdSocket = settings: tcpSocket "smtpd.listen" (listenOf settings);

  # Every listener of the settings, over all the keys of tcpSockets.
  allListeners = settings: builtins.concatMap (t: t.listenOf settings) tcpSockets;

  # postern's built-in directories and user for the system's mail system
  # (src/config/defaults.rs: what root and the postern user get, and what
  # /etc/postern/postern.toml gets whoever reads it); nix/check.sh
  # compares them with `postern config show` of an empty file, as root.
  defaultQueueDirectory = "/var/spool/postern";
  defaultRunDirectory = "/run/postern";
  defaultUser = "postern";

  queueDirectoryOf = settings: (settings.queue or { }).directory or defaultQueueDirectory;
  runDirectoryOf = settings: (settings.server or { }).run_directory or defaultRunDirectory;
  userOf = settings: (settings.server or { }).user or defaultUser;

  # The Unix sockets in the run directory, by the name smtpd, qmgr and the
  # commands look for (src/ipc/names.rs *_SOCKET; nix/check.sh
  # compares them).
  socketFiles = {
    submit = "submit.sock";
    qmgr = "qmgr.sock";
    showq = "showq.sock";
    local = "local.sock";
    smtp = "smtp.sock";
    metrics = "metrics.sock";
  };

  # local's delivery record, root's (src/local/journal.rs).
  localRecordDirectory = runDir: "${runDir}/local";

  # systemd/postern.tmpfiles for a queue and a run directory (nix/check.sh
  # compares the defaults with that file line by line): the queue is
  # postern's alone, but for its search bit (0711) and the drop directory
  # (3733), where sendmail leaves mail while postern is down; the sockets'
  # directory is root's; local's delivery record root's alone.
  tmpfilesRules = { queueDir, runDir }: [
    "d ${queueDir} 0711 postern postern -"
    "d ${queueDir}/incoming 0700 postern postern -"
    "d ${queueDir}/state 0700 postern postern -"
    "d ${queueDir}/deferred 0700 postern postern -"
    "d ${queueDir}/hold 0700 postern postern -"
    "d ${queueDir}/corrupt 0700 postern postern -"
    "d ${queueDir}/maildrop 3733 postern postern -"
    "d ${queueDir}/maildrop-bad 0700 postern postern -"
    "d ${runDir} 0755 root root -"
    "d ${localRecordDirectory runDir} 0700 root root -"
  ];

  # Why a directory from the settings cannot drive the units, or null:
  # systemd needs an absolute path as it is (postern expands no $name
  # in these keys, and the units would not either), and the daemons that
  # use it run with ProtectHome=yes, which hides /home, /root and
  # /run/user.
  directoryProblem = dir:
    if match "/.*" dir == null then "is not an absolute path"
    else if match ".*[$].*" dir != null then "contains a $: the units need the path itself"
    else if match "/(home|root|run/user)(/.*)?" dir != null then
      "is under /home, /root or /run/user, which ProtectHome=yes hides from smtpd and qmgr"
    else if match "(.*/)?[.][.]?(/.*)?" dir != null || match ".*//.*" dir != null || match ".+/" dir != null then
      "is not a plain path (no //, ., .. or trailing /): the units and the sandbox compare it as written"
    else null;

  # The files the settings name and `postern check --no-system` reads, as
  # { key; path; }: alias and transport files, the file-backed tables
  # (hash, texthash, regexp, pcre) of the restriction lists and the
  # header and body checks, tls.ca_file. (Not the :include: files an
  # alias file names: only postern sees those.)
  namedFiles = settings:
    let
      get = table: key: (settings.${table} or { }).${key} or [ ];
      plain = table: key: map (path: { key = "${table}.${key}"; inherit path; }) (get table key);
      tables = table: key:
        let
          specs = map (spec: { inherit spec; m = match "[[:space:]]*(hash|texthash|regexp|pcre):[[:space:]]*(.*[^[:space:]])[[:space:]]*" spec; }) (get table key);
        in
        map (s: { key = "${table}.${key}"; path = elemAt s.m 1; }) (filter (s: s.m != null) specs);
      caFile = (settings.tls or { }).ca_file or "";
    in
    plain "local" "alias_files" ++ plain "relay" "transport_files"
    ++ builtins.concatMap (tables "restrictions") [ "client" "helo" "sender" "relay" "recipient" ]
    ++ builtins.concatMap (tables "checks") [ "header" "mime_header" "body" ]
    ++ (if caFile != "" then [{ key = "tls.ca_file"; path = caFile; }] else [ ]);

  # Those of namedFiles outside `storeDir`, which a sandboxed build cannot
  # read.
  filesOutsideStore = storeDir: settings:
    filter (f: builtins.substring 0 (builtins.stringLength storeDir + 1) (toString f.path) != "${storeDir}/")
      (namedFiles settings);

  # Aliases for [local.aliases]: the module's typed ones (rootAlias,
  # postmasterAlias) under settings.local.aliases, under the `aliases`
  # option; the most explicit wins.
  withAliases = { settings, typed ? { }, aliases ? { } }:
    let
      local = settings.local or { };
      fromSettings = local.aliases or { };
      merged = mapAttrs (_: aliasValue) typed // fromSettings // mapAttrs (_: aliasValue) aliases;
    in
    if merged == { } then settings
    else settings // { local = local // { aliases = merged; }; };

  # The TCP ports smtpd.listen, submission.listen and
  # submission.implicit_tls_listen open to the network (not loopback), for
  # the firewall; each once.
  firewallPorts = settings:
    foldl' (ports: p: if builtins.elem p ports then ports else ports ++ [ p ]) [ ]
      (map (a: a.port) (filter (a: !(isLoopback a.host)) (map splitListen (allListeners settings))));

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
