package primary

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// refusalLogEvery bounds how often the same refusal of the same host is
// logged at ERROR. A refused secondary retries (zrs and zc.zrs alike, up
// to every 30 s), and each retry is refused again, so a diverged
// secondary would otherwise add thousands of identical errors a day.
const refusalLogEvery = 10 * time.Minute

// refusalLog rate-limits the log of refused handshakes: the first refusal
// of a host for a reason is an error; the same again within
// refusalLogEvery is logged at debug level and counted, and the next
// error line says how many there were.
type refusalLog struct {
	mu   sync.Mutex
	seen map[refusalKey]*refusalSeen
	now  func() time.Time // time.Now; a test moves it
}

type refusalKey struct{ host, reason string }

type refusalSeen struct {
	logged   time.Time // when an error line was last written
	repeats  int       // refusals since, logged at debug level only
	lastSeen time.Time
}

// refused logs one refusal of conn's peer (log carries the peer) for err.
func (r *refusalLog) refused(log *slog.Logger, conn net.Conn, err error) {
	r.note(log, slog.LevelError, "refusing secondary", "refused_since_last_logged", conn, err.Error(), logKeyErr, err)
}

// note logs msg with attrs at level for conn's peer and reason, unless
// the same host and reason were logged so within refusalLogEvery: then at
// debug level, counted, and the next line at level says how many there
// were (the attribute repeatsKey).
func (r *refusalLog) note(log *slog.Logger, level slog.Level, msg, repeatsKey string, conn net.Conn, reason string, attrs ...any) {
	now := r.now()
	k := refusalKey{host: peerHost(conn), reason: reason}
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[refusalKey]*refusalSeen{}
	}
	for key, s := range r.seen { // forget hosts that stopped trying
		if now.Sub(s.lastSeen) > 2*refusalLogEvery {
			delete(r.seen, key)
		}
	}
	s := r.seen[k]
	if s != nil && now.Sub(s.logged) < refusalLogEvery {
		s.repeats++
		s.lastSeen = now
		r.mu.Unlock()
		log.Debug(msg+" again", attrs...)
		return
	}
	repeats := 0
	if s != nil {
		repeats = s.repeats
	}
	r.seen[k] = &refusalSeen{logged: now, lastSeen: now}
	r.mu.Unlock()
	if repeats > 0 {
		attrs = append(attrs, repeatsKey, repeats)
	}
	log.Log(context.Background(), level, msg, attrs...)
}

// peerHost names where a connection comes from, without the port a
// reconnection changes: the IP address, or the unix socket it came in on.
func peerHost(conn net.Conn) string {
	if h := remoteHost(conn); h != "" {
		return h
	}
	return conn.LocalAddr().Network() + ":" + conn.LocalAddr().String()
}

// remoteHost is the IP address conn comes from, or "" when it is not TCP.
func remoteHost(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}
