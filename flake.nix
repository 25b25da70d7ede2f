{
  description = "postern, a mail transfer agent: package, NixOS module and VM test";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      module = { pkgs, lib, ... }: {
        imports = [ ./nix/module.nix ];
        # The package from this flake, unless the configuration says otherwise.
        services.postern.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
    in
    {
      packages.${system} = rec {
        postern = pkgs.callPackage ./nix/package.nix { };
        default = postern;
      };

      nixosModules = {
        postern = module;
        default = module;
      };

      checks.${system} = {
        package = self.packages.${system}.default;
        vm-test = pkgs.testers.runNixOSTest (import ./nix/test.nix { inherit module; });
      };
    };
}
