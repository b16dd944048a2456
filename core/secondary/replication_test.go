package secondary_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// replicate runs 200 commits on a primary with a live secondary on the
// given address form and checks the files end byte-identical.
func replicate(t *testing.T, listen func(dir string) string) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, listen(dir))
	s := startSecondary(t, spath, p.addr, secondary.Options{})
	w := newWorkload(t, p)
	w.run(100)
	waitFor(t, "a connected secondary", func() bool { return len(p.Status().Secondaries) == 1 })
	w.run(100)
	waitCaughtUp(t, p, s)

	st := s.Status()
	if !st.Connected || st.LastTransaction != p.LastTransaction() || st.Primary != p.addr {
		t.Errorf("secondary status %+v, primary last %s", st, p.LastTransaction())
	}
	ps := p.Status().Secondaries
	if len(ps) != 1 || ps[0].LastSent != p.LastTransaction() || ps[0].Proto != "zrs3" || ps[0].Peer == "" || ps[0].ConnectedSince.IsZero() {
		t.Errorf("primary status %+v", ps)
	}
	// Loads through the read-only secondary see the primary's data.
	ctx := context.Background()
	for _, oid := range w.oids {
		want, wser, err := p.Load(ctx, oid)
		if err != nil {
			t.Fatal(err)
		}
		got, gser, err := s.Load(ctx, oid)
		if err != nil || string(got) != string(want) || gser != wser {
			t.Fatalf("secondary load %s = %q %s %v, want %q %s", oid, got, gser, err, want, wser)
		}
	}
	s.close()
	p.close()
	sameFile(t, ppath, spath)
}

func TestReplicateTCP(t *testing.T) {
	replicate(t, func(string) string { return "127.0.0.1:0" })
}

func TestReplicateUnixSocket(t *testing.T) {
	replicate(t, func(dir string) string { return filepath.Join(dir, "primary.sock") })
}

// An in-memory listener and dialer (the seams tests use) carry the
// protocol as well.
func TestReplicatePipe(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := primary.New(openFS(t, ppath), primary.Options{})
	ln := newPipeListener()
	if err := p.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Serve(context.Background()) }()
	s := startSecondary(t, spath, "pipe", secondary.Options{Dialer: ln})
	newWorkload(t, p).run(30)
	waitCaughtUp(t, p, s)
	s.close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sameFile(t, ppath, spath)
}

