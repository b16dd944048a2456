package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	ogórek "github.com/kisielk/og-rek"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// objState is one object's content in the generator's model; immutable.
type objState struct {
	n    int
	text string
}

// model is the database content the generator expects after each commit.
type model struct {
	root map[string]zodb.Oid // root key → object
	objs map[zodb.Oid]objState
}

func (m model) clone() model {
	return model{root: maps.Clone(m.root), objs: maps.Clone(m.objs)}
}

// writer generates a database through the Go API.
type writer struct {
	ctx     context.Context
	s       *fs.FileStorage
	rng     *rand.Rand
	cur     model
	serial  map[zodb.Oid]zodb.Tid
	history []step // committed transactions, oldest first
	txns    int
	stats   map[string]int
}

// step is a committed transaction and the model before it.
type step struct {
	tid    zodb.Tid
	before model
}

var users = []string{"", "/ bob", "/ jürgen", "/ zoë", "/ 田中", "acl_users admin"}

func runWrite(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("write", flag.ContinueOnError)
	ntx := fl.Int("txns", 200, "number of transactions")
	seed := fl.Uint64("seed", 1, "random seed")
	if len(args) == 0 {
		return fmt.Errorf("write: want PATH")
	}
	path := args[0]
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	s, err := fs.Open(path, fs.Options{Create: true})
	if err != nil {
		return err
	}
	w := &writer{ctx: ctx, s: s, rng: rand.New(rand.NewPCG(*seed, 42)),
		cur:    model{root: map[string]zodb.Oid{}, objs: map[zodb.Oid]objState{}},
		serial: map[zodb.Oid]zodb.Tid{}, stats: map[string]int{}}
	err = w.generate(*ntx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"path": path, "txns": w.txns, "size": fileSize(path),
		"last_tid": s.LastTransaction().String(), "stats": w.stats})
}

// generate commits about n transactions of mixed kinds.
func (w *writer) generate(n int) error {
	if err := w.commit(zodb.TxnMeta{Description: []byte("initial database creation")}, w.cur.clone(), nil, true); err != nil {
		return err
	}
	restoreAt := n * 2 / 3
	for w.txns < n {
		var err error
		r := w.rng.IntN(100)
		switch {
		case w.txns == restoreAt && n-w.txns >= 4:
			err = w.restoreBlock()
		case w.txns == 5:
			err = w.commit(w.meta("empty transaction"), w.cur.clone(), nil, false)
		case r < 8 && len(w.history) > 1:
			err = w.undo(1)
		case r < 11 && len(w.history) > 2:
			err = w.undo(2)
		case r < 18 && len(w.cur.root) > 2:
			err = w.deleteOne()
		default:
			err = w.change()
		}
		if err != nil {
			return fmt.Errorf("transaction %d: %w", w.txns, err)
		}
	}
	return nil
}

// meta returns varied, partly non-ASCII metadata; every third transaction
// carries an extension dict.
func (w *writer) meta(what string) zodb.TxnMeta {
	m := zodb.TxnMeta{
		User:        []byte(users[w.txns%len(users)]),
		Description: fmt.Appendf(nil, "txn %d: %s — Änderung ✓", w.txns, what),
	}
	if w.txns%3 == 0 {
		m.Extension = pickle3(map[any]any{
			"comment": "über café", "n": w.txns, "tags": []any{"ä", "b", int64(1) << 40},
			"ok": true, "ratio": 0.25, "raw": ogórek.Bytes("\x00\xff"), "none": nil,
			"pair": ogórek.Tuple{"x", 2}, 7: "seven",
		})
	}
	return m
}

