package main

import (
	"context"
	"log/slog"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// listenCounted opens a primary's replication address with its bytes
// counted in m.
func listenCounted(ctx context.Context, p *primary.Primary, addr string, m *admin.Metrics, log *slog.Logger) error {
	ln, err := netaddr.Listen(ctx, addr)
	if err != nil {
		return err
	}
	if err := p.AddListener(m.CountListener(ln)); err != nil {
		ln.Close()
		return err
	}
	log.Info("listening for secondaries", "addr", ln.Addr().String())
	return nil
}

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
