package fs_test

import (
	"sync"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

func TestTxnMapEmpty(t *testing.T) {
	m := fs.NewTxnMap()
	if _, ok := m.Floor(zodb.MaxTid); ok {
		t.Error("Floor on empty map found something")
	}
	if _, ok := m.Ceil(0); ok {
		t.Error("Ceil on empty map found something")
	}
	if _, ok := m.Last(); ok {
		t.Error("Last on empty map found something")
	}
}

func TestTxnMapSampling(t *testing.T) {
	m := fs.NewTxnMap()
	const n = 10 * fs.SampleTxns
	for i := 1; i <= n; i++ {
		m.Add(zodb.Tid(i*10), int64(i)*100) // 100-byte transactions: sampled by count
	}
	if got, want := m.Len(), n/fs.SampleTxns; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
	last, ok := m.Last()
	if !ok || last.Tid != n*10 || last.Pos != n*100 {
		t.Errorf("Last = %v %v", last, ok)
	}
	for _, q := range []zodb.Tid{10, 11, 5000, 55555, n*10 - 1, n * 10, n*10 + 1} {
		if f, ok := m.Floor(q); !ok {
			t.Errorf("Floor(%d) found nothing", q)
		} else if f.Tid > q {
			t.Errorf("Floor(%d) = %v > q", q, f)
		} else if q-f.Tid > fs.SampleTxns*10 && q <= n*10 {
			t.Errorf("Floor(%d) = %v too far", q, f)
		}
		if c, ok := m.Ceil(q); ok && c.Tid < q {
			t.Errorf("Ceil(%d) = %v < q", q, c)
		} else if !ok && q <= n*10 {
			t.Errorf("Ceil(%d) found nothing", q)
		}
	}
	if _, ok := m.Floor(9); ok {
		t.Error("Floor below the first tid found something")
	}
	if _, ok := m.Ceil(n*10 + 1); ok {
		t.Error("Ceil above the last tid found something")
	}
	if c, _ := m.Ceil(n*10 - 5); c.Tid != n*10 {
		t.Errorf("Ceil near the end = %v, want the last transaction", c)
	}
}

func TestTxnMapSamplesBySize(t *testing.T) {
	m := fs.NewTxnMap()
	for i := 1; i <= 100; i++ {
		m.Add(zodb.Tid(i), int64(i)*fs.SampleBytes/2) // two transactions per MiB
	}
	if got := m.Len(); got != 50 {
		t.Errorf("Len = %d, want 50", got)
	}
}

func TestTxnMapIgnoresOutOfOrder(t *testing.T) {
	m := fs.NewTxnMap()
	m.Add(100, 4)
	m.Add(90, 200) // tid going back
	m.Add(110, 4)  // position not advancing
	if last, _ := m.Last(); last.Tid != 100 {
		t.Errorf("Last = %v, want tid 100", last)
	}
}

func TestTxnMapTruncate(t *testing.T) {
	m := fs.NewTxnMap()
	for i := 1; i <= 5000; i++ {
		m.Add(zodb.Tid(i), int64(i)*10)
	}
	m.TruncateFrom(30000) // drops tid 3000 and later
	last, ok := m.Last()
	if !ok || last.Pos >= 30000 {
		t.Fatalf("Last after truncate = %v %v", last, ok)
	}
	if c, ok := m.Ceil(2999); ok && c.Pos >= 30000 {
		t.Errorf("Ceil after truncate = %v", c)
	}
	m.Add(3000, 30000)
	if last, _ := m.Last(); last.Tid != 3000 {
		t.Errorf("Add after truncate ignored: %v", last)
	}
}

func TestTxnMapConcurrent(t *testing.T) {
	m := fs.NewTxnMap()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 20000; i++ {
			m.Add(zodb.Tid(i), int64(i)*64)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 2000; i++ {
				if f, ok := m.Floor(zodb.Tid(i * 10)); ok && f.Tid > zodb.Tid(i*10) {
					t.Errorf("Floor(%d) = %v", i*10, f)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkTxnMapAdd(b *testing.B) {
	m := fs.NewTxnMap()
	for i := 0; i < b.N; i++ {
		m.Add(zodb.Tid(i+1), int64(i+1)*300)
	}
}
