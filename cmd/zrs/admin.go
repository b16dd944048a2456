package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

// adminEndpoint is the admin endpoint of a starting daemon: it serves
// from before the storage opens (answering that the daemon is starting)
// until stop.
type adminEndpoint struct {
	srv *admin.Server // nil without an admin address
	m   *admin.Metrics
}

// startAdmin serves the admin endpoint on ln (nil serves nothing) before
// there is a node to report on; ready gives it one.
func startAdmin(ln net.Listener, m *admin.Metrics, log *slog.Logger) (*adminEndpoint, error) {
	a := &adminEndpoint{m: m}
	if ln == nil {
		return a, nil
	}
	srv := admin.NewServer(nil, m, log)
	if err := srv.Serve(ln); err != nil {
		return nil, fmt.Errorf("admin endpoint (--admin, admin): %w", err)
	}
	a.srv = srv
	return a, nil
}

// ready makes the endpoint and the metrics report node.
func (a *adminEndpoint) ready(node admin.Node) {
	a.m.SetNode(node)
	if a.srv != nil {
		a.srv.SetNode(node)
	}
}

// stop stops the endpoint: a few seconds for requests in progress, not
// the whole stop deadline (the primary's secondaries, stopped next, need
// what is left of it).
func (a *adminEndpoint) stop(sctx context.Context) {
	if a.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(sctx, adminStopTimeout)
	defer cancel()
	a.srv.Shutdown(ctx)
}

// adminStopTimeout bounds how long a stop waits for admin requests in
// progress (a status or metrics scrape takes milliseconds).
const adminStopTimeout = 3 * time.Second
