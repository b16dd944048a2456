package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// runBench times iterate, load or commit on a file; numbers only.
func runBench(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("bench: want iterate PATH | iterate-own PATH | read PATH | load PATH N | commit PATH N | fsync PATH N")
	}
	switch args[0] {
	case "iterate":
		return benchIterate(ctx, args[1], "iterate", true)
	case "iterate-own":
		return benchIterate(ctx, args[1], "iterate_own", false)
	case "read":
		return benchRead(args[1])
	case "commit":
		if len(args) != 3 && len(args) != 4 {
			return fmt.Errorf("bench commit: want PATH N [WORKERS]")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n <= 0 {
			return fmt.Errorf("bench commit: bad N %q", args[2])
		}
		workers := 1
		if len(args) == 4 {
			if workers, err = strconv.Atoi(args[3]); err != nil || workers <= 0 {
				return fmt.Errorf("bench commit: bad WORKERS %q", args[3])
			}
		}
		return benchCommit(ctx, args[1], n, workers)
	case "load", "fsync":
		if len(args) != 3 {
			return fmt.Errorf("bench %s: want PATH N", args[0])
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n <= 0 {
			return fmt.Errorf("bench %s: bad N %q", args[0], args[2])
		}
		if args[0] == "load" {
			return benchLoad(ctx, args[1], n)
		}
		return benchFsync(args[1], n)
	}
	return fmt.Errorf("bench: unknown operation %q", args[0])
}

// benchIterate times one pass over every record. With reuse, each record is
// looked at and dropped, as a replication stream or verify does, through
// one reused buffer (FileIterator.ReuseBuffers); without, every
// transaction keeps memory of its own, as a caller that holds on to them
// needs.
func benchIterate(ctx context.Context, path, op string, reuse bool) error {
	s, err := fs.Open(path, fs.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	it, err := s.Iterate(ctx, 0, zodb.MaxTid)
	if err != nil {
		return err
	}
	defer it.Close()
	if r, ok := it.(interface{ ReuseBuffers(bool) }); ok {
		r.ReuseBuffers(reuse)
	}
	records := 0
	for {
		info, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		records += len(info.Records)
	}
	secs := time.Since(start).Seconds()
	size := fileSize(path)
	return printJSON(map[string]any{"op": op, "bytes": size, "records": records,
		"seconds": secs, "mb_per_s": float64(size) / 1e6 / secs})
}

// benchRead times reading the whole file sequentially in 1 MiB preads into
// one buffer, parsing nothing: the floor under any iterator that copies the
// file's bytes out of the page cache.
func benchRead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var size int64
	start := time.Now()
	for {
		n, err := f.ReadAt(buf, size)
		size += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	return printJSON(map[string]any{"op": "read", "bytes": size, "seconds": secs, "mb_per_s": float64(size) / 1e6 / secs})
}

func benchLoad(ctx context.Context, path string, n int) error {
	s, err := fs.Open(path, fs.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	var oids []zodb.Oid
	for _, oid := range s.Oids() {
		if _, _, err := s.Load(ctx, oid); err == nil {
			oids = append(oids, oid)
		}
	}
	if len(oids) == 0 {
		return fmt.Errorf("bench load: no loadable objects in %s", path)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for range n {
		if _, _, err := s.Load(ctx, oids[rng.IntN(len(oids))]); err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	return printJSON(map[string]any{"op": "load", "n": n, "seconds": secs, "us_per_op": secs * 1e6 / float64(n)})
}

// benchCommit times n commits of one new small object, from workers
// goroutines at once (n split between them), as a ZEO server's clients
// commit; with more than one, commits share fsyncs (group commit).
func benchCommit(ctx context.Context, path string, n, workers int) error {
	s, err := fs.Open(path, fs.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	data := mappingRecord(map[any]any{"payload": "0123456789abcdef0123456789abcdef0123456789"})
	per := n / workers
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		go func() { errs <- commitSmall(ctx, s, data, per) }()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	fsyncs := s.Fsyncs()
	if err := s.Close(); err != nil {
		return err
	}
	op := "commit"
	if workers > 1 {
		op = fmt.Sprintf("commit_x%d", workers)
	}
	n = per * workers
	return printJSON(map[string]any{"op": op, "n": n, "seconds": secs, "txn_per_s": float64(n) / secs, "fsyncs": fsyncs})
}

// commitSmall commits n transactions of one new object holding data.
func commitSmall(ctx context.Context, s *fs.FileStorage, data []byte, n int) error {
	for range n {
		oid, err := s.NewOid(ctx)
		if err != nil {
			return err
		}
		tx, err := s.Begin(ctx, zodb.TxnMeta{Description: []byte("bench")}, zodb.BeginOptions{})
		if err != nil {
			return err
		}
		if err := tx.Store(oid, 0, data); err != nil {
			tx.Abort()
			return err
		}
		if err := tx.Vote(ctx); err != nil {
			tx.Abort()
			return err
		}
		if _, err := tx.Finish(ctx); err != nil {
			return err
		}
	}
	return nil
}

// benchFsync measures the disk's floor for a commit: append a small
// transaction-sized record and fsync, n times, to a scratch file at path.
// No storage can commit (durably, one transaction at a time) faster.
func benchFsync(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()
	rec := make([]byte, 200)
	start := time.Now()
	for i := range n {
		if _, err := f.WriteAt(rec, int64(i*len(rec))); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	return printJSON(map[string]any{"op": "fsync", "n": n, "seconds": secs, "ops_per_s": float64(n) / secs})
}
