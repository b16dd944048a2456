package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// runCopy copies SRC into a new DST the way copyTransactionsFrom does:
// each transaction restored with its tid and status, each record with its
// tid, data and data_txn.
func runCopy(ctx context.Context, args []string) error {
	if err := needArgs("copy", args, 2); err != nil {
		return err
	}
	if _, err := os.Stat(args[1]); err == nil {
		return fmt.Errorf("copy: %s already exists", args[1])
	}
	src, err := fs.Open(args[0], fs.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fs.Open(args[1], fs.Options{Create: true})
	if err != nil {
		return err
	}
	n, err := copyTransactions(ctx, src, dst, 0)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"txns": n, "size": fileSize(args[1])})
}

// copyTransactions restores every transaction of src after `after` into dst.
func copyTransactions(ctx context.Context, src zodb.Iterable, dst zodb.Storage, after zodb.Tid) (int, error) {
	it, err := src.Iterate(ctx, after+1, zodb.MaxTid)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for {
		info, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := restoreTxn(ctx, dst, info); err != nil {
			return n, fmt.Errorf("transaction %s: %w", info.Tid, err)
		}
		n++
	}
}

// restoreTxn commits one iterated transaction into dst with Restore.
func restoreTxn(ctx context.Context, dst zodb.Storage, info *zodb.TxnInfo) error {
	tx, err := dst.Begin(ctx, info.TxnMeta, zodb.BeginOptions{Tid: info.Tid, Status: info.Status})
	if err != nil {
		return err
	}
	for _, r := range info.Records {
		if err := tx.Restore(r.Oid, r.Tid, r.Data, r.DataTxn); err != nil {
			tx.Abort()
			return err
		}
	}
	if err := tx.Vote(ctx); err != nil {
		tx.Abort()
		return err
	}
	_, err = tx.Finish(ctx)
	return err
}

// runOpen opens each path read-write (running crash recovery) and closes it.
func runOpen(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("open: want at least one path")
	}
	for _, p := range args {
		s, err := fs.Open(p, fs.Options{})
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		if err := s.Close(); err != nil {
			return fmt.Errorf("close %s: %w", p, err)
		}
		if err := printJSON(map[string]any{"path": p, "size": fileSize(p)}); err != nil {
			return err
		}
	}
	return nil
}

// runHoldLock opens PATH read-write, says "locked" and waits for stdin EOF.
func runHoldLock(ctx context.Context, args []string) error {
	if err := needArgs("hold-lock", args, 1); err != nil {
		return err
	}
	s, err := fs.Open(args[0], fs.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := os.Stdout.WriteString("locked\n"); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	return s.Close()
}

// runLoad prints the current revision of every oid, ascending.
func runLoad(ctx context.Context, args []string) error {
	if err := needArgs("load", args, 1); err != nil {
		return err
	}
	s, err := fs.Open(args[0], fs.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	w := bufio.NewWriter(os.Stdout)
	for _, oid := range s.Oids() {
		line, err := loadLine(ctx, s, oid)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, line)
	}
	return w.Flush()
}

// loadLine describes oid's current revision as a JSON line.
func loadLine(ctx context.Context, s *fs.FileStorage, oid zodb.Oid) (string, error) {
	data, serial, err := s.Load(ctx, oid)
	if errors.Is(err, zodb.ErrNotFound) {
		h, herr := s.History(ctx, oid, 1)
		if herr != nil || len(h) == 0 {
			return "", fmt.Errorf("oid %s: %v / %v", oid, err, herr)
		}
		return fmt.Sprintf(`{"oid":"%s","tid":"%s","sha1":null}`, oid, h[0].Tid), nil
	}
	if err != nil {
		return "", fmt.Errorf("oid %s: %w", oid, err)
	}
	sum := sha1.Sum(data)
	return fmt.Sprintf(`{"oid":"%s","tid":"%s","sha1":"%s"}`, oid, serial, hex.EncodeToString(sum[:])), nil
}

// fileSize returns the size of path, -1 if it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// runUndo undoes the given transactions (hex tids) in one transaction and
// prints its tid and the oids it touched.
func runUndo(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("undo: want PATH and one or more tids")
	}
	s, err := fs.Open(args[0], fs.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	tx, err := s.Begin(ctx, zodb.TxnMeta{Description: []byte("undo")}, zodb.BeginOptions{})
	if err != nil {
		return err
	}
	oids := []string{}
	for _, a := range args[1:] {
		tid, err := zodb.ParseTid(a)
		if err == nil {
			var got []zodb.Oid
			if got, err = tx.Undo(ctx, tid); err == nil {
				for _, o := range got {
					oids = append(oids, o.String())
				}
			}
		}
		if err != nil {
			tx.Abort()
			return err
		}
	}
	if err := tx.Vote(ctx); err != nil {
		tx.Abort()
		return err
	}
	tid, err := tx.Finish(ctx)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	return printJSON(map[string]any{"tid": tid.String(), "oids": oids})
}
