package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

// startAdmin serves the admin endpoint on ln (nil serves nothing) and
// returns the function that stops it.
func startAdmin(ln net.Listener, node admin.Node, m *admin.Metrics, log *slog.Logger) (stop func(context.Context), err error) {
	m.SetNode(node)
	if ln == nil {
		return func(context.Context) {}, nil
	}
	srv := admin.NewServer(node, m, log)
	if err := srv.Serve(ln); err != nil {
		return nil, fmt.Errorf("admin endpoint (--admin, admin): %w", err)
	}
	return func(sctx context.Context) {
		// A few seconds, not the whole stop deadline: the primary's
		// secondaries, stopped next, need what is left of it.
		ctx, cancel := context.WithTimeout(sctx, adminStopTimeout)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// adminStopTimeout bounds how long a stop waits for admin requests in
// progress (a status or metrics scrape takes milliseconds).
const adminStopTimeout = 3 * time.Second
