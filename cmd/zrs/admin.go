package main

import (
	"context"
	"log/slog"

	"github.com/zrs-replication/zrs/internal/admin"
)

// startAdmin serves the admin endpoint on addr ("" serves nothing) and
// returns the function that stops it.
func startAdmin(ctx context.Context, addr string, node admin.Node, m *admin.Metrics, log *slog.Logger) (stop func(), err error) {
	m.SetNode(node)
	if addr == "" {
		return func() {}, nil
	}
	srv := admin.NewServer(node, m, log)
	if _, err := srv.Listen(ctx, addr); err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := stopContext(ctx)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