// change creates and modifies a few objects.
func (w *writer) change() error {
	next := w.cur.clone()
	var dirty []zodb.Oid
	for range w.rng.IntN(3) + boolInt(len(next.objs) < 3) {
		oid, err := w.s.NewOid(w.ctx)
		if err != nil {
			return err
		}
		next.root[fmt.Sprintf("obj%d", oid)] = oid
		next.objs[oid] = objState{n: 0, text: fmt.Sprintf("créé %d", oid)}
		dirty = append(dirty, oid)
	}
	keys := sortedKeys(next.objs)
	for range min(w.rng.IntN(4), len(keys)) {
		oid := keys[w.rng.IntN(len(keys))]
		st := next.objs[oid]
		next.objs[oid] = objState{n: st.n + 1, text: fmt.Sprintf("v%d of %d ☕", st.n+1, oid)}
		dirty = append(dirty, oid)
	}
	return w.commit(w.meta("change"), next, dirty, len(next.root) != len(w.cur.root))
}

// deleteOne removes an object from the root and deletes it.
func (w *writer) deleteOne() error {
	next := w.cur.clone()
	keys := sortedKeys(next.objs)
	oid := keys[w.rng.IntN(len(keys))]
	for k, v := range next.root {
		if v == oid {
			delete(next.root, k)
		}
	}
	delete(next.objs, oid)
	w.stats["deletes"]++
	return w.commit(w.meta("delete"), next, []zodb.Oid{oid}, true)
}

// commit writes the difference to next: dirty objects (deleted when gone
// from next), and the root when storeRoot is set.
func (w *writer) commit(meta zodb.TxnMeta, next model, dirty []zodb.Oid, storeRoot bool) error {
	tx, err := w.s.Begin(w.ctx, meta, zodb.BeginOptions{})
	if err != nil {
		return err
	}
	written, err := w.writeObjects(tx, next, dirty, storeRoot)
	if err == nil {
		err = tx.Vote(w.ctx)
	}
	if err != nil {
		tx.Abort()
		return err
	}
	tid, err := tx.Finish(w.ctx)
	if err != nil {
		return err
	}
	w.done(tid, next, written)
	return nil
}

// writeObjects stores or deletes each written oid; it returns them.
func (w *writer) writeObjects(tx zodb.Txn, next model, dirty []zodb.Oid, storeRoot bool) ([]zodb.Oid, error) {
	if storeRoot {
		dirty = append([]zodb.Oid{zodb.RootOid}, dirty...)
	}
	seen := map[zodb.Oid]bool{}
	var out []zodb.Oid
	for _, oid := range dirty {
		if seen[oid] {
			continue
		}
		seen[oid] = true
		var err error
		if st, ok := next.objs[oid]; ok {
			err = tx.Store(oid, w.serial[oid], objRecord(st))
		} else if oid == zodb.RootOid {
			err = tx.Store(oid, w.serial[oid], rootRecord(next.root))
		} else {
			err = tx.Delete(oid, w.serial[oid])
		}
		if err != nil {
			return nil, err
		}
		out = append(out, oid)
	}
	return out, nil
}

// done records a committed transaction in the model.
func (w *writer) done(tid zodb.Tid, next model, written []zodb.Oid) {
	w.history = append(w.history, step{tid: tid, before: w.cur})
	w.cur = next
	for _, oid := range written {
		w.serial[oid] = tid
	}
	w.txns++
}

// undo undoes the last k transactions in one transaction, newest first.
// An undo the storage refuses is skipped (and counted).
func (w *writer) undo(k int) error {
	tx, err := w.s.Begin(w.ctx, w.meta(fmt.Sprintf("undo of %d", k)), zodb.BeginOptions{})
	if err != nil {
		return err
	}
	var touched []zodb.Oid
	for i := range k {
		oids, err := tx.Undo(w.ctx, w.history[len(w.history)-1-i].tid)
		if err != nil {
			tx.Abort()
			w.stats["undo_refused"]++
			return w.change()
		}
		touched = append(touched, oids...)
	}
	if err := tx.Vote(w.ctx); err != nil {
		tx.Abort()
		return err
	}
	tid, err := tx.Finish(w.ctx)
	if err != nil {
		return err
	}
	w.stats["undo_txns"]++
	w.done(tid, w.history[len(w.history)-k].before.clone(), touched)
	return nil
}