// A secondary is read-only to its clients.
func TestSecondaryReadOnly(t *testing.T) {
	s := secondary.New(openFS(t, filepath.Join(t.TempDir(), "s.fs")), "8100", secondary.Options{})
	defer s.Close()
	if _, err := s.Begin(context.Background(), zodb.TxnMeta{}, zodb.BeginOptions{}); !errors.Is(err, zodb.ErrReadOnly) {
		t.Errorf("Begin: %v, want ErrReadOnly", err)
	}
	if _, err := s.NewOid(context.Background()); !errors.Is(err, zodb.ErrReadOnly) {
		t.Errorf("NewOid: %v, want ErrReadOnly", err)
	}
	if !s.ReadOnly() {
		t.Error("ReadOnly() = false")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, zodb.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

// A secondary closed mid-stream and reopened resumes from its last
// transaction and ends identical.
func TestSecondaryRestartResumes(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	w := newWorkload(t, p)
	w.run(150)
	s := startSecondary(t, spath, p.addr, secondary.Options{})
	waitFor(t, "some transactions replicated", func() bool { return s.LastTransaction() != 0 })
	s.close() // likely mid-stream: the open transaction is aborted
	mid := s.LastTransaction()
	w.run(50)
	s2 := startSecondary(t, spath, p.addr, secondary.Options{})
	waitCaughtUp(t, p, s2)
	if ps := p.Status().Secondaries; len(ps) != 1 || ps[0].Start != mid {
		t.Errorf("resumed connection started from %+v, want %s", ps, mid)
	}
	s2.close()
	p.close()
	sameFile(t, ppath, spath)
}

// A primary restarted under a running secondary is reconnected to.
func TestPrimaryRestartReconnects(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	sock := filepath.Join(dir, "p.sock")
	p := startPrimary(t, ppath, sock)
	s := startSecondary(t, spath, sock, secondary.Options{})
	newWorkload(t, p).run(20)
	waitCaughtUp(t, p, s)
	p.close()
	waitFor(t, "the secondary to notice", func() bool { return !s.Status().Connected })
	time.Sleep(50 * time.Millisecond) // a few refused attempts

	p2 := startPrimary(t, ppath, sock)
	newWorkload(t, p2).run(20)
	waitCaughtUp(t, p2, s)
	s.close()
	p2.close()
	sameFile(t, ppath, spath)
}

// A secondary ahead of its primary is refused and applies nothing.
func TestSecondaryAheadRefused(t *testing.T) {
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	p := startPrimary(t, ppath, "127.0.0.1:0")
	newWorkload(t, p).run(10)
	// The secondary's file has later (different) transactions.
	sst := openFS(t, spath)
	newWorkload(t, sst).run(20)
	ahead := sst.LastTransaction()
	sst.Close()
	if p.LastTransaction() >= ahead {
		t.Fatal("test set-up: primary is not behind")
	}
	s := startSecondary(t, spath, p.addr, secondary.Options{})
	waitFor(t, "a refusal", func() bool { return s.Status().LastError != "" })
	if e := s.Status().LastError; !strings.Contains(e, "refused by the primary") {
		t.Fatalf("last error %q: not the primary's refusal", e)
	}
	time.Sleep(100 * time.Millisecond) // several refused attempts
	if got := s.LastTransaction(); got != ahead {
		t.Fatalf("secondary applied something: last %s, was %s", got, ahead)
	}
	if n := len(p.Status().Secondaries); n != 0 {
		t.Errorf("primary lists %d secondaries, want 0", n)
	}
}

// keepAliveCounter counts the empty frames (keep-alives) written on a
// connection.
type keepAliveCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c keepAliveCounter) Write(b []byte) (int, error) {
	if bytes.Equal(b, []byte{0, 0, 0, 0}) {
		c.n.Add(1)
	}
	return c.Conn.Write(b)
}

// The secondary sends keep-alives, over either protocol, and the primary
// accepts them.
func TestKeepAlive(t *testing.T) {
	for _, proto := range []secondary.Protocol{secondary.ProtoZRS2, secondary.ProtoNative} {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			p := startPrimary(t, filepath.Join(dir, "primary.fs"), "127.0.0.1:0")
			var sent atomic.Int64
			dial, dials := wrapFirstDial(p.addr, func(c net.Conn) net.Conn { return keepAliveCounter{c, &sent} })
			s := startSecondary(t, filepath.Join(dir, "secondary.fs"), p.addr,
				secondary.Options{KeepAlive: time.Millisecond, Protocol: proto, Dialer: dial})
			waitFor(t, "a connected secondary", func() bool { return len(p.Status().Secondaries) == 1 })
			waitFor(t, "ten keep-alives", func() bool { return sent.Load() >= 10 })
			newWorkload(t, p).run(10)
			waitCaughtUp(t, p, s)
			if ps := p.Status().Secondaries; len(ps) != 1 || dials.Load() != 1 {
				t.Fatalf("secondary dropped after keep-alives (%d connections): %+v", dials.Load(), ps)
			}
		})
	}
}

// OnCommit and the commit watcher (a replica's ZEO invalidations) report
// each applied transaction with exactly the oids it wrote.
func TestOnCommit(t *testing.T) {
	dir := t.TempDir()
	p := startPrimary(t, filepath.Join(dir, "primary.fs"), "127.0.0.1:0")
	var mu sync.Mutex
	onCommit, watched := map[zodb.Tid][]zodb.Oid{}, map[zodb.Tid][]zodb.Oid{}
	record := func(m map[zodb.Tid][]zodb.Oid) func(zodb.Tid, []zodb.Oid) {
		return func(tid zodb.Tid, oids []zodb.Oid) {
			mu.Lock()
			defer mu.Unlock()
			m[tid] = append([]zodb.Oid(nil), oids...)
		}
	}
	s := startSecondary(t, filepath.Join(dir, "secondary.fs"), p.addr, secondary.Options{OnCommit: record(onCommit)},
		func(s *secondary.Secondary) { s.WatchCommits(record(watched)) })
	newWorkload(t, p).run(30) // creations, updates, a delete, undos
	waitCaughtUp(t, p, s)
	it, err := p.Iterate(context.Background(), 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	want := map[zodb.Tid][]zodb.Oid{}
	for {
		info, err := it.Next(context.Background())
		if err != nil {
			break
		}
		for _, r := range info.Records {
			want[info.Tid] = append(want[info.Tid], r.Oid)
		}
		if info.Records == nil {
			want[info.Tid] = nil
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(want) != 30 {
		t.Fatalf("the primary has %d transactions, want 30", len(want))
	}
	for name, got := range map[string]map[zodb.Tid][]zodb.Oid{"OnCommit": onCommit, "the commit watcher": watched} {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s reported\n%v\nwant\n%v", name, got, want)
		}
	}
}
