package zeo

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Writers committing at once (their commits share fsyncs: tpc_finish hands
// on the commit lock before the fsync) while a reader watches: every
// commit's invalidation reaches the reader, in tid order; a vote that
// conflicts with a commit still waiting for its fsync answers only once
// that commit is published, so the client can load it (loadSerial) and
// resolve; and the shared counter the writers resolve counts every
// increment.
func TestGroupCommitPublishesInOrder(t *testing.T) {
	_, addr, st := newTestServer(t, Options{})
	setup := dialTest(t, addr, nil)
	setup.register(false)
	counter := setup.newOid()
	setup.commit(1, store{counter, 0, []byte("0")})

	reader := dialTest(t, addr, nil)
	reader.register(true)
	fsyncsBefore := st.Fsyncs()

	const writers, rounds = 6, 30
	var mu sync.Mutex
	committed := map[zodb.Tid]bool{}
	increments := 0
	var wg sync.WaitGroup
	for w := range writers {
		c := dialTest(t, addr, nil)
		c.skipInvalidations = true
		c.register(false)
		own := c.newOid()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ownSerial zodb.Tid
			for i := range rounds {
				txn := int64(w*1000 + i + 10)
				inc := i%3 == 0
				var cur []byte
				var curSerial zodb.Tid
				if inc {
					// What the client sees now; by vote it is often
					// stale, and the vote hands back a conflict.
					v := c.call("loadBefore", oidValue(counter), tidValue(zodb.MaxTid))
					cur, _ = v.Items()[0].AsBytes()
					curSerial = mustTid(t, v.Items()[1])
				}
				c.begin(txn)
				c.oneWay("storea", oidValue(own), tidValue(ownSerial), pyval.Bytes(fmt.Appendf(nil, "w%d r%d", w, i)), pyval.Int(txn))
				if inc {
					n, _ := strconv.Atoi(string(cur))
					c.oneWay("storea", oidValue(counter), tidValue(curSerial), pyval.Bytes(strconv.AppendInt(nil, int64(n+1), 10)), pyval.Int(txn))
				}
				for v := c.call("vote", pyval.Int(txn)); v.Len() != 0; v = c.call("vote", pyval.Int(txn)) {
					for _, cf := range v.Items() {
						sv, _ := cf.Lookup("serials")
						committedSerial := mustTid(t, sv.Items()[0])
						// The committed revision must load now.
						m := c.wait(c.start("loadSerial", oidValue(counter), tidValue(committedSerial)), "loadSerial")
						if m.Flags == FlagError {
							t.Errorf("writer %d: loadSerial of the conflicting serial %s: %s", w, committedSerial, m.Args)
							return
						}
						b, _ := m.Args.AsBytes()
						n, err := strconv.Atoi(string(b))
						if err != nil {
							t.Errorf("writer %d: counter holds %q", w, b)
							return
						}
						c.oneWay("storea", oidValue(counter), tidValue(committedSerial), pyval.Bytes(strconv.AppendInt(nil, int64(n+1), 10)), pyval.Int(txn))
					}
				}
				tid := c.finish(txn)
				ownSerial = tid
				mu.Lock()
				committed[tid] = true
				if inc {
					increments++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var last zodb.Tid
	for len(committed) > 0 {
		m := reader.expect("invalidateTransaction")
		tid := mustTid(t, m.Args.Items()[0])
		if tid <= last {
			t.Fatalf("invalidation %s after %s", tid, last)
		}
		last = tid
		if !committed[tid] {
			t.Fatalf("invalidation for %s, not a commit of this test", tid)
		}
		delete(committed, tid)
	}
	data, _, err := st.Load(context.Background(), counter)
	if err != nil || string(data) != strconv.Itoa(increments) || increments != writers*rounds/3 {
		t.Fatalf("counter %q, %v after %d increments", data, err, increments)
	}
	t.Logf("%d commits, %d fsyncs", writers*rounds, st.Fsyncs()-fsyncsBefore)
	reader.noOneWay(50 * time.Millisecond)
}
