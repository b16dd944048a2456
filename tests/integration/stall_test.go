package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rssSampler reads a process's resident set size from /proc periodically.
type rssSampler struct {
	mu   sync.Mutex
	max  int64 // largest VmRSS since the last reset, bytes; guarded by mu
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(t *testing.T, pid int) *rssSampler {
	t.Helper()
	if _, err := procRSS(pid); err != nil {
		t.Fatalf("cannot read the RSS of a process: %v", err)
	}
	r := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			if rss, err := procRSS(pid); err == nil {
				r.mu.Lock()
				r.max = max(r.max, rss)
				r.mu.Unlock()
			}
			select {
			case <-r.stop:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(func() {
		close(r.stop)
		<-r.done
	})
	return r
}

// takeMax returns the largest RSS seen since the previous call.
func (r *rssSampler) takeMax() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.max
	r.max = 0
	return m
}

// procRSS is VmRSS of /proc/PID/status, in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Three zrs secondaries on a primary process committing big transactions
// at a steady rate; one is frozen with SIGSTOP until it is ≥ 50 MB behind.
// Meanwhile commits go on (the primary must grow by those 50 MB within the
// test's bound; the rates before and during the stall are logged, not
// compared), the other two keep up, and the primary's RSS
// stays within a bound far below what buffering the frozen secondary's
// backlog would take: the primary streams from the file, not from memory.
// Once thawed, the frozen one catches up to an identical file.
func TestStoppedSecondary(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, sock := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "p.sock")
	const (
		txnSize   = 256 << 10
		rate      = 60 // commits/s: about 16 MB/s
		behind    = 50 << 20
		rssMargin = 64 << 20
		unstalled = 3 * time.Second
		minStall  = 4 * time.Second
	)
	c := startPrimaryChild(t, ppath, sock, txnSize, rate)
	rss := sampleRSS(t, c.cmd.Process.Pid)
	var secs [3]*secondaryProc
	var spaths [3]string
	for i := range secs {
		spaths[i] = filepath.Join(dir, fmt.Sprintf("secondary%d.fs", i))
		secs[i] = startSecondaryProc(t, bin, spaths[i], sock)
	}
	frozen := secs[2]
	logs := []fmt.Stringer{c.stderr, secs[0].stderr, secs[1].stderr, secs[2].stderr}

	// Warm up, then measure the unstalled rate and RSS.
	waitFor(t, "the first commits", func() bool { n, _ := c.acked(); return n >= 10 }, logs...)
	rss.takeMax()
	n0, _ := c.acked()
	t0 := time.Now()
	time.Sleep(unstalled)
	n1, _ := c.acked()
	baseRate := float64(n1-n0) / time.Since(t0).Seconds()
	baseRSS := rss.takeMax()

	// Freeze one secondary until it is far behind.
	frozen.signal(syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond) // let the stop land before sizing its file
	frozenSize, startSize := fileSize(t, spaths[2]), fileSize(t, ppath)
	t1 := time.Now()
	n1, _ = c.acked()
	waitFor(t, "the frozen secondary to fall 50 MB behind", func() bool {
		return time.Since(t1) >= minStall && fileSize(t, ppath)-frozenSize >= behind+(behind/8)
	}, logs...)
	n2, _ := c.acked()
	stallRate := float64(n2-n1) / time.Since(t1).Seconds()
	stallRSS := rss.takeMax()
	c.send(t, "pause")
	gap := fileSize(t, ppath) - frozenSize
	t.Logf("commit rate %.1f/s before the stall, %.1f/s during it; primary RSS max %.1f MiB before, %.1f MiB during; "+
		"the frozen secondary is %.1f MB behind (primary grew %.1f MB during the stall)",
		baseRate, stallRate, float64(baseRSS)/(1<<20), float64(stallRSS)/(1<<20), float64(gap)/1e6, float64(fileSize(t, ppath)-startSize)/1e6)

	// The two others keep up: with commits paused they reach the primary.
	waitFor(t, "the commits to pause", func() bool {
		a, _ := c.acked()
		time.Sleep(100 * time.Millisecond)
		b, _ := c.acked()
		return a == b
	}, logs...)
	waitSameBytes(t, ppath, spaths[0], logs...)
	waitSameBytes(t, ppath, spaths[1], logs...)

	// Commits went on while a secondary was frozen: the wait above needs
	// the primary to grow by more than 50 MB meanwhile. The rates are
	// logged, not compared: wall-clock rates on a shared machine are no
	// basis for a pass or a fail.
	if gap < behind {
		t.Errorf("test set-up: the frozen secondary is only %d bytes behind", gap)
	}
	if stallRSS > baseRSS+rssMargin {
		t.Errorf("the primary's RSS grew from %d to %d bytes while a secondary was frozen %d bytes behind",
			baseRSS, stallRSS, gap)
	}

	// Thawed, the frozen secondary catches up.
	frozen.signal(syscall.SIGCONT)
	waitSameBytes(t, ppath, spaths[2], logs...)
	for _, s := range secs {
		s.stop(t)
	}
	c.stop(t)
	for _, p := range spaths {
		sameFile(t, ppath, p)
	}
	if _, err := fsVerify(spaths[2]); err != nil {
		t.Fatal(err)
	}
}
