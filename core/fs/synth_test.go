package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// synthRec describes one data record of a synthetic Data.fs.
type synthRec struct {
	Oid  zodb.Oid
	Data []byte   // inline pickle when non-nil
	Back *[2]int  // else a backpointer to record Back[1] of transaction Back[0]; nil: deletion
	Tid  zodb.Tid // record tid; 0 means the transaction's
}

// synthTxn describes one transaction of a synthetic Data.fs.
type synthTxn struct {
	Tid                    zodb.Tid
	Status                 zodb.TxnStatus // 0 means ' '
	User, Description, Ext []byte
	Recs                   []synthRec
}

// synthFile is a Data.fs built in memory with format.go's encoders, and
// where its records are.
type synthFile struct {
	Bytes  []byte
	TxnPos []int64
	RecPos [][]int64
}

// synthBuild encodes txns after an FS30 magic. prev pointers are computed
// the way a storage writes them: the oid's position before the transaction.
func synthBuild(txns []synthTxn) synthFile {
	out := synthFile{Bytes: append([]byte(nil), fs.Magic30[:]...)}
	last := map[zodb.Oid]int64{}
	for _, t := range txns {
		pos := int64(len(out.Bytes))
		h := fs.TxnHeader{Tid: t.Tid, Status: t.Status, ULen: uint16(len(t.User)), DLen: uint16(len(t.Description)), ELen: uint16(len(t.Ext))}
		if h.Status == 0 {
			h.Status = zodb.StatusCommitted
		}
		body := append(append(append([]byte(nil), t.User...), t.Description...), t.Ext...)
		var recPos []int64
		now := map[zodb.Oid]int64{}
		for _, r := range t.Recs {
			rp := pos + fs.TxnHeaderSize + int64(len(body))
			d := fs.DataHeader{Oid: r.Oid, Tid: r.Tid, Prev: last[r.Oid], Tloc: pos, PLen: int64(len(r.Data))}
			if d.Tid == 0 {
				d.Tid = t.Tid
			}
			body = d.Encode(body)
			if r.Data != nil {
				body = append(body, r.Data...)
			} else {
				var back int64
				if r.Back != nil {
					back = out.RecPos[r.Back[0]][r.Back[1]]
				}
				body = be64(body, back)
			}
			recPos = append(recPos, rp)
			now[r.Oid] = rp
		}
		for oid, p := range now {
			last[oid] = p
		}
		h.Len = fs.TxnHeaderSize + int64(len(body))
		out.Bytes = h.Encode(out.Bytes)
		out.Bytes = append(out.Bytes, body...)
		out.Bytes = be64(out.Bytes, h.Len)
		out.TxnPos = append(out.TxnPos, pos)
		out.RecPos = append(out.RecPos, recPos)
	}
	return out
}

func be64(b []byte, v int64) []byte {
	u := uint64(v)
	return append(b, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// put64 overwrites 8 big-endian bytes at off.
func put64(b []byte, off int64, v int64) {
	copy(b[off:off+8], be64(nil, v))
}

// synthWrite writes b to a Data.fs in a fresh temporary directory.
func synthWrite(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Data.fs")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// synthTid returns a plausible tid for transaction i.
func synthTid(i int) zodb.Tid {
	return zodb.MakeTid(2024, 1, 2, 3, 4, 5) + zodb.Tid(i)*1000
}

// recordDamage is damage done in place to one data record of a file:
// the transaction it is in (txn, counted from 0), and the offset and kind
// of record the error must name.
type recordDamage struct {
	name   string
	damage func(b []byte)
	txn    int
	pos    int64
	record string
}

// recordDamages returns the damage to data records that verify and the
// iterator both refuse, as ReadDataHeader and ReadBackpointer do, in f
// built from synthHistory(12) (txn 10 has a second record: a backpointer
// to txn 5's record 0).
func recordDamages(f synthFile) []recordDamage {
	rec := func(i, j int) int64 { return f.RecPos[i][j] }
	return []recordDamage{
		{"tloc", func(b []byte) { put64(b, rec(3, 0)+24, f.TxnPos[2]) }, 3, rec(3, 0), "data record"},
		{"vlen", func(b []byte) { b[rec(3, 0)+33] = 1 }, 3, rec(3, 0), "data record"},
		{"plen overrun", func(b []byte) { put64(b, rec(3, 0)+34, 500) }, 3, rec(3, 0), "data record"},
		{"records short of tlen", func(b []byte) { put64(b, rec(3, 0)+34, 3) }, 3, rec(3, 0) + 45, "data record"},
		{"prev after txn", func(b []byte) { put64(b, rec(2, 0)+16, rec(3, 0)) }, 2, rec(2, 0), "data record"},
		{"backpointer forward", func(b []byte) { put64(b, rec(10, 1)+42, rec(11, 0)) }, 10, rec(10, 1), "backpointer"},
	}
}

// synthHistory returns n transactions over a handful of oids, with an
// undo-like backpointer and a deletion among them.
func synthHistory(n int) []synthTxn {
	var txns []synthTxn
	for i := range n {
		t := synthTxn{Tid: synthTid(i), User: []byte("/ bob"), Description: []byte("txn")}
		t.Recs = []synthRec{{Oid: zodb.Oid(i % 5), Data: []byte{0x80, 3, 'N', '.', byte(i)}}}
		switch {
		case i%7 == 3 && i >= 5:
			t.Recs = append(t.Recs, synthRec{Oid: zodb.Oid((i - 5) % 5), Back: &[2]int{i - 5, 0}})
		case i%11 == 10:
			t.Recs = append(t.Recs, synthRec{Oid: 99})
		}
		txns = append(txns, t)
	}
	return txns
}
