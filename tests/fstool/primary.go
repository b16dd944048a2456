package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/admin"
)

// runServePrimary is "fstool serve-primary PATH --replicate-to ADDR
// [--admin ADDR] [--txns N] [--commit-every D]": a primary (core/primary
// around a FileStorage, as "zrs primary" runs it) that is also its own
// writer, since zrs has no ZEO server yet. It commits N transactions, one
// every D, through the primary, so connected secondaries receive them
// live; prints one JSON line when done; and keeps serving until SIGINT or
// SIGTERM, then shuts down like "zrs primary".
func runServePrimary(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("serve-primary", flag.ContinueOnError)
	to := fl.String("replicate-to", "", "listen for secondaries on ADDR")
	adm := fl.String("admin", "", "serve the admin endpoint on ADDR")
	ntx := fl.Int("txns", 50, "number of transactions to commit")
	every := fl.Duration("commit-every", 20*time.Millisecond, "pause between commits")
	if len(args) == 0 {
		return fmt.Errorf("serve-primary: want PATH")
	}
	path := args[0]
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("serve-primary: --replicate-to ADDR is required")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := fs.Open(path, fs.Options{Create: true, Logger: log})
	if err != nil {
		return err
	}
	p := primary.New(st, primary.Options{Logger: log})
	defer p.Close()
	if _, err := p.Listen(ctx, *to); err != nil {
		return err
	}
	m := admin.NewMetrics()
	m.ObservePrimary(p)
	node := &admin.PrimaryNode{Primary: p, Path: path}
	m.SetNode(node)
	if *adm != "" {
		srv := admin.NewServer(node, m, log)
		if _, err := srv.Listen(ctx, *adm); err != nil {
			return err
		}
		defer srv.Shutdown(context.Background())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- p.Serve(ctx) }()

	n, err := commitCounters(ctx, p, *ntx, *every)
	if err != nil {
		return err
	}
	if err := printJSON(map[string]any{"path": path, "committed": n, "last_tid": p.LastTransaction().String()}); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		return err
	}
	<-serveErr
	return nil
}

// demoObjects is how many objects the writer updates in turn.
const demoObjects = 5

// commitCounters commits n transactions through st: the first creates a
// root PersistentMapping referencing demoObjects mappings, each later one
// updates one of them. It stops early (without error) when ctx ends.
func commitCounters(ctx context.Context, st zodb.Storage, n int, every time.Duration) (int, error) {
	serial := map[zodb.Oid]zodb.Tid{}
	var oids []zodb.Oid
	commit := func(desc string, recs map[zodb.Oid][]byte) error {
		txn, err := st.Begin(ctx, zodb.TxnMeta{User: []byte("/ demo"), Description: []byte(desc)}, zodb.BeginOptions{})
		if err != nil {
			return err
		}
		for oid, data := range recs {
			if err := txn.Store(oid, serial[oid], data); err != nil {
				txn.Abort()
				return err
			}
		}
		if err := txn.Vote(ctx); err != nil {
			txn.Abort()
			return err
		}
		tid, err := txn.Finish(ctx)
		if err != nil {
			return err
		}
		for oid := range recs {
			serial[oid] = tid
		}
		return nil
	}
	if st.LastTransaction() != 0 {
		return 0, fmt.Errorf("serve-primary: the database is not empty (the demo writer creates its own root)")
	}
	root := map[any]any{}
	recs := map[zodb.Oid][]byte{}
	for i := range demoObjects {
		oid, err := st.NewOid(ctx)
		if err != nil {
			return 0, err
		}
		if oid == 0 { // the root's oid
			if oid, err = st.NewOid(ctx); err != nil {
				return 0, err
			}
		}
		oids = append(oids, oid)
		root[fmt.Sprintf("counter%d", i)] = persistentRef(oid)
		recs[oid] = mappingRecord(map[any]any{"n": int64(0)})
	}
	recs[0] = mappingRecord(root)
	if err := commit("demo: create the root and counters", recs); err != nil {
		return 0, err
	}
	done := 1
	for ; done < n; done++ {
		select {
		case <-ctx.Done():
			return done, nil
		case <-time.After(every):
		}
		oid := oids[done%demoObjects]
		rec := mappingRecord(map[any]any{"n": int64(done), "note": fmt.Sprintf("update %d", done)})
		if err := commit(fmt.Sprintf("demo: update %d", done), map[zodb.Oid][]byte{oid: rec}); err != nil {
			return done, err
		}
	}
	return done, nil
}
