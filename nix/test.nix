# NixOS VM test: `server` receives mail for its users on port 25 and
# delivers to ~/Maildir; `client` is a null client that sends everything
# to the server (relay.host = "[server]"). A message sent with sendmail on
# the client must land in alice's Maildir/new on the server.
#
# flake.nix runs it as checks.x86_64-linux.vm-test with
# pkgs.testers.runNixOSTest (import ./nix/test.nix { module = ...; }).
{ module }:
{
  name = "postern";

  nodes = {
    server = { ... }: {
      imports = [ module ];
      services.postern = {
        enable = true;
        openFirewall = true;
        settings = {
          server.hostname = "server";
          local = {
            domains = [ "server" "localhost" ];
            mailbox = "Maildir/";
            alias_files = [ ];
          };
          # The test network is 192.168.1.0/24; the client is trusted.
          relay.networks = [ "127.0.0.0/8" "::1/128" "192.168.1.0/24" ];
          # postern-smtpd.socket listens here (the default is loopback).
          smtpd.listen = [ "0.0.0.0:25" ];
        };
        aliases.postmaster = "root";
      };
      users.users.alice.isNormalUser = true;
    };

    client = { ... }: {
      imports = [ module ];
      services.postern = {
        enable = true;
        settings = {
          server.hostname = "client";
          # Null client: nothing is local, everything goes to the server,
          # and nothing listens on TCP (no postern-smtpd.socket; smtpd
          # serves submit.sock alone).
          local = { domains = [ ]; alias_files = [ ]; };
          relay.host = "[server]";
          smtpd.listen = [ ];
        };
      };
    };
  };

  testScript = ''
    start_all()

    server.wait_for_unit("postern.target")
    server.wait_for_unit("postern-qmgr.service")
    server.wait_for_open_port(25)
    client.wait_for_unit("postern.target")

    # The configuration on disk is the one built and checked.
    server.succeed("postern check --config /etc/postern/postern.toml")
    client.succeed("test -L /run/current-system/sw/bin/sendmail")
    # The null client has no TCP listener, and smtpd runs without one.
    client.fail("systemctl cat postern-smtpd.socket")
    client.succeed("systemctl is-active postern-submit.socket")
    client.wait_for_unit("postern-smtpd.service")

    # Sent the way Dovecot or smartd send: /run/wrappers/bin/sendmail
    # (setSendmail), a wrapper without set-uid or set-gid.
    client.succeed("test -x /run/wrappers/bin/sendmail && test ! -u /run/wrappers/bin/sendmail && test ! -g /run/wrappers/bin/sendmail")
    client.succeed(
        "printf 'From: root@client\\nTo: alice@server\\nSubject: postern vm test\\n\\nhello from the client\\n'"
        " | /run/wrappers/bin/sendmail -t"
    )

    server.wait_until_succeeds("ls /home/alice/Maildir/new/* >&2", timeout=60)
    server.succeed("grep -l 'hello from the client' /home/alice/Maildir/new/*")
    server.succeed("grep -l 'Subject: postern vm test' /home/alice/Maildir/new/*")
    # Nothing left in either queue.
    client.wait_until_succeeds("mailq | grep -qi 'empty'", timeout=30)
  '';
}
