package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/testutil"
)

// converge bounds every wait for replication to catch up or a process to
// react. Nothing here asserts an upper bound on speed; this only keeps a
// broken build from hanging CI.
const converge = 60 * time.Second

// Environment of a re-executed test binary acting as a committing primary.
const (
	childEnv     = "ZRS_ACCEPT_CHILD" // "primary"
	childPath    = "ZRS_ACCEPT_PATH"  // Data.fs
	childAddr    = "ZRS_ACCEPT_ADDR"  // where secondaries connect
	childSize    = "ZRS_ACCEPT_SIZE"  // bytes of data per transaction
	childRate    = "ZRS_ACCEPT_RATE"  // commits per second; 0 = as fast as possible
	childPrimary = "primary"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == childPrimary {
		if err := primaryChild(); err != nil {
			fmt.Fprintln(os.Stderr, "primary child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if zrsDir != "" {
		os.RemoveAll(zrsDir)
	}
	os.Exit(code)
}

// primaryChild serves a primary on $ZRS_ACCEPT_ADDR and commits one new
// object of $ZRS_ACCEPT_SIZE bytes per transaction at $ZRS_ACCEPT_RATE,
// printing "listening" once serving and "commit TID" once each Finish
// returned. Stdin commands: "pause", "resume"; EOF or SIGTERM shuts down
// cleanly (the storage's Close saves Data.fs.index).
func primaryChild() error {
	ctx := context.Background()
	size, _ := strconv.Atoi(os.Getenv(childSize))
	rate, _ := strconv.ParseFloat(os.Getenv(childRate), 64)
	st, err := fs.Open(os.Getenv(childPath), fs.Options{})
	if err != nil {
		return err
	}
	p := primary.New(st, primary.Options{})
	if _, err := p.Listen(ctx, os.Getenv(childAddr)); err != nil {
		p.Close()
		return err
	}
	go p.Serve(ctx)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "listening")
	out.Flush()

	var mu sync.Mutex
	paused, eof := false, false
	sigterm := make(chan os.Signal, 1)
	signal.Notify(sigterm, syscall.SIGTERM)
	go func() {
		<-sigterm
		mu.Lock()
		eof = true
		mu.Unlock()
	}()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			mu.Lock()
			paused = sc.Text() == "pause"
			mu.Unlock()
		}
		mu.Lock()
		eof = true
		mu.Unlock()
	}()
	var tick <-chan time.Time
	if rate > 0 {
		tk := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tk.Stop()
		tick = tk.C
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	data := make([]byte, size+8)
	for i := 0; ; i++ {
		if tick != nil {
			<-tick
		}
		mu.Lock()
		p1, e1 := paused, eof
		mu.Unlock()
		if e1 {
			break
		}
		if p1 {
			if tick == nil {
				time.Sleep(time.Millisecond)
			}
			continue
		}
		for j := 0; j < len(data); j += 4096 { // distinct pages, cheap to make
			data[j] = byte(rng.Uint32())
		}
		tid, err := commitOne(ctx, p, data, i)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "commit", tid)
		out.Flush()
	}
	sctx, cancel := context.WithTimeout(ctx, converge)
	defer cancel()
	return p.Shutdown(sctx)
}

func commitOne(ctx context.Context, st zodb.Storage, data []byte, i int) (zodb.Tid, error) {
	oid, err := st.NewOid(ctx)
	if err != nil {
		return 0, err
	}
	txn, err := st.Begin(ctx, zodb.TxnMeta{Description: []byte(fmt.Sprintf("child %d", i))}, zodb.BeginOptions{})
	if err != nil {
		return 0, err
	}
	if err := txn.Store(oid, 0, data); err != nil {
		txn.Abort()
		return 0, err
	}
	if err := txn.Vote(ctx); err != nil {
		txn.Abort()
		return 0, err
	}
	return txn.Finish(ctx)
}

