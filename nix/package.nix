# postern, built from this source tree with the crates pinned by
# Cargo.lock. `nix build .#default` (flake.nix), or
# `pkgs.callPackage ./nix/package.nix { }`.
{ lib
, stdenv
, rustPlatform
, installShellFiles
, pkg-config
, pcre2
}:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = "postern";
  inherit (cargoToml.package) version;

  # The tree without build outputs; bench/ stays, it is a workspace member
  # Cargo.lock covers.
  src = lib.cleanSourceWith {
    src = lib.cleanSource ../.;
    filter = path: type:
      let base = baseNameOf path; in
      !(type == "directory" && base == "target")
      && !(lib.hasPrefix "result" base);
  };

  cargoLock.lockFile = ../Cargo.lock;

  # pcre2-sys links the system's libpcre2 through pkg-config.
  nativeBuildInputs = [ installShellFiles pkg-config ];
  buildInputs = [ pcre2 ];

  # The unit tests only: tests/e2e runs systemd-analyze, starts daemons and
  # binds sockets, which the build sandbox does not allow.
  cargoTestFlags = [ "--lib" ];

  # Manual pages (postern(8) and its subcommands, sendmail(1), mailq(1),
  # newaliases(1), postern.toml(5)) and completions come from the clap
  # definitions, so the binary has to run on the build machine.
  postInstall = ''
    ln -s postern $out/bin/sendmail
    ln -s postern $out/bin/mailq
    ln -s postern $out/bin/newaliases
  '' + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    $out/bin/postern generate man $TMPDIR/man
    installManPage $TMPDIR/man/*
    for shell in bash zsh fish; do
      $out/bin/postern generate completions $shell $TMPDIR/completions/$shell
    done
    installShellCompletion --cmd postern \
      --bash $TMPDIR/completions/bash/postern.bash \
      --zsh $TMPDIR/completions/zsh/_postern \
      --fish $TMPDIR/completions/fish/postern.fish
  '';

  meta = {
    description = "Mail transfer agent with separate smtpd, qmgr, local and smtp daemons, a Postfix successor";
    longDescription = ''
      postern receives mail over SMTP and from the sendmail command, keeps
      it in a durable append-only queue and delivers it to local Maildirs
      and mboxes or to other hosts. It provides sendmail, mailq and
      newaliases.
    '';
    mainProgram = "postern";
    platforms = lib.platforms.linux;
    license = with lib.licenses; [ mit asl20 ];
  };
}