// restoreBlock writes four transactions into a second, Go-written storage
// (new objects with the root, a change, an undo and a redo, so the last two
// hold backpointers) and restores them here with their tids and data_txn.
func (w *writer) restoreBlock() error {
	dir, err := os.MkdirTemp("", "fstool-restore")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, err := fs.Open(filepath.Join(dir, "src.fs"), fs.Options{Create: true})
	if err != nil {
		return err
	}
	defer src.Close()
	next, tids, err := w.fillSource(src)
	if err != nil {
		return err
	}
	n, err := copyTransactions(w.ctx, src, w.s, 0)
	if err != nil {
		return err
	}
	w.stats["restored_txns"] += n
	for i, tid := range tids {
		w.history = append(w.history, step{tid: tid, before: w.cur})
		if i == len(tids)-1 {
			w.cur = next
		}
		w.txns++
	}
	return nil
}

// fillSource commits the restore block into src; it returns the model
// after it and the tids. Serials are updated as the restore will set them.
func (w *writer) fillSource(src *fs.FileStorage) (model, []zodb.Tid, error) {
	p, _ := w.s.NewOid(w.ctx)
	q, _ := w.s.NewOid(w.ctx)
	next := w.cur.clone()
	next.root[fmt.Sprintf("restored%d", p)] = p
	next.root[fmt.Sprintf("restored%d", q)] = q
	pv0, pv1 := objState{0, "restauré p"}, objState{1, "restauré p v1"}
	next.objs[p], next.objs[q] = pv1, objState{0, "restauré q"}
	tid := zodb.TidFromTime(time.Now()).LaterThan(w.s.LastTransaction())
	var tids []zodb.Tid
	commitSrc := func(fn func(zodb.Txn) error) error {
		tx, err := src.Begin(w.ctx, w.meta("restored"), zodb.BeginOptions{Tid: tid})
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Abort()
			return err
		}
		if err := tx.Vote(w.ctx); err != nil {
			tx.Abort()
			return err
		}
		if _, err := tx.Finish(w.ctx); err != nil {
			return err
		}
		tids = append(tids, tid)
		tid = zodb.TidFromTime(time.Now()).LaterThan(tid)
		return nil
	}
	steps := []func(zodb.Txn) error{
		func(tx zodb.Txn) error {
			if err := tx.Store(zodb.RootOid, 0, rootRecord(next.root)); err != nil {
				return err
			}
			if err := tx.Store(p, 0, objRecord(pv0)); err != nil {
				return err
			}
			return tx.Store(q, 0, objRecord(next.objs[q]))
		},
		func(tx zodb.Txn) error { return tx.Store(p, tids[0], objRecord(pv1)) },
		func(tx zodb.Txn) error { _, err := tx.Undo(w.ctx, tids[1]); return err },
		func(tx zodb.Txn) error { _, err := tx.Undo(w.ctx, tids[2]); return err },
	}
	for _, fn := range steps {
		if err := commitSrc(fn); err != nil {
			return model{}, nil, err
		}
	}
	w.serial[zodb.RootOid], w.serial[q], w.serial[p] = tids[0], tids[0], tids[3]
	return next, tids, nil
}

// objRecord is the data record of a generated object.
func objRecord(st objState) []byte {
	return mappingRecord(map[any]any{
		"n": st.n, "text": st.text, "list": []any{st.n, "ü", 1.5, false, nil},
		"tuple": ogórek.Tuple{st.n, "t"}, "bytes": ogórek.Bytes("\x01\x02\xfe"),
	})
}

// rootRecord is the root PersistentMapping referencing the objects.
func rootRecord(root map[string]zodb.Oid) []byte {
	items := make(map[any]any, len(root))
	for k, oid := range root {
		items[k] = persistentRef(oid)
	}
	return mappingRecord(items)
}

func sortedKeys(m map[zodb.Oid]objState) []zodb.Oid {
	keys := make([]zodb.Oid, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