// childPrimaryProc is a running primary child.
type childPrimaryProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *testutil.SyncBuffer
	done    chan error
	mu      sync.Mutex
	commits int        // guarded by mu
	last    zodb.Tid   // guarded by mu
	tids    []zodb.Tid // guarded by mu: every acknowledged commit, in order
	exited  bool
}

// startPrimaryChild re-executes this test binary as a primary child and
// waits until it listens.
func startPrimaryChild(t *testing.T, path, addr string, size int, rate float64) *childPrimaryProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+childPrimary, childPath+"="+path, childAddr+"="+addr,
		childSize+"="+strconv.Itoa(size), childRate+"="+strconv.FormatFloat(rate, 'f', -1, 64))
	c := &childPrimaryProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "listening":
				close(listening)
			case len(f) == 2 && f[0] == "commit":
				tid, _ := zodb.ParseTid(f[1])
				c.mu.Lock()
				c.commits++
				c.last = tid
				c.tids = append(c.tids, tid)
				c.mu.Unlock()
			}
		}
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() { c.kill() })
	select {
	case <-listening:
	case err := <-c.done:
		c.exited = true
		t.Fatalf("primary child exited before listening: %v\n%s", err, c.stderr)
	case <-time.After(converge):
		t.Fatalf("primary child did not listen\n%s", c.stderr)
	}
	return c
}

func (c *childPrimaryProc) acked() (int, zodb.Tid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commits, c.last
}

// ackedTids returns every tid whose commit the child acknowledged so far
// (all of them once the child has exited: kill and stop wait for its
// output to be read).
func (c *childPrimaryProc) ackedTids() []zodb.Tid {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.tids)
}

// terminate sends SIGTERM: the child stops committing and shuts down.
func (c *childPrimaryProc) terminate(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("primary child: %v\n%s", err, c.stderr)
	}
}

func (c *childPrimaryProc) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		t.Fatalf("primary child: %v\n%s", err, c.stderr)
	}
}

// kill sends SIGKILL and waits for the process (idempotent).
func (c *childPrimaryProc) kill() {
	if c.exited {
		return
	}
	c.exited = true
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop closes stdin (the child shuts down gracefully) and requires exit 0.
func (c *childPrimaryProc) stop(t *testing.T) {
	t.Helper()
	if c.exited {
		return
	}
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.exited = true
		if err != nil {
			t.Fatalf("primary child: %v\n%s", err, c.stderr)
		}
	case <-time.After(converge):
		t.Fatalf("primary child did not stop\n%s", c.stderr)
	}
}

// zrsDir holds the zrs binary built for this run.
var (
	zrsOnce sync.Once
	zrsDir  string
	zrsBin  string
	zrsErr  error
)

