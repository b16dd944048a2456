package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/zrs-replication/zrs/internal/netaddr"
)

// Client talks to a daemon's admin endpoint.
type Client struct {
	addr string
	http *http.Client
}

// NewClient returns a client for the endpoint at addr (a port,
// host:port, or a Unix socket path containing "/").
func NewClient(addr string) (*Client, error) {
	a, err := netaddr.Parse(addr)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return a.Dial(ctx)
	}}
	return &Client{addr: addr, http: &http.Client{Transport: tr}}, nil
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
		return nil, fmt.Errorf("admin endpoint %s: %w", c.addr, err)
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
	msg := string(body)
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	err = fmt.Errorf("admin endpoint %s: %s %s: %s: %s", c.addr, method, path, resp.Status, msg)
	if resp.StatusCode == http.StatusConflict {
		err = fmt.Errorf("%w: it is a %s", ErrNotSecondary, eb.Role)
	}
	return nil, err
}

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }
