package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// PromoteTimeout bounds a promotion requested over HTTP; a client should
// wait longer, to hear how it ended.
const PromoteTimeout = 30 * time.Second

// Server is the admin endpoint of one daemon.
type Server struct {
	nodeMu  sync.Mutex
	node    Node // nil while the daemon starts (SetNode); guarded by nodeMu
	metrics *Metrics
	log     *slog.Logger
	http    *http.Server
	// promoting serializes promotions, so that of two at once exactly one
	// reports that it promoted the node and the other that it already was.
	// A channel of one, not a mutex: a request waits its turn only as long
	// as it may take (its answer must be written within the server's
	// WriteTimeout).
	promoting chan struct{}
	// promoteTimeout is PromoteTimeout (a test shortens it).
	promoteTimeout time.Duration
}

// NewServer serves node's status and promotion, and m's registry; m may
// be nil (no /metrics). log may be nil. node may be nil while the daemon
// starts (its storage opens): /status and /promote then answer 503,
// saying so at once, until SetNode.
//
// The endpoint listens from the start so that a wrong address fails the
// start before a long open; a request that waited unanswered meanwhile
// could run when its client had given up (a promotion it was told had
// failed).
func NewServer(node Node, m *Metrics, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{node: node, metrics: m, log: log.With("component", "admin"), promoteTimeout: PromoteTimeout, promoting: make(chan struct{}, 1)}
	// A client that stops reading must not hold a handler (and the
	// daemon's stop, which waits for handlers) forever: every response
	// is written within WriteTimeout, which leaves a promotion its
	// PromoteTimeout.
	// The server's own messages (accept errors when out of file
	// descriptors, TLS handshake noise) go to the daemon's log, in its
	// format, not to the standard logger.
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: PromoteTimeout + 10*time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s
}

// Handler returns the endpoint's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("POST /promote", s.handlePromote)
	if s.metrics != nil {
		// One bad series must not blank the whole scrape: serve what
		// could be gathered, and log what could not.
		prom := promhttp.HandlerFor(s.metrics.Registry(), promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError, ErrorLog: &promLogger{log: s.log}})
		// While the daemon starts, a scrape fails (Prometheus: up == 0)
		// rather than show a healthy target without its node's series.
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			if s.current(w) != nil {
				prom.ServeHTTP(w, r)
			}
		})
	}
	return mux
}

// Listen opens addr (a port, host:port, or a Unix socket path containing
// "/") and serves it in the background until Shutdown. It returns the
// bound address.
func (s *Server) Listen(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := netaddr.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := s.Serve(ln); err != nil {
		return nil, err
	}
	return ln.Addr(), nil
}

// Serve serves ln (opened with netaddr.Listen) in the background until
// Shutdown. A Unix socket is made connectable by the daemon's group only;
// on error ln is closed.
func (s *Server) Serve(ln net.Listener) error {
	if ua, ok := ln.Addr().(*net.UnixAddr); ok {
		// Connecting takes write permission on the socket: the daemon's
		// group (the operators) may, others may not, whatever the umask
		// (the unit's 0027 would leave the group out).
		if err := os.Chmod(ua.Name, adminSocketMode); err != nil {
			ln.Close()
			return fmt.Errorf("admin socket %s: %w", ua.Name, err)
		}
	}
	s.log.Info("admin endpoint listening", "addr", ln.Addr().String())
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		s.log.Warn("the admin endpoint listens beyond this host and has no authentication: anyone who reaches it can promote this node; "+
			"prefer a unix socket or a loopback address, or firewall it", "addr", ln.Addr().String())
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin endpoint failed", "err", err)
		}
	}()
	return nil
}

// adminSocketMode is the mode of a unix admin socket: owner and group.
const adminSocketMode = 0o660

// Shutdown stops serving, waiting for requests in progress until ctx
// ends; then it closes their connections, so that no handler outlives it.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	return err
}

// SetNode makes the server answer for node, once the daemon has started.
func (s *Server) SetNode(node Node) {
	s.nodeMu.Lock()
	s.node = node
	s.nodeMu.Unlock()
}

// current returns the node, or answers 503 and returns nil while the
// daemon starts.
func (s *Server) current(w http.ResponseWriter) Node {
	s.nodeMu.Lock()
	n := s.node
	s.nodeMu.Unlock()
	if n == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: ErrStarting.Error()})
	}
	return n
}

// ErrStarting is what the endpoint answers while the daemon opens its
// storage (which may scan the whole file).
var ErrStarting = errors.New("the daemon is starting (opening its storage; a scan of a large file without its index takes minutes): try again once it is up")

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if n := s.current(w); n != nil {
		writeJSON(w, http.StatusOK, n.Status())
	}
}

func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.promoteTimeout)
	defer cancel()
	node := s.current(w)
	if node == nil {
		s.log.Warn("promotion requested while starting: refused", "from", r.RemoteAddr)
		return
	}
	s.log.Warn("promotion requested", "from", r.RemoteAddr)
	// Read the body (none is expected) to its end: only then does
	// net/http watch the connection and end r.Context() if the client
	// goes while this request waits its turn.
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
	select {
	case s.promoting <- struct{}{}:
		defer func() { <-s.promoting }()
	case <-ctx.Done():
	}
	if r.Context().Err() != nil {
		// The client gave up while another promotion ran: it was told
		// this one failed, so it must not happen.
		s.log.Warn("promotion request abandoned by its client: not promoting", "from", r.RemoteAddr)
		return
	}
	if ctx.Err() != nil {
		s.log.Warn("promotion request waited its whole time behind another one: not promoting", "from", r.RemoteAddr)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "another promotion held the node for the whole " + s.promoteTimeout.String() +
			" this one may take; it was not run: see zrs status, and promote again if the node is still a secondary", Role: node.Status().Role})
		return
	}
	start := time.Now()
	already := !node.Status().PromotedAt.IsZero()
	if err := node.Promote(ctx); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotSecondary) {
			// An operator's mistake, not this node's failure.
			s.log.Warn("promotion refused: this node is not a secondary", "err", err)
			writeJSON(w, http.StatusConflict, errorBody{Error: err.Error(), Role: node.Status().Role})
			return
		}
		s.log.Error("promotion failed", "err", err)
		writeJSON(w, code, errorBody{Error: err.Error(), Role: node.Status().Role})
		return
	}
	writeJSON(w, http.StatusOK, PromoteResult{Status: node.Status(), TookSeconds: time.Since(start).Seconds(), Already: already})
}

// PromoteResult is what POST /promote returns on success.
type PromoteResult struct {
	Status
	TookSeconds float64 `json:"took_seconds"`
	// Already: the node had been promoted before this request, which
	// changed nothing.
	Already bool `json:"already_promoted,omitempty"`
}

// errorBody is what a failed request returns.
type errorBody struct {
	Error string `json:"error"`
	Role  string `json:"role,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// promLogger logs the metrics handler's errors (a series that could not
// be gathered is left out of the scrape): at most one line a minute, as a
// failing series fails every scrape, with the count of those not logged.
type promLogger struct {
	log     *slog.Logger
	mu      sync.Mutex
	last    time.Time // when a line was last logged
	skipped int       // errors since then, not logged
}

func (l *promLogger) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && time.Since(l.last) < time.Minute {
		l.skipped++
		return
	}
	l.log.Error("metrics: "+strings.TrimSuffix(fmt.Sprintln(v...), "\n"), "not_logged_since", l.skipped)
	l.last, l.skipped = time.Now(), 0
}
