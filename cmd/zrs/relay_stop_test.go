package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/config"
)

// A relay whose downstream secondary holds its stop (connected, never
// closing its end) stops within the daemon's one deadline, as a primary
// does: its storage closed and index saved, no error (exit 0). Its own
// primary layer used to start a deadline of its own on close, so the
// daemon gave up first, failed, and left the index unsaved.
func TestRelayStopHeldByDownstreamSavesIndex(t *testing.T) {
	old := shutdownTimeout
	shutdownTimeout = 2 * time.Second
	defer func() { shutdownTimeout = old }()
	dir := t.TempDir()
	ppath, rpath := filepath.Join(dir, "p.fs"), filepath.Join(dir, "r.fs")
	commitSome(t, ppath, 5)
	log := slog.New(slog.DiscardHandler)
	psock, rsock := filepath.Join(dir, "p.sock"), filepath.Join(dir, "r.sock")
	pctx, pcancel := context.WithCancel(context.Background())
	p, err := startNode(pctx, nodeOptions{role: config.Primary, path: ppath, replicateTo: psock, log: log})
	if err != nil {
		t.Fatal(err)
	}
	pDone := make(chan error, 1)
	go func() { pDone <- p.run(pctx) }()
	defer func() { pcancel(); <-pDone }()
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	r, err := startNode(rctx, nodeOptions{role: config.Secondary, path: rpath, replicateFrom: psock, replicateTo: rsock, log: log})
	if err != nil {
		t.Fatal(err)
	}
	rDone := make(chan error, 1)
	go func() { rDone <- r.run(rctx) }()
	waitUntil(t, "replication", func() bool { return r.st.LastTransaction() == p.st.LastTransaction() })

	conn, err := net.Dial("unix", rsock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := zrsproto.WriteHandshake(conn, zrsproto.Proto20, 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the downstream secondary", func() bool { return len(r.prim.Status().Secondaries) == 1 })

	stoppedAt := time.Now()
	rcancel()
	select {
	case err := <-rDone:
		if err != nil {
			t.Fatalf("relay stop held by a downstream secondary: %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not stop")
	}
	if fi, err := os.Stat(rpath + ".index"); err != nil || fi.ModTime().Before(stoppedAt) {
		t.Fatalf("the relay's index was not saved at the stop: %v %v", fi, err)
	}
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
