package secondary_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/secondary"
)

// slowClose holds the storage's Close (say, the index of a big file being
// saved) until released.
type slowClose struct {
	*fs.FileStorage
	entered, release chan struct{}
}

func (s *slowClose) Close() error {
	close(s.entered)
	<-s.release
	return s.FileStorage.Close()
}

// Close holds promoteMu for the whole close of the storage,
// so PromotedAt (GET /status, /metrics, the systemd STATUS) of a promoted
// secondary hangs until the index is saved. It did not before cbbce79.
func TestPromotedAtDoesNotWaitForClose(t *testing.T) {
	dir := t.TempDir()
	st := &slowClose{FileStorage: openFS(t, filepath.Join(dir, "s.fs")), entered: make(chan struct{}), release: make(chan struct{})}
	s := secondary.New(st, filepath.Join(dir, "nobody.sock"), secondary.Options{Logger: testLogger(t)})
	if err := s.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-st.entered
	got := make(chan time.Time, 1)
	go func() { got <- s.PromotedAt() }()
	select {
	case at := <-got:
		if at.IsZero() {
			t.Error("PromotedAt is zero on a promoted secondary")
		}
	case <-time.After(time.Second):
		t.Error("PromotedAt blocked while Close was closing the storage")
		defer func() { <-got }()
	}
	close(st.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
