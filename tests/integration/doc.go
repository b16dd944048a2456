// Package integration holds the replication acceptance tests: real
// processes (the zrs binary, and this package's test binary re-executed as
// a committing primary) killed, stopped and cut off through the fault
// proxy, with every file checked against its primary afterwards. It has
// no code of its own; everything is in the _test.go files.
package integration