// buildZRS builds cmd/zrs once per test binary run.
func buildZRS(t *testing.T) string {
	t.Helper()
	zrsOnce.Do(func() {
		if zrsDir, zrsErr = os.MkdirTemp("", "zrs-accept-"); zrsErr != nil {
			return
		}
		zrsBin = filepath.Join(zrsDir, "zrs")
		out, err := exec.Command("go", "build", "-o", zrsBin, "github.com/zrs-replication/zrs/cmd/zrs").CombinedOutput()
		if err != nil {
			zrsErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if zrsErr != nil {
		t.Fatal(zrsErr)
	}
	return zrsBin
}

// secondaryProc is a running "zrs secondary" process (or any other zrs
// daemon startZRSProc started).
type secondaryProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
	exited bool
}

func startSecondaryProc(t *testing.T, bin, path, from string) *secondaryProc {
	t.Helper()
	return startZRSProc(t, bin, "secondary", path, "--replicate-from", from)
}

// startZRSProc starts the zrs binary with args (a daemon command).
func startZRSProc(t *testing.T, bin string, args ...string) *secondaryProc {
	t.Helper()
	s := &secondaryProc{cmd: exec.Command(bin, args...),
		stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *secondaryProc) signal(sig syscall.Signal) { _ = s.cmd.Process.Signal(sig) }

// kill sends SIGKILL (after SIGCONT, in case it is stopped) and waits.
func (s *secondaryProc) kill() {
	if s.exited {
		return
	}
	s.exited = true
	s.signal(syscall.SIGKILL)
	s.signal(syscall.SIGCONT)
	<-s.done
}

// stop sends SIGTERM and requires a clean exit.
func (s *secondaryProc) stop(t *testing.T) {
	t.Helper()
	if s.exited {
		return
	}
	s.signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.exited = true
		if err != nil {
			t.Fatalf("zrs secondary: %v\n%s", err, s.stderr)
		}
	case <-time.After(converge):
		t.Fatalf("zrs secondary did not stop after SIGTERM\n%s", s.stderr)
	}
}

// waitFor polls cond until it holds or converge passes.
func waitFor(t *testing.T, what string, cond func() bool, logs ...fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !cond() {
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, l := range logs {
				fmt.Fprintf(&sb, "\n--- log:\n%s", l)
			}
			t.Fatalf("timed out after %v waiting for %s%s", converge, what, sb.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitSameBytes waits until file b has exactly the bytes of file a.
func waitSameBytes(t *testing.T, a, b string, logs ...fmt.Stringer) {
	t.Helper()
	want, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("%s to reach the %d bytes of %s", filepath.Base(b), len(want), filepath.Base(a)), func() bool {
		if fi, err := os.Stat(b); err != nil || fi.Size() != int64(len(want)) {
			return false
		}
		got, _ := os.ReadFile(b)
		return bytes.Equal(got, want)
	}, logs...)
}

// sameFile fails unless the two files have the same bytes.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ab, bb) {
		return
	}
	i := 0
	for i < min(len(ab), len(bb)) && ab[i] == bb[i] {
		i++
	}
	t.Fatalf("%s (%d bytes) and %s (%d bytes) differ from offset %d", a, len(ab), b, len(bb), i)
}

// iterFile iterates a whole file that no process is writing.
func iterFile(t *testing.T, path string) zodb.TxnIterator {
	t.Helper()
	it, err := fs.OpenFileIterator(path, 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

// iterStorage iterates a whole storage (consistent while it commits).
func iterStorage(t *testing.T, st zodb.Iterable) zodb.TxnIterator {
	t.Helper()
	it, err := st.Iterate(context.Background(), 0, zodb.MaxTid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

// checkAcked fails unless every tid in acked is a transaction of it (a
// whole storage or file) with exactly one data record, as the primary
// child commits. It returns how many transactions it has.
func checkAcked(t *testing.T, what string, it zodb.TxnIterator, acked []zodb.Tid) int {
	t.Helper()
	have := make(map[zodb.Tid]int)
	for {
		info, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: after %d transactions: %v", what, len(have), err)
		}
		have[info.Tid] = len(info.Records)
	}
	for i, tid := range acked {
		n, ok := have[tid]
		if !ok {
			t.Fatalf("%s: acknowledged commit %d of %d, %s, is not in the file (%d transactions there)", what, i+1, len(acked), tid, len(have))
		}
		if n != 1 {
			t.Fatalf("%s: acknowledged commit %s has %d records, want 1", what, tid, n)
		}
	}
	return len(have)
}

// comparePrefix checks, transaction by transaction, that every
// transaction of sec equals the transaction at the same place in prim
// (tid, status, metadata, and each record's oid, tid, data and data_txn);
// with equal, prim must have nothing more. It returns how many
// transactions sec has.
func comparePrefix(t *testing.T, what string, prim, sec zodb.TxnIterator, equal bool) int {
	t.Helper()
	ctx := context.Background()
	for n := 0; ; n++ {
		s, err := sec.Next(ctx)
		if errors.Is(err, io.EOF) {
			if equal {
				if p, err := prim.Next(ctx); err == nil {
					t.Fatalf("%s: secondary ends after %d transactions, primary has %s next", what, n, p.Tid)
				} else if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: primary after %d transactions: %v", what, n, err)
				}
			}
			return n
		}
		if err != nil {
			t.Fatalf("%s: secondary transaction %d: %v", what, n, err)
		}
		p, err := prim.Next(ctx)
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s: secondary has transaction %s (#%d) beyond the primary's last", what, s.Tid, n)
		}
		if err != nil {
			t.Fatalf("%s: primary transaction %d: %v", what, n, err)
		}
		if d := txnDiff(p, s); d != "" {
			t.Fatalf("%s: transaction #%d (primary %s) differs on the secondary: %s", what, n, p.Tid, d)
		}
	}
}

// txnDiff says how s differs from p, "" if it does not.
func txnDiff(p, s *zodb.TxnInfo) string {
	switch {
	case p.Tid != s.Tid:
		return fmt.Sprintf("tid %s, want %s", s.Tid, p.Tid)
	case p.Status != s.Status:
		return fmt.Sprintf("status %q, want %q", s.Status, p.Status)
	case !bytes.Equal(p.User, s.User), !bytes.Equal(p.Description, s.Description), !bytes.Equal(p.Extension, s.Extension):
		return fmt.Sprintf("metadata %q/%q/%q, want %q/%q/%q", s.User, s.Description, s.Extension, p.User, p.Description, p.Extension)
	case len(p.Records) != len(s.Records):
		return fmt.Sprintf("%d records, want %d", len(s.Records), len(p.Records))
	}
	for i := range p.Records {
		pr, sr := &p.Records[i], &s.Records[i]
		switch {
		case pr.Oid != sr.Oid:
			return fmt.Sprintf("record %d: oid %s, want %s", i, sr.Oid, pr.Oid)
		case pr.Tid != sr.Tid:
			return fmt.Sprintf("record %d (oid %s): tid %s, want %s", i, pr.Oid, sr.Tid, pr.Tid)
		case pr.DataTxn != sr.DataTxn:
			return fmt.Sprintf("record %d (oid %s): data_txn %s, want %s", i, pr.Oid, sr.DataTxn, pr.DataTxn)
		case (pr.Data == nil) != (sr.Data == nil), !bytes.Equal(pr.Data, sr.Data):
			return fmt.Sprintf("record %d (oid %s): %d bytes of data (nil %v), want %d (nil %v)",
				i, pr.Oid, len(sr.Data), sr.Data == nil, len(pr.Data), pr.Data == nil)
		}
	}
	return ""
}

// checkSecondaryFile is what every scenario ends with, the secondary
// stopped: its file opens read-write as a restarted secondary would open
// it (recovering a torn tail), passes Verify, and is a prefix of prim's
// history. It returns the number of transactions it holds.
func checkSecondaryFile(t *testing.T, what, path string, prim zodb.TxnIterator) int {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatalf("%s: the secondary's file does not open: %v", what, err)
	}
	n := comparePrefix(t, what, prim, iterStorage(t, st), false)
	if err := st.Close(); err != nil {
		t.Fatalf("%s: close: %v", what, err)
	}
	if _, err := fs.Verify(context.Background(), path, fs.VerifyOptions{}); err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	return n
}

// snapshots collects copies of a file at the end of scenarios for one
// run of Python's fstest over all of them (one interpreter start).
type snapshots struct {
	dir   string
	paths []string
	last  int64
}

func newSnapshots(t *testing.T) *snapshots { return &snapshots{dir: t.TempDir(), last: -1} }

// add copies path unless it has the size of the previous copy (a prefix
// of the primary's file of the same size has the same bytes).
func (s *snapshots) add(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) == s.last {
		return
	}
	s.last = int64(len(b))
	p := filepath.Join(s.dir, fmt.Sprintf("snap%03d.fs", len(s.paths)))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s.paths = append(s.paths, p)
}

// pythonFstest runs ZODB's fstest on each path with the project's venv
// (built by tests/setup.sh, which `make test` runs first). Without the
// venv the test fails: a compatibility check that is not run does not
// pass.
func pythonFstest(t *testing.T, paths ...string) {
	t.Helper()
	py := filepath.Join(repoRoot(t), ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("no %s for Python's fstest: run tests/setup.sh (or make setup) first", py)
	}
	const script = `import sys
from ZODB.scripts.fstest import check
for p in sys.argv[1:]:
    try:
        check(p)
    except Exception as e:
        print("%s: %s: %s" % (p, type(e).__name__, e))
        sys.exit(1)
`
	out, err := exec.Command(py, append([]string{"-c", script}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("Python's fstest failed: %v\n%s", err, out)
	}
	t.Logf("Python's fstest passed on %d files", len(paths))
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// workload commits varied transactions to a storage: new objects and
// updates of sizes from a few bytes to tens of KiB, and now and then an
// undo of the previous update (backpointers), an undo of a creation (a
// record without data), a delete, and a Python-style extension.
type workload struct {
	st   zodb.Storage
	rng  *rand.Rand
	n    int
	live []zodb.Oid
	ser  map[zodb.Oid]zodb.Tid
}

func newWorkload(st zodb.Storage, seed uint64) *workload {
	return &workload{st: st, rng: rand.New(rand.NewPCG(seed, 3)), ser: make(map[zodb.Oid]zodb.Tid)}
}

// pyExtension is {'user_name': 'x', 'k': 1} pickled as Python ZODB stores it.
var pyExtension = []byte("\x80\x03}q\x00(X\t\x00\x00\x00user_nameq\x01X\x01\x00\x00\x00xq\x02X\x01\x00\x00\x00kq\x03K\x01u.")

func (w *workload) size() int {
	switch r := w.rng.IntN(100); {
	case r < 5:
		return 20<<10 + w.rng.IntN(40<<10)
	case r < 30:
		return 1<<10 + w.rng.IntN(4<<10)
	default:
		return w.rng.IntN(400)
	}
}

func (w *workload) data(oid zodb.Oid) []byte {
	b := make([]byte, w.size())
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	return append([]byte(fmt.Sprintf("oid %d txn %d:", oid, w.n)), b...)
}

// commit runs fn in a transaction and finishes it.
func (w *workload) commit(meta zodb.TxnMeta, fn func(zodb.Txn) error) (zodb.Tid, error) {
	ctx := context.Background()
	txn, err := w.st.Begin(ctx, meta, zodb.BeginOptions{})
	if err != nil {
		return 0, err
	}
	if err := fn(txn); err != nil {
		txn.Abort()
		return 0, err
	}
	if err := txn.Vote(ctx); err != nil {
		txn.Abort()
		return 0, err
	}
	w.n++
	return txn.Finish(ctx)
}

func (w *workload) create(k int) (zodb.Tid, []zodb.Oid, error) {
	var made []zodb.Oid
	tid, err := w.commit(zodb.TxnMeta{User: []byte(" tester"), Description: []byte(fmt.Sprintf("create %d", w.n))}, func(txn zodb.Txn) error {
		for range k {
			oid, err := w.st.NewOid(context.Background())
			if err != nil {
				return err
			}
			if err := txn.Store(oid, 0, w.data(oid)); err != nil {
				return err
			}
			made = append(made, oid)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	for _, oid := range made {
		w.ser[oid] = tid
	}
	w.live = append(w.live, made...)
	return tid, made, nil
}

func (w *workload) update(meta zodb.TxnMeta, oids ...zodb.Oid) (zodb.Tid, error) {
	tid, err := w.commit(meta, func(txn zodb.Txn) error {
		for _, oid := range oids {
			if err := txn.Store(oid, w.ser[oid], w.data(oid)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, oid := range oids {
		w.ser[oid] = tid
	}
	return tid, nil
}

func (w *workload) undo(tid zodb.Tid) error {
	var oids []zodb.Oid
	_, err := w.commit(zodb.TxnMeta{Description: []byte("undo " + tid.String())}, func(txn zodb.Txn) error {
		var err error
		oids, err = txn.Undo(context.Background(), tid)
		return err
	})
	if err != nil {
		return err
	}
	for _, oid := range oids {
		if _, s, err := w.st.Load(context.Background(), oid); err == nil {
			w.ser[oid] = s
		} else {
			w.live = remove(w.live, oid) // an undone creation
		}
	}
	return nil
}

// step commits one transaction of a kind chosen by the transaction
// count (two for the undos: the undone one, then the undo).
func (w *workload) step() error {
	if len(w.live) < 4 || w.n%5 == 0 {
		_, _, err := w.create(1 + w.rng.IntN(3))
		return err
	}
	a := w.live[w.rng.IntN(len(w.live))]
	b := w.live[w.rng.IntN(len(w.live))]
	switch w.n % 97 {
	case 13: // undo an update: backpointers
		tid, err := w.update(zodb.TxnMeta{Description: []byte("to be undone")}, a)
		if err != nil {
			return err
		}
		return w.undo(tid)
	case 41: // undo a creation: a record without data
		tid, _, err := w.create(1)
		if err != nil {
			return err
		}
		return w.undo(tid)
	case 67:
		_, err := w.commit(zodb.TxnMeta{Description: []byte("delete")}, func(txn zodb.Txn) error {
			return txn.Delete(a, w.ser[a])
		})
		if err == nil {
			w.live = remove(w.live, a)
		}
		return err
	case 89:
		_, err := w.update(zodb.TxnMeta{User: []byte("/ admin"), Description: []byte("extension"), Extension: pyExtension}, a)
		return err
	}
	meta := zodb.TxnMeta{Description: []byte(fmt.Sprintf("update %d", w.n))}
	if a == b {
		_, err := w.update(meta, a)
		return err
	}
	_, err := w.update(meta, a, b)
	return err
}

func remove(s []zodb.Oid, x zodb.Oid) []zodb.Oid {
	out := s[:0]
	for _, o := range s {
		if o != x {
			out = append(out, o)
		}
	}
	return out
}

// testLogger logs to stderr with -v, else nowhere.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runningPrimary is an in-process primary serving on TCP loopback.
type runningPrimary struct {
	*primary.Primary
	addr string
	errc chan error
	once sync.Once
}

func startPrimary(t *testing.T, path string) *runningPrimary {
	t.Helper()
	return startPrimaryWith(t, path, primary.Options{})
}

// startPrimaryWith is startPrimary with options (its logger is set).
func startPrimaryWith(t *testing.T, path string, opts primary.Options) *runningPrimary {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = testLogger().With("node", "primary")
	p := primary.New(st, opts)
	a, err := p.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	rp := &runningPrimary{Primary: p, addr: a.String(), errc: make(chan error, 1)}
	go func() { rp.errc <- p.Serve(context.Background()) }()
	t.Cleanup(func() { rp.stop(t) })
	return rp
}

func (rp *runningPrimary) stop(t *testing.T) {
	rp.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), converge)
		defer cancel()
		if err := rp.Shutdown(ctx); err != nil {
			t.Errorf("primary shutdown: %v", err)
		}
		if err := <-rp.errc; err != nil {
			t.Errorf("primary serve: %v", err)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func openFS(t *testing.T, path string) *fs.FileStorage {
	t.Helper()
	st, err := fs.Open(path, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func fsVerify(path string) (*fs.VerifyReport, error) {
	return fs.Verify(context.Background(), path, fs.VerifyOptions{})
}
