package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/admin"
)

// A failover interrupted: a zrs secondary process (with --zeo and
// --admin) replicating a committing primary child is promoted as an
// operator does it (POST /promote on its admin endpoint, the old
// primary's writes stopped first: paused and the secondary seen caught
// up, or the old primary killed with SIGKILL in its stream), while a ZEO
// client keeps trying to commit to it, and is killed with SIGKILL a random
// 0–30 ms after the promotion was sent, 8 times. The kill lands before
// the request arrives, while replication stops (a transaction received
// whole being written), just after the storage became writable, or among
// the first commits to the new primary. Each time its file must open
// (recovery cuts only an unfinished transaction), pass Verify, and hold a
// prefix of the old primary's history followed by nothing but commits of
// the ZEO client, among them every commit the new primary acknowledged.
// Then it is restarted as what it was at the kill: promoted (the promotion
// answered, or a commit to it reached its file) it is restarted as a
// primary, takes commits, and the old primary comes back as its secondary,
// which must either converge to it byte for byte or, if the old primary
// has transactions the new one lacks, be refused with "history diverged"
// and its file left alone; not promoted, it is restarted as a secondary
// of the old primary (restarted) and must converge to it. Every file
// passes Python's fstest at the end. A killed process leaves its writes in
// the page cache, so, as every kill test here, this cannot catch a missing
// fsync.
func TestKillDuringPromotion(t *testing.T) {
	bin := buildZRS(t)
	rng := rand.New(rand.NewPCG(41, 6))
	var files []string
	var promoted, withCommits, converged, refused int
	for trial := range 8 {
		r := promoteKillTrial(t, bin, rng, trial)
		files = append(files, r.files...)
		if r.promoted {
			promoted++
		}
		if r.commits > 0 {
			withCommits++
		}
		if r.refused {
			refused++
		} else {
			converged++
		}
	}
	t.Logf("promotion in effect at %d of 8 kills, commits to the new primary in the file at %d; "+
		"afterwards %d converged, %d refused as diverged", promoted, withCommits, converged, refused)
	if withCommits == 0 {
		t.Fatal("no kill came after a commit to the new primary: the kills did not hit the promotion's aftermath")
	}
	pythonFstest(t, files...)
}

// promoteKillResult is what one trial of TestKillDuringPromotion saw.
type promoteKillResult struct {
	promoted bool     // the promotion had taken effect at the kill
	commits  int      // commits to the new primary in its file after the kill
	refused  bool     // the returning node was refused as diverged
	files    []string // the files to run Python's fstest on
}

// newPrimaryDesc starts the description of every commit the ZEO client
// makes: a transaction that does not is the old primary's.
const newPrimaryDesc = "new primary "

