# NixOS module for postern: services.postern.
#
# The configuration is declared in `settings` (the postern.toml keys, see
# postern.toml(5) or `postern config show`) and `aliases`, rendered to
# /etc/postern/postern.toml and validated when the system is built, so a
# typo or a bad value fails nixos-rebuild instead of the mail server.
# The units are those of systemd/ in the source tree, with the same
# sandboxing; postern-smtpd.socket listens where settings.smtpd.listen
# says (postern's own default when unset), as postern-generator makes the
# Debian units do (nix/lib.nix smtpdSocket). No set-uid or set-gid
# wrapper: sendmail hands mail to smtpd over /run/postern/submit.sock, and
# mailq reads showq.sock.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.postern;
  settingsFormat = pkgs.formats.toml { };
  postern = "${cfg.package}/bin/postern";
  kill = "${pkgs.coreutils}/bin/kill";

  posternLib = import ./lib.nix;

  # The aliases option merged into [local.aliases] (pure; nix/lib.nix).
  finalSettings = posternLib.mergeAliases cfg.settings cfg.aliases;

  # postern-smtpd.socket's listeners from the same settings the file is
  # rendered from: the TOML stays the one source of truth. None: no such
  # socket, smtpd serves submit.sock alone.
  smtpdSocket = posternLib.smtpdSocket finalSettings;
  smtpdListens = smtpdSocket.listenStreams != [ ];

  # Checked at build time (with the host's package: not for cross builds). `postern check` would also inspect the running
  # system (the postern user, the queue and run directories, the alias
  # files), none of which exists in the build sandbox; `postern config
  # show` loads and validates the file alone (unknown keys, types, values,
  # addresses, durations) and exits 1 on any error. `postern check` runs
  # again at each start (ExecStartPre) on the real system.
  configFile = pkgs.runCommand "postern.toml"
    {
      rendered = settingsFormat.generate "postern-unchecked.toml" finalSettings;
      preferLocalBuild = true;
    } ''
    ${postern} config show --config "$rendered" > /dev/null
    cp "$rendered" "$out"
  '';

  configPath = "/etc/postern/postern.toml";

  # Start: postern check, then the daemon; as in systemd/*.service.
  daemonService = { role, description, sockets, requires ? sockets, extraUnit ? { }, serviceConfig }:
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
          ExecStartPre = "${postern} check --config ${configPath}";
          ExecStart = "${postern} --config ${configPath} daemon ${role}";
          # The file is checked first: a broken one fails `systemctl
          # reload` and the running configuration keeps serving.
          ExecReload = [
            "${postern} check --config ${configPath}"
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
      description = "Open the TCP ports smtpd.listen names on addresses other than loopback.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."postern/postern.toml".source = configFile;
    # sendmail, mailq, newaliases and postern on PATH. Deliberately no
    # services.mail.sendmailSetuidWrapper: postern needs no set-gid.
    environment.systemPackages = [ cfg.package ];

    users.users.postern = {
      isSystemUser = true;
      group = "postern";
      description = "postern mail transfer agent";
      home = "/var/spool/postern";
    };
    users.groups.postern = { };

    # As systemd/postern.tmpfiles: the queue is postern's alone, but for
    # its search bit (0711) and the drop directory (3733), where sendmail
    # leaves mail while postern is down.
    systemd.tmpfiles.rules = [
      "d /var/spool/postern          0711 postern postern -"
      "d /var/spool/postern/incoming 0700 postern postern -"
      "d /var/spool/postern/state    0700 postern postern -"
      "d /var/spool/postern/deferred 0700 postern postern -"
      "d /var/spool/postern/hold     0700 postern postern -"
      "d /var/spool/postern/corrupt  0700 postern postern -"
      "d /var/spool/postern/maildrop 3733 postern postern -"
      "d /var/spool/postern/maildrop-bad 0700 postern postern -"
      "d /run/postern 0755 root root -"
    ];

    networking.firewall.allowedTCPPorts =
      lib.mkIf cfg.openFirewall (posternLib.firewallPorts finalSettings);

    systemd.targets.postern = {
      description = "postern mail transfer agent";
      wants = lib.optional smtpdListens "postern-smtpd.socket" ++ [
        "postern-submit.socket"
        "postern-qmgr.socket" "postern-showq.socket"
        "postern-local.socket" "postern-smtp.socket"
        "postern-smtpd.service" "postern-qmgr.service"
        "postern-local.service" "postern-smtp.service"
      ];
      wantedBy = [ "multi-user.target" ];
      unitConfig = {
        # `systemctl reload postern.target` reloads every daemon.
        PropagatesReloadTo = "postern-smtpd.service postern-qmgr.service postern-local.service postern-smtp.service";
        StartLimitIntervalSec = 0;
      };
    };

    systemd.sockets = lib.optionalAttrs smtpdListens {
      postern-smtpd = {
        description = "postern SMTP socket (smtpd.listen)";
        partOf = [ "postern.target" ];
        unitConfig = socketUnit;
        inherit (smtpdSocket) listenStreams;
        socketConfig = smtpdSocket.socketConfig // {
          FileDescriptorName = "smtp";
          Service = "postern-smtpd.service";
        };
      };
    } // {
      postern-submit = unixSocket {
        description = "postern local submission socket (sendmail)";
        path = "/run/postern/submit.sock";
        name = "submit";
        service = "postern-smtpd.service";
        mode = "0666";
        owned = false;
      };
      postern-qmgr = unixSocket {
        description = "postern queue manager control socket";
        path = "/run/postern/qmgr.sock";
        name = "qmgr";
        service = "postern-qmgr.service";
      };
      postern-showq = unixSocket {
        description = "postern queue listing socket (mailq)";
        path = "/run/postern/showq.sock";
        name = "showq";
        service = "postern-qmgr.service";
        mode = "0666";
        owned = false;
      };
      postern-local = unixSocket {
        description = "postern local delivery socket";
        path = "/run/postern/local.sock";
        name = "local";
        service = "postern-local.service";
      };
      postern-smtp = unixSocket {
        description = "postern SMTP client socket";
        path = "/run/postern/smtp.sock";
        name = "smtp-client";
        service = "postern-smtp.service";
      };
    };

    systemd.services = {
      postern-smtpd = daemonService {
        role = "smtpd";
        description = "postern SMTP server (smtpd)";
        sockets = lib.optional smtpdListens "postern-smtpd.socket" ++ [ "postern-submit.socket" ];
        requires = [ "postern-submit.socket" ];
        extraUnit = {
          # The TCP socket is wanted, not required, as in systemd/.
          wants = [ "postern-qmgr.socket" ] ++ lib.optional smtpdListens "postern-smtpd.socket";
          after = lib.optional smtpdListens "postern-smtpd.socket" ++ [ "postern-submit.socket" "postern-qmgr.socket" "network.target" ];
        };
        serviceConfig = unprivileged // {
          ReadWritePaths = [ "-/var/spool/postern" ];
          ProtectHome = true;
          # No PrivateUsers=: smtpd names the submitting user by SO_PEERCRED.
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        };
      };

      postern-qmgr = daemonService {
        role = "qmgr";
        description = "postern queue manager (qmgr)";
        sockets = [ "postern-qmgr.socket" "postern-showq.socket" ];
        extraUnit = {
          wants = [ "postern-local.socket" "postern-smtp.socket" ];
          after = [ "postern-qmgr.socket" "postern-showq.socket" "postern-local.socket" "postern-smtp.socket" ];
        };
        serviceConfig = unprivileged // {
          ReadWritePaths = [ "-/var/spool/postern" ];
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
          ReadWritePaths = [ "-/var/mail" "-/var/spool/mail" "-/home" "-/root" ];
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
