package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

// slowNode promotes as secondary.Secondary does: serialized, idempotent
// (a second Promote returns nil at once), taking a while (the replication
// loop stopping, fsyncs, a relay's sync wait); Status never waits for it.
type slowPromoter struct{ mu sync.Mutex }

type slowNode struct {
	p    *slowPromoter
	stmu sync.Mutex
	at   time.Time
}

func (n *slowNode) Status() admin.Status {
	n.stmu.Lock()
	defer n.stmu.Unlock()
	st := admin.Status{Role: admin.RoleSecondary}
	if !n.at.IsZero() {
		st.Role, st.PromotedAt = admin.RolePrimary, n.at
	}
	return st
}

func (n *slowNode) Promote(ctx context.Context) error {
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	n.stmu.Lock()
	done := !n.at.IsZero()
	n.stmu.Unlock()
	if done {
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	n.stmu.Lock()
	n.at = time.Now().UTC()
	n.stmu.Unlock()
	return nil
}

// Two promotions requested together (an operator and a failover script):
// one promotes, the other changes nothing and says so (already_promoted),
// so that `zrs promote` prints "promoted" once.
func TestConcurrentPromotesClaimThePromotionOnce(t *testing.T) {
	node := &slowNode{p: &slowPromoter{}}
	srv := httptest.NewServer(admin.NewServer(node, nil, nil).Handler())
	defer srv.Close()
	if fresh := promoteTogether(t, srv.URL); fresh != 1 {
		t.Fatalf("%d of 2 concurrent promotions answered already_promoted=false; exactly one promoted the node", fresh)
	}
}

// The same with a real secondary (promotion takes a few ms: the
// replication loop stopping, SkipOids' fsync).
func TestConcurrentPromotesOfASecondary(t *testing.T) {
	pr := startPair(t)
	last := commit(t, pr.p, 3)
	waitFor(t, "replication", func() bool { return pr.s.LastTransaction() == last })
	srv := httptest.NewServer(admin.NewServer(pr.sn, nil, nil).Handler())
	defer srv.Close()
	if fresh := promoteTogether(t, srv.URL); fresh != 1 {
		t.Fatalf("%d of 2 concurrent promotions answered already_promoted=false; exactly one promoted the node", fresh)
	}
}

// promoteTogether posts two promotions to the admin endpoint at url at
// once and returns how many answered that they promoted the node.
func promoteTogether(t *testing.T, url string) int {
	results := make(chan admin.PromoteResult, 2)
	start := make(chan struct{})
	for range 2 {
		go func() {
			<-start
			resp, err := http.Post(url+"/promote", "", nil)
			if err != nil {
				t.Error(err)
				results <- admin.PromoteResult{}
				return
			}
			defer resp.Body.Close()
			var res admin.PromoteResult
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	close(start)
	fresh := 0
	for range 2 {
		if r := <-results; !r.Already {
			fresh++
		}
	}
	return fresh
}

// countingNode counts its promotions; the first one waits for release.
type countingNode struct {
	mu       sync.Mutex
	promotes int
	entered  chan struct{}
	release  chan struct{}
}

func (n *countingNode) Status() admin.Status { return admin.Status{Role: admin.RoleSecondary} }

func (n *countingNode) Promote(ctx context.Context) error {
	n.mu.Lock()
	n.promotes++
	first := n.promotes == 1
	n.mu.Unlock()
	if first {
		close(n.entered)
		<-n.release
	}
	return nil
}

// A promotion request whose client gave up while another promotion ran
// (it was told it failed) does not promote when its turn comes, with or
// without a body (net/http watches the connection only once the body is
// read).
func TestAbandonedPromoteRequestDoesNothing(t *testing.T) {
	for _, body := range []string{"", `{"reason":"failover"}`} {
		node := &countingNode{entered: make(chan struct{}), release: make(chan struct{})}
		srv := httptest.NewServer(admin.NewServer(node, nil, nil).Handler())
		first := make(chan error, 1)
		go func() {
			resp, err := http.Post(srv.URL+"/promote", "", nil)
			if err == nil {
				resp.Body.Close()
			}
			first <- err
		}()
		<-node.entered
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/promote", strings.NewReader(body))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the second promotion answered while the first was running")
		}
		cancel()
		time.Sleep(100 * time.Millisecond) // the server sees the client go
		close(node.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the abandoned handler takes its turn
		node.mu.Lock()
		if node.promotes != 1 {
			t.Errorf("body %q: %d promotions ran; the abandoned request must not run one", body, node.promotes)
		}
		node.mu.Unlock()
		srv.Close()
	}
}

// A promotion request that waited behind another for its whole time, its
// client still waiting (zrs promote waits longer than the server), is not
// run and says why, instead of an empty answer.
func TestQueuedPromoteThatRanOutOfTimeSaysSo(t *testing.T) {
	node := &countingNode{entered: make(chan struct{}), release: make(chan struct{})}
	as := admin.NewServer(node, nil, nil)
	admin.SetPromoteTimeout(as, 300*time.Millisecond)
	srv := httptest.NewServer(as.Handler())
	defer srv.Close()
	go func() {
		resp, err := http.Post(srv.URL+"/promote", "", nil)
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-node.entered
	go func() {
		// The first promotion outlives the second's deadline.
		time.Sleep(3 * time.Second)
		close(node.release)
	}()
	start := time.Now()
	resp, err := http.Post(srv.URL+"/promote", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Answered when its time was up, not when the lock came free (the
	// endpoint's write timeout could have cut the answer off by then).
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v, when the first promotion ended; want at its own deadline (300 ms)", took)
	}
	var body struct{ Error string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || err != nil || !strings.Contains(body.Error, "it was not run") {
		t.Errorf("answer %s %q (%v); want 503 saying it was not run", resp.Status, body.Error, err)
	}
	time.Sleep(3 * time.Second) // the first promotion ends
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.promotes != 1 {
		t.Errorf("%d promotions ran", node.promotes)
	}
}
