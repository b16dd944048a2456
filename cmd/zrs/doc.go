// Command zrs is the zrs daemon and its operator tools: ZODB replication
// between FileStorage databases, speaking the ZEO and zc.zrs protocols.
//
// Usage:
//
//	zrs <command> [flags] [args]
//
// Commands available in this release:
//
//	zrs fs verify [--progress] PATH   check a Data.fs; exit 1 naming the first bad offset
//	zrs fs dump [--json] PATH         print a Data.fs like ZODB's fsdump, or as JSON lines
//	zrs version                       print the version
//
// The daemon commands (primary, secondary, run, status, promote) are
// reserved: they exit with status 2 and say they are not yet available.
//
// Exit status: 0 success, 1 failure, 2 usage error or unavailable command.
package main
