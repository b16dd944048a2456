package main

const helpText = `Usage: zrs-recipe [--site FILE] [--root DIR] [--dry-run] [--force] [--systemctl]
       zrs-recipe import [--name NAME] ZEO.CONF
       zrs-recipe version

zrs-recipe turns a site file into what runs each of its storages as a
systemd service. A site file (default /etc/zrs/site.yaml; an annotated
example is /etc/zrs/site.yaml.example) lists parts, one storage server
each, and defaults that every part inherits unless it sets them itself:

  defaults:
    data_dir: /var/lib/zrs      # a part's file is DATA_DIR/NAME/Data.fs
    log_level: info
    durability: {level: async}  # primaries only
  parts:
    main:
      role: primary             # primary | secondary
      zeo: {address: 127.0.0.1:8100}
      replication: {listen: 0.0.0.0:8101}
      admin: /run/zrs/main.admin
    replica:
      role: secondary
      replication: {from: db1.example.com:8101}
      zeo: {address: 127.0.0.1:8200}

A part takes the keys of the daemon config that "zrs run --config" reads
(role, path, log_level, admin, zeo, replication, durability; see the
example file), plus data_dir and user (default zrs). Addresses are a port,
host:port, or a Unix socket path; those a part listens on must be IP
addresses (systemd binds them), and no two parts may share a port, a
socket path or a data file. A mistake is reported with its line and key:
"site.yaml:12: parts.main.zeo.adress: unknown field".

For each part NAME it writes, under --root (default /):

  /etc/zrs/NAME.yaml                          the daemon config
  /etc/systemd/system/zrs-zeo@NAME.socket     if the part serves ZEO
  /etc/systemd/system/zrs-replication@NAME.socket
                                              if it serves secondaries
  /etc/systemd/system/zrs@NAME.service.d/zrs-recipe.conf
                                              if it runs as another user or
                                              keeps files outside
                                              /var/lib/zrs/NAME and /run/zrs

The service itself is the zrs@.service template the package installs; the
socket units hold the listening ports and hand them to it by name, so a
restart of the service never refuses a connection.

Like a buildout recipe, zrs-recipe remembers what it installed, with a
hash of each file, in /var/lib/zrs-recipe/installed.json under the root.
Running it again changes nothing and says "no changes". Files of a part
(or of a listener) that left the site file are removed. A file it did not
write, or one edited by hand since it wrote it, is never overwritten or
removed: it refuses, changing nothing, unless --force. Removing the units
of a part that are still enabled is refused too, until they are disabled
(or --systemctl disables them).

It prints what it changed and the systemctl commands to run next
(daemon-reload; enable --now for new parts; try-restart for a changed
config, try-reload-or-restart when only its log_level changed; stop,
enable and start when a socket changed). It never runs systemctl unless
--systemctl is given.

  --dry-run    print the unified diff of every change and write nothing
  --force      take over files that were edited or not written by it
  --systemctl  run the systemctl commands itself (only with --root /)

"zrs-recipe import ZEO.CONF" prints the site file equivalent to a Python
ZEO configuration with "%import zc.zrs" and <zrs> (zc.zrs 2.4 and later)
or <primary> and <secondary> (zc.zrs 2.0-2.3) sections; see
"zrs-recipe import --help".

Exit status: 0 success, 1 failure (bad site file, refused change), 2 usage.
`

const importHelp = `Usage: zrs-recipe import [--name NAME] ZEO.CONF

Print, on stdout, a site file equivalent to the Python ZEO configuration
ZEO.CONF, so a zc.zrs site moves to zrs without retyping. It reads the
ZConfig syntax of zeo.conf (sections, "key value" lines, comments,
%import, %define and $NAME substitution; %include and $(NAME), an
environment variable, are refused: paste the file in, replace $(NAME)
with its value or %define it):

  <zeo>           address, transaction-timeout, msgpack and <ssl>
                  (certificate, key, authenticate) become the part's zeo;
                  an <ssl> without key reads it from the certificate file
  <zrs>           zc.zrs 2.4 and later, after "%import zc.zrs":
                  replicate-to becomes replication.listen, replicate-from
                  replication.from (the part is then a secondary, or a
                  relay with both), keep-alive-delay SECONDS
                  replication.keep_alive (on a primary it is dropped, as
                  zc.zrs ignored it there)
  <primary>       zc.zrs 2.0-2.3: address (or replicate-to) is the
                  replication address; filestorage-path the data file
  <secondary>     zc.zrs 2.0-2.3: address (or replicate-from) is the
                  primary's; replicate-to and keep-alive-delay as in <zrs>
  <filestorage>   path becomes the part's path; a section name other
                  than 1 (<filestorage catalog>) becomes zeo.storage
  <eventlog>      level becomes defaults.log_level (so does that of a
                  <logger> without a name; a named one's is a NOTE)

A relative data path or <ssl> file was relative to where runzeo ran: with
zdaemon's <runner> daemon true and an absolute directory, it is taken as
relative to that directory (a NOTE says so); otherwise it is kept as
written, and zrs-recipe refuses it until it is made absolute, so that a
new, empty database never takes the place of the existing one. A path
starting with ~ (the runzeo user's home) is refused. A relative socket
moves to /run/zrs/BASENAME (or /run/zrs/NAME-zeo.sock,
NAME-replication.sock where two different ones would meet there; a
replicate-from naming a socket of the same file follows it, another such
replicate-from is refused). Every part gets admin: /run/zrs/NAME.admin,
for zrs status and zrs promote.

Whatever has no equivalent (logging handlers, zdaemon's <runner>, ZEO
tuning keys, ...) becomes a "# NOTE" comment naming its line. A blob
directory becomes a note and the part's blob_dir, which zrs-recipe
refuses: zrs does not replicate blobs yet, and a database must not move
without them unnoticed. The import itself fails, at the line and saying
what to do instead, on what would weaken access unnoticed: read-only true
on a storage that becomes a primary (run it as a zrs secondary, or drop
read-only knowingly), ZEO 4 authentication-* (zrs has no passwords: use
TLS client certificates, zeo.tls.authenticate), and <ssl>
password-function (zrs needs an unencrypted PEM key).
Each storage becomes a part: NAME (default main), or NAME-STORAGE when the
file has several. If the result still needs editing before zrs-recipe
accepts it, the site file is printed all the same, the problems go to
stderr and the exit status is 1.
`