func promoteKillTrial(t *testing.T, bin string, rng *rand.Rand, trial int) promoteKillResult {
	t.Helper()
	var res promoteKillResult
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "old.fs"), filepath.Join(dir, "new.fs")
	psock, nsock := filepath.Join(dir, "old.sock"), filepath.Join(dir, "new.sock")
	zsock, adm, adm2 := filepath.Join(dir, "zeo.sock"), filepath.Join(dir, "admin.sock"), filepath.Join(dir, "admin2.sock")
	killOld := trial%2 == 1
	// A promotion answers within a millisecond or so: the delays, random
	// up to 30 ms, are 30 ms times the square of a uniform fraction, so
	// that about a third fall in the first 3 ms and the rest among the
	// first commits to the new primary.
	u := rng.Float64()
	delay := time.Duration(u * u * float64(30*time.Millisecond))
	if trial == 0 {
		delay = 0 // at least once, the kill comes before the promotion can
	}
	what := fmt.Sprintf("trial %d (old primary %s, kill %v after the promotion was sent)", trial,
		map[bool]string{false: "paused", true: "killed"}[killOld], delay)

	// The primary that will die commits as fast as it can, so that the
	// secondary is still receiving and writing when the promotion comes.
	rate := 400.0
	if killOld {
		rate = 0
	}
	old := startPrimaryChild(t, ppath, psock, 100+rng.IntN(8000), rate)
	s := startZRSProc(t, bin, "secondary", spath, "--replicate-from", psock, "--zeo", zsock, "--admin", adm)
	ac := newAdminClient(t, adm)
	waitFor(t, what+": the secondary to replicate", func() bool {
		st, err := adminStatus(ac)
		return err == nil && st.LastTid != zodb.Tid(0).String()
	}, s.stderr, old.stderr)
	time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)

	// As OPERATIONS.md says, writes on the old primary stop first: it is
	// dead (killed in its stream), or its writes are stopped and the
	// secondary checked caught up.
	if killOld {
		old.kill()
	} else {
		old.send(t, "pause")
		waitFor(t, what+": the secondary to catch up", func() bool {
			st, err := adminStatus(ac)
			_, last := old.acked()
			return err == nil && st.Upstream != nil && st.Upstream.CaughtUp && st.LastTid == last.String()
		}, s.stderr, old.stderr)
	}

	w := startZEOWriter(zsock, fmt.Sprintf("%s%d.", newPrimaryDesc, trial))
	promoted := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), converge)
		defer cancel()
		_, err := ac.Promote(ctx)
		promoted <- err
	}()
	time.Sleep(delay)
	s.kill()
	promoteErr := <-promoted
	acked := w.stop()
	if promoteErr != nil && strings.Contains(s.stderr.String(), "promotion failed") {
		t.Fatalf("%s: the promotion failed before the kill: %v\n%s", what, promoteErr, s.stderr)
	}
	if !killOld {
		old.stop(t)
	}

	// The old primary's file at rest (recovered after a kill), with
	// every commit it acknowledged.
	pst := openFS(t, ppath)
	checkAcked(t, what+": the old primary", iterStorage(t, pst), old.ackedTids())
	oldTxns := readTxns(t, iterStorage(t, pst))
	if err := pst.Close(); err != nil {
		t.Fatal(err)
	}

	common, mine := checkPromotedFile(t, what, spath, oldTxns, acked)
	res.promoted = promoteErr == nil || len(mine) > 0
	res.commits = len(mine)
	killed := filepath.Join(t.TempDir(), "killed.fs")
	copyPrefix(t, spath, killed, fileSize(t, spath))
	res.files = append(res.files, killed)
	t.Logf("%s: promotion answered %v (%v); the file holds %d of the old primary's %d transactions and %d commits to the new primary (%d acknowledged)",
		what, promoteErr == nil, promoteErr, common, len(oldTxns), len(mine), len(acked))

	if res.promoted {
		// Promoted: it is restarted as the primary (OPERATIONS.md), takes
		// commits, and the old primary comes back as its secondary.
		np := startZRSProc(t, bin, "primary", spath, "--replicate-to", nsock, "--zeo", zsock, "--admin", adm)
		if n := len(zeoCommitN(t, zsock, fmt.Sprintf("%s%d.restarted.", newPrimaryDesc, trial), 3)); n != 3 {
			t.Fatalf("%s: the restarted primary took %d commits, want 3", what, n)
		}
		before, err := os.ReadFile(ppath)
		if err != nil {
			t.Fatal(err)
		}
		back := startZRSProc(t, bin, "secondary", ppath, "--replicate-from", nsock, "--admin", adm2)
		if common == len(oldTxns) {
			// Its history is a prefix of the new primary's: it converges.
			waitSameBytes(t, spath, ppath, back.stderr, np.stderr)
			back.stop(t)
			np.stop(t)
			sameFile(t, spath, ppath)
		} else {
			// It has transactions the new primary lacks: refused, and
			// nothing written.
			res.refused = true
			waitFor(t, what+": the returning old primary to be refused", func() bool {
				if fileSize(t, ppath) != int64(len(before)) {
					t.Fatalf("%s: the old primary, whose history diverged, was streamed to as a secondary of the new one\n%s", what, back.stderr)
				}
				return strings.Contains(back.stderr.String(), "history diverged")
			}, back.stderr, np.stderr)
			back.stop(t)
			np.stop(t)
			after, err := os.ReadFile(ppath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("%s: the refused secondary's file changed from %d to %d bytes", what, len(before), len(after))
			}
		}
	} else {
		// Not promoted: it is restarted as a secondary of the old primary
		// (restarted, committing again) and converges to it.
		old2 := startPrimaryChild(t, ppath, psock, 200, 300)
		s2 := startZRSProc(t, bin, "secondary", spath, "--replicate-from", psock, "--admin", adm)
		ac2 := newAdminClient(t, adm)
		waitFor(t, what+": the restarted secondary to apply the old primary's new commits", func() bool {
			tids := old2.ackedTids()
			if len(tids) < 10 {
				return false
			}
			st, err := adminStatus(ac2)
			return err == nil && st.LastTid >= tids[0].String()
		}, s2.stderr, old2.stderr)
		old2.stop(t) // a graceful stop streams what was committed
		waitSameBytes(t, ppath, spath, s2.stderr)
		s2.stop(t)
		sameFile(t, ppath, spath)
	}
	if _, err := fsVerify(spath); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	res.files = append(res.files, ppath, spath)
	return res
}

