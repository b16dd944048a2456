package fs

import (
	"maps"
	"slices"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Index maps each oid to the position in Data.fs of its current data
// record: the newest revision, which may be a deletion or a backpointer.
// It is what Data.fs.index saves (see ReadIndexFile and WriteIndexFile).
//
// Memory: a Go map with 8-byte keys and values costs about 20 to 40 bytes
// per entry depending on where it is between two growths (about 38 bytes
// measured at one million sequential oids, BenchmarkIndexSet reports it),
// so ten million objects need roughly 300 to 400 MiB.
//
// An Index is not safe for concurrent use: the storage that owns it guards
// it with its own lock. The zero value is not usable; call NewIndex.
type Index struct {
	pos    map[zodb.Oid]int64
	maxOid zodb.Oid // the greatest oid in pos; meaningless when pos is empty
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return newIndexSize(0)
}

// newIndexSize returns an empty index with room for about n entries.
func newIndexSize(n int) *Index {
	return &Index{pos: make(map[zodb.Oid]int64, n)}
}

// Get returns the position of oid's current data record, and false if the
// index does not know oid.
func (x *Index) Get(oid zodb.Oid) (int64, bool) {
	pos, ok := x.pos[oid]
	return pos, ok
}

// Set records pos as the position of oid's current data record and
// reports whether oid is new to the index (one map operation, where Get
// and then Set would be two).
func (x *Index) Set(oid zodb.Oid, pos int64) (added bool) {
	if len(x.pos) == 0 || oid > x.maxOid {
		x.maxOid = oid
	}
	n := len(x.pos)
	x.pos[oid] = pos
	return len(x.pos) != n
}

// Len returns the number of oids in the index.
func (x *Index) Len() int { return len(x.pos) }

// MaxOid returns the greatest oid in the index, and false if it is empty.
// A storage starts allocating new oids after it.
func (x *Index) MaxOid() (zodb.Oid, bool) {
	if len(x.pos) == 0 {
		return 0, false
	}
	return x.maxOid, true
}

// Range calls fn for every entry in ascending oid order until fn returns
// false. It sorts the oids first, so it allocates 8 bytes per entry and
// costs O(n log n); fn must not modify x.
func (x *Index) Range(fn func(oid zodb.Oid, pos int64) bool) {
	for _, oid := range x.sortedOids() {
		if !fn(oid, x.pos[oid]) {
			return
		}
	}
}

// sortedOids returns the index's oids in ascending order.
func (x *Index) sortedOids() []zodb.Oid {
	oids := slices.AppendSeq(make([]zodb.Oid, 0, len(x.pos)), maps.Keys(x.pos))
	slices.Sort(oids)
	return oids
}

// Update merges other into x; where both have an oid, other's position
// wins. A committed transaction's index is merged this way into the
// storage's.
func (x *Index) Update(other *Index) {
	if len(other.pos) == 0 {
		return
	}
	if len(x.pos) == 0 || other.maxOid > x.maxOid {
		x.maxOid = other.maxOid
	}
	maps.Copy(x.pos, other.pos)
}

// Clone returns an independent copy of x.
func (x *Index) Clone() *Index {
	return &Index{pos: maps.Clone(x.pos), maxOid: x.maxOid}
}
