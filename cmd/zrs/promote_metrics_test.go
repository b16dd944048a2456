package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// A secondary without a relay, promoted, counts the commits made through
// it (what its ZEO server does after promotion) in zrs_commits_total and
// zrs_commit_duration_seconds, as a primary and a promoted relay do.
func TestPromotedSecondaryCountsItsCommits(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "p.fs"), filepath.Join(dir, "s.fs")
	commitSome(t, ppath, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	sock := filepath.Join(dir, "repl.sock")
	p, err := startNode(ctx, nodeOptions{role: config.Primary, path: ppath, replicateTo: sock, log: log})
	if err != nil {
		t.Fatal(err)
	}
	pDone := make(chan error, 1)
	go func() { pDone <- p.run(ctx) }()
	s, err := startNode(ctx, nodeOptions{role: config.Secondary, path: spath, replicateFrom: sock, log: log})
	if err != nil {
		t.Fatal(err)
	}
	sDone := make(chan error, 1)
	go func() { sDone <- s.run(ctx) }()
	defer func() { cancel(); <-sDone; <-pDone }()

	deadline := time.Now().Add(20 * time.Second)
	for s.st.LastTransaction() != p.st.LastTransaction() {
		if time.Now().After(deadline) {
			t.Fatal("no replication")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.status.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	commitOn(t, s.sec, 3)
	if r := s.status.Status().Role; r != "primary" {
		t.Fatalf("role %s", r)
	}
	mfs, err := s.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if n := mf.GetName(); n == "zrs_commits_total" || n == "zrs_role" || n == "zrs_commit_duration_seconds" {
			expfmt.MetricFamilyToText(&b, mf)
		}
	}
	text := b.String()
	if !strings.Contains(text, `zrs_commits_total{result="ok"} 3`) || !strings.Contains(text, "zrs_commit_duration_seconds_count 3") {
		var short []string
		for _, l := range strings.Split(text, "\n") {
			if !strings.Contains(l, "_bucket") && !strings.HasPrefix(l, "#") && l != "" {
				short = append(short, l)
			}
		}
		t.Errorf("after promotion and 3 commits on the promoted secondary, the metrics say:\n%s", strings.Join(short, "\n"))
	}
}

func commitOn(t *testing.T, st zodb.Storage, n int) {
	t.Helper()
	for range n {
		testutil.CommitNew(t, st, zodb.TxnMeta{}, zodb.BeginOptions{}, []byte("data"))
	}
}
