package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"os"
	"strconv"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Data.fs.oid records the greatest oid this storage may have handed out
// (NewOid), so that a reopened storage never hands one out again.
//
// ZEO clients fetch new oids in batches and keep what they have not used
// across a reconnection. A server that restarts (cleanly or not) and
// starts again from the greatest oid in the file hands the same oids to
// other clients; the first of each pair to commit wins and the other's
// transactions fail with ConflictError until its batch is used up — tens
// to hundreds of failed commits after every restart. Python's FileStorage
// behaves so. zrs reserves oids in blocks of oidBlock, writing the block's
// end here before handing out the first of them.
//
// The file is zrs's own (Python ignores it) and only a hint: a missing or
// unreadable one is the file's greatest oid, as Python has it, and a
// reservation that cannot be written (a full disk) is a warning, not a
// failed NewOid.
//
// Format: the oid as 16 hexadecimal digits and a newline.
const (
	oidSuffix = ".oid"
	oidBlock  = 4096
	// oidMaxAhead bounds how far the recorded oid may lie beyond the
	// file's greatest: more is taken for damage and ignored.
	oidMaxAhead = 1 << 40
)

// NewOid returns an oid that was never handed out nor used: past the
// greatest in the file and the greatest this storage (or an earlier
// process on the same file) reserved. Read-only storages refuse it.
func (s *FileStorage) NewOid(ctx context.Context) (zodb.Oid, error) {
	if s.readOnly {
		return 0, zodb.ErrReadOnly
	}
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, zodb.ErrClosed
		}
		if m, ok := s.index.MaxOid(); ok && m > s.oid {
			s.oid = m
		}
		if s.oid == zodb.Oid(math.MaxUint64) {
			s.mu.Unlock()
			return 0, fmt.Errorf("%s: %w: every oid is used (the greatest, %s, is in use)", s.path, zodb.ErrNotSupported, s.oid)
		}
		next := s.oid + 1
		if next <= s.highOid() {
			s.oid = next
			s.mu.Unlock()
			return next, nil
		}
		s.mu.Unlock()
		// Reserve the next block before handing out its first oid. Not
		// under mu: the save fsyncs, and loads wait for nothing. A block
		// ends at the last oid at most (an oid that near the end comes
		// from a store or a restore: nothing counts up to it).
		high := next + min(oidBlock-1, zodb.Oid(math.MaxUint64)-next)
		if err := s.saveOidHigh(high); err != nil {
			s.log.Warn("cannot record the new oids handed out; after a restart ZEO clients may get conflicts on new objects",
				logKeyFile, s.path+oidSuffix, "err", err)
		}
		s.setOidHigh(high)
	}
}

// saveOidHigh durably records high in Data.fs.oid (see replaceFile).
func (s *FileStorage) saveOidHigh(high zodb.Oid) error {
	name := s.path + oidSuffix
	return replaceFile(name, name+".tmp", func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%016x\n", uint64(high))
		return err
	})
}

// dropOidHigh removes Data.fs.oid when an open starts a new database (a
// file it creates, or Options.Create): the old one's reservations mean
// nothing for it.
func (s *FileStorage) dropOidHigh() {
	name := s.path + oidSuffix
	if err := os.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		s.log.Warn("cannot remove the old database's oid record", logKeyFile, name, "err", err)
	}
}

// loadOidHigh reads Data.fs.oid at a read-write open: NewOid continues
// after it. A missing file is nothing; an unreadable or implausible one
// (beyond oidMaxAhead past the file's greatest oid) is a warning.
func (s *FileStorage) loadOidHigh() {
	name := s.path + oidSuffix
	b, err := os.ReadFile(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return
	}
	var high uint64
	if err == nil {
		high, err = strconv.ParseUint(string(bytes.TrimSpace(b)), 16, 64)
	}
	maxOid, _ := s.index.MaxOid()
	if err == nil && high > uint64(maxOid) && high-uint64(maxOid) > oidMaxAhead {
		err = fmt.Errorf("%016x is more than 2^40 past the greatest oid in the file, %s", high, maxOid)
	}
	if err != nil {
		s.log.Warn("ignoring the record of oids handed out", logKeyFile, name, "err", err)
		return
	}
	s.mu.Lock()
	s.oid = max(s.oid, zodb.Oid(high))
	s.setOidHigh(zodb.Oid(high))
	s.mu.Unlock()
}

