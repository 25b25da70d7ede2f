# An example of services.postern.settings and .aliases, as a site would
# write them; nix/render-test.nix renders it and nix/check.sh has postern
# validate the result.
{
  settings = {
    server = {
      hostname = "mail.example.org";
      domain = "example.org";
      user = "postern";
    };
    local = {
      domains = [ "$hostname" "localhost.$domain" "localhost" ];
      mailbox = "Maildir/";
      alias_files = [ ];
      recipient_delimiter = "+";
    };
    relay = {
      networks = [ "127.0.0.0/8" "::1/128" "192.168.1.0/24" ];
    };
    queue.directory = "/var/spool/postern";
    smtpd = {
      # IPv6 and IPv4 (postern-smtpd.socket gets BindIPv6Only=both).
      listen = [ "[::]:25" ];
      message_size_limit = 10240000;
      vrfy = false;
      banner = "$hostname ESMTP \"postern\" (escaped quotes)";
    };
  };
  aliases = {
    postmaster = "root";
    root = [ "alice" "bob@example.net" ];
    "list-owner" = "alice";
  };
}
