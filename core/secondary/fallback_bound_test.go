package secondary_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/faultproxy"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// fallenBack starts a secondary (ProtoAuto, fall-back period retry)
// through a proxy that closes its first connections unanswered, as a zrs
// primary does while it restarts, so that it falls back to zrs2.0; the
// primary is then back.
func fallenBack(t *testing.T, p *runningPrimary, retry time.Duration) (*runningSecondary, *faultproxy.Proxy) {
	t.Helper()
	px := startProxy(t, p.addr)
	px.Refuse(true)
	s := startSecondary(t, filepath.Join(t.TempDir(), "s.fs"), px.Addr(), secondary.Options{NativeRetry: retry})
	waitFor(t, "two closed handshakes", func() bool { return px.Stats().Refused >= 2 })
	px.Refuse(false)
	waitFor(t, "a zrs2.0 connection", func() bool { return s.Status().Connected && s.NativeStatus().Proto == "zrs2.0" })
	return s, px
}

// A fall-back to zrs2.0 from a zrs primary that closed two handshakes
// while restarting ends with its period, even on a connection that is
// still open: the secondary goes back to zrs3 (heartbeats, acks).
// Otherwise a silent stall of that connection, which zrs2.0 cannot notice,
// would keep it for ever.
func TestFallbackEndsWithItsPeriod(t *testing.T) {
	p := startPrimaryWith(t, filepath.Join(t.TempDir(), "p.fs"), "127.0.0.1:0", primary.Options{HeartbeatInterval: 50 * time.Millisecond})
	w := newWorkload(t, p)
	w.run(5)
	s, px := fallenBack(t, p, 300*time.Millisecond)
	accepted := px.Stats().Accepted
	px.Stall(faultproxy.ServerToClient, true) // a silent partition, which zrs2.0 cannot see
	w.run(3)
	waitFor(t, "the secondary to leave the stalled zrs2.0 connection", func() bool { return px.Stats().Accepted > accepted })
	px.Stall(faultproxy.ServerToClient, false)
	waitFor(t, "a zrs3 connection", func() bool { return s.NativeStatus().Proto == "zrs3" })
	waitCaughtUp(t, p, s)
}

// With sync durability, the fall-back's end brings the acknowledgements
// back: sync commits succeed again without restarting the secondary.
func TestFallbackEndRestoresSyncCommits(t *testing.T) {
	p := startPrimaryWith(t, filepath.Join(t.TempDir(), "p.fs"), "127.0.0.1:0", primary.Options{
		Durability: primary.Durability{Mode: primary.Sync, Quorum: 1, Timeout: 2 * time.Second}})
	fallenBack(t, p, 300*time.Millisecond)
	ctx := context.Background()
	for i := range 3 {
		oid, err := p.NewOid(ctx)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := p.Begin(ctx, zodb.TxnMeta{}, zodb.BeginOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Store(oid, 0, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			t.Fatalf("sync commit %d with the only secondary fallen back: %v", i, err)
		}
	}
}

// Against a healthy zc.zrs primary the fall-back's end is routine: zrs3
// is tried again, closed, and zrs2.0 resumes, without a warning or a new
// error in the status each period.
func TestFallbackEndIsQuietWithZcZrs(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "primary.fs"), "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(3)
	logs := &testutil.SyncBuffer{}
	s := startSecondary(t, filepath.Join(dir, "secondary.fs"), zcLikePrimary(t, p.addr), secondary.Options{
		NativeRetry: 100 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	waitCaughtUp(t, p, s)
	startup, startErr := strings.Count(logs.String(), "level=WARN"), s.Status().LastError
	waitFor(t, "three fall-back periods", func() bool {
		return strings.Count(logs.String(), "the zrs2.0 fall-back period is over") >= 3
	})
	w.run(1)
	waitCaughtUp(t, p, s)
	if n := strings.Count(logs.String(), "level=WARN"); n != startup || s.Status().LastError != startErr {
		t.Fatalf("%d WARN lines after the first %d, last_error %q (was %q):\n%s", n-startup, startup, s.Status().LastError, startErr, logs)
	}
}
