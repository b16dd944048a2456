package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

// waitStatus polls "zrs status ADDR --json" until cond holds.
func waitStatus(t *testing.T, addr string, cond func(admin.Status) bool, logs ...*daemon) admin.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errs := zrs(t, "status", addr, "--json")
		var st admin.Status
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, d := range logs {
				sb.WriteString(d.stderr.String())
			}
			t.Fatalf("status %s: code %d %q %q\nlogs:\n%s", addr, code, out, errs, sb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The daemons' admin endpoints over unix sockets: status of both, metrics
// accepted as --metrics, promotion refused on the primary and done on the
// secondary, which then reports role primary and keeps running.
func TestStatusAndPromoteCommands(t *testing.T) {
	bin := buildZRS(t)
	dir := t.TempDir()
	ppath, spath := filepath.Join(dir, "primary.fs"), filepath.Join(dir, "secondary.fs")
	padm, sadm := filepath.Join(dir, "p.admin"), filepath.Join(dir, "s.admin")
	commitSome(t, ppath, 12)
	p := startDaemon(t, bin, "primary", ppath, "--replicate-to", filepath.Join(dir, "p.sock"), "--metrics", padm)
	s := startDaemon(t, bin, "secondary", spath, "--replicate-from", filepath.Join(dir, "p.sock"), "--admin", sadm)
	waitSameFile(t, ppath, spath, p, s)

	pst := waitStatus(t, padm, func(st admin.Status) bool { return len(st.Secondaries) == 1 && st.Secondaries[0].CaughtUp }, p, s)
	if pst.Role != "primary" || pst.Path != ppath {
		t.Errorf("primary status %+v", pst)
	}
	sst := waitStatus(t, sadm, func(st admin.Status) bool { return st.LastTid == pst.LastTid }, p, s)
	if sst.Role != "secondary" || sst.Upstream == nil || !sst.Upstream.Connected {
		t.Errorf("secondary status %+v", sst)
	}
	code, out, errs := zrs(t, "status", padm)
	t.Logf("zrs status (primary):\n%s", out)
	for _, want := range []string{"role:     primary", "last tid: " + pst.LastTid, "secondaries: 1 connected", "PEER", "caught up"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("zrs status: code %d, output lacks %q:\n%s%s", code, want, out, errs)
		}
	}
	code, out, _ = zrs(t, "status", sadm)
	t.Logf("zrs status (secondary):\n%s", out)
	if code != 0 || !strings.Contains(out, "role:     secondary") || !strings.Contains(out, "primary:  "+filepath.Join(dir, "p.sock")+" (connected") {
		t.Errorf("zrs status of the secondary: %d\n%s", code, out)
	}

	code, _, errs = zrs(t, "promote", padm)
	if code != 1 || !strings.Contains(errs, "not a secondary: it is a primary") {
		t.Errorf("promote the primary: code %d, stderr %q", code, errs)
	}
	code, out, errs = zrs(t, "promote", sadm)
	if code != 0 || !strings.Contains(out, "is now primary; last tid "+pst.LastTid) {
		t.Fatalf("promote: code %d, %q %q\n%s", code, out, errs, s.stderr)
	}
	t.Logf("zrs promote: %s", out)
	sst = waitStatus(t, sadm, func(st admin.Status) bool { return true })
	if sst.Role != "primary" || sst.Upstream != nil || sst.PromotedAt.IsZero() {
		t.Errorf("after promotion: %+v", sst)
	}
	s.waitLog(t, "promoted to primary")
	code, out, errs = zrs(t, "promote", sadm)
	if code != 0 || !strings.Contains(out, "already promoted: "+sadm+" has been primary since") {
		t.Errorf("promote again: code %d, %q %q", code, out, errs)
	}
	code, out, _ = zrs(t, "status", padm)
	if code != 0 || !strings.Contains(out, "durability: async\n") {
		t.Errorf("zrs status of an async primary: %d\n%s", code, out)
	}
	code, _, _ = zrs(t, "status", filepath.Join(dir, "nobody.admin"))
	if code != 1 {
		t.Errorf("status of nothing: code %d", code)
	}
	s.stop(t)
	p.stop(t)
}

// zrs status says when sync replication has degraded, not only the JSON
// and the metric.
func TestStatusTextShowsDegradedSync(t *testing.T) {
	var b strings.Builder
	st := admin.Status{Role: "primary", Path: "/x/Data.fs", LastTid: "0000000000000001",
		Durability: "sync ANY 1, timeout 5s, degrade", SyncDegraded: true, Serving: true}
	if err := printStatus(&b, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "durability: sync ANY 1, timeout 5s, degrade — DEGRADED") {
		t.Fatalf("status text:\n%s", b.String())
	}
}

// zrs status calls a storage whose fsync has run for 5 s or more stalled.
func TestStatusTextShowsAStalledStorage(t *testing.T) {
	for _, c := range []struct {
		running float64
		want    bool
	}{{0, false}, {4.9, false}, {5, true}, {300, true}} {
		var b strings.Builder
		st := admin.Status{Role: "secondary", Path: "/x/Data.fs", LastTid: "0000000000000001", FsyncRunning: c.running}
		if err := printStatus(&b, st, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "STALLED:  the storage's fsync has not returned for "); got != c.want {
			t.Errorf("fsync running for %vs: stalled shown %v, want %v:\n%s", c.running, got, c.want, b.String())
		}
	}
}

// zrs status shows a secondary's upstream state, and its last error only
// when it says something about now: while disconnected, or while a
// promotion is unfinished (the connection may still be open then).
func TestStatusTextUpstream(t *testing.T) {
	for _, c := range []struct {
		up         admin.Upstream
		state, err string
	}{
		{admin.Upstream{Address: "p:1"}, "disconnected", ""},
		{admin.Upstream{Address: "p:1", LastError: "refused"}, "disconnected", "refused"},
		{admin.Upstream{Address: "p:1", Connected: true, LastError: "an earlier connection's"}, "connected, receiving", ""},
		{admin.Upstream{Address: "p:1", Connected: true, CaughtUp: true}, "connected, caught up", ""},
		{admin.Upstream{Address: "p:1", Connected: true, Promoting: true, LastError: "a promotion did not finish"},
			"replication stopped by a promotion that has not finished: run zrs promote again", "a promotion did not finish"},
	} {
		var b strings.Builder
		up := c.up
		st := admin.Status{Role: "secondary", Path: "/x/Data.fs", LastTid: "0000000000000001", Upstream: &up}
		if err := printStatus(&b, st, time.Now()); err != nil {
			t.Fatal(err)
		}
		want := "primary:  p:1 (" + c.state + ")\n"
		if c.err != "" {
			want += "error:    " + c.err + "\n"
		}
		if !strings.HasSuffix(b.String(), want) {
			t.Errorf("upstream %+v:\n%s\nwant it to end with:\n%s", c.up, b.String(), want)
		}
	}
}
