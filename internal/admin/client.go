package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/zrs-replication/zrs/internal/netaddr"
)

// Client talks to a daemon's admin endpoint.
type Client struct {
	addr string
	unix bool
	http *http.Client
}

// NewClient returns a client for the endpoint at addr (a port,
// host:port, or a Unix socket path containing "/").
func NewClient(addr string) (*Client, error) {
	if strings.Contains(addr, "://") {
		return nil, fmt.Errorf("%q is a URL: give the admin address itself (host:port, a port, or a socket path)", addr)
	}
	a, err := netaddr.Parse(addr)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return a.Dial(ctx)
	}}
	return &Client{addr: addr, unix: a.Network == netaddr.Unix, http: &http.Client{Transport: tr}}, nil
}

// explain turns a failed request's error into what it means for someone
// who gave this address: Go's HTTP client names a URL that was never
// typed and says little of what to do.
func (c *Client) explain(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	const check = "is the daemon running, and is this its --admin address (admin: in its config)?"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("admin endpoint %s: no answer in time: not a zrs admin endpoint, or the daemon is stuck (%w)", c.addr, err)
	case c.unix && errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("admin endpoint %s: no such socket: %s", c.addr, check)
	case c.unix && errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("admin endpoint %s: nothing listens on this socket (a stale socket, or not a socket): %s", c.addr, check)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("admin endpoint %s: nothing listens there (connection refused): %s", c.addr, check)
	case strings.Contains(err.Error(), "malformed HTTP"), strings.Contains(err.Error(), "readLoopPeekFailLocked"),
		strings.Contains(err.Error(), "transport connection broken"):
		// It spoke, and not HTTP (a ZEO server greets before it is asked).
		return fmt.Errorf("admin endpoint %s: it does not speak HTTP: not an admin endpoint (a ZEO or replication port?); give the daemon's --admin address", c.addr)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("admin endpoint %s: the connection was closed without an answer: the daemon stopped or crashed, "+
			"or this is not its admin endpoint (a replication port closes on HTTP)", c.addr)
	}
	return fmt.Errorf("admin endpoint %s: %w", c.addr, err)
}

// Status fetches GET /status. raw is the JSON as served.
func (c *Client) Status(ctx context.Context) (st Status, raw []byte, err error) {
	raw, err = c.do(ctx, http.MethodGet, "/status")
	if err != nil {
		return Status{}, nil, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return Status{}, nil, fmt.Errorf("admin %s: status: %w", c.addr, err)
	}
	return st, raw, nil
}

// Promote asks the node to become the primary. A node that is not a
// secondary gives an error wrapping ErrNotSecondary.
func (c *Client) Promote(ctx context.Context) (PromoteResult, error) {
	raw, err := c.do(ctx, http.MethodPost, "/promote")
	if err != nil {
		return PromoteResult{}, err
	}
	var res PromoteResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return PromoteResult{}, fmt.Errorf("admin %s: promote: %w", c.addr, err)
	}
	return res, nil
}

// do makes a request and returns the body of a 200 answer; any other
// answer is an error carrying the server's message.
func (c *Client) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://zrs"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s: %s %s: %w", c.addr, method, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		// Not a zrs answer: another HTTP server. Its first line is enough.
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if len(line) > 120 {
			line = line[:120] + "..."
		}
		return nil, fmt.Errorf("admin endpoint %s: %s %s: %s (%q): not a zrs admin endpoint; give the daemon's --admin address",
			c.addr, method, path, resp.Status, line)
	}
	err = fmt.Errorf("admin endpoint %s: %s %s: %s: %s", c.addr, method, path, resp.Status, eb.Error)
	if resp.StatusCode == http.StatusConflict {
		err = fmt.Errorf("%w: it is a %s", ErrNotSecondary, eb.Role)
	}
	return nil, err
}

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }
