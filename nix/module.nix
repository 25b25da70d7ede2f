# NixOS module for postern: services.postern.
#
# The configuration is declared in `settings` (the postern.toml keys, see
# postern.toml(5) or `postern config show`) and `aliases`, rendered to
# /etc/postern/postern.toml and checked when the system is built
# (`postern check --no-system`: the keys, and every alias file and table
# the file names), so a typo or a bad value fails nixos-rebuild instead of
# the mail server. The units are those of systemd/ in the source tree,
# with the same sandboxing, and everything in them that the settings
# decide is derived from the settings: postern-smtpd.socket listens where
# smtpd.listen says (postern's own default when unset; none: no such
# socket), postern-submission.socket and postern-submissions.socket where
# submission.listen and submission.implicit_tls_listen say
# (enableSubmission, enableSubmissions; none by default), as
# postern-generator makes the Debian units do (nix/lib.nix tcpSocket);
# the Unix sockets live in server.run_directory; the queue
# (queue.directory) is the daemons' ReadWritePaths=, tmpfiles' and the
# postern user's home. What cannot be derived fails evaluation with an
# assertion that says why. No set-uid or set-gid program:
# /run/wrappers/bin/sendmail (setSendmail) is a plain wrapper; sendmail
# hands mail to smtpd over submit.sock, and mailq reads showq.sock.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.postern;
  settingsFormat = pkgs.formats.toml { };
  postern = "${cfg.package}/bin/postern";
  kill = "${pkgs.coreutils}/bin/kill";

  posternLib = import ./lib.nix;

  # The settings as rendered: the typed aliases (rootAlias,
  # postmasterAlias) under settings.local.aliases under `aliases`;
  # tls.ca_file from security.pki.caBundle, the submission listeners from
  # enableSubmission and enableSubmissions, and tls.chain_files from
  # sslKey and sslCert, each unless the settings say otherwise.
  finalSettings =
    let
      typed = lib.optionalAttrs (cfg.postmasterAlias != "") { postmaster = cfg.postmasterAlias; }
        // lib.optionalAttrs (cfg.rootAlias != "") { root = cfg.rootAlias; };
      withAliases = posternLib.withAliases { settings = cfg.settings; inherit typed; inherit (cfg) aliases; };
      # Every address, as services.postfix's submission services listen:
      # IPv4, and IPv6 where the system has it.
      everywhere = port: [ "0.0.0.0:${toString port}" ]
        ++ lib.optional config.networking.enableIPv6 "[::]:${toString port}";
      submission = lib.optionalAttrs cfg.enableSubmission { listen = everywhere 587; }
        // lib.optionalAttrs cfg.enableSubmissions { implicit_tls_listen = everywhere 465; };
      defaults = { tls.ca_file = config.security.pki.caBundle; }
        // lib.optionalAttrs (submission != { }) { inherit submission; };
      # The key first, then its chain, as tls.chain_files takes them.
      certificate = lib.optionalAttrs (cfg.sslCert != "" && cfg.sslKey != "") {
        tls.chain_files = [ cfg.sslKey cfg.sslCert ];
      };
    in
    lib.recursiveUpdate (lib.recursiveUpdate defaults certificate) withAliases;

  # What the units take from the settings: the TOML stays the one source
  # of truth.
  queueDir = posternLib.queueDirectoryOf finalSettings;
  runDir = posternLib.runDirectoryOf finalSettings;
  socketPath = name: "${runDir}/${posternLib.socketFiles.${name}}";

  # The TCP socket units (postern-smtpd, postern-submission,
  # postern-submissions) with their listeners. One without: no such
  # socket, and smtpd serves the others and submit.sock (it Requires=
  # only postern-submit.socket).
  tcpSockets = map (t: t // posternLib.tcpSocket t.key (t.listenOf finalSettings)) posternLib.tcpSockets;
  listening = builtins.filter (t: t.listenStreams != [ ]) tcpSockets;
  listeningUnits = map (t: "${t.unit}.socket") listening;

  # The Prometheus endpoint (metrics.listen; none by default): its socket
  # unit, as postern-generator writes systemd/postern-metrics.socket's.
  metricsListen = (finalSettings.metrics or { }).listen or [ ];
  # With the endpoint off nothing of it listens: neither its TCP socket
  # nor qmgr's metrics.sock (as postern-generator masks both).
  metricsUnits = lib.optionals (metricsListen != [ ]) [ "postern-metrics.socket" "postern-qmgr-metrics.socket" ];
  metricsServices = lib.optionals (metricsListen != [ ]) [ "postern-metrics.service" ];

  # Submission: what it needs beside its listeners.
  submissionListens = builtins.any (t: t.listenStreams != [ ] && t.unit != "postern-smtpd") tcpSockets;
  chainFiles = (finalSettings.tls or { }).chain_files or [ ];
  saslBackend = (finalSettings.sasl or { }).backend or "none";
  inStore = path: builtins.substring 0 (builtins.stringLength builtins.storeDir + 1) path == "${builtins.storeDir}/";

  # Checked at build time, as the build user in the sandbox (with the
  # host's package: not for cross builds). `postern check --no-system`
  # loads the file strictly (unknown keys with the nearest valid one,
  # types, values, addresses, durations) and reads every file it names
  # (alias files and their :include: files, transport files, access,
  # regexp and pcre tables, header and body checks, tls.ca_file), which
  # must be store paths to be in the sandbox (a warning names those that
  # are not); it looks at nothing of the system (the postern user, the
  # queue and run directories do not exist in the sandbox). Exit 1, with
  # FILE:LINE and the key, on any error. With checkFiles = false, the file
  # alone (`postern config show`), for files kept outside the store. The
  # full `postern check` runs again at each start (ExecStartPre) and
  # reload on the real system.
  configFile = pkgs.runCommand "postern.toml"
    {
      rendered = settingsFormat.generate "postern-unchecked.toml" finalSettings;
      preferLocalBuild = true;
    }
    (if cfg.checkFiles then ''
      ${postern} check --no-system --config "$rendered"
      cp "$rendered" "$out"
    '' else ''
      ${postern} config show --config "$rendered" > /dev/null
      cp "$rendered" "$out"
    '');

  # Files the build-time check would read but the build sandbox lacks.
  outsideStore = posternLib.filesOutsideStore builtins.storeDir finalSettings;

  configPath = "/etc/postern/postern.toml";

  # Start: postern check, then the daemon; as in systemd/*.service.
  # check: `postern check`'s options before --config (the metrics unit,
  # which cannot see the queue, checks the file only: --no-system).
  daemonService = { role, description, sockets, requires ? sockets, extraUnit ? { }, serviceConfig, check ? "check" }:
    lib.recursiveUpdate
      {
        inherit description requires;
        after = sockets;
        partOf = [ "postern.target" ];
        restartTriggers = [ configFile ];
        unitConfig = {
          # A configuration error fails ExecStartPre (exit 1), which
          # RestartPreventExitStatus does not cover: give up after 5 starts
          # in 10 s, a window short enough for `systemctl restart
          # postern.target` to bring the unit back once the file is fixed.
          StartLimitIntervalSec = "10s";
          StartLimitBurst = 5;
        };
        serviceConfig = {
          Type = "notify";
          ExecStartPre = "${postern} ${check} --config ${configPath}";
          ExecStart = "${postern} --config ${configPath} daemon ${role}";
          # The file is checked first: a broken one fails `systemctl
          # reload` and the running configuration keeps serving.
          ExecReload = [
            "${postern} ${check} --config ${configPath}"
            "${kill} -HUP $MAINPID"
          ];
          Sockets = sockets;
          Restart = "on-failure";
          RestartSec = "1s";
          # 78 (EX_CONFIG): restarting will not help.
          RestartPreventExitStatus = 78;
          WatchdogSec = "1min";
          UMask = "0077";
          AmbientCapabilities = "";
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          PrivateTmp = true;
          PrivateMounts = true;
          PrivateDevices = true;
          DevicePolicy = "closed";
          ProtectProc = "invisible";
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectClock = true;
          ProtectHostname = true;
          KeyringMode = "private";
          LockPersonality = true;
          MemoryDenyWriteExecute = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          RestrictNamespaces = true;
          SystemCallArchitectures = "native";
          SystemCallErrorNumber = "EPERM";
        } // serviceConfig;
      }
      extraUnit;

  # smtpd, qmgr and smtp: postern, no capabilities, no privileged calls.
  unprivileged = {
    User = "postern";
    Group = "postern";
    CapabilityBoundingSet = "";
    ProcSubset = "pid";
    RemoveIPC = true;
    # systemd 252's @system-service lacks the Landlock calls; capset is
    # back from @privileged for clearing the capability sets.
    SystemCallFilter = [
      "@system-service landlock_create_ruleset landlock_add_rule landlock_restrict_self"
      "~@privileged @resources"
      "capset"
    ];
  };

  # No start limit of their own: restarting the target always brings the
  # sockets back (a socket starts no process).
  socketUnit = { StartLimitIntervalSec = 0; };

  unixSocket = { description, path, service, name, mode ? "0600", owned ? true }: {
    inherit description;
    partOf = [ "postern.target" ];
    unitConfig = socketUnit;
    listenStreams = [ path ];
    socketConfig = {
      SocketMode = mode;
      FileDescriptorName = name;
      Service = service;
    } // lib.optionalAttrs owned {
      SocketUser = "postern";
      SocketGroup = "postern";
    };
  };
