package fs

import (
	"runtime"
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

func TestIndexEmpty(t *testing.T) {
	x := NewIndex()
	if x.Len() != 0 {
		t.Fatalf("Len = %d, want 0", x.Len())
	}
	if oid, ok := x.MaxOid(); ok {
		t.Fatalf("MaxOid = %s, true on an empty index", oid)
	}
	if _, ok := x.Get(0); ok {
		t.Fatal("Get(0) found an entry in an empty index")
	}
	x.Range(func(zodb.Oid, int64) bool {
		t.Fatal("Range called fn on an empty index")
		return true
	})
}

func TestIndexSetGet(t *testing.T) {
	x := NewIndex()
	for i, c := range []struct {
		oid   zodb.Oid
		pos   int64
		added bool
	}{{7, 100, true}, {3, 200, true}, {7, 300, false}} { // the last overwrites
		if added := x.Set(c.oid, c.pos); added != c.added {
			t.Errorf("Set #%d (%s) reported added = %v", i, c.oid, added)
		}
	}
	if x.Len() != 2 {
		t.Fatalf("Len = %d, want 2", x.Len())
	}
	for oid, want := range map[zodb.Oid]int64{7: 300, 3: 200} {
		if got, ok := x.Get(oid); !ok || got != want {
			t.Errorf("Get(%s) = %d, %v; want %d, true", oid, got, ok, want)
		}
	}
	if _, ok := x.Get(5); ok {
		t.Error("Get(5) found an entry never set")
	}
	if oid, ok := x.MaxOid(); !ok || oid != 7 {
		t.Errorf("MaxOid = %s, %v; want 7, true", oid, ok)
	}
}

func TestIndexMaxOidFirstEntryZero(t *testing.T) {
	x := NewIndex()
	x.Set(0, 4)
	if oid, ok := x.MaxOid(); !ok || oid != 0 {
		t.Fatalf("MaxOid = %s, %v; want 0, true", oid, ok)
	}
	x.Set(^zodb.Oid(0), 5)
	if oid, _ := x.MaxOid(); oid != ^zodb.Oid(0) {
		t.Fatalf("MaxOid = %s, want ffffffffffffffff", oid)
	}
}

func TestIndexRangeAscending(t *testing.T) {
	x := NewIndex()
	oids := []zodb.Oid{1 << 40, 5, 0, 1 << 16, 65535, 1<<16 | 1}
	for i, oid := range oids {
		x.Set(oid, int64(i))
	}
	var got []zodb.Oid
	x.Range(func(oid zodb.Oid, pos int64) bool {
		if want, _ := x.Get(oid); pos != want {
			t.Errorf("Range gave %s at %d, Get says %d", oid, pos, want)
		}
		got = append(got, oid)
		return true
	})
	want := []zodb.Oid{0, 5, 65535, 1 << 16, 1<<16 | 1, 1 << 40}
	if len(got) != len(want) {
		t.Fatalf("Range visited %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Range visited %v, want %v", got, want)
		}
	}
}

func TestIndexRangeStops(t *testing.T) {
	x := NewIndex()
	for i := range 10 {
		x.Set(zodb.Oid(i), int64(i))
	}
	n := 0
	x.Range(func(oid zodb.Oid, _ int64) bool {
		n++
		return oid < 2
	})
	if n != 3 {
		t.Fatalf("Range called fn %d times after it returned false at oid 2, want 3", n)
	}
}

func TestIndexUpdate(t *testing.T) {
	x := NewIndex()
	x.Set(1, 10)
	x.Set(2, 20)
	other := NewIndex()
	other.Set(2, 99)
	other.Set(9, 90)
	x.Update(other)
	want := map[zodb.Oid]int64{1: 10, 2: 99, 9: 90}
	checkIndex(t, x, want)
	if oid, _ := x.MaxOid(); oid != 9 {
		t.Errorf("MaxOid after Update = %s, want 9", oid)
	}
	x.Update(NewIndex())
	checkIndex(t, x, want)

	// A smaller other leaves the max alone; an empty x takes other's.
	small := NewIndex()
	small.Set(0, 1)
	x.Update(small)
	if oid, _ := x.MaxOid(); oid != 9 {
		t.Errorf("MaxOid after Update with smaller oids = %s, want 9", oid)
	}
	empty := NewIndex()
	empty.Update(other)
	if oid, ok := empty.MaxOid(); !ok || oid != 9 {
		t.Errorf("MaxOid of empty index updated = %s, %v; want 9, true", oid, ok)
	}
}

func TestIndexClone(t *testing.T) {
	x := NewIndex()
	x.Set(1, 10)
	c := x.Clone()
	c.Set(1, 11)
	c.Set(50, 500)
	checkIndex(t, x, map[zodb.Oid]int64{1: 10})
	checkIndex(t, c, map[zodb.Oid]int64{1: 11, 50: 500})
	if oid, _ := x.MaxOid(); oid != 1 {
		t.Errorf("original MaxOid = %s after changing the clone, want 1", oid)
	}
	if oid, _ := NewIndex().Clone().MaxOid(); oid != 0 {
		t.Errorf("clone of empty index has MaxOid %s", oid)
	}
}

// checkIndex fails t unless x holds exactly want.
func checkIndex(t *testing.T, x *Index, want map[zodb.Oid]int64) {
	t.Helper()
	if x.Len() != len(want) {
		t.Errorf("Len = %d, want %d", x.Len(), len(want))
	}
	for oid, pos := range want {
		if got, ok := x.Get(oid); !ok || got != pos {
			t.Errorf("Get(%s) = %d, %v; want %d, true", oid, got, ok, pos)
		}
	}
}

// BenchmarkIndexSet fills an index with one million sequential oids and
// reports the heap it takes per entry (the figure in Index's doc).
func BenchmarkIndexSet(b *testing.B) {
	const n = 1_000_000
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := NewIndex()
		for i := range n {
			x.Set(zodb.Oid(i), int64(i)*100)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/entry")
		runtime.KeepAlive(x)
	}
}
