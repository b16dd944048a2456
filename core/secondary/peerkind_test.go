package secondary

import (
	"strings"
	"testing"
)

func TestDescribePeer(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"\x00\x00\x00\x02Z5", `a ZEO server (it greeted with "Z5")`},
		{"\x00\x00\x00\x02M5\x00\x00", `a ZEO server (it greeted with "M5")`},
		{"\x00\x00\x00\x05Z3101", `a ZEO server (it greeted with "Z3101")`},
		{"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain", `an HTTP server (it answered "HTTP/1.1 400 Bad Request"): an admin or metrics endpoint?`},
		{"SSH-2.0-OpenSSH_9.2\r\n", `another service (it sent "SSH-2.0-OpenSSH_9.2")`},
		// What a zrs primary may send: never taken for something else.
		{"\x00\x00\x00\x20{\"version\":1,\"database\":\"0123\"}", ""},
		{"\x00\x00\x00\x02zr", ""},
		{"\x00\x00\x00\x02Zx", ""},
		{"HTT", ""},
		{"", ""},
	} {
		if got := describePeer([]byte(c.in)); got != c.want {
			t.Errorf("describePeer(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Whatever a peer sends, describing it does not panic and says either
// nothing or one line.
func FuzzDescribePeer(f *testing.F) {
	for _, s := range []string{"\x00\x00\x00\x02Z5", "HTTP/1.1 200 OK\r\n", "SSH-2.0-x\r\n", "\x00\x00\x00\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := describePeer(b); strings.ContainsAny(got, "\r\n") {
			t.Fatalf("describePeer(%q) = %q: more than one line", b, got)
		}
	})
}
