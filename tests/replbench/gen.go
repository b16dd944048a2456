package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// recordPool is pickle-like bytes that records are cut from: class
// pickles, dict keys, words and numbers, with some random binary, so that
// records compress about as well as real ZODB pickles (2-4x), not like
// zeros or noise.
type recordPool struct {
	buf []byte
	rng *rand.Rand
}

var words = []string{"title", "body", "created", "modified", "owner", "status", "tags", "id", "path",
	"published", "draft", "review", "alice", "bob", "admin", "index.html", "2024-05-01T12:00:00",
	"Lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"}

func newRecordPool(seed uint64) *recordPool {
	rng := rand.New(rand.NewPCG(seed, 0x7a7273))
	b := make([]byte, 0, 4<<20)
	for len(b) < 4<<20 {
		b = append(b, "\x80\x03}q\x01(X\x04\x00\x00\x00data}q\x02("...)
		for range 4 + rng.IntN(20) {
			w := words[rng.IntN(len(words))]
			b = append(b, 'X', byte(len(w)), 0, 0, 0)
			b = append(b, w...)
			switch rng.IntN(4) {
			case 0:
				b = append(b, 'J')
				b = append(b, byte(rng.Uint32()), byte(rng.Uint32()), 0, 0)
			case 1:
				n := 8 + rng.IntN(40)
				b = append(b, 'C', byte(n))
				for range n {
					b = append(b, byte(rng.Uint32()))
				}
			default:
				s := strconv.Itoa(rng.IntN(1e6)) + " " + words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))]
				b = append(b, 'X', byte(len(s)), 0, 0, 0)
				b = append(b, s...)
			}
		}
		b = append(b, "u.u."...)
	}
	return &recordPool{buf: b, rng: rng}
}

// classPickle starts every record as ZODB's does: the class pickle of a
// persistent.mapping.PersistentMapping (zc.zrs unpickles it to spot
// blobs, so it must load).
const classPickle = "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00."

// record returns a new record of a few hundred bytes to a few kB
// (log-uniform between 200 B and 4 kB, so most are small): the class
// pickle, then state bytes cut from the pool.
func (p *recordPool) record() []byte {
	n := int(200*math.Pow(20, p.rng.Float64())) - len(classPickle)
	off := p.rng.IntN(len(p.buf) - n)
	return append([]byte(classPickle), p.buf[off:off+n]...)
}

// runGen writes a database of about --mb megabytes through the Go API, in
// transactions of --records records: mostly new objects, a fifth updates
// of earlier ones.
func runGen(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("gen", flag.ContinueOnError)
	mb := fset.Int("mb", 1024, "size of the database in MB (10^6 bytes)")
	records := fset.Int("records", 200, "records per transaction")
	seed := fset.Uint64("seed", 1, "random seed")
	pos, err := parse(fset, args, 1)
	if err != nil {
		return err
	}
	path := pos[0]
	os.Remove(path)
	os.Remove(path + ".index")
	st, err := fs.Open(path, fs.Options{Create: true})
	if err != nil {
		return err
	}
	start := time.Now()
	pool := newRecordPool(*seed)
	rng := pool.rng
	var serials []zodb.Tid // by oid-1
	var txns, recs int
	var size int64
	target := int64(*mb) * 1e6
	for size < target {
		t, err := st.Begin(ctx, zodb.TxnMeta{User: []byte(" bench"), Description: []byte("replbench gen " + strconv.Itoa(txns))}, zodb.BeginOptions{})
		if err != nil {
			st.Close()
			return err
		}
		seen := make(map[zodb.Oid]bool)
		for range *records {
			data := pool.record()
			var oid zodb.Oid
			var old zodb.Tid
			if len(serials) > 1000 && rng.IntN(5) == 0 {
				oid = zodb.Oid(1 + rng.IntN(len(serials)))
				if seen[oid] {
					continue
				}
				old = serials[oid-1]
			} else {
				if oid, err = st.NewOid(ctx); err != nil {
					st.Close()
					return err
				}
			}
			seen[oid] = true
			if err := t.Store(oid, old, data); err != nil {
				st.Close()
				return fmt.Errorf("store %s: %w", oid, err)
			}
			if int(oid) > len(serials) {
				serials = append(serials, make([]zodb.Tid, int(oid)-len(serials))...)
			}
			size += int64(len(data)) + fs.DataHeaderSize
			recs++
		}
		if err := t.Vote(ctx); err != nil {
			st.Close()
			return err
		}
		tid, err := t.Finish(ctx)
		if err != nil {
			st.Close()
			return err
		}
		for oid := range seen {
			serials[oid-1] = tid
		}
		txns++
	}
	if err := st.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"op": "gen", "path": path, "bytes": fi.Size(), "txns": txns, "records": recs,
		"objects": len(serials), "seconds": round3(time.Since(start).Seconds())})
}

// runBigFile writes a sparse file of about --gb GiB to PRIMARY: one
// transaction holding a single huge object (a hole on disk, so it costs
// nothing), then --txns small transactions committed through the Go API.
// SECONDARY gets the same bytes without the last transaction: a secondary
// one transaction behind.
func runBigFile(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("bigfile", flag.ContinueOnError)
	gb := fset.Int("gb", 10, "size in GiB")
	ntx := fset.Int("txns", 2000, "small transactions after the huge one")
	pos, err := parse(fset, args, 2)
	if err != nil {
		return err
	}
	pri, sec := pos[0], pos[1]
	start := time.Now()
	big := int64(*gb) << 30
	tid := zodb.TidFromTime(time.Now().Add(-24 * time.Hour))
	h := fs.TxnHeader{Pos: fs.MagicSize, Tid: tid, Len: fs.TxnHeaderSize + fs.DataHeaderSize + big, Status: ' '}
	d := fs.DataHeader{Oid: 1, Tid: tid, Tloc: h.Pos, PLen: big}
	head := d.Encode(h.Encode(fs.Magic30[:]))
	trailer := h.Len
	writeHead := func(path string) error {
		for _, suffix := range []string{"", ".index", ".lock", ".tmp"} {
			os.Remove(path + suffix)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := f.Write(head); err != nil {
			f.Close()
			return err
		}
		var tr [8]byte
		for i := range 8 {
			tr[i] = byte(trailer >> (56 - 8*i))
		}
		if _, err := f.WriteAt(tr[:], h.End()); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := writeHead(pri); err != nil {
		return err
	}
	st, err := fs.Open(pri, fs.Options{})
	if err != nil {
		return err
	}
	pool := newRecordPool(2)
	commit := func(i int) error {
		t, err := st.Begin(ctx, zodb.TxnMeta{Description: []byte("small " + strconv.Itoa(i))}, zodb.BeginOptions{})
		if err != nil {
			return err
		}
		for range 1 + pool.rng.IntN(5) {
			oid, err := st.NewOid(ctx)
			if err != nil {
				return err
			}
			if err := t.Store(oid, 0, pool.record()); err != nil {
				return err
			}
		}
		if err := t.Vote(ctx); err != nil {
			return err
		}
		_, err = t.Finish(ctx)
		return err
	}
	for i := range *ntx - 1 {
		if err := commit(i); err != nil {
			st.Close()
			return err
		}
	}
	behindEnd := st.CommittedEnd()
	if err := commit(*ntx - 1); err != nil {
		st.Close()
		return err
	}
	last, end := st.LastTransaction(), st.CommittedEnd()
	if err := st.Close(); err != nil {
		return err
	}
	// The secondary: the same head, and the small transactions but the last.
	if err := writeHead(sec); err != nil {
		return err
	}
	tailStart := h.Next()
	src, err := os.Open(pri)
	if err != nil {
		return err
	}
	defer src.Close()
	buf := make([]byte, behindEnd-tailStart)
	if _, err := src.ReadAt(buf, tailStart); err != nil {
		return err
	}
	dst, err := os.OpenFile(sec, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := dst.WriteAt(buf, tailStart); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	// Open both once so that their indexes are saved (as on a running node).
	for _, p := range []string{sec} {
		s, err := fs.Open(p, fs.Options{})
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
	}
	return printJSON(map[string]any{"op": "bigfile", "bytes": end, "secondary_bytes": behindEnd, "last": last.String(),
		"txns": *ntx + 1, "seconds": round3(time.Since(start).Seconds())})
}
