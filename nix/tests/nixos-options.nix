# Stand-ins for the NixOS options nix/module.nix sets, declared with the
# names, nesting and types NixOS gives them (nixos/lib/systemd-unit-options.nix,
# nixos/modules/config/users-groups.nix, system/etc/etc.nix,
# security/wrappers, security/ca.nix, services/mail/mail.nix,
# services/networking/firewall.nix, tasks/network-interfaces.nix,
# misc/assertions.nix), and nothing
# else: a subset of NixOS, so that a definition the module makes and
# NixOS does not have fails this evaluation ("The option ... does not
# exist"). Written for this project; works with nix/tests/minilib.nix and
# with nixpkgs' lib alike.
#
# `caBundle` stands for the store path security.pki.caBundle is on NixOS.
{ caBundle }:
{ lib, ... }:
let
  inherit (lib) mkOption types;

  # A value of a [Unit]/[Service]/[Socket] setting: a scalar, or a list
  # of them (a repeated setting). Definitions of a list concatenate,
  # scalars must agree, as NixOS's systemd `unitOption` merges them.
  atom = x: builtins.isBool x || builtins.isInt x || builtins.isFloat x
    || builtins.isString x || builtins.isPath x || lib.isDerivation x;
  unitOption = lib.mkOptionType {
    name = "systemd option";
    description = "systemd option";
    check = x: atom x || (builtins.isList x && builtins.all atom x);
    merge = loc: defs:
      if builtins.isList (builtins.head defs).value then
        (if builtins.all (d: builtins.isList d.value) defs
         then builtins.concatLists (map (d: d.value) defs)
         else throw "The definitions for systemd unit options should be either all lists or all non-lists (${lib.showOption loc})")
      else lib.mergeEqualOption loc defs;
  };

  listOfUnits = mkOption { type = types.listOf types.str; default = [ ]; };

  # Type= and Restart= take only what systemd knows (NixOS checks them).
  serviceConfigType = types.addCheck (types.attrsOf unitOption) (c:
    builtins.elem (c.Type or "simple") [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ]
    && builtins.elem (c.Restart or "no") [ "no" "on-success" "on-failure" "on-abnormal" "on-watchdog" "on-abort" "always" ]);

  # What every unit of stage 2 has (commonUnitOptions, stage2CommonUnitOptions).
  commonUnitOptions = {
    enable = mkOption { type = types.bool; default = true; };
    description = mkOption { type = types.singleLineStr; default = ""; };
    documentation = mkOption { type = types.listOf types.str; default = [ ]; };
    requires = listOfUnits;
    wants = listOfUnits;
    upholds = listOfUnits;
    after = listOfUnits;
    before = listOfUnits;
    bindsTo = listOfUnits;
    partOf = listOfUnits;
    conflicts = listOfUnits;
    requisite = listOfUnits;
    onFailure = listOfUnits;
    onSuccess = listOfUnits;
    wantedBy = listOfUnits;
    requiredBy = listOfUnits;
    aliases = listOfUnits;
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    startLimitBurst = mkOption { type = types.int; };
    startLimitIntervalSec = mkOption { type = types.int; };
    restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    reloadTriggers = mkOption { type = types.listOf unitOption; default = [ ]; };
  };

  service = types.submodule {
    options = commonUnitOptions // {
      environment = mkOption { type = types.attrsOf (types.nullOr types.str); default = { }; };
      path = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      serviceConfig = mkOption { type = serviceConfigType; default = { }; };
      script = mkOption { type = types.lines; default = ""; };
      scriptArgs = mkOption { type = types.str; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      postStart = mkOption { type = types.lines; default = ""; };
      reload = mkOption { type = types.lines; default = ""; };
      preStop = mkOption { type = types.lines; default = ""; };
      postStop = mkOption { type = types.lines; default = ""; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      reloadIfChanged = mkOption { type = types.bool; default = false; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
    };
  };

  socket = types.submodule {
    options = commonUnitOptions // {
      listenStreams = mkOption { type = types.listOf types.str; default = [ ]; };
      listenDatagrams = mkOption { type = types.listOf types.str; default = [ ]; };
      socketConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    };
  };

  target = types.submodule { options = commonUnitOptions; };

  # security.wrappers.<name> (the type sendmailSetuidWrapper becomes).
  wrapper = types.submodule {
    options = {
      source = mkOption { type = types.path; };
      program = mkOption { type = types.str; };
      owner = mkOption { type = types.str; };
      group = mkOption { type = types.str; };
      permissions = mkOption { type = types.str; default = "u+rx,g+x,o+x"; };
      capabilities = mkOption { type = types.str; default = ""; };
      setuid = mkOption { type = types.bool; default = false; };
      setgid = mkOption { type = types.bool; default = false; };
    };
  };
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; default = [ ]; };

    environment.etc = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = {
          enable = mkOption { type = types.bool; default = true; };
          source = mkOption { type = types.path; };
          text = mkOption { type = types.nullOr types.lines; default = null; };
          target = mkOption { type = types.str; default = ""; };
          mode = mkOption { type = types.str; default = "symlink"; };
        };
      });
    };
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };

    users.users = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = {
          isSystemUser = mkOption { type = types.bool; default = false; };
          isNormalUser = mkOption { type = types.bool; default = false; };
          group = mkOption { type = types.str; default = ""; };
          extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
          description = mkOption { type = types.str; default = ""; };
          home = mkOption { type = types.path; default = "/var/empty"; };
          createHome = mkOption { type = types.bool; default = false; };
          uid = mkOption { type = types.nullOr types.int; default = null; };
        };
      });
    };
    users.groups = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = {
          gid = mkOption { type = types.nullOr types.int; default = null; };
          members = mkOption { type = types.listOf types.str; default = [ ]; };
        };
      });
    };

    systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
    systemd.services = mkOption { type = types.attrsOf service; default = { }; };
    systemd.sockets = mkOption { type = types.attrsOf socket; default = { }; };
    systemd.targets = mkOption { type = types.attrsOf target; default = { }; };

    networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
    # services/networking/networking.nix (read: where the submission
    # listeners go).
    networking.enableIPv6 = mkOption { type = types.bool; default = true; };

    # Untyped in NixOS (services/mail/mail.nix), and assigned to
    # security.wrappers.sendmail: declared here with the wrapper's type.
    services.mail.sendmailSetuidWrapper = mkOption { type = types.nullOr wrapper; default = null; };

    security.pki.caBundle = mkOption { type = types.path; readOnly = true; default = caBundle; };
  };
}
