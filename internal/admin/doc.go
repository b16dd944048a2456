// Package admin is the HTTP admin endpoint of the zrs daemons and its
// client, used by "zrs status" and "zrs promote".
//
// A daemon started with --admin ADDR (a port, host:port, or a Unix socket
// path containing "/"; HTTP over the socket) serves:
//
//	GET  /status   the node's Status as JSON
//	GET  /metrics  Prometheus metrics (names in docs/OPERATIONS.md)
//	POST /promote  promote a secondary to primary; the new Status as JSON,
//	               409 Conflict if the node is not a secondary
//
// The endpoint has no authentication: bind it to loopback or a Unix
// socket whose directory permissions restrict who may promote.
package admin
