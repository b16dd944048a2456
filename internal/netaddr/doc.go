// Package netaddr parses the replication addresses of the zrs command line
// and configuration, in the forms zc.zrs accepts:
//
//   - a port alone ("8100"): listen on every interface, or dial localhost;
//   - "host:port" ("primary.example:8100", "[::1]:8100"): TCP;
//   - a path containing "/" ("./primary.sock", "/run/zrs/db.sock"): a
//     Unix-domain stream socket.
//
// Listen and Dial open the address; Listen on a Unix socket replaces a
// stale socket file left by a process that died, but refuses one that a
// live process is serving.
package netaddr
