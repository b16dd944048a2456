// Command zeoload is a light ZEO 5 load generator for bench/zeo.sh: it
// measures a ZEO server's capacity with clients that cost almost nothing,
// so that the same figures can be taken from zrs and from Python's runzeo.
//
//	zeoload commit ADDR [-clients N] [-seconds S] [-rate R] [-server-pid PID] [-label L]
//	zeoload load ADDR [-clients N] [-seconds S] [-rate R] [-objects K] [-server-pid PID] [-label L]
//	zeoload table RESULTS.jsonl
//
// ADDR is host:port or a unix socket path (anything containing "/"). Each
// of the N connections does the ZEO handshake (the encoding the server
// announces, "Z5" pickles or "M5" msgpack) and register("1", False), then:
//
//   - commit: creates its own object once (new_oids, then a commit), then
//     commits a new 200-byte revision of it as fast as it can, each commit
//     being tpc_begin, storea, vote, tpc_finish with the message names and
//     argument shapes ZEO's ClientStorage sends; every serial tpc_finish
//     returns must be later than the object's previous one. The latency of
//     a commit is from tpc_begin to the tpc_finish reply.
//   - load: after the command itself has committed K objects (K = 1000 by
//     default, 100 per transaction, not timed), loadBefore(random oid,
//     maxtid) round trips; every reply must hold the data and serial that
//     were stored.
//
// Each run prints one JSON line: op, label, clients, seconds (as asked),
// ops, ops_per_s (over the time until the last operation returned),
// p50_us, p99_us, max_us, client_cpu_us (this process's CPU time per
// operation) and, with -server-pid, server_cpu_us (that process's CPU time
// per operation, from /proc). A failed call, a reply that does not match
// or a serial that goes backwards is an error: exit status 1. table prints
// the side-by-side of the results labelled "zrs" and "python".
//
// Why hand-written: no Go ZEO client library exists, and the Python
// ClientStorage that bench/zeo.sh otherwise drives the servers with costs
// about 2 ms of CPU per commit, on the same cores as the server, so its
// figures measure the clients more than the servers. This client keeps one
// call in flight per connection and reads its reply on the calling
// goroutine, queues one-way calls to go out with the next call (a commit
// is two writes), keeps no cache and reads and drops what the server sends
// on its own (info, invalidateTransaction). It uses core/zeo's codecs and
// framing and core/pyval's values; the message shapes are ClientStorage's
// (ZEO 6), which both zrs and Python's runzeo accept.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/core/zodb"
)

