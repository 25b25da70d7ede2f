{
  description = "postern, a mail transfer agent: package, NixOS module and VM test";

  # No flake.lock in the tree: it needs the network to nixpkgs. Lock it
  # with `nix flake lock` (nix/README.md).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      # postern is Linux-only (Landlock, systemd); both 64-bit platforms
      # NixOS runs mail servers on.
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      module = { pkgs, lib, ... }: {
        imports = [ ./nix/module.nix ];
        # The package from this flake for the system's own platform, unless
        # the configuration says otherwise.
        services.postern.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
    in
    {
      packages = forAllSystems (pkgs: rec {
        postern = pkgs.callPackage ./nix/package.nix { };
        default = postern;
      });

      nixosModules = {
        postern = module;
        default = module;
      };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        vm-test = pkgs.testers.runNixOSTest (import ./nix/test.nix { inherit module; });
      });
    };
}
