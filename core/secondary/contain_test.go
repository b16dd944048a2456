package secondary_test

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// panicConn stands for a bug in the code reading or writing the primary's
// connection: once armed, its next read that brings data, or its next
// write, panics (in the goroutine doing it, as a decoder's or an
// encoder's bug would).
type panicConn struct {
	net.Conn
	reads, writes *atomic.Bool // armed
}

const injectedPanic = "injected panic in the connection"

func (c panicConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.reads.CompareAndSwap(true, false) {
		panic(injectedPanic + " (read)")
	}
	return n, err
}

func (c panicConn) Write(b []byte) (int, error) {
	if c.writes.CompareAndSwap(true, false) {
		panic(injectedPanic + " (write)")
	}
	return c.Conn.Write(b)
}

// A panic while reading from or writing to the primary — in the
// handshake, in the stream, in the goroutine sending acknowledgements or
// keep-alives — ends that connection only: Run goes on, the secondary
// reconnects and ends up with the primary's exact file; the panic is
// logged with its stack, counted, and is the status's last error.
func TestPanicOnThePrimarysConnectionIsContained(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto secondary.Protocol
		write bool   // the write side panics, else the read side
		early bool   // armed from the start (the handshake), else once caught up
		doing string // what the log says the panic interrupted
	}{
		{"zrs3/handshake", secondary.ProtoNative, false, true, "exchanging the handshake with the primary"},
		{"zrs3/stream", secondary.ProtoNative, false, false, "reading from the primary's stream"},
		{"zrs3/ack", secondary.ProtoNative, true, false, "sending acknowledgements and keep-alives to the primary"},
		{"zrs2/handshake-write", secondary.ProtoZRS2, true, true, "sending the handshake to the primary"},
		{"zrs2/stream", secondary.ProtoZRS2, false, false, "reading a transaction from the primary"},
		{"zrs2/keep-alive", secondary.ProtoZRS2, true, false, "sending keep-alives to the primary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
			p := startPrimary(t, ppath, "127.0.0.1:0")
			w := newWorkload(t, p)
			w.run(20)
			var reads, writes atomic.Bool
			armed := &reads
			if tc.write {
				armed = &writes
			}
			armed.Store(tc.early)
			dial, dials := wrapFirstDial(p.addr, func(c net.Conn) net.Conn { return panicConn{c, &reads, &writes} })
			logs := &testutil.SyncBuffer{}
			var internal atomic.Int32
			opts := secondary.Options{
				Dialer:   dial,
				Protocol: tc.proto,
				Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
			}
			if tc.name == "zrs2/keep-alive" {
				opts.KeepAlive = 20 * time.Millisecond
			}
			s := startSecondary(t, spath, p.addr, opts, func(s *secondary.Secondary) {
				s.ObserveInternalErrors(func() { internal.Add(1) })
			})
			if !tc.early {
				waitCaughtUp(t, p, s)
				armed.Store(true)
				w.run(1) // read, or acknowledged (zrs3)
			}
			waitFor(t, "the panic", func() bool { return !armed.Load() })
			w.run(20)
			waitCaughtUp(t, p, s)
			select {
			case err := <-s.done:
				t.Fatalf("Run returned after the contained panic: %v", err)
			default:
			}
			if e := s.Status().LastError; !strings.Contains(e, "internal error") || !strings.Contains(e, tc.doing) {
				t.Errorf("last error %q does not name the internal error", e)
			}
			if n := dials.Load(); n < 2 {
				t.Errorf("%d connections: the secondary did not reconnect", n)
			}
			if n := internal.Load(); n != 1 {
				t.Errorf("%d internal errors observed, want 1", n)
			}
			log := logs.String()
			if !strings.Contains(log, "level=ERROR msg=\"internal error while "+tc.doing+";") || !strings.Contains(log, injectedPanic) {
				t.Errorf("no internal error while %s logged with the panic:\n%s", tc.doing, log)
			}
			// The stack is the panic's: it goes through the panicking
			// method, not only through the recover.
			if !strings.Contains(log, "panicConn.") {
				t.Errorf("the logged stack does not show where the panic was:\n%s", log)
			}
			s.close()
			p.close()
			sameFile(t, ppath, spath)
		})
	}
}