in
{
  options.services.postern = {
    enable = lib.mkEnableOption "postern, the mail transfer agent (smtpd, qmgr, local and smtp daemons)";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The postern package; its sendmail, mailq and newaliases go on the system PATH.";
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      example = lib.literalExpression ''
        {
          server.hostname = "mail.example.org";
          local.domains = [ "$hostname" "example.org" "localhost" ];
          relay.networks = [ "127.0.0.0/8" "::1/128" "192.168.1.0/24" ];
          smtpd.listen = [ "[::]:25" ];
        }
      '';
      description = ''
        postern.toml as an attribute set: one attribute per table
        ([server], [local], [relay], [queue], [smtpd], ...). Every key is
        optional; see postern.toml(5) and `postern config show`. Rendered
        to /etc/postern/postern.toml and validated at build time.
        smtpd.listen is also where postern-smtpd.socket listens (default,
        as postern's: 127.0.0.1:2525; [ "[::]:25" ] for IPv6 and IPv4 on
        port 25; [ ] for no TCP listener).
      '';
    };

    aliases = lib.mkOption {
      type = with lib.types; attrsOf (either str (listOf str));
      default = { };
      example = { postmaster = "root"; root = [ "alice" "bob@example.net" ]; };
      description = ''
        Aliases, written to [local.aliases] (they win over
        local.alias_files). A value is an aliases(5) right-hand side; a
        list is joined with ", ".
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Open the TCP ports that smtpd.listen, submission.listen and
        submission.implicit_tls_listen name on addresses other than
        loopback (587 with enableSubmission, 465 with enableSubmissions).
      '';
    };

    checkFiles = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether the build-time check reads the files the settings name
        (alias files, transport files, access, regexp and pcre tables,
        header and body checks, tls.ca_file: `postern check --no-system`).
        The build sandbox holds only the Nix store, so those files must be
        store paths (a Nix path such as ./aliases, or pkgs.writeText).
        false: only postern.toml itself is checked at build time
        (`postern config show`), for files kept outside the store (an
        alias file edited in place); every start still runs the full
        `postern check`.
      '';
    };

    setSendmail = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether to provide /run/wrappers/bin/sendmail, the path Dovecot,
        smartd and other NixOS services run (services.mail.sendmailSetuidWrapper),
        as services.postfix does. The wrapper is neither set-uid nor
        set-gid: sendmail hands mail to smtpd over submit.sock, where
        smtpd learns the sender from the socket's peer credentials.
      '';
    };

    rootAlias = lib.mkOption {
      type = lib.types.str;
      default = "";
      example = "alice";
      description = ''
        Where mail to root goes (an aliases(5) right-hand side); empty: no
        alias for root. As services.postfix.rootAlias; a `root` in
        `aliases` or settings.local.aliases wins.
      '';
    };

    postmasterAlias = lib.mkOption {
      type = lib.types.str;
      default = "root";
      description = ''
        Where mail to postmaster goes; empty: no alias. As
        services.postfix.postmasterAlias; a `postmaster` in `aliases` or
        settings.local.aliases wins.
      '';
    };

    enableSubmission = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Mail submission on port 587 (RFC 6409: STARTTLS, then SMTP AUTH
        before MAIL), as services.postfix.enableSubmission: sets
        settings.submission.listen to [ "0.0.0.0:587" "[::]:587" ] (no
        [::] without networking.enableIPv6) unless the settings name
        other listeners. Needs a certificate (sslCert and sslKey, or
        settings.tls.chain_files) and settings.sasl.backend ("dovecot" or
        "passwd"); evaluation fails, saying so, without them.
      '';
    };

    enableSubmissions = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Mail submission over implicit TLS on port 465 (RFC 8314), as
        services.postfix.enableSubmissions: sets
        settings.submission.implicit_tls_listen to [ "0.0.0.0:465"
        "[::]:465" ] unless the settings name other listeners. Needs what
        enableSubmission needs.
      '';
    };

    sslCert = lib.mkOption {
      type = lib.types.str;
      default = "";
      example = "/var/lib/acme/mail.example.org/fullchain.pem";
      description = ''
        The server certificate and its chain (PEM), as
        services.postfix.sslCert: with sslKey, tls.chain_files = [ sslKey
        sslCert ] unless settings.tls.chain_files says otherwise. smtpd
        (STARTTLS, ports 587 and 465) reads it as the user postern, and
        again whenever it changes (a renewal needs no reload).
      '';
    };

    sslKey = lib.mkOption {
      type = lib.types.str;
      default = "";
      example = "/var/lib/acme/mail.example.org/key.pem";
      description = ''
        The private key of sslCert (PEM), as services.postfix.sslKey. A
        path outside the Nix store (which every user can read), readable
        by the group postern: for example security.acme.certs.<name>.group
        = "postern". Only smtpd reads it; the build-time check does not.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions =
      let
        dirAssertion = key: dir:
          let problem = posternLib.directoryProblem dir; in {
            assertion = problem == null;
            message = "services.postern.settings.${key} = \"${dir}\" ${toString problem}; the units (ReadWritePaths=, tmpfiles, sockets) are derived from it.";
          };
      in
      [
        {
          assertion = (cfg.sslCert == "") == (cfg.sslKey == "");
          message = "services.postern.sslCert and services.postern.sslKey go together (the certificate chain and its key): set both, or neither.";
        }
        {
          assertion = cfg.sslKey == "" || !(inStore cfg.sslKey);
          message = "services.postern.sslKey = \"${cfg.sslKey}\" is in the Nix store, which every user of the system can read: keep the private key outside it (security.acme's /var/lib/acme/<name>/key.pem, or a secret deployed at run time), readable by the group postern.";
        }
        {
          assertion = !submissionListens || chainFiles != [ ];
          message = "services.postern: submission (enableSubmission, enableSubmissions or settings.submission) needs a certificate: set services.postern.sslCert (the certificate chain, e.g. /var/lib/acme/<name>/fullchain.pem) and services.postern.sslKey (its key, readable by the group postern), or settings.tls.chain_files.";
        }
        {
          assertion = !submissionListens || saslBackend != "none";
          message = "services.postern: submission (enableSubmission, enableSubmissions or settings.submission) takes mail only from clients that log in, and needs settings.sasl.backend: \"dovecot\" (Dovecot's auth socket, settings.sasl.dovecot_socket) or \"passwd\" (logins made with `postern passwd LOGIN`, settings.sasl.password_file).";
        }
        {
          assertion = posternLib.userOf finalSettings == posternLib.defaultUser;
          message = "services.postern.settings.server.user = \"${posternLib.userOf finalSettings}\": the module runs smtpd, qmgr and smtp as, and makes the queue owned by, the user postern (users.users.postern, User= of the units, tmpfiles); leave server.user unset.";
        }
        (dirAssertion "queue.directory" queueDir)
        (dirAssertion "server.run_directory" runDir)
        {
          # sun_path holds 108 bytes with the final NUL.
          assertion = builtins.stringLength (socketPath "submit") <= 107 && builtins.stringLength (socketPath "showq") <= 107;
          message = "services.postern.settings.server.run_directory = \"${runDir}\" is too long: a Unix socket's path (${socketPath "submit"}) has at most 107 bytes.";
        }
        {
          assertion = queueDir != runDir;
          message = "services.postern.settings: queue.directory and server.run_directory are both ${queueDir}; they must differ (the queue is postern's, the run directory root's).";
        }
      ];

    warnings = lib.optional (cfg.checkFiles && outsideStore != [ ])
      "services.postern: ${lib.concatStringsSep ", " (map (f: "${f.path} (${f.key})") outsideStore)}: not in the Nix store, so the build-time check (postern check --no-system, in the build sandbox) cannot read it and the build fails. Name such files by store paths (a Nix path such as ./aliases, or pkgs.writeText), or set services.postern.checkFiles = false to check only postern.toml at build time (every start still runs the full postern check).";

    environment.etc."postern/postern.toml".source = configFile;
    # sendmail, mailq, newaliases and postern on PATH.
    environment.systemPackages = [ cfg.package ];

    # /run/wrappers/bin/sendmail for the programs that call that path. No
    # privilege: NixOS's wrapper execs the source with the same argv, so
    # argv[0] ends in "sendmail" and postern acts as sendmail; it reads
    # /etc/postern/postern.toml for the run directory.
    services.mail.sendmailSetuidWrapper = lib.mkIf cfg.setSendmail {
      program = "sendmail";
      source = "${cfg.package}/bin/sendmail";
      owner = "root";
      group = "root";
      setuid = false;
      setgid = false;
    };

    users.users.postern = {
      isSystemUser = true;
      group = "postern";
      description = "postern mail transfer agent";
      # A queue directory the assertions refuse would also fail the type
      # of `home` (a path), with a less helpful message: the assertion's
      # is the one to see.
      home = if posternLib.directoryProblem queueDir == null then queueDir else posternLib.defaultQueueDirectory;
    };
    users.groups.postern = { };

    # As systemd/postern.tmpfiles, for the configured directories.
    systemd.tmpfiles.rules = posternLib.tmpfilesRules { inherit queueDir runDir; };

    networking.firewall.allowedTCPPorts =
      lib.mkIf cfg.openFirewall (posternLib.firewallPorts finalSettings);

    systemd.targets.postern = {
      description = "postern mail transfer agent";
      wants = listeningUnits ++ metricsUnits ++ [
        "postern-submit.socket"
        "postern-qmgr.socket" "postern-showq.socket"
        "postern-local.socket" "postern-smtp.socket"
        "postern-smtpd.service" "postern-qmgr.service"
        "postern-local.service" "postern-smtp.service"
      ];
      wantedBy = [ "multi-user.target" ];
      unitConfig = {
        # `systemctl reload postern.target` reloads every daemon.
        PropagatesReloadTo = lib.concatStringsSep " " ([
          "postern-smtpd.service" "postern-qmgr.service" "postern-local.service" "postern-smtp.service"
        ] ++ metricsServices);
        StartLimitIntervalSec = 0;
      };
    };

    systemd.sockets = builtins.listToAttrs (map
      (t: {
        name = t.unit;
        value = {
          inherit (t) description listenStreams;
          partOf = [ "postern.target" ];
          unitConfig = socketUnit;
          socketConfig = t.socketConfig // {
            # As systemd/postern-smtpd.socket: a restart of the target
            # never fails with "Address already in use" while systemd's
            # (sd-chown) helper still holds the old listener.
            ReusePort = true;
            FileDescriptorName = t.name;
            Service = "postern-smtpd.service";
          };
        };
      })
      listening) // lib.optionalAttrs (metricsListen != [ ]) {
      postern-metrics = {
        description = "postern metrics socket (metrics.listen)";
        inherit (posternLib.tcpSocket "metrics.listen" metricsListen) listenStreams;
        partOf = [ "postern.target" ];
        unitConfig = socketUnit;
        socketConfig = (posternLib.tcpSocket "metrics.listen" metricsListen).socketConfig // {
          ReusePort = true;
          FileDescriptorName = "http";
          Service = "postern-metrics.service";
        };
      };
      postern-qmgr-metrics = unixSocket {
        description = "postern queue manager metrics socket";
        path = socketPath "metrics";
        name = "metrics";
        service = "postern-qmgr.service";
      };
    } // {
      postern-submit = unixSocket {
        description = "postern local submission socket (sendmail)";
        path = socketPath "submit";
        name = "submit";
        service = "postern-smtpd.service";
        mode = "0666";
        owned = false;
      };
      postern-qmgr = unixSocket {
        description = "postern queue manager control socket";
        path = socketPath "qmgr";
        name = "qmgr";
        service = "postern-qmgr.service";
      };
      postern-showq = unixSocket {
        description = "postern queue listing socket (mailq)";
        path = socketPath "showq";
        name = "showq";
        service = "postern-qmgr.service";
        mode = "0666";
        owned = false;
      };
      postern-local = unixSocket {
        description = "postern local delivery socket";
        path = socketPath "local";
        name = "local";
        service = "postern-local.service";
      };
      postern-smtp = unixSocket {
        description = "postern SMTP client socket";
        path = socketPath "smtp";
        name = "smtp-client";
        service = "postern-smtp.service";
      };
    };

    systemd.services = {
      postern-smtpd = daemonService {
        role = "smtpd";
        description = "postern SMTP server (smtpd)";
        sockets = listeningUnits ++ [ "postern-submit.socket" ];
        requires = [ "postern-submit.socket" ];
        extraUnit = {
          # The TCP sockets are wanted, not required, as in systemd/.
          wants = [ "postern-qmgr.socket" ] ++ listeningUnits;
          after = listeningUnits ++ [ "postern-submit.socket" "postern-qmgr.socket" "network.target" ];
        };
        serviceConfig = unprivileged // {
          # The queue (its Landlock ruleset narrows it to incoming/ and the
          # drop directories). "-": a missing queue is then smtpd's own
          # clear error, not a failed mount namespace (226/NAMESPACE).
          # Everything else it reads (sslKey, sslCert, the password file,
          # Dovecot's auth socket under /run/dovecot2) ProtectSystem=
          # leaves readable; see systemd/postern-smtpd.service.
          ReadWritePaths = [ "-${queueDir}" ];
          # The DKIM keys are the smtp client's alone (issue 19), as in
          # systemd/postern-smtpd.service.
          InaccessiblePaths = [ "-/var/lib/postern/dkim" ];
          ProtectHome = true;
          # No PrivateUsers=: smtpd names the submitting user by SO_PEERCRED.
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        };
      };

      postern-qmgr = daemonService {
        role = "qmgr";
        description = "postern queue manager (qmgr)";
        # The metrics socket only with the endpoint on (wanted through
        # Sockets=, never required).
        sockets = [ "postern-qmgr.socket" "postern-showq.socket" ]
          ++ lib.optionals (metricsListen != [ ]) [ "postern-qmgr-metrics.socket" ];
        requires = [ "postern-qmgr.socket" "postern-showq.socket" ];
        extraUnit = {
          wants = [ "postern-local.socket" "postern-smtp.socket" ];
          after = [ "postern-qmgr.socket" "postern-showq.socket" ]
            ++ lib.optionals (metricsListen != [ ]) [ "postern-qmgr-metrics.socket" ]
            ++ [ "postern-local.socket" "postern-smtp.socket" ];
        };
        serviceConfig = unprivileged // {
          ReadWritePaths = [ "-${queueDir}" ];
          InaccessiblePaths = [ "-/var/lib/postern/dkim" ];
          ProtectHome = true;
          # No PrivateUsers=: showq decides by the peer's uid.
          RestrictAddressFamilies = [ "AF_UNIX" ];
          PrivateNetwork = true;
          IPAddressDeny = "any";
        };
      };

      postern-smtp = daemonService {
        role = "smtp";
        description = "postern SMTP client (smtp)";
        sockets = [ "postern-smtp.socket" ];
        extraUnit.after = [ "postern-smtp.socket" "network.target" ];
        serviceConfig = unprivileged // {
          # Writes nothing; reads the queue, which ProtectSystem leaves readable.
          ProtectHome = true;
          PrivateUsers = true;
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        };
      };

    } // lib.optionalAttrs (metricsListen != [ ]) {
      # As systemd/postern-metrics.service: reads nothing of the queue,
      # asks qmgr on its metrics socket.
      postern-metrics = daemonService {
        role = "metrics";
        description = "postern metrics endpoint (metrics)";
        check = "check --no-system";
        # Wanted through Sockets=, not required (as systemd/'s unit).
        requires = [ ];
        sockets = [ "postern-metrics.socket" ];
        extraUnit.after = [ "postern-metrics.socket" "postern-qmgr-metrics.socket" ];
        serviceConfig = unprivileged // {
          ProtectHome = true;
          InaccessiblePaths = [ "-${queueDir}" ];
          PrivateUsers = true;
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        };
      };
    } // {
      # Root, so that its workers can become the recipients; see
      # systemd/postern-local.service for each capability's reason and for
      # what a site may loosen with a drop-in (|command needing the network
      # or a JIT, /file deliveries elsewhere).
      postern-local = daemonService {
        role = "local";
        description = "postern local delivery agent (local)";
        sockets = [ "postern-local.socket" ];
        serviceConfig = {
          User = "root";
          CapabilityBoundingSet = "CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_DAC_READ_SEARCH CAP_KILL";
          # Mailboxes (spool and homes), and the delivery record, so that a
          # delivery whose answer a crash lost is not made again.
          ReadWritePaths = [
            "-/var/mail" "-/var/spool/mail" "-/home" "-/root"
            "-${posternLib.localRecordDirectory runDir}"
          ];
          ProtectHome = false;
          RestrictAddressFamilies = [ "AF_UNIX" ];
          PrivateNetwork = true;
          IPAddressDeny = "any";
          SystemCallFilter = [
            "@system-service landlock_create_ruleset landlock_add_rule landlock_restrict_self"
          ];
        };
      };
    };
  };
}
