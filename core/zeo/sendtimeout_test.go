package zeo

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// Every TCP client's socket gets the send timeout that drops a vanished
// host (netaddr.SetSendTimeout, whose test shows its effect); negative
// keeps the kernel's.
func TestClientConnectionsGetSendTimeout(t *testing.T) {
	for _, c := range []struct {
		opt  time.Duration
		want int
	}{{0, 60000}, {3 * time.Second, 3000}, {-1, 0}} {
		st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(st, Options{SendTimeout: c.opt})
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &testutil.RecordingListener{Listener: tcp}
		if err := srv.Serve(ln); err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// The option is set before the session is counted.
		deadline := time.Now().Add(10 * time.Second)
		for srv.Clients() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if srv.Clients() != 1 {
			t.Fatal("the server did not take the connection")
		}
		if got := testutil.UserTimeout(t, ln.Conns()[0]); got != c.want {
			t.Errorf("SendTimeout %v: the client's socket has TCP_USER_TIMEOUT %d ms, want %d", c.opt, got, c.want)
		}
		conn.Close()
		srv.Close()
		st.Close()
	}
}
