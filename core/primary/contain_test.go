package primary

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/core/zrsproto"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// faultyIterStorage hands out iterators that panic, as a bug in zrs
// would, while panics is set.
type faultyIterStorage struct {
	Storage
	panics atomic.Bool
}

func (s *faultyIterStorage) Iterate(ctx context.Context, start, stop zodb.Tid) (zodb.TxnIterator, error) {
	it, err := s.Storage.Iterate(ctx, start, stop)
	if err != nil || !s.panics.Load() {
		return it, err
	}
	return faultyIter{it}, nil
}

type faultyIter struct{ zodb.TxnIterator }

func (faultyIter) Next(context.Context) (*zodb.TxnInfo, error) { panic("injected fault in Next") }

// A panic streaming to one secondary (a bug in zrs) ends that stream
// only: the primary goes on committing and streaming to the next
// secondary, and shuts down cleanly (serve's clean-up).
func TestInternalErrorEndsOnlyThatStream(t *testing.T) {
	st := &faultyIterStorage{Storage: openTestFS(t)}
	logs := &testutil.SyncBuffer{}
	p := serveStorage(t, st, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var observed atomic.Int64
	p.ObserveInternalErrors(func() { observed.Add(1) })
	tid1 := commit(t, p, 10)

	st.panics.Store(true)
	c := dial(t, p.addr, []byte(zrsproto.Proto21), tidBytes(0))
	if got, _ := readAll(t, c, 0); len(got) != 0 {
		t.Fatalf("the failing stream sent %v", got)
	}
	st.panics.Store(false)
	// The connection closes as the panic unwinds the stream, before the
	// recovery logs it and the stream leaves the primary's list.
	deadline := time.Now().Add(converge)
	for observed.Load() == 0 || len(p.Status().Secondaries) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("internal errors observed: %d, secondaries listed: %+v", observed.Load(), p.Status().Secondaries)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, want := range []string{"internal error while streaming to the secondary", "injected fault in Next", "contain_test.go"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if n := observed.Load(); n != 1 {
		t.Errorf("internal errors observed: %d, want 1", n)
	}

	tid2 := commit(t, p, 10)
	c = dial(t, p.addr, []byte(zrsproto.Proto21), tidBytes(0))
	zrsproto.WriteFrame(c, []byte("x")) // ends the stream once caught up
	got, err := readAll(t, c, 0)
	if len(got) != 2 || got[0] != tid1 || got[1] != tid2 {
		t.Fatalf("the next secondary got %v (%v), want %v %v", got, err, tid1, tid2)
	}
}