// readTxns reads every transaction of it.
func readTxns(t *testing.T, it zodb.TxnIterator) []*zodb.TxnInfo {
	t.Helper()
	var txns []*zodb.TxnInfo
	for {
		info, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return txns
		}
		if err != nil {
			t.Fatalf("after %d transactions: %v", len(txns), err)
		}
		txns = append(txns, info)
	}
}

// checkPromotedFile opens the killed node's file as its restart will
// (recovery), and requires that it pass Verify and hold the first
// transactions of old, then only commits of the ZEO client, among them
// every one in acked. It returns how many of old's transactions it
// holds, and the tids of the ZEO client's commits there.
func checkPromotedFile(t *testing.T, what, path string, old []*zodb.TxnInfo, acked []zodb.Tid) (int, []zodb.Tid) {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("%s: the killed node's file does not open: %v", what, err)
	}
	common := 0
	var mine []zodb.Tid
	for _, s := range readTxns(t, iterStorage(t, st)) {
		if len(mine) == 0 && common < len(old) && txnDiff(old[common], s) == "" {
			common++
			continue
		}
		if !bytes.HasPrefix(s.Description, []byte(newPrimaryDesc)) {
			diff := "the old primary has nothing there"
			if common < len(old) {
				diff = txnDiff(old[common], s)
			}
			t.Fatalf("%s: transaction %s (%q), after %d of the old primary's and %d commits to the new primary, is neither: %s",
				what, s.Tid, s.Description, common, len(mine), diff)
		}
		mine = append(mine, s.Tid)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("%s: close: %v", what, err)
	}
	if _, err := fsVerify(path); err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	for _, tid := range acked {
		if !slices.Contains(mine, tid) {
			t.Fatalf("%s: the new primary acknowledged commit %s, which its file lacks (it holds %d of its commits)", what, tid, len(mine))
		}
	}
	return common, mine
}

func newAdminClient(t *testing.T, addr string) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return c
}

// adminStatus fetches /status, failing fast while the endpoint is not up.
func adminStatus(c *admin.Client) (admin.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, _, err := c.Status(ctx)
	return st, err
}

// zeoWriter is a ZEO client committing to a node as fast as it can: it
// registers writable again and again until the node accepts (a secondary
// refuses until promoted), then commits one new object per transaction
// until the connection fails, and starts over.
type zeoWriter struct {
	stopping atomic.Bool
	done     chan struct{}
	mu       sync.Mutex
	acked    []zodb.Tid // guarded by mu: commits tpc_finish answered
}

func startZEOWriter(addr, desc string) *zeoWriter {
	w := &zeoWriter{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		n := 0
		for !w.stopping.Load() {
			c, err := dialZEO(addr)
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			for !w.stopping.Load() {
				tid, err := c.commitNew(fmt.Sprintf("%s%d", desc, n))
				if err != nil {
					break
				}
				n++
				w.mu.Lock()
				w.acked = append(w.acked, tid)
				w.mu.Unlock()
			}
			c.conn.Close()
		}
	}()
	return w
}

