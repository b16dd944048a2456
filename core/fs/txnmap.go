package fs

import (
	"sort"
	"sync"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Sampling thresholds of a TxnMap: a transaction becomes a sample when it
// starts at least SampleBytes after the previous sample, or when
// SampleTxns transactions were added since the previous sample.
const (
	SampleBytes = 1 << 20 // 1 MiB of file between samples
	SampleTxns  = 1024    // or this many transactions
)

// TxnSample is a known transaction: its tid and the offset of its header.
type TxnSample struct {
	Tid zodb.Tid
	Pos int64
}

// TxnMap is a sparse, sorted list of (tid, position) samples of a Data.fs,
// so an iterator can start its search for a tid near that tid instead of at
// an end of the file. It also remembers the last transaction added, so a
// seek to the newest transactions costs O(1) reads.
//
// Memory: one 16-byte sample per SampleBytes of file or per SampleTxns
// transactions, whichever comes first, so at most about 16 KiB per million
// transactions plus 16 KiB per GiB of file (a 100 GiB file of ten million
// transactions: under 2 MiB). A seek then walks at most SampleTxns
// transactions or SampleBytes of headers.
//
// A TxnMap is safe for concurrent use. The zero value is not usable; call
// NewTxnMap.
type TxnMap struct {
	mu      sync.RWMutex
	samples []TxnSample // strictly increasing in Tid and Pos; guarded by mu
	last    TxnSample   // the last transaction added, Pos -1 if none; guarded by mu
	since   int         // transactions added since the last sample; guarded by mu
}

// NewTxnMap returns an empty map.
func NewTxnMap() *TxnMap {
	return &TxnMap{last: TxnSample{Pos: -1}}
}

// Add records that the transaction tid starts at pos. It is called for
// every committed or scanned transaction in tid order; the map keeps only
// some of them as samples. A call that does not increase both the tid and
// the position of the last call is ignored, so the samples stay sorted
// (after a truncation, call TruncateFrom first). O(1) amortised.
func (m *TxnMap) Add(tid zodb.Tid, pos int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last.Pos >= 0 && (tid <= m.last.Tid || pos <= m.last.Pos) {
		return
	}
	m.last = TxnSample{Tid: tid, Pos: pos}
	m.since++
	n := len(m.samples)
	if n == 0 || pos-m.samples[n-1].Pos >= SampleBytes || m.since >= SampleTxns {
		m.samples = append(m.samples, m.last)
		m.since = 0
	}
}

// TruncateFrom forgets every transaction at or after pos, for a file cut
// back to pos.
func (m *TxnMap) TruncateFrom(pos int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.samples), func(i int) bool { return m.samples[i].Pos >= pos })
	m.samples = m.samples[:i]
	m.since = 0
	if m.last.Pos >= pos {
		m.last = TxnSample{Pos: -1}
		if i > 0 {
			m.last = m.samples[i-1]
		}
	}
}

// Len returns the number of samples kept (the last transaction excluded).
func (m *TxnMap) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.samples)
}

// Last returns the last transaction added, and false if none was.
func (m *TxnMap) Last() (TxnSample, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.last, m.last.Pos >= 0
}

// Floor returns the known transaction with the greatest tid <= tid, and
// false if there is none.
func (m *TxnMap) Floor(tid zodb.Tid) (TxnSample, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.last.Pos >= 0 && m.last.Tid <= tid {
		return m.last, true
	}
	i := sort.Search(len(m.samples), func(i int) bool { return m.samples[i].Tid > tid })
	if i == 0 {
		return TxnSample{}, false
	}
	return m.samples[i-1], true
}

// Ceil returns the known transaction with the smallest tid >= tid, and
// false if there is none.
func (m *TxnMap) Ceil(tid zodb.Tid) (TxnSample, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.samples), func(i int) bool { return m.samples[i].Tid >= tid })
	if i < len(m.samples) {
		return m.samples[i], true
	}
	if m.last.Pos >= 0 && m.last.Tid >= tid {
		return m.last, true
	}
	return TxnSample{}, false
}

// floor is Floor on a possibly nil map.
func (m *TxnMap) floor(tid zodb.Tid) (TxnSample, bool) {
	if m == nil {
		return TxnSample{}, false
	}
	return m.Floor(tid)
}

// ceil is Ceil on a possibly nil map.
func (m *TxnMap) ceil(tid zodb.Tid) (TxnSample, bool) {
	if m == nil {
		return TxnSample{}, false
	}
	return m.Ceil(tid)
}
