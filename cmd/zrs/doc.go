// Command zrs is the zrs daemon and its operator tools: ZODB replication
// between FileStorage databases, speaking the ZEO and zc.zrs protocols.
//
// Usage:
//
//	zrs <command> [flags] [args]
//
// Commands:
//
//	zrs fs verify [--progress] [--strict] PATH   check a Data.fs; exit 1 naming the first bad offset
//	zrs fs dump [--json] PATH         print a Data.fs like ZODB's fsdump, or as JSON lines
//	zrs primary PATH --replicate-to ADDR [--zeo ADDR]     serve commits to secondaries (and ZEO clients)
//	zrs secondary PATH --replicate-from ADDR [--zeo ADDR] replicate a primary (and serve it read-only)
//	zrs run --config FILE.yaml        a primary or secondary from a config file, as systemd runs it
//	zrs status ADDR / zrs promote ADDR   ask a daemon's admin endpoint
//	zrs version                       print the version
//
// "zrs primary", "zrs secondary" and "zrs run" build and stop their node
// through one code path (node.go); "zrs run" adds systemd socket
// activation (activation.go) and sd_notify (notify.go), both through
// github.com/coreos/go-systemd/v22 rather than by hand. Matching passed
// sockets to the config by address is ours: the library only hands over
// the sockets and their names.
//
// Exit status: 0 success, 1 failure, 2 usage error or unavailable command.
package main
