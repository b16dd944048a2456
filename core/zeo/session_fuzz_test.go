package zeo

import (
	"encoding/binary"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// FuzzSession feeds a whole client side of a connection to a server
// session: the handshake reply, then frames. The input is a sequence of
// (2-byte length, payload) chunks, each sent as one frame; the seeds are
// well-formed calls, so mutations explore methods, arguments and their
// order. Whatever arrives, the session must neither panic (which the
// server contains, but counts and logs) nor hang, and the storage must
// stay usable.
func FuzzSession(f *testing.F) {
	for _, mp := range []bool{false, true} {
		codec := PickleCodec
		if mp {
			codec = MsgpackCodec
		}
		var in []byte
		add := func(m *Message) {
			p, err := codec.Encode(m)
			if err != nil {
				f.Fatal(err)
			}
			in = binary.BigEndian.AppendUint16(in, uint16(len(p)))
			in = append(in, p...)
		}
		call := func(id int64, name string, args ...*pyval.Value) {
			add(&Message{ID: pyval.Int(id), Name: name, Args: pyval.Tuple(args...)})
		}
		oneway := func(name string, args ...*pyval.Value) {
			add(&Message{ID: pyval.Int(0), Flags: FlagOneWay, Name: name, Args: pyval.Tuple(args...)})
		}
		call(1, "register", pyval.Str("1"), pyval.Bool(false))
		call(2, "get_info")
		call(3, "new_oids", pyval.Int(3))
		oneway("tpc_begin", pyval.Int(9), pyval.Bytes(nil), pyval.Bytes(nil), pyval.Dict(), pyval.None(), pyval.Str(" "))
		oneway("storea", oidValue(1), tidValue(0), pyval.Bytes([]byte("data")), pyval.Int(9))
		call(4, "vote", pyval.Int(9))
		call(5, "tpc_finish", pyval.Int(9))
		oneway("tpc_begin", pyval.Int(10), pyval.Bytes(nil), pyval.Bytes(nil), pyval.Dict(), pyval.None(), pyval.Str(" "))
		oneway("checkCurrentSerialInTransaction", oidValue(1), tidValue(0), pyval.Int(10))
		oneway("undoa", pyval.Bytes([]byte("BA1A/6smXpk=")), pyval.Int(10))
		call(15, "vote", pyval.Int(10))
		call(6, "loadBefore", oidValue(1), tidValue(1<<62))
		// As ClientStorage sends it (its oid and tid as the msgid): the
		// session's fast path for the pickle codec.
		add(&Message{ID: pyval.Tuple(oidValue(1), tidValue(1<<62)), Name: "loadBefore", Args: pyval.Tuple(oidValue(1), tidValue(1<<62))})
		add(&Message{ID: pyval.Tuple(oidValue(7), tidValue(1)), Name: "loadBefore", Args: pyval.Tuple(oidValue(7), tidValue(1))})
		call(7, "history", oidValue(1), pyval.Int(5))
		call(8, "undoLog", pyval.Int(0), pyval.Int(-5))
		call(9, "iterator_start", pyval.None(), pyval.None())
		call(10, "iterator_next", pyval.Int(1))
		call(11, "iterator_record_start", pyval.Int(1), tidValue(1))
		call(12, "record_iternext", pyval.None())
		call(13, "getInvalidations", tidValue(1))
		oneway("iterator_gc", pyval.List(pyval.Int(1)))
		call(14, "tpc_abort", pyval.Int(10))
		mark := byte('Z')
		if mp {
			mark = 'M'
		}
		f.Add(mark, in)
	}
	st, err := fs.Open(filepath.Join(f.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	// A panic serving a session is contained by the server (it closes
	// the connection); the counter and the log still show it.
	logs := &testutil.SyncBuffer{}
	srv := NewServer(st, Options{MaxFrame: 1 << 16, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer srv.Close()
	var mu sync.Mutex // one session at a time: the storage is shared
	f.Fuzz(func(t *testing.T, mark byte, in []byte) {
		mu.Lock()
		defer mu.Unlock()
		internal := srv.Stats().InternalErrors
		logs.Reset()
		client, server := net.Pipe()
		ss := newSession(srv, server)
		done := make(chan struct{})
		go func() { ss.run(); close(done) }()
		// Read the server's side; a call's reply is awaited before the
		// next frame is sent, as a synchronous client does.
		replies := make(chan struct{}, 1024)
		go func() {
			defer close(replies)
			for {
				p, err := ReadFrame(client, 1<<30)
				if err != nil {
					return
				}
				if len(p) == 2 {
					continue // the announcement
				}
				for _, c := range []Codec{PickleCodec, MsgpackCodec} {
					if m, err := c.Decode(p); err == nil && m.Flags != FlagOneWay {
						replies <- struct{}{}
						break
					}
				}
			}
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		client.Write(AppendFrame(nil, []byte{mark, '5'}))
		codec, _ := CodecFor(mark)
		for len(in) >= 2 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			if _, err := client.Write(AppendFrame(nil, in[:n])); err != nil {
				break
			}
			if codec != nil {
				if m, err := codec.Decode(in[:n]); err == nil && m.Flags != FlagOneWay && m.Name != ".reply" {
					select {
					case <-replies:
					case <-time.After(time.Second):
					}
				}
			}
			in = in[n:]
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after the client closed")
		}
		if srv.Stats().InternalErrors != internal {
			t.Fatalf("internal error (a panic) serving this input:\n%s", logs)
		}
		// The commit lock is free again: the next session can commit.
		select {
		case srv.commit <- struct{}{}:
			<-srv.commit
		case <-time.After(10 * time.Second):
			t.Fatal("commit lock still held after the session ended")
		}
	})
}
