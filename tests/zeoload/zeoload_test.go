package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/core/zodb"
	"github.com/zrs-replication/zrs/internal/faultproxy"
)

// serve starts an in-process zrs ZEO server over a fresh FileStorage on
// addr (a loopback port or a unix socket path), as zrs primary --zeo does.
func serve(t *testing.T, addr string, opts zeo.Options) (string, *fs.FileStorage) {
	t.Helper()
	st, err := fs.Open(filepath.Join(t.TempDir(), "Data.fs"), fs.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := zeo.NewServer(st, opts)
	a, err := srv.Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return a.String(), st
}

const testDuration = 300 * time.Millisecond

// checkResult checks what every run must report.
func checkResult(t *testing.T, res *result, op string, clients int) {
	t.Helper()
	if res.Op != op || res.Clients != clients || res.Ops <= 0 || res.OpsPerS <= 0 {
		t.Fatalf("result %+v", res)
	}
	if !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("latencies p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
	}
	if res.ServerCPU == nil || *res.ServerCPU < 0 || res.ClientCPU < 0 {
		t.Errorf("CPU figures %v %v", res.ServerCPU, res.ClientCPU)
	}
	line, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"op", "clients", "seconds", "ops", "ops_per_s", "p50_us", "p99_us", "max_us"} {
		if !bytes.Contains(line, []byte(`"`+k+`":`)) {
			t.Errorf("JSON line without %s: %s", k, line)
		}
	}
	t.Logf("%s", line)
}

func TestCommit(t *testing.T) {
	for _, msgpack := range []bool{false, true} {
		t.Run(map[bool]string{false: "pickle", true: "msgpack"}[msgpack], func(t *testing.T) {
			addr, st := serve(t, "127.0.0.1:0", zeo.Options{Msgpack: msgpack})
			var mu sync.Mutex
			serials := map[int][]zodb.Tid{}
			last := map[int]store{}
			w := newWindows(2)
			cfg := config{addr: addr, clients: 2, duration: testDuration, serverPID: os.Getpid(), afterOp: w.op,
				onCommit: func(w int, s store) {
					mu.Lock()
					defer mu.Unlock()
					serials[w] = append(serials[w], s.serial)
					last[w] = s
				}}
			res, err := runCommit(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, "commit", 2)
			w.check(t, res)
			if c := dialTest(t, addr); c.codec.Name() != map[bool]string{false: "Z", true: "M"}[msgpack] {
				t.Errorf("the server announced msgpack %v; the client speaks %q", msgpack, c.codec.Name())
			}

			// Every commit is counted, each client's serials increase, and
			// no two commits share a transaction.
			var all []zodb.Tid
			for w := range 2 {
				if len(serials[w]) == 0 {
					t.Fatalf("client %d committed nothing", w)
				}
				if !slices.IsSorted(serials[w]) || len(slices.Compact(slices.Clone(serials[w]))) != len(serials[w]) {
					t.Errorf("client %d's serials do not increase: %v", w, serials[w])
				}
				all = append(all, serials[w]...)
			}
			if len(all) != res.Ops {
				t.Errorf("%d commits seen, %d reported", len(all), res.Ops)
			}
			slices.Sort(all)
			if len(slices.Compact(all)) != res.Ops {
				t.Errorf("commits share tids")
			}
			if got := st.LastTransaction(); got != all[len(all)-1] {
				t.Errorf("storage's last transaction %s, last commit %s", got, all[len(all)-1])
			}

			// Each client's last revision is what the server and the
			// storage itself now hold.
			c := dialTest(t, addr)
			for w, s := range last {
				data, serial, err := c.loadCurrent(s.oid)
				if err != nil {
					t.Fatal(err)
				}
				if serial != s.serial || !bytes.Equal(data, s.data) {
					t.Errorf("client %d's object %s: loaded %s %q, committed %s %q", w, s.oid, serial, data, s.serial, s.data)
				}
				data, serial, _, err = st.LoadBefore(context.Background(), s.oid, zodb.Tid(1<<63-1))
				if err != nil || serial != s.serial || !bytes.Equal(data, s.data) {
					t.Errorf("storage holds %s %q (%v) for client %d's object", serial, data, err, w)
				}
			}
		})
	}
}

