package secondary_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zodb"
)

// throttleProxy relays TCP connections to target, passing the primary's
// bytes on at about rate bytes per second in 256-byte pieces: a slow link
// that never goes quiet.
func throttleProxy(t *testing.T, target string, rate int) string {
	return serveEach(t, func(_ int, c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.Close() }()
		const piece = 256
		every := time.Second * piece / time.Duration(rate)
		buf := make([]byte, piece)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
				time.Sleep(every)
			}
			if err != nil {
				return
			}
		}
	})
}

// A link far slower than the machine but never quiet is not a dead
// primary: a transaction that takes several idle periods to arrive is
// received whole, over either protocol, on the first connection.
func TestSlowLinkIsNotCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts secondary.Options
	}{
		{"zrs2", secondary.Options{Protocol: secondary.ProtoZRS2, ReadTimeout: 500 * time.Millisecond}},
		{"zrs3", secondary.Options{Protocol: secondary.ProtoNative, NoCompression: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
			// zrs3: 150 ms heartbeats, so the idle time is 450 ms.
			p := startPrimaryWith(t, ppath, "127.0.0.1:0", primary.Options{HeartbeatInterval: 150 * time.Millisecond})
			newWorkload(t, p).commit(zodb.TxnMeta{}, func(txn zodb.Txn) error {
				oid, err := p.NewOid(context.Background())
				if err != nil {
					return err
				}
				data := make([]byte, 8<<10)
				rand.Read(data)
				return txn.Store(oid, 0, data)
			})
			// 4 KiB/s: the transaction takes 2 s, four idle periods.
			s := startSecondary(t, spath, throttleProxy(t, p.addr, 4<<10), tc.opts)
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) && s.LastTransaction() != p.LastTransaction() {
				time.Sleep(20 * time.Millisecond)
			}
			if s.LastTransaction() != p.LastTransaction() {
				t.Fatalf("the transaction never arrived through a slow link: %q", s.Status().LastError)
			}
			if st := s.Status(); st.LastError != "" {
				t.Errorf("the slow link was cut on the way: %q", st.LastError)
			}
		})
	}
}