// SkipOids moves the next new oid at least n past every oid the storage
// holds, handed out or reserved, and records it in Data.fs.oid before it
// returns; if the record fails, the skip still holds in memory, for this
// process, and the error says the record is lost. A secondary calls it
// when it is promoted: ZEO clients of the old primary hold new oids that
// primary reserved, which this file never saw; they lie past the greatest
// oid replicated here by far less than a large n. Near the end of the oid
// space it stops at the last oid.
func (s *FileStorage) SkipOids(n uint64) error {
	if err := s.lockOids(); err != nil {
		return err
	}
	defer s.oidMu.Unlock()
	s.mu.Lock()
	base := max(s.oid, s.highOid())
	if m, ok := s.index.MaxOid(); ok {
		base = max(base, m)
	}
	s.mu.Unlock()
	target := base + zodb.Oid(min(n, math.MaxUint64-uint64(base)))
	// Skip in memory even if the record failed: this process's new oids
	// must still start past the old primary's clients'.
	if err := s.reserveOids(target); err != nil {
		return fmt.Errorf("%s: recording new oids past %s: %w", s.path, target, err)
	}
	return nil
}

// lockOids takes oidMu to move the reservation; a read-only or closed
// storage refuses.
func (s *FileStorage) lockOids() error {
	if s.readOnly {
		return zodb.ErrReadOnly
	}
	s.oidMu.Lock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.oidMu.Unlock()
		return zodb.ErrClosed
	}
	return nil
}

// reserveOids records target in Data.fs.oid and moves new oids past it.
// The move holds in memory even if the record fails (its error). The
// caller holds oidMu.
func (s *FileStorage) reserveOids(target zodb.Oid) error {
	err := s.saveOidHigh(target)
	s.setOidHigh(target)
	s.mu.Lock()
	s.oid = max(s.oid, target)
	s.mu.Unlock()
	return err
}

var _ zodb.OidReserver = (*FileStorage)(nil)

// OidReservation returns the greatest oid this storage may hand out as a
// new oid before it reserves (or is told of, NoteOidReservation) more: one
// block past what it reserved or the greatest oid in the file, whichever
// is greater. A primary tells its native secondaries
// (zrsproto.Heartbeat.Oids), so a secondary knows of every oid of a block
// before the first of them is handed out, as long as the previous block
// lasted longer than the message takes. It does not wait for a
// reservation being recorded (NewOid's fsync).
func (s *FileStorage) OidReservation() zodb.Oid {
	base := s.oidHigh.Load()
	s.mu.Lock()
	if m, ok := s.index.MaxOid(); ok {
		// Rounded up to a block: commits that store oids past the
		// reservation (an import, a relay) change it once a block, not
		// at every commit (each change costs every secondary a record).
		base = max(base, uint64(m)|(oidBlock-1))
	}
	s.mu.Unlock()
	return zodb.Oid(base + min(oidBlock, math.MaxUint64-base))
}

// highOid is the greatest oid reserved in Data.fs.oid.
func (s *FileStorage) highOid() zodb.Oid { return zodb.Oid(s.oidHigh.Load()) }

// setOidHigh moves the reservation; the caller holds oidMu (or opens).
func (s *FileStorage) setOidHigh(high zodb.Oid) {
	s.oidHigh.Store(uint64(high))
}

// NoteOidReservation records in Data.fs.oid that the primary this
// storage replicates may have handed out new oids up to high, so that
// this storage, once it is a primary itself (promoted, or restarted as
// one), hands out none of them: it starts past high, as after its own
// reservation. It does nothing for a high not above what is recorded,
// and refuses one more than 2^40 past the greatest oid in the file (which
// a reopen would ignore). As with NewOid, the skip holds in memory even
// if the record fails.
func (s *FileStorage) NoteOidReservation(high zodb.Oid) error {
	if err := s.lockOids(); err != nil {
		return err
	}
	defer s.oidMu.Unlock()
	if high <= s.highOid() {
		return nil
	}
	s.mu.Lock()
	maxOid, _ := s.index.MaxOid()
	s.mu.Unlock()
	if high > maxOid && uint64(high-maxOid) > oidMaxAhead {
		// What loadOidHigh would ignore at the next open: not recorded,
		// so that memory and file agree (and no bad value ends new oids).
		return fmt.Errorf("%s: the primary's new oids up to %s lie more than 2^40 past the greatest oid here, %s; not recorded", s.path, high, maxOid)
	}
	if err := s.reserveOids(high); err != nil {
		return fmt.Errorf("%s: recording the primary's new oids up to %s: %w", s.path, high, err)
	}
	return nil
}
