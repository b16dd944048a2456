package admin

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/testutil"
)

// A client given the wrong address says what is there and what to give
// instead, without Go's made-up URL.
func TestClientNamesWrongAddresses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<!DOCTYPE HTML>\n<html><body>404 Not Found</body></html>", http.StatusNotFound)
	}))
	t.Cleanup(foreign.Close)
	refusing := func() string { // a port that was just free
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	zeoLike := testutil.ServeTCP(t, func(c net.Conn) { // greets at once, reads what comes, closes (no reset)
		c.Write([]byte("\x00\x00\x00\x02Z5"))
		var got []byte
		buf := make([]byte, 512)
		for !bytes.Contains(got, []byte("\r\n\r\n")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
	})
	closing := testutil.ServeTCP(t, func(c net.Conn) { c.Read(make([]byte, 1)) }) // reads a byte of the request, closes
	silent := testutil.ServeTCP(t, func(c net.Conn) { time.Sleep(2 * time.Second) })
	for _, c := range []struct{ name, addr, want string }{
		{"refused", refusing, "nothing listens there (connection refused): is the daemon running, and is this its --admin address"},
		{"no socket", filepath.Join(dir, "none.sock"), "no such socket: is the daemon running"},
		{"not a socket", filepath.Join(dir, "file"), "nothing listens on this socket"},
		{"zeo port", zeoLike, "it does not speak HTTP: not an admin endpoint"},
		{"closed unanswered", closing, "the connection was closed without an answer: the daemon stopped or crashed"},
		{"another http server", foreign.Listener.Addr().String(), `GET /status: 404 Not Found ("<!DOCTYPE HTML>"): not a zrs admin endpoint`},
		{"silent", silent, "no answer in time: not a zrs admin endpoint, or the daemon is stuck"},
	} {
		cl, err := NewClient(c.addr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, _, err = cl.Status(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "admin endpoint "+c.addr+": ") || !strings.Contains(err.Error(), c.want) ||
			strings.Contains(err.Error(), "http://zrs") {
			t.Errorf("%s: %v\nwant it to name %s and say %q", c.name, err, c.addr, c.want)
		}
	}
	if _, err := NewClient("http://127.0.0.1:9100/status"); err == nil || !strings.Contains(err.Error(), "is a URL: give the admin address itself") {
		t.Errorf("a URL: %v", err)
	}
}