const usage = `usage:
  zeoload commit ADDR [-clients N] [-seconds S] [-rate R] [-server-pid PID] [-label L]
  zeoload load ADDR [-clients N] [-seconds S] [-rate R] [-objects K] [-server-pid PID] [-label L]
  zeoload table RESULTS.jsonl`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "zeoload:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	if len(argv) < 2 {
		return errors.New(usage)
	}
	cmd, args := argv[0], argv[1:]
	if cmd == "table" {
		if len(args) != 1 {
			return errors.New(usage)
		}
		return table(os.Stdout, args[0])
	}
	if cmd != "commit" && cmd != "load" {
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	cfg, err := parseFlags(cmd, args)
	if err != nil {
		return err
	}
	var res *result
	if cmd == "commit" {
		res, err = runCommit(cfg)
	} else {
		res, err = runLoad(cfg)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// config is one run.
type config struct {
	addr      string
	clients   int
	duration  time.Duration
	objects   int // load: the database's size
	serverPID int // 0: no server CPU figure
	label     string
	rate      float64 // paced operations per second per client, 0 for none

	// For the tests: onCommit sees every timed commit; afterOp is called
	// each time an operation has returned, before its latency is taken;
	// overrun, when not 0, replaces setupTimeout as the time connections
	// still busy after the end are given.
	onCommit func(client int, s store)
	afterOp  func(client int)
	overrun  time.Duration
}

// parseFlags takes ADDR before or after the flags.
func parseFlags(cmd string, args []string) (config, error) {
	var cfg config
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cfg.addr, args = args[0], args[1:]
	}
	fl := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fl.IntVar(&cfg.clients, "clients", 1, "concurrent connections")
	secs := fl.Float64("seconds", 10, "duration of the measurement")
	fl.IntVar(&cfg.objects, "objects", 1000, "load: objects committed before the loads")
	fl.IntVar(&cfg.serverPID, "server-pid", 0, "also report this process's CPU time per operation (from /proc)")
	fl.StringVar(&cfg.label, "label", "", "copied into the JSON line (table compares \"zrs\" and \"python\")")
	fl.Float64Var(&cfg.rate, "rate", 0, "operations per second per client, paced (0: as fast as the server answers)")
	if err := fl.Parse(args); err != nil {
		return cfg, err
	}
	if cfg.addr == "" && fl.NArg() == 1 {
		cfg.addr = fl.Arg(0)
	} else if fl.NArg() != 0 || cfg.addr == "" {
		return cfg, errors.New(usage)
	}
	if cfg.clients < 1 || *secs <= 0 || cfg.objects < 1 || cfg.rate < 0 {
		return cfg, errors.New("-clients, -seconds and -objects must be positive, -rate not negative")
	}
	cfg.duration = time.Duration(*secs * float64(time.Second))
	return cfg, nil
}

// setupTimeout bounds connecting and preparing; a measurement may overrun
// its duration by as much before its connections are cut.
const setupTimeout = time.Minute

// result is one run's JSON line.
type result struct {
	Op        string   `json:"op"`
	Label     string   `json:"label,omitempty"`
	Clients   int      `json:"clients"`
	Rate      float64  `json:"rate,omitempty"`
	Seconds   float64  `json:"seconds"`
	Ops       int      `json:"ops"`
	OpsPerS   float64  `json:"ops_per_s"`
	P50       float64  `json:"p50_us"`
	P99       float64  `json:"p99_us"`
	Max       float64  `json:"max_us"`
	ClientCPU float64  `json:"client_cpu_us"`
	ServerCPU *float64 `json:"server_cpu_us,omitempty"`
}

// objectData is revision n of an object: 200 bytes the servers store as
// they are (neither looks inside a record unless it conflicts).
func objectData(oid zodb.Oid, n int64) []byte {
	b := make([]byte, 0, 200)
	b = fmt.Appendf(b, "zeoload object %s revision %d ", oid, n)
	for len(b) < 200 {
		b = append(b, '.')
	}
	return b
}

func dialAll(cfg config) ([]*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cs := make([]*client, 0, cfg.clients)
	for range cfg.clients {
		c, err := dial(ctx, cfg.addr)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []*client) {
	for _, c := range cs {
		c.close()
	}
}

// runCommit: every client commits new revisions of its own object.
func runCommit(cfg config) (*result, error) {
	cs, err := dialAll(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	objs := make([]store, len(cs))
	txns := make([]int64, len(cs))
	for i, c := range cs {
		oids, err := c.newOids()
		if err != nil {
			return nil, err
		}
		s := store{oid: oids[0], data: objectData(oids[0], 0)}
		txns[i]++
		if s.serial, err = c.commit(txns[i], s); err != nil {
			return nil, fmt.Errorf("creating client %d's object: %w", i, err)
		}
		objs[i] = s
	}
	return measure(cfg, "commit", cs, func(w int) error {
		c, s := cs[w], &objs[w]
		txns[w]++
		next := store{oid: s.oid, serial: s.serial, data: objectData(s.oid, txns[w])}
		tid, err := c.commit(txns[w], next)
		if err != nil {
			return fmt.Errorf("client %d, commit %d: %w", w, txns[w], err)
		}
		if tid <= s.serial {
			return fmt.Errorf("client %d, commit %d: serial %s is not later than the previous one, %s", w, txns[w], tid, s.serial)
		}
		*s = store{oid: s.oid, serial: tid, data: next.data}
		if cfg.onCommit != nil {
			cfg.onCommit(w, *s)
		}
		return nil
	})
}

// prepare commits cfg.objects new objects, 100 per transaction, and
// returns them with their serials.
func prepare(cfg config) ([]store, error) {
	cs, err := dialAll(config{addr: cfg.addr, clients: 1})
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	c := cs[0]
	var objs []store
	var oids []zodb.Oid
	for txn := int64(1); len(objs) < cfg.objects; txn++ {
		batch := make([]store, 0, 100)
		for len(batch) < cap(batch) && len(objs)+len(batch) < cfg.objects {
			if len(oids) == 0 {
				if oids, err = c.newOids(); err != nil {
					return nil, err
				}
			}
			batch = append(batch, store{oid: oids[0], data: objectData(oids[0], 0)})
			oids = oids[1:]
		}
		tid, err := c.commit(txn, batch...)
		if err != nil {
			return nil, fmt.Errorf("preparing the database: %w", err)
		}
		for _, s := range batch {
			s.serial = tid
			objs = append(objs, s)
		}
	}
	return objs, nil
}

// runLoad: every client loads random objects of a fresh set.
func runLoad(cfg config) (*result, error) {
	objs, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	return loads(cfg, objs)
}

// loads measures loadBefore round trips on objs, checking every reply.
func loads(cfg config, objs []store) (*result, error) {
	cs, err := dialAll(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	rngs := make([]*rand.Rand, len(cs))
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), 0x7a656f))
	}
	return measure(cfg, "load", cs, func(w int) error {
		s := objs[rngs[w].IntN(len(objs))]
		data, start, err := cs[w].loadCurrent(s.oid)
		if err != nil {
			return fmt.Errorf("client %d: %w", w, err)
		}
		if start != s.serial || !bytes.Equal(data, s.data) {
			return fmt.Errorf("client %d: loadBefore(%s) returned serial %s and %q, stored %s and %q",
				w, s.oid, start, data, s.serial, s.data)
		}
		return nil
	})
}

