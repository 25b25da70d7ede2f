# Evaluation test of nix/module.nix (issue 16): the module evaluated with
# `lib.evalModules` beside stand-ins for the NixOS options it sets
# (nix/tests/nixos-options.nix: a definition NixOS does not have fails),
# for a minimal server, a null client without a port 25 listener, a moved
# queue and run directory, a bad key, a submission server (issue 18:
# enableSubmission, enableSubmissions, sslCert/sslKey, and the settings
# saying otherwise), and settings the module refuses.
# Each case checks the generated units, tmpfiles, wrapper, firewall and
# aliases; a failed check throws, naming the case and what differs.
#
#   nix-instantiate --eval --strict --json -A cases nix/tests/eval.nix \
#     --arg lib 'import ./nix/tests/minilib.nix' --argstr package DIR
#
# `lib`: nix/tests/minilib.nix, or nixpkgs' (`import "$NIXPKGS/lib"`).
# `package`: a directory with bin/postern (nix/check.sh makes one from
# the binary it tests). `caBundle`: what security.pki.caBundle stands for.
# `cases`: per case, what nix/check.sh needs to run the build-time check
# (the rendered TOML and the runCommand script) and the checks passed.
# `typo` and `strict` must fail to evaluate (check.sh reads the
# messages).
{ lib ? import ./minilib.nix
, package ? "/nonexistent/postern"
, caBundle ? "/nix/store/00000000000000000000000000000000-nss-cacert/etc/ssl/certs/ca-bundle.crt"
}:
let
  posternLib = import ../lib.nix;
  inherit (builtins) all attrNames concatStringsSep elem filter length map toJSON;

  # --- stand-ins for the parts of nixpkgs the module uses ----------------

  derivation' = name: attrs: attrs // {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  # formats.toml: the type of nixpkgs' (a TOML value, recursively), and
  # a generator that renders with nix/lib.nix toTOML into `text`, which
  # check.sh hands to postern.
  tomlValue = with lib.types;
    nullOr (oneOf [ bool int float str path (attrsOf tomlValue) (listOf tomlValue) ])
    // { description = "TOML value"; };
  pkgs = {
    formats.toml = { }: {
      type = lib.types.attrsOf tomlValue;
      generate = name: value: derivation' name { text = posternLib.toTOML value; };
    };
    runCommand = name: env: script: derivation' name { inherit env script; };
    coreutils = derivation' "coreutils" { };
    callPackage = _: _: throw "eval test: services.postern.package is set by the test";
  };
  posternPackage = { type = "derivation"; name = "postern"; outPath = package; };

  # --- evaluation ---------------------------------------------------------

  evalSite = site: (lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      (import ./nixos-options.nix { inherit caBundle; })
      ../module.nix
      { services.postern = { enable = true; package = posternPackage; }; }
      site
    ];
  }).config;

  failedAssertions = config: map (a: a.message) (filter (a: !a.assertion) config.assertions);

  # What a case shows: the units, files and settings the checks look at.
  summary = config:
    let
      etc = config.environment.etc."postern/postern.toml".source;
      unit = s: {
        inherit (s) description requires wants after partOf;
        serviceConfig = s.serviceConfig;
      };
    in
    {
      failedAssertions = failedAssertions config;
      inherit (config) warnings;
      rendered = etc.env.rendered.text;
      buildScript = etc.script;
      sockets = builtins.mapAttrs (_: s: { inherit (s) listenStreams socketConfig; }) config.systemd.sockets;
      services = builtins.mapAttrs (_: unit) config.systemd.services;
      targetWants = config.systemd.targets.postern.wants;
      tmpfiles = config.systemd.tmpfiles.rules;
      firewall = config.networking.firewall.allowedTCPPorts;
      # Without the submodule's own _module (in nixpkgs' result too).
      wrapper =
        let w = config.services.mail.sendmailSetuidWrapper;
        in if w == null then null else builtins.removeAttrs w [ "_module" ];
      home = config.users.users.postern.home;
      # Every unit as NixOS would write it, for check.sh's comparison
      # with systemd/, key for key.
      units =
        let
          common = u: { inherit (u) description requires wants after partOf wantedBy unitConfig; };
        in
        let
          suffixed = suffix: f: units: builtins.listToAttrs (map
            (n: { name = "${n}.${suffix}"; value = f units.${n}; })
            (attrNames units));
        in
        suffixed "service" (u: common u // { inherit (u) serviceConfig; }) config.systemd.services
        // suffixed "socket" (u: common u // { inherit (u) listenStreams socketConfig; }) config.systemd.sockets
        // suffixed "target" common config.systemd.targets;
    };

  # --- the cases ----------------------------------------------------------

  fixtures = toString ./fixtures;

  sites = {
    # A mail server for its own domain on port 25 (IPv6 and IPv4), its
    # aliases in a file and inline, an access table and header checks.
    server = {
      services.postern = {
        openFirewall = true;
        rootAlias = "alice";
        settings = {
          server.hostname = "mail.example.org";
          local = {
            domains = [ "$hostname" "example.org" "localhost" ];
            alias_files = [ "${fixtures}/aliases" ];
          };
          restrictions.client = [ "hash:${fixtures}/access" ];
          checks.header = [ "regexp:${fixtures}/header_checks" ];
          smtpd.listen = [ "[::]:25" "127.0.0.1:2525" ];
        };
        aliases.abuse = [ "alice" "security@example.net" ];
      };
    };

    # A null client: nothing local, everything to the relay, no TCP
    # listener at all; sendmail still works (submit.sock). openFirewall
    # opens nothing, as nothing listens. No wrapper (setSendmail false),
    # no postmaster alias.
    nullClient = {
      services.postern = {
        openFirewall = true;
        setSendmail = false;
        postmasterAlias = "";
        settings = {
          server.hostname = "client.example.org";
          local = { domains = [ ]; alias_files = [ ]; };
          relay.host = "[mail.example.org]";
          smtpd.listen = [ ];
          tls.ca_file = "";
        };
      };
    };

    # The queue and the run directory elsewhere; an alias file kept
    # outside the store (edited in place), so the build checks the file
    # alone (checkFiles = false).
    moved = {
      services.postern = {
        checkFiles = false;
        settings = {
          queue.directory = "/srv/mail/queue";
          server.run_directory = "/run/mail";
          local.alias_files = [ "/var/lib/postern/aliases" ];
        };
      };
    };

    # A mistyped key in settings: the module cannot know postern's keys,
    # so it evaluates; the build-time check (check.sh runs the script)
    # must refuse it, naming the key.
    badKey = {
      services.postern.settings = {
        local.alias_files = [ ];
        smtpd.lisen = [ "[::]:25" ];
      };
    };

    # Issue 18: an MX and submission server as services.postfix users
    # write one: enableSubmission, enableSubmissions, sslCert and sslKey
    # from security.acme, Dovecot's auth socket.
    submission = {
      services.postern = {
        openFirewall = true;
        enableSubmission = true;
        enableSubmissions = true;
        sslCert = "/var/lib/acme/mail.example.org/fullchain.pem";
        sslKey = "/var/lib/acme/mail.example.org/key.pem";
        settings = {
          local.alias_files = [ ];
          smtpd.listen = [ "[::]:25" ];
          sasl = { backend = "dovecot"; dovecot_socket = "/run/dovecot2/auth-postern"; };
        };
      };
    };

    # The settings say otherwise: their listeners and chain files win;
    # no IPv6, no [::].
    submissionOwn = {
      networking.enableIPv6 = false;
      services.postern = {
        openFirewall = true;
        enableSubmission = true;
        enableSubmissions = true;
        settings = {
          local.alias_files = [ ];
          submission.implicit_tls_listen = [ "192.0.2.7:465" ];
          tls.chain_files = [ "/etc/postern/tls/key.pem" "/etc/postern/tls/fullchain.pem" ];
          sasl.backend = "passwd";
        };
      };
    };

    # The defaults, and each TCP socket's key as the shipped units'
    # own ListenStream= (postern-smtpd.socket's, and the submission
    # units' loopback placeholders): check.sh compares every unit with
    # systemd/.
    asShipped = {
      services.postern.settings = {
        local.alias_files = [ ];
        smtpd.listen = [ "127.0.0.1:25" ];
        submission = { listen = [ "127.0.0.1:587" ]; implicit_tls_listen = [ "127.0.0.1:465" ]; };
        tls.chain_files = [ "/etc/postern/key.pem" "/etc/postern/fullchain.pem" ];
        sasl.backend = "passwd";
        metrics.listen = [ "127.0.0.1:9154" ];
      };
    };

    # What the module refuses at evaluation time.
    refused = {
      services.postern = {
        enableSubmission = true;
        sslCert = "/var/lib/acme/mail.example.org/fullchain.pem";
        settings = {
          server.user = "mail";
          queue.directory = "var/spool/postern";
          server.run_directory = "/home/postern/run";
        };
      };
    };

    # A private key in the (world-readable) store.
    keyInStore = {
      services.postern = {
        sslCert = "/var/lib/acme/mail.example.org/fullchain.pem";
        sslKey = "${builtins.storeDir}/00000000000000000000000000000000-key.pem";
        settings.local.alias_files = [ ];
      };
    };

    # A run directory too long for a Unix socket's path.
    longRun = {
      services.postern.settings = {
        local.alias_files = [ ];
        server.run_directory = "/run/${builtins.concatStringsSep "/" (builtins.genList (_: "postern") 12)}";
      };
    };
  };

  # --- the checks ---------------------------------------------------------

  # [ { name; ok; got; } ]: `got` shows the value when a check fails.
  expect = name: ok: got: { inherit name ok; got = if ok then null else got; };
  has = sub: s: builtins.match "(.|\n)*${escapeRegex sub}(.|\n)*" s != null;
  escapeRegex = s: builtins.replaceStrings
    [ "\\" "[" "]" "(" ")" "{" "}" "." "*" "+" "?" "^" "$" "|" ]
    [ "\\\\" "\\[" "\\]" "\\(" "\\)" "\\{" "\\}" "\\." "\\*" "\\+" "\\?" "\\^" "\\$" "\\|" ] s;
  hasLine = line: text: elem line (filter builtins.isString (builtins.split "\n" text));

  socketNames = [ "postern-submit" "postern-qmgr" "postern-showq" "postern-local" "postern-smtp" ];
  unixSockets = runDir: {
    postern-submit = [ "${runDir}/submit.sock" ];
    postern-qmgr = [ "${runDir}/qmgr.sock" ];
    postern-showq = [ "${runDir}/showq.sock" ];
    postern-local = [ "${runDir}/local.sock" ];
    postern-smtp = [ "${runDir}/smtp.sock" ];
  };
  socketsAt = runDir: s: all (n: s.sockets.${n}.listenStreams == (unixSockets runDir).${n}) socketNames;

  # The units, tmpfiles and home for a queue and a run directory.
  directoryChecks = { queueDir, runDir }: s: [
    (expect "unix sockets in ${runDir}" (socketsAt runDir s) s.sockets)
    (expect "smtpd and qmgr write ${queueDir}"
      (s.services.postern-smtpd.serviceConfig.ReadWritePaths == [ "-${queueDir}" ]
        && s.services.postern-qmgr.serviceConfig.ReadWritePaths == [ "-${queueDir}" ])
      (map (n: s.services.${n}.serviceConfig.ReadWritePaths or null) [ "postern-smtpd" "postern-qmgr" ]))
    (expect "smtp writes nothing" (!(s.services.postern-smtp.serviceConfig ? ReadWritePaths)) s.services.postern-smtp.serviceConfig)
    (expect "local writes its delivery record in ${runDir}/local"
      (elem "-${runDir}/local" s.services.postern-local.serviceConfig.ReadWritePaths)
      s.services.postern-local.serviceConfig.ReadWritePaths)
    (expect "tmpfiles for ${queueDir} and ${runDir}"
      (s.tmpfiles == posternLib.tmpfilesRules { inherit queueDir runDir; }
        && elem "d ${queueDir}/maildrop 3733 postern postern -" s.tmpfiles
        && elem "d ${runDir} 0755 root root -" s.tmpfiles)
      s.tmpfiles)
    (expect "postern's home is ${queueDir}" (s.home == queueDir) s.home)
  ];

  checks = s: {
    server = directoryChecks { queueDir = "/var/spool/postern"; runDir = "/run/postern"; } s ++ [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "postern-smtpd.socket listens on smtpd.listen, [::] for IPv4 too"
        (s.sockets.postern-smtpd.listenStreams == [ "[::]:25" "127.0.0.1:2525" ]
          && s.sockets.postern-smtpd.socketConfig.BindIPv6Only == "both"
          && s.sockets.postern-smtpd.socketConfig.FileDescriptorName == "smtp")
        s.sockets.postern-smtpd)
      (expect "smtpd requires the submit socket only, wants the TCP one"
        (s.services.postern-smtpd.requires == [ "postern-submit.socket" ]
          && elem "postern-smtpd.socket" s.services.postern-smtpd.wants
          && s.services.postern-smtpd.serviceConfig.Sockets == [ "postern-smtpd.socket" "postern-submit.socket" ])
        s.services.postern-smtpd)
      (expect "the firewall opens 25, not loopback's 2525" (s.firewall == [ 25 ]) s.firewall)
      (expect "metrics off: neither its socket nor qmgr's metrics.sock, and qmgr does not ask for it"
        (!(s.sockets ? postern-metrics) && !(s.sockets ? postern-qmgr-metrics)
          && !(elem "postern-qmgr-metrics.socket" s.targetWants)
          && s.services.postern-qmgr.requires == [ "postern-qmgr.socket" "postern-showq.socket" ]
          && s.services.postern-qmgr.serviceConfig.Sockets == [ "postern-qmgr.socket" "postern-showq.socket" ])
        s.services.postern-qmgr)
      (expect "/run/wrappers/bin/sendmail without privilege"
        (s.wrapper == {
          program = "sendmail"; source = "${package}/bin/sendmail";
          owner = "root"; group = "root"; setuid = false; setgid = false;
          permissions = "u+rx,g+x,o+x"; capabilities = "";
        })
        s.wrapper)
      (expect "the build runs postern check --no-system on the rendered file"
        (has "${package}/bin/postern check --no-system --config \"$rendered\"" s.buildScript)
        s.buildScript)
      (expect "aliases: rootAlias, postmasterAlias and the aliases option in [local.aliases]"
        (hasLine ''aliases = { abuse = "alice, security@example.net", postmaster = "root", root = "alice" }'' s.rendered)
        s.rendered)
      (expect "tls.ca_file is security.pki.caBundle" (hasLine ''ca_file = "${caBundle}"'' s.rendered) s.rendered)
      (expect "a warning names the files outside the store (the fixtures are)"
        (builtins.length s.warnings == 1
          && has "${fixtures}/aliases (local.alias_files), ${fixtures}/access (restrictions.client), ${fixtures}/header_checks (checks.header): not in the Nix store" (builtins.head s.warnings))
        s.warnings)
      (expect "the daemons start with the full postern check"
        (all (n: s.services.${n}.serviceConfig.ExecStartPre == "${package}/bin/postern check --config /etc/postern/postern.toml")
          [ "postern-smtpd" "postern-qmgr" "postern-local" "postern-smtp" ])
        (map (n: s.services.${n}.serviceConfig.ExecStartPre) [ "postern-smtpd" "postern-qmgr" ]))
    ];

    nullClient = directoryChecks { queueDir = "/var/spool/postern"; runDir = "/run/postern"; } s ++ [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "no postern-smtpd.socket" (!(s.sockets ? postern-smtpd)) (attrNames s.sockets))
      (expect "smtpd still starts: it requires and has the submit socket alone"
        (s.services.postern-smtpd.requires == [ "postern-submit.socket" ]
          && s.services.postern-smtpd.serviceConfig.Sockets == [ "postern-submit.socket" ]
          && !(elem "postern-smtpd.socket" (s.services.postern-smtpd.wants ++ s.services.postern-smtpd.after))
          && !(elem "postern-smtpd.socket" s.targetWants)
          && elem "postern-smtpd.service" s.targetWants)
        s.services.postern-smtpd)
      (expect "no firewall port" (s.firewall == [ ]) s.firewall)
      (expect "no warning" (s.warnings == [ ]) s.warnings)
      (expect "no sendmail wrapper (setSendmail = false)" (s.wrapper == null) s.wrapper)
      (expect "no aliases at all" (!(has "aliases" s.rendered)) s.rendered)
      (expect "tls.ca_file as the settings say" (hasLine ''ca_file = ""'' s.rendered) s.rendered)
    ];

    moved = directoryChecks { queueDir = "/srv/mail/queue"; runDir = "/run/mail"; } s ++ [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "the default listener (postern's 127.0.0.1:2525)"
        (s.sockets.postern-smtpd.listenStreams == posternLib.defaultListen)
        s.sockets.postern-smtpd)
      (expect "nothing of the default directories is left"
        (!(has "/var/spool/postern" (toJSON s.services + toJSON s.tmpfiles + toJSON s.sockets))
          && !(has "/run/postern" (toJSON s.services + toJSON s.tmpfiles + toJSON s.sockets)))
        s)
      (expect "the wrapper is there by default" (s.wrapper != null && s.wrapper.setuid == false) s.wrapper)
      (expect "postmaster goes to root by default" (hasLine ''aliases = { postmaster = "root" }'' s.rendered) s.rendered)
      (expect "checkFiles = false: the build checks the file alone, and no warning"
        (has "${package}/bin/postern config show --config \"$rendered\" > /dev/null" s.buildScript
          && !(has "--no-system" s.buildScript) && s.warnings == [ ])
        { inherit (s) buildScript warnings; })
    ];

    badKey = [
      (expect "no failed assertion (postern, not the module, knows its keys)" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "the typo reaches the rendered file" (hasLine ''lisen = ["[::]:25"]'' s.rendered) s.rendered)
    ];

    submission = directoryChecks { queueDir = "/var/spool/postern"; runDir = "/run/postern"; } s ++ [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "postern-submission.socket on 587, IPv4 and IPv6"
        (s.sockets.postern-submission.listenStreams == [ "0.0.0.0:587" "[::]:587" ]
          && s.sockets.postern-submission.socketConfig == {
            BindIPv6Only = "ipv6-only"; FileDescriptorName = "submission"; Service = "postern-smtpd.service";
            ReusePort = true;
          })
        s.sockets.postern-submission)
      (expect "postern-submissions.socket on 465, IPv4 and IPv6"
        (s.sockets.postern-submissions.listenStreams == [ "0.0.0.0:465" "[::]:465" ]
          && s.sockets.postern-submissions.socketConfig.FileDescriptorName == "submissions"
          && s.sockets.postern-submissions.socketConfig.BindIPv6Only == "ipv6-only")
        s.sockets.postern-submissions)
      (expect "smtpd takes all three TCP sockets, wants and orders after them, requires none"
        (s.services.postern-smtpd.serviceConfig.Sockets == [
          "postern-smtpd.socket" "postern-submission.socket" "postern-submissions.socket" "postern-submit.socket"
        ]
          && all (u: elem u s.services.postern-smtpd.wants && elem u s.services.postern-smtpd.after && elem u s.targetWants)
            [ "postern-smtpd.socket" "postern-submission.socket" "postern-submissions.socket" ]
          && s.services.postern-smtpd.requires == [ "postern-submit.socket" ])
        s.services.postern-smtpd)
      (expect "the firewall opens 25, 587 and 465" (s.firewall == [ 25 587 465 ]) s.firewall)
      (expect "sslKey, then sslCert, are tls.chain_files"
        (hasLine ''chain_files = ["/var/lib/acme/mail.example.org/key.pem", "/var/lib/acme/mail.example.org/fullchain.pem"]'' s.rendered)
        s.rendered)
      (expect "the listeners rendered"
        (hasLine ''listen = ["0.0.0.0:587", "[::]:587"]'' s.rendered
          && hasLine ''implicit_tls_listen = ["0.0.0.0:465", "[::]:465"]'' s.rendered)
        s.rendered)
      (expect "no warning: the key is not for the build to read" (s.warnings == [ ]) s.warnings)
    ];

    submissionOwn = [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "no [::] without IPv6"
        (s.sockets.postern-submission.listenStreams == [ "0.0.0.0:587" ]
          && !(s.sockets.postern-submission.socketConfig ? BindIPv6Only))
        s.sockets.postern-submission)
      (expect "the settings' implicit_tls_listen wins over enableSubmissions"
        (s.sockets.postern-submissions.listenStreams == [ "192.0.2.7:465" ]
          && s.sockets.postern-submissions.socketConfig.FreeBind == true)
        s.sockets.postern-submissions)
      (expect "the settings' chain files, no sslCert needed"
        (hasLine ''chain_files = ["/etc/postern/tls/key.pem", "/etc/postern/tls/fullchain.pem"]'' s.rendered)
        s.rendered)
      (expect "the firewall opens 587 and 465, not loopback's 2525" (s.firewall == [ 587 465 ]) s.firewall)
    ];

    asShipped = directoryChecks { queueDir = "/var/spool/postern"; runDir = "/run/postern"; } s ++ [
      (expect "no failed assertion" (s.failedAssertions == [ ]) s.failedAssertions)
      (expect "every unit of systemd/, no other" (attrNames s.units == [
        "postern-local.service" "postern-local.socket" "postern-metrics.service" "postern-metrics.socket"
        "postern-qmgr-metrics.socket" "postern-qmgr.service" "postern-qmgr.socket"
        "postern-showq.socket" "postern-smtp.service" "postern-smtp.socket" "postern-smtpd.service"
        "postern-smtpd.socket" "postern-submission.socket" "postern-submissions.socket"
        "postern-submit.socket" "postern.target"
      ]) (attrNames s.units))
    ];

    keyInStore = [
      (expect "a private key in the store refused"
        (length s.failedAssertions == 1
          && has "services.postern.sslKey = \"${builtins.storeDir}/00000000000000000000000000000000-key.pem\" is in the Nix store" (builtins.head s.failedAssertions))
        s.failedAssertions)
    ];

    refused =
      let
        failed = s.failedAssertions;
        any' = sub: builtins.any (has sub) failed;
      in
      [
        (expect "sslCert without sslKey refused" (any' "services.postern.sslCert and services.postern.sslKey go together") failed)
        (expect "submission without a certificate refused"
          (any' "services.postern: submission (enableSubmission, enableSubmissions or settings.submission) needs a certificate") failed)
        (expect "submission without a SASL backend refused"
          (any' "takes mail only from clients that log in, and needs settings.sasl.backend") failed)
        (expect "server.user other than postern refused" (any' ''services.postern.settings.server.user = "mail"'') failed)
        (expect "a relative queue directory refused"
          (any' ''services.postern.settings.queue.directory = "var/spool/postern" is not an absolute path'') failed)
        (expect "a run directory ProtectHome hides refused"
          (any' ''services.postern.settings.server.run_directory = "/home/postern/run" is under /home'') failed)
        (expect "six assertions failed" (length failed == 6) failed)
        (expect "postern's home is still a path" (s.home == "/var/spool/postern") s.home)
      ];

    longRun = [
      (expect "a run directory too long for sun_path refused"
        (builtins.length s.failedAssertions == 1
          && has "is too long: a Unix socket's path" (builtins.head s.failedAssertions))
        s.failedAssertions)
    ];
  };

  results = builtins.mapAttrs
    (name: site:
      let
        s = summary (evalSite site);
        outcome = checks s;
        failures = filter (c: !c.ok) outcome.${name};
      in
      if failures != [ ] then
        throw "nix/tests/eval.nix: case ${name}: ${concatStringsSep "; " (map (c: "${c.name}: got ${toJSON c.got}") failures)}"
      else {
        inherit (s) rendered buildScript failedAssertions units;
        checked = map (c: c.name) outcome.${name};
      })
    sites;
  # flake.nix with a stand-in nixpkgs input: packages and checks for both
  # systems, and nixosModules.default giving each system its own package
  # (issue 16: it failed on aarch64).
  systems = [ "x86_64-linux" "aarch64-linux" ];
  flake =
    let
      pkgsFor = system: pkgs // {
        stdenv.hostPlatform.system = system;
        callPackage = _: _: derivation' "postern-${system}" { };
        testers.runNixOSTest = test: derivation' "vm-test-${test.name}-${system}" { };
      };
      nixpkgs = { inherit lib; legacyPackages = lib.genAttrs systems pkgsFor; };
      sortedSystems = builtins.sort builtins.lessThan systems;
      self = (import ../../flake.nix).outputs { inherit self nixpkgs; };
      moduleOn = system: (lib.evalModules {
        specialArgs.pkgs = pkgsFor system;
        modules = [
          (import ./nixos-options.nix { inherit caBundle; })
          self.nixosModules.default
          { services.postern = { enable = true; settings.local.alias_files = [ ]; }; }
        ];
      }).config;
      outcome = [
        (expect "packages for both systems" (attrNames self.packages == sortedSystems) (attrNames self.packages))
        (expect "checks for both systems, the package and the VM test"
          (attrNames self.checks == sortedSystems
            && builtins.all (sys: attrNames self.checks.${sys} == [ "package" "vm-test" ]) systems)
          (builtins.mapAttrs (_: attrNames) self.checks))
        (expect "nixosModules.default and .postern" (attrNames self.nixosModules == [ "default" "postern" ]) (attrNames self.nixosModules))
      ] ++ map
        (sys:
          let c = moduleOn sys; pkg = self.packages.${sys}.default; in
          expect "the module on ${sys} runs ${sys}'s package"
            (c.services.mail.sendmailSetuidWrapper.source == "${pkg}/bin/sendmail"
              && c.systemd.services.postern-qmgr.serviceConfig.ExecStart
                == "${pkg}/bin/postern --config /etc/postern/postern.toml daemon qmgr")
            c.services.mail.sendmailSetuidWrapper.source)
        systems;
      failures = filter (c: !c.ok) outcome;
    in
    if failures != [ ] then
      throw "nix/tests/eval.nix: flake: ${concatStringsSep "; " (map (c: "${c.name}: got ${toJSON c.got}") failures)}"
    else map (c: c.name) outcome;
in
{
  # Every case evaluated and checked (`-A cases`).
  cases = results;
  # flake.nix's outputs for both systems (`-A flake`).
  inherit flake;
  # Must not evaluate: a mistyped services.postern option (not a
  # settings key) is an undeclared option, in NixOS as here.
  typo = (evalSite { services.postern.enableSubmision = true; }).services.postern.enable;
  # Must not evaluate either: an option the module sets that NixOS does
  # not have is refused by the stand-ins (the proof that they are strict).
  strict = (evalSite { systemd.services.postern-smtpd.serviceConfg = { }; }).systemd.services.postern-smtpd.description;
}
