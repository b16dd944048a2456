package main

import (
	"bytes"
	"context"
	"encoding/json"
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
			cfg := config{addr: addr, clients: 2, duration: testDuration, serverPID: os.Getpid(),
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

	res, err := loads(cfg, objs)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "load", 2)

	// Paced: 2 clients at 40/s each for 0.5 s make about 40 loads, never
	// more than the schedule allows.
	paced := cfg
	paced.rate, paced.duration = 40, 500*time.Millisecond
	res, err = loads(paced, objs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops < 20 || res.Ops > 42 || res.Rate != 40 {
		t.Errorf("paced at 40/s per client, 2 clients, 0.5 s: %d loads (rate %g)", res.Ops, res.Rate)
	}

	// Every reply is checked: a wrong expectation fails the run.
	wrong := slices.Clone(objs)
	for i := range wrong {
		wrong[i].data = objectData(wrong[i].oid, 1)
	}
	cfg.clients = 1
	if _, err := loads(cfg, wrong); err == nil || !strings.Contains(err.Error(), "returned serial") {
		t.Errorf("loads with wrong expectations: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	addr, _ := serve(t, "127.0.0.1:0", zeo.Options{ReadOnly: true})
	// A read-only server refuses the writable registration.
	err := run([]string{"commit", addr, "-clients", "1", "-seconds", "0.1"})
	if err == nil || !strings.Contains(err.Error(), "ReadOnlyError") {
		t.Errorf("commit against a read-only server: %v", err)
	}
	for _, args := range [][]string{
		{"commit"},
		{"commit", addr, "extra"},
		{"load", addr, "-clients", "0"},
		{"load", "-seconds", "-1", addr},
		{"fly", addr},
	} {
		if err := run(args); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"h:1", "-clients", "4", "-seconds", "2.5", "-label", "zrs"},
		{"-clients", "4", "-seconds", "2.5", "-label", "zrs", "h:1"},
	} {
		cfg, err := parseFlags("commit", args)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.addr != "h:1" || cfg.clients != 4 || cfg.duration != 2500*time.Millisecond || cfg.label != "zrs" || cfg.objects != 1000 {
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
	}
	if len(lines) != 2+len(want) || !slices.Equal(lines[2:], want) {
		t.Errorf("table:\n%s\nwant rows:\n%s", out.String(), strings.Join(want, "\n"))
	}
	// tests/test_zeo_bench.py reads the first table's rows by their "×".
	if strings.Contains(out.String(), "×") {
		t.Errorf("the table uses ×:\n%s", out.String())
	}
}