func dialTest(t *testing.T, addr string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func TestLoad(t *testing.T) {
	// Over a unix socket, as bench/zeo.sh could use too.
	addr, st := serve(t, filepath.Join(t.TempDir(), "zeo.sock"), zeo.Options{})
	cfg := config{addr: addr, clients: 2, duration: testDuration, objects: 250, serverPID: os.Getpid()}
	objs, err := prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 250 || st.Len() != 250 {
		t.Fatalf("prepared %d objects, the storage has %d", len(objs), st.Len())
	}
	// What prepare says it stored is in the storage.
	tids := map[zodb.Tid]bool{}
	for _, s := range objs {
		data, serial, err := st.Load(context.Background(), s.oid)
		if err != nil || serial != s.serial || !bytes.Equal(data, s.data) || len(data) != 200 {
			t.Fatalf("object %s: storage holds %s %q (%v), prepared %s %q", s.oid, serial, data, err, s.serial, s.data)
		}
		tids[serial] = true
	}
	if len(tids) != 3 { // 100 objects per transaction
		t.Errorf("%d objects in %d transactions", len(objs), len(tids))
	}

	w := newWindows(2)
	timed := cfg
	timed.afterOp = w.op
	res, err := loads(timed, objs)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "load", 2)
	w.check(t, res)

	// Paced: 2 clients at 40/s each for 0.5 s have 20 loads due each, at
	// 25 ms intervals after a random phase: 40 loads, fewer only when a
	// sleep overruns the end. A load's latency does not count the sleep
	// before it.
	paced := cfg
	paced.rate, paced.duration = 40, 500*time.Millisecond
	res, err = loads(paced, objs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops < 36 || res.Ops > 40 || res.Rate != 40 {
		t.Errorf("paced at 40/s per client, 2 clients, 0.5 s: %d loads (rate %g); want 40 (36 if sleeps overran)", res.Ops, res.Rate)
	}
	if res.P50 > 12500 {
		t.Errorf("paced at 25 ms intervals: p50 %v µs; the sleeps were counted", res.P50)
	}

	// Every reply is checked: a wrong expectation fails the run.
	wrong := slices.Clone(objs)
	for i := range wrong {
		wrong[i].data = objectData(wrong[i].oid, 1)
	}
	cfg.clients = 1
	if _, err := loads(cfg, wrong); err == nil || !strings.Contains(err.Error(), "returned serial") {
		t.Errorf("loads with wrong data expected: %v", err)
	}
	wrong = slices.Clone(objs)
	for i := range wrong {
		wrong[i].serial++
	}
	if _, err := loads(cfg, wrong); err == nil || !strings.Contains(err.Error(), "returned serial") {
		t.Errorf("loads with wrong serials expected: %v", err)
	}
}

// windows bounds each operation's latency from outside: operation i of a
// client started after its operation i-1 returned and ended before its
// operation i+1 did (afterOp is called in between), the first started
// after the window opened and the last ended before check is called.
type windows struct {
	mu    sync.Mutex
	start time.Time
	marks [][]time.Time
}

func newWindows(clients int) *windows {
	return &windows{start: time.Now(), marks: make([][]time.Time, clients)}
}

func (w *windows) op(client int) {
	now := time.Now()
	w.mu.Lock()
	w.marks[client] = append(w.marks[client], now)
	w.mu.Unlock()
}

// check fails when the result's longest latency exceeds the longest
// window any operation had.
func (w *windows) check(t *testing.T, res *result) {
	t.Helper()
	end := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var widest time.Duration
	for _, m := range w.marks {
		ts := append(append([]time.Time{w.start}, m...), end)
		for i := 2; i < len(ts); i++ {
			widest = max(widest, ts[i].Sub(ts[i-2]))
		}
	}
	if res.Max > us(widest)+1 {
		t.Errorf("max latency %v µs; no operation had more than %v µs between its neighbours", res.Max, us(widest))
	}
}

// A server that falls behind a paced client is charged for the waiting it
// causes: latency counts from when each load was due, so it grows while
// the client is behind (no coordinated omission). Replies delayed 20 ms
// against loads due every 10 ms: loads wait ever longer.
func TestPacedLatencyCountsFromDue(t *testing.T) {
	addr, _ := serve(t, "127.0.0.1:0", zeo.Options{})
	px, err := faultproxy.New(context.Background(), "127.0.0.1:0", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	const delay = 20 * time.Millisecond
	px.Delay(faultproxy.ServerToClient, delay)
	cfg := config{addr: px.Addr(), clients: 1, duration: 300 * time.Millisecond, objects: 10, rate: 100}
	objs, err := prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := loads(cfg, objs)
	if err != nil {
		t.Fatal(err)
	}
	if res.P50 < us(delay) || res.P99 < us(5*delay) {
		t.Errorf("loads due every 10 ms, each answered after %v: p50 %v µs, p99 %v µs; want p99 above %v, the queue the server caused", delay, res.P50, res.P99, 5*delay)
	}
}

// measure reports the first failure of any client, and cuts connections
// still busy long after the end, so a server that stops answering fails
// the run instead of hanging it.
func TestMeasureErrors(t *testing.T) {
	pipes := func(n int) []*client {
		cs := make([]*client, n)
		for i := range cs {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			cs[i] = &client{conn: a}
		}
		return cs
	}
	cfg := config{duration: 50 * time.Millisecond, overrun: 50 * time.Millisecond}
	failed := errors.New("client 1 failed")
	_, err := measure(cfg, "op", pipes(3), func(w int) error {
		if w == 1 {
			return failed
		}
		return nil
	})
	if !errors.Is(err, failed) {
		t.Errorf("one client of three failing: %v", err)
	}

	cs := pipes(2)
	done := make(chan error, 1)
	go func() {
		_, err := measure(cfg, "op", cs, func(w int) error {
			_, err := cs[w].conn.Read(make([]byte, 1)) // no answer ever comes
			return err
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("a server that never answers: %v; want the connections cut", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("measure still waiting 30 s after the end for a server that never answers")
	}
}

// summarize's figures, from latencies and times chosen to give round
// numbers.
func TestSummarize(t *testing.T) {
	var lats [2][]time.Duration
	for i := 1; i <= 100; i++ {
		lats[(i-1)/50] = append(lats[(i-1)/50], time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(50, func(i, j int) { lats[1][i], lats[1][j] = lats[1][j], lats[1][i] })
	cfg := config{label: "zrs", rate: 5, duration: 1500 * time.Millisecond, serverPID: 1}
	got := summarize(cfg, "load", lats[:], 2*time.Second, cpu{self: 100 * time.Millisecond, server: 50 * time.Millisecond})
	server := 500.0
	want := &result{Op: "load", Label: "zrs", Clients: 2, Rate: 5, Seconds: 1.5, Ops: 100, OpsPerS: 50,
		P50: 51000, P99: 100000, Max: 100000, ClientCPU: 1000, ServerCPU: &server}
	if got.ServerCPU == nil || *got.ServerCPU != *want.ServerCPU {
		t.Errorf("server CPU %v µs per op; want %v", got.ServerCPU, server)
	}
	got.ServerCPU = want.ServerCPU
	if *got != *want {
		t.Errorf("summarize:\n got %+v\nwant %+v", *got, *want)
	}
	cfg.serverPID = 0
	if got := summarize(cfg, "load", lats[:], time.Second, cpu{}); got.ServerCPU != nil {
		t.Errorf("without -server-pid: server CPU %v", *got.ServerCPU)
	}
}

// The server's CPU time read from /proc is the process's CPU time: this
// process, measured both ways around some work.
func TestCPUTimes(t *testing.T) {
	before, err := cpuTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for { // 300 ms of CPU, however long a busy machine takes to give it
		for i := range 100000 {
			x ^= i
		}
		if now, err := cpuTimes(0); err != nil || now.self-before.self >= 300*time.Millisecond {
			break
		}
	}
	after, err := cpuTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	used := after.sub(before)
	// /proc counts in ticks of 10 ms; both count every thread.
	if used.self < 300*time.Millisecond || used.server < used.self-50*time.Millisecond || used.server > used.self+50*time.Millisecond {
		t.Errorf("CPU used: %v by getrusage, %v from /proc (%d)", used.self, used.server, x)
	}
}

func TestRunErrors(t *testing.T) {
	ro, _ := serve(t, "127.0.0.1:0", zeo.Options{ReadOnly: true})
	// A read-only server refuses the writable registration.
	err := run([]string{"commit", ro, "-clients", "1", "-seconds", "0.1"})
	if err == nil || !strings.Contains(err.Error(), "ReadOnlyError") {
		t.Errorf("commit against a read-only server: %v", err)
	}
	// A writable server, so that only the arguments are wrong.
	addr, _ := serve(t, "127.0.0.1:0", zeo.Options{})
	const invalid = "must be positive"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"commit"}, "usage:"},
		{[]string{"commit", addr, "extra"}, "usage:"},
		{[]string{"commit", "-clients", "1"}, "usage:"},
		{[]string{"load", addr, "-clients", "0"}, invalid},
		{[]string{"load", "-seconds", "-1", addr}, invalid},
		{[]string{"load", addr, "-objects", "0"}, invalid},
		{[]string{"load", addr, "-rate", "-1"}, invalid},
		{[]string{"fly", addr}, `unknown command "fly"`},
		{[]string{"table"}, "usage:"},
	} {
		if err := run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q: %v; want %q", c.args, err, c.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"h:1", "-clients", "4", "-seconds", "2.5", "-label", "zrs", "-rate", "250", "-server-pid", "77"},
		{"-clients", "4", "-seconds", "2.5", "-label", "zrs", "-rate", "250", "-server-pid", "77", "h:1"},
	} {
		cfg, err := parseFlags("commit", args)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.addr != "h:1" || cfg.clients != 4 || cfg.duration != 2500*time.Millisecond || cfg.label != "zrs" || cfg.objects != 1000 ||
			cfg.rate != 250 || cfg.serverPID != 77 {
			t.Errorf("%q: %+v", args, cfg)
		}
	}
}

func TestTable(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	rows := []result{
		{Op: "load", Label: "zrs", Clients: 4, OpsPerS: 40000, P50: 80, P99: 400, ServerCPU: f(20), ClientCPU: 15},
		{Op: "load", Label: "python", Clients: 4, OpsPerS: 20000, P50: 160, P99: 1000, ServerCPU: f(45), ClientCPU: 16},
		{Op: "commit", Label: "zrs", Clients: 1, OpsPerS: 2000, P50: 450, P99: 1000, ClientCPU: 110},
		{Op: "load", Label: "zrs", Clients: 1, OpsPerS: 15000, P50: 50, P99: 200, ServerCPU: f(30), ClientCPU: 30},
		{Op: "load", Label: "python", Clients: 4, Rate: 1000, OpsPerS: 4000, P50: 270, P99: 840, ServerCPU: f(31), ClientCPU: 20},
		{Op: "load", Label: "zrs", Clients: 4, Rate: 1000, OpsPerS: 4000, P50: 110, P99: 520, ServerCPU: f(18), ClientCPU: 19},
	}
	var in bytes.Buffer
	for _, r := range rows {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := table(&out, path); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"| commit | 1 | 2000 | — | — | 450 | — | 1000 | — | — | — | — | 110 / — |",
		"| load | 1 | 15000 | — | — | 50.0 | — | 200 | — | — | 30.0 | — | 30.0 / — |",
		"| load | 4 | 40000 | 20000 | 2.00 | 80.0 | 160 | 400 | 1000 | 2.50 | 20.0 | 45.0 | 15.0 / 16.0 |",
		"| load, paced at 1000/s per client | 4 | 4000 | 4000 | 1.00 | 110 | 270 | 520 | 840 | 1.62 | 18.0 | 31.0 | 19.0 / 20.0 |",
	}
	if len(lines) != 2+len(want) || !slices.Equal(lines[2:], want) {
		t.Errorf("table:\n%s\nwant rows:\n%s", out.String(), strings.Join(want, "\n"))
	}
	// tests/test_zeo_bench.py reads the first table's rows by their "×".
	if strings.Contains(out.String(), "×") {
		t.Errorf("the table uses ×:\n%s", out.String())
	}
}
