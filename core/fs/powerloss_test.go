package fs_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// diskModel is Data.fs as a disk that loses its power keeps it. A process
// kill cannot show a missing or misplaced fsync, because the page cache
// survives the kill; this model can. It records, in order, every write a
// commit makes (each once it has returned) and how many of them the last
// completed fsync covered: those taken before the fsync began. What the
// model calls durable is therefore never more than what the disk has.
type diskModel struct {
	mu      sync.Mutex
	base    []byte // the file when the model started, all of it fsynced
	writes  []diskWrite
	durable int // writes[:durable] are on the disk
}

type diskWrite struct {
	off int64
	p   []byte
}

// attach records s's commit writes and fsyncs; each fsync first waits
// delay, as a disk slower than this machine's would, so that commits
// finish while it runs.
func (m *diskModel) attach(t *testing.T, s *fs.FileStorage, path string, delay time.Duration) {
	t.Helper()
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m.base = base
	fs.SetWriteAt(s, func(real func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
		n, err := real(p, off)
		if err == nil {
			m.mu.Lock()
			m.writes = append(m.writes, diskWrite{off, bytes.Clone(p)})
			m.mu.Unlock()
		}
		return n, err
	})
	fs.SetFsync(s, func(real func() error) error {
		m.mu.Lock()
		covered := len(m.writes)
		m.mu.Unlock()
		time.Sleep(delay)
		if err := real(); err != nil {
			return err
		}
		m.mu.Lock()
		m.durable = max(m.durable, covered)
		m.mu.Unlock()
		return nil
	})
}

// onDisk returns how many writes are durable now.
func (m *diskModel) onDisk() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.durable
}

// image returns the file a power loss would leave if the disk held the
// first n writes, in the order they were made.
func (m *diskModel) image(n int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	img := bytes.Clone(m.base)
	for _, w := range m.writes[:n] {
		if end := w.off + int64(len(w.p)); end > int64(len(img)) {
			img = append(img, make([]byte, end-int64(len(img)))...)
		}
		copy(img[w.off:], w.p)
	}
	return img
}

// Power loss under group commit: every commit that returned is in what
// the disk held when its Finish returned, and that file — or that file
// with any number of the later writes on top, as a disk writing back in
// order would leave it — opens, keeps every commit acknowledged by then,
// and verifies.
func TestPowerLossKeepsAcknowledgedCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s := stOpen(t, path, fs.Options{})
	defer s.Close()
	const counter = zodb.Oid(0)
	stCommit(t, s, stWrite{counter, 0, []byte("0")})
	var m diskModel
	m.attach(t, s, path, time.Millisecond)

	type ack struct {
		tid    zodb.Tid
		onDisk int // durable writes when Finish returned
	}
	const workers, rounds = 8, 20
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []ack
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			own := zodb.Oid(100 + w)
			var ownSerial zodb.Tid
			for i := range rounds {
				tid, err := commitWithRetry(s, counter, i%4 == 0, own, ownSerial, fmt.Appendf(nil, "w%d r%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				n := m.onDisk()
				ownSerial = tid
				mu.Lock()
				acked = append(acked, ack{tid, n})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// keeps opens a crash image and checks that it holds every commit
	// acknowledged with at most n writes on the disk.
	dir := t.TempDir()
	keeps := func(name string, img []byte, n int) {
		t.Helper()
		p := filepath.Join(dir, name, "Data.fs")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := fs.Open(p, fs.Options{})
		if err != nil {
			t.Fatalf("%s: open after power loss: %v", name, err)
		}
		have := map[zodb.Tid]bool{}
		for _, tid := range iterTids(t, c) {
			have[tid] = true
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for _, a := range acked {
			if a.onDisk <= n && !have[a.tid] {
				t.Fatalf("%s: commit %s was acknowledged with %d writes on the disk, and is lost with %d", name, a.tid, a.onDisk, n)
			}
		}
		if _, err := fs.Verify(bg, p, fs.VerifyOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var points []int
	for _, a := range acked {
		points = append(points, a.onDisk)
	}
	slices.Sort(points)
	points = slices.Compact(points)
	for _, n := range points {
		keeps(fmt.Sprintf("durable-%d", n), m.image(n), n)
	}
	total := len(m.writes)
	rng := rand.New(rand.NewPCG(1, uint64(total)))
	for i := range 40 {
		n := points[rng.IntN(len(points))]
		k := n + rng.IntN(total-n+1)
		keeps(fmt.Sprintf("torn-%d-%d-%d", i, n, k), m.image(k), n)
	}
	t.Logf("%d commits, %d writes, %d distinct durable points checked", len(acked), total, len(points))
}