// stop ends the writer and returns the commits it saw acknowledged.
func (w *zeoWriter) stop() []zodb.Tid {
	w.stopping.Store(true)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// zeoCommitN commits n new objects through the ZEO server at addr and
// returns the tids.
func zeoCommitN(t *testing.T, addr, desc string, n int) []zodb.Tid {
	t.Helper()
	var c *zeoClient
	waitFor(t, "a writable ZEO registration at "+addr, func() bool {
		var err error
		c, err = dialZEO(addr)
		return err == nil
	})
	defer c.conn.Close()
	var tids []zodb.Tid
	for i := range n {
		tid, err := c.commitNew(fmt.Sprintf("%s%d", desc, i))
		if err != nil {
			t.Fatalf("ZEO commit to %s: %v", addr, err)
		}
		tids = append(tids, tid)
	}
	return tids
}

// zeoClient is the least of a ZEO 5 client that commits: one call at a
// time, one-way messages from the server skipped.
type zeoClient struct {
	conn  net.Conn
	br    *bufio.Reader
	codec zeo.Codec
	msgid int64
	oids  []zodb.Oid // from new_oids, not used yet
}

// dialZEO connects to the unix socket addr, answers the server's
// protocol and registers writable for storage "1".
func dialZEO(addr string) (*zeoClient, error) {
	conn, err := net.DialTimeout("unix", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(converge))
	br := bufio.NewReader(conn)
	proto, err := zeo.ReadFrame(br, 64)
	if err == nil && len(proto) < 2 {
		err = fmt.Errorf("protocol %q", proto)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ZEO %s: reading the protocol: %w", addr, err)
	}
	codec, ok := zeo.CodecFor(proto[0])
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("ZEO %s: protocol %q", addr, proto)
	}
	if _, err := conn.Write(zeo.AppendFrame(nil, []byte{proto[0], '5'})); err != nil {
		conn.Close()
		return nil, err
	}
	c := &zeoClient{conn: conn, br: br, codec: codec}
	if _, err := c.call(true, "register", pyval.Str("1"), pyval.Bool(false)); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// call sends a message; with reply it waits for the answer and returns
// it (an error answer is an error).
func (c *zeoClient) call(reply bool, name string, args ...*pyval.Value) (*pyval.Value, error) {
	m := &zeo.Message{ID: pyval.Int(0), Flags: zeo.FlagOneWay, Name: name, Args: pyval.Tuple(args...)}
	if reply {
		c.msgid++
		m.ID, m.Flags = pyval.Int(c.msgid), zeo.FlagReply
	}
	p, err := c.codec.Encode(m)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(zeo.AppendFrame(nil, p)); err != nil || !reply {
		return nil, err
	}
	for {
		p, err := zeo.ReadFrame(c.br, 16<<20)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r, err := c.codec.Decode(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case r.Flags == zeo.FlagOneWay:
			continue
		case !pyval.Equal(r.ID, m.ID):
			return nil, fmt.Errorf("%s: the reply to msgid %s came instead", name, r.ID)
		case r.Flags == zeo.FlagError:
			return nil, fmt.Errorf("%s: %s", name, r.Args)
		}
		return r.Args, nil
	}
}

// commitNew commits one new object in a transaction described desc, as
// ClientStorage commits, and returns its tid.
func (c *zeoClient) commitNew(desc string) (zodb.Tid, error) {
	if len(c.oids) == 0 {
		v, err := c.call(true, "new_oids")
		if err != nil {
			return 0, err
		}
		for _, it := range v.Items() {
			b, _ := it.AsBytes()
			oid, err := zodb.TidFromBytes(b)
			if err != nil {
				return 0, fmt.Errorf("new_oids: %w", err)
			}
			c.oids = append(c.oids, zodb.Oid(oid))
		}
		if len(c.oids) == 0 {
			return 0, fmt.Errorf("new_oids returned %s", v)
		}
	}
	oid := c.oids[0]
	c.oids = c.oids[1:]
	id := pyval.Int(1)
	ob, zero := zodb.Tid(oid).Bytes(), [8]byte{}
	if _, err := c.call(false, "tpc_begin", id, pyval.Bytes(nil), pyval.Bytes([]byte(desc)), pyval.Dict(), pyval.None(), pyval.Str(" ")); err != nil {
		return 0, err
	}
	if _, err := c.call(false, "storea", pyval.Bytes(ob[:]), pyval.Bytes(zero[:]), pyval.Bytes([]byte("data of "+desc)), id); err != nil {
		return 0, err
	}
	if _, err := c.call(true, "vote", id); err != nil {
		return 0, err
	}
	v, err := c.call(true, "tpc_finish", id)
	if err != nil {
		return 0, err
	}
	b, _ := v.AsBytes()
	return zodb.TidFromBytes(b)
}
