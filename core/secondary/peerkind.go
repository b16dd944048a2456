package secondary

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unicode"
)

// A secondary given the wrong address — the primary's ZEO port, an admin
// or metrics endpoint, some other service — would otherwise report what
// the zrs decoder made of the bytes ("frame too large: 1213486160 bytes"
// is "HTTP") or, when the other side closes on the secondary's hello,
// take it for a zc.zrs primary and fall back to zrs2.0. The first bytes
// the other side sends, or sends unasked, say what it is.

// firstBytes records up to cap(buf) bytes read through it.
type firstBytes struct {
	r   io.Reader
	buf []byte
}

func newFirstBytes(r io.Reader) *firstBytes { return &firstBytes{r: r, buf: make([]byte, 0, 64)} }

func (f *firstBytes) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if room := cap(f.buf) - len(f.buf); room > 0 {
		f.buf = append(f.buf, p[:min(n, room)]...)
	}
	return n, err
}

// more reads what r still has to give, up to the recorder's capacity,
// for at most wait: the decoder may have stopped after a few bytes.
func (f *firstBytes) more(conn net.Conn, wait time.Duration) {
	if len(f.buf) == 0 || len(f.buf) == cap(f.buf) {
		return
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	defer conn.SetReadDeadline(time.Time{})
	io.ReadAtLeast(f, make([]byte, cap(f.buf)), cap(f.buf)-len(f.buf))
}

// describePeer names what a peer that sent b is, when b is not the zrs
// protocol and says enough: "" when it does not.
func describePeer(b []byte) string {
	if len(b) >= 6 {
		// A ZEO server greets each connection with one frame: its
		// protocol, such as "Z5" (ZEO 5/6, pickles) or "M5" (msgpack).
		n := binary.BigEndian.Uint32(b)
		if n >= 2 && n <= 16 && len(b) >= 4+int(n) {
			p := b[4 : 4+n]
			if (p[0] == 'Z' || p[0] == 'M') && isDigits(p[1:]) {
				return fmt.Sprintf("a ZEO server (it greeted with %q)", p)
			}
		}
	}
	if bytes.HasPrefix(b, []byte("HTTP/")) {
		line, _, _ := bytes.Cut(b, []byte("\r\n"))
		return fmt.Sprintf("an HTTP server (it answered %q): an admin or metrics endpoint?", line)
	}
	if len(b) >= 4 && isText(b) {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return fmt.Sprintf("another service (it sent %q)", bytes.TrimSpace(line))
	}
	return ""
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isText(b []byte) bool {
	for _, r := range string(b) {
		if r == unicode.ReplacementChar || (!unicode.IsPrint(r) && !unicode.IsSpace(r)) {
			return false
		}
	}
	return true
}

// notReplicationPort is the error for a peer that is not a zrs or zc.zrs
// primary, being what.
func (s *Secondary) notReplicationPort(what string) error {
	return fmt.Errorf("%s is %s, not a replication port: point --replicate-from (replication.from) "+
		"at the primary's --replicate-to (replication.listen) address", s.addr, what)
}

// unaskedGrace is how long probeUnasked waits for a peer to speak first.
const unaskedGrace = 300 * time.Millisecond

// probeUnasked connects once more, says nothing, and reports what the
// peer is if it speaks first within unaskedGrace — a ZEO server greets
// every connection, a zrs or zc.zrs primary waits for the secondary —;
// if it stays silent, once more with a TLS handshake, which a TLS server
// (ZEO with a certificate) answers and a primary, speaking no TLS, does
// not. "" when neither tells.
func (s *Secondary) probeUnasked(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := s.dialer.Dial(ctx)
	if err != nil {
		return ""
	}
	conn.SetReadDeadline(time.Now().Add(unaskedGrace))
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(conn, buf, 6)
	conn.Close()
	if n > 0 {
		return describePeer(buf[:n])
	}
	if conn, err = s.dialer.Dial(ctx); err != nil {
		return ""
	}
	defer conn.Close()
	hctx, hcancel := context.WithTimeout(ctx, 2*unaskedGrace)
	defer hcancel()
	// Only to learn whether TLS answers: nothing is sent over it.
	err = tls.Client(conn, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(hctx)
	var alert tls.AlertError
	if err == nil || errors.As(err, &alert) {
		return "a TLS server (ZEO with a certificate?)"
	}
	return ""
}