// measure runs op for every client at once, each as fast as it can, until
// cfg.duration has passed, and sums up. Connections still busy long after
// the end are cut, so a server that stops answering fails the run.
//
// With cfg.rate each client paces itself instead: its i-th operation is
// due at a fixed time (i/rate after a random phase) and waits until then.
// When the client is behind schedule the latency counts from the due time,
// not from when the call went out, so a server that falls behind is
// charged for the waiting it causes (no coordinated omission); when it
// had to sleep, from its waking up (the timer's lateness is the client's).
// Servers are then compared at the same offered load rather than each at
// its own saturation.
func measure(cfg config, name string, cs []*client, op func(w int) error) (*result, error) {
	lats := make([][]time.Duration, len(cs))
	errs := make([]error, len(cs))
	cpu0, err := cpuTimes(cfg.serverPID)
	if err != nil {
		return nil, err
	}
	// The client's own garbage collector stays off while the clock runs
	// (a memory limit bounds the heap): its pauses would be counted as the
	// server's latency, whichever server it measures.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	start := time.Now()
	end := start.Add(cfg.duration)
	overrun := cmp.Or(cfg.overrun, setupTimeout)
	watchdog := time.AfterFunc(cfg.duration+overrun, func() {
		for _, c := range cs {
			c.conn.Close()
		}
	})
	var wg sync.WaitGroup
	for w := range cs {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			var interval time.Duration
			due := start
			if cfg.rate > 0 {
				interval = time.Duration(float64(time.Second) / cfg.rate)
				due = start.Add(time.Duration(rand.Int64N(int64(interval))))
			}
			for {
				t0 := time.Now()
				if interval > 0 {
					if d := due.Sub(t0); d > 0 {
						// Ahead of schedule: the time the sleep
						// oversleeps (Go's timers are coarse) is
						// the client's, not the server's.
						time.Sleep(d)
						t0 = time.Now()
					} else {
						// Behind: the server made us late.
						t0 = due
					}
					due = due.Add(interval)
				}
				if !t0.Before(end) {
					break
				}
				if err := op(w); err != nil {
					errs[w] = err
					break
				}
				if cfg.afterOp != nil {
					cfg.afterOp(w)
				}
				lat = append(lat, time.Since(t0))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	watchdog.Stop()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cpu1, err := cpuTimes(cfg.serverPID)
	if err != nil {
		return nil, err
	}
	return summarize(cfg, name, lats, elapsed, cpu1.sub(cpu0)), nil
}

// summarize makes the result of a run of cfg: lats are each client's
// latencies, elapsed the time until the last operation returned, used the
// CPU time spent meanwhile.
func summarize(cfg config, name string, lats [][]time.Duration, elapsed time.Duration, used cpu) *result {
	all := slices.Concat(lats...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return us(all[min(len(all)-1, int(p/100*float64(len(all))))])
	}
	res := &result{Op: name, Label: cfg.label, Clients: len(lats), Rate: cfg.rate, Seconds: cfg.duration.Seconds(),
		Ops: len(all), OpsPerS: round1(float64(len(all)) / elapsed.Seconds()),
		P50: pct(50), P99: pct(99), Max: pct(100)}
	if n := len(all); n > 0 {
		res.ClientCPU = us(used.self / time.Duration(n))
		if cfg.serverPID != 0 {
			v := us(used.server / time.Duration(n))
			res.ServerCPU = &v
		}
	}
	return res
}

func us(d time.Duration) float64 { return round1(float64(d) / 1e3) }

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// cpu is CPU time (user + system) used so far by this process and by the
// server process.
type cpu struct{ self, server time.Duration }

func (c cpu) sub(d cpu) cpu { return cpu{c.self - d.self, c.server - d.server} }

func cpuTimes(serverPID int) (cpu, error) {
	var c cpu
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return c, err
	}
	c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if serverPID == 0 {
		return c, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", serverPID))
	if err != nil {
		return c, fmt.Errorf("server CPU time: %w", err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return c, fmt.Errorf("server CPU time: /proc/%d/stat has %d fields", serverPID, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("server CPU time: /proc/%d/stat: %w", serverPID, err)
		}
		ticks += n
	}
	c.server = time.Duration(ticks) * (time.Second / userHZ)
	return c, nil
}

// userHZ is the unit of /proc's CPU times on Linux (USER_HZ, fixed at 100
// whatever the kernel's own tick rate).
const userHZ = 100

// table prints the results labelled "zrs" and "python" side by side, one
// row per operation and number of clients. Ratios are plain numbers.
func table(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	type key struct {
		op      string
		rate    float64
		clients int
	}
	by := map[key]map[string]result{}
	var keys []key
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		k := key{r.Op, r.Rate, r.Clients}
		if by[k] == nil {
			by[k] = map[string]result{}
			keys = append(keys, k)
		}
		by[k][r.Label] = r
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.op != b.op {
			return strings.Compare(a.op, b.op) // commit before load
		}
		if a.rate != b.rate {
			return cmp.Compare(a.rate, b.rate) // saturated first
		}
		return a.clients - b.clients
	})
	fmt.Fprintln(w, "| operation | clients | ops/s zrs | ops/s Python | ops/s zrs/Python | p50 µs zrs | p50 µs Python | p99 µs zrs | p99 µs Python | p99 Python/zrs | server CPU µs/op zrs | server CPU µs/op Python | client CPU µs/op (zrs run / Python run) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		// val is one figure of one side, nil when missing.
		val := func(label string, f func(*result) *float64) *float64 {
			if r, ok := by[k][label]; ok {
				return f(&r)
			}
			return nil
		}
		ops := func(r *result) *float64 { return &r.OpsPerS }
		p50 := func(r *result) *float64 { return &r.P50 }
		p99 := func(r *result) *float64 { return &r.P99 }
		srv := func(r *result) *float64 { return r.ServerCPU }
		cli := func(r *result) *float64 { return &r.ClientCPU }
		zo, po := val("zrs", ops), val("python", ops)
		z99, p99v := val("zrs", p99), val("python", p99)
		op := k.op
		if k.rate > 0 {
			op = fmt.Sprintf("%s, paced at %g/s per client", k.op, k.rate)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n",
			op, k.clients, num(zo), num(po), ratio(zo, po),
			num(val("zrs", p50)), num(val("python", p50)), num(z99), num(p99v), ratio(p99v, z99),
			num(val("zrs", srv)), num(val("python", srv)), num(val("zrs", cli)), num(val("python", cli)))
	}
	return nil
}

func num(x *float64) string {
	switch {
	case x == nil:
		return "—"
	case *x >= 100:
		return strconv.FormatFloat(*x, 'f', 0, 64)
	}
	return strconv.FormatFloat(*x, 'f', 1, 64)
}

func ratio(a, b *float64) string {
	if a == nil || b == nil || *b == 0 {
		return "—"
	}
	return strconv.FormatFloat(*a / *b, 'f', 2, 64)
}
