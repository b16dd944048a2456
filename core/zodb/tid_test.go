package zodb

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTidVectors checks every conversion against testdata/tids.txt, which
// persistent's C TimeStamp produced (tests/vectors/gen_tids.py; the Python
// test suite regenerates it and fails if it drifts).
func TestTidVectors(t *testing.T) {
	f, err := os.Open("testdata/tids.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		counts[fields[0]]++
		if err := checkVector(fields); err != "" {
			t.Errorf("tids.txt:%d: %s: %s", line, sc.Text(), err)
		}
	}
	for _, kind := range []string{"make", "epoch", "later", "str", "time"} {
		if counts[kind] < 10 {
			t.Errorf("only %d %q vectors", counts[kind], kind)
		}
	}
}

func mustTid(s string) Tid {
	v, err := ParseTid(s)
	if err != nil {
		panic(err)
	}
	return v
}

func atoi(s string) int { v, _ := strconv.Atoi(s); return v }

func checkVector(f []string) string {
	switch f[0] {
	case "make":
		sec, _ := strconv.ParseFloat(f[6], 64)
		if got := MakeTid(atoi(f[1]), atoi(f[2]), atoi(f[3]), atoi(f[4]), atoi(f[5]), sec); got != mustTid(f[7]) {
			return "got " + got.Hex()
		}
	case "epoch":
		secs, _ := strconv.ParseFloat(f[1], 64)
		if got := TidFromEpoch(secs); got != mustTid(f[2]) {
			return "got " + got.Hex()
		}
	case "later":
		if got := mustTid(f[1]).LaterThan(mustTid(f[2])); got != mustTid(f[3]) {
			return "got " + got.Hex()
		}
	case "str":
		want := strings.Join(f[2:], " ")
		if got := mustTid(f[1]).TimeString(); got != want {
			return "got " + got
		}
	case "time":
		want, _ := strconv.ParseFloat(f[2], 64)
		if got := mustTid(f[1]).Epoch(); got != want { // exactly: it goes to ZEO clients
			return "got " + strconv.FormatFloat(got, 'f', -1, 64)
		}
	}
	return ""
}

func TestTidTimeRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 25, 13, 50, 5, 955247000, time.UTC)
	tid := TidFromTime(ts)
	if got := tid.Time(); got.Sub(ts).Abs() > 20*time.Nanosecond {
		t.Fatalf("round trip: %v -> %s -> %v", ts, tid, got)
	}
	if tid.Hex()[:8] != "040d40fe" {
		t.Fatalf("minutes part: %s", tid)
	}
}

func TestTidClockStrictlyIncreasing(t *testing.T) {
	fixed := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	// A clock stuck in the past must still move past the last tid.
	last := TidFromTime(fixed.Add(time.Hour))
	c := NewTidClock(last, func() time.Time { return fixed })
	prev := last
	for i := 0; i < 10000; i++ {
		n := c.Next()
		if n <= prev {
			t.Fatalf("step %d: %s not after %s", i, n, prev)
		}
		prev = n
	}
	c.Observe(MaxTid - 5)
	if c.Next() <= MaxTid-5 {
		t.Fatal("Observe did not raise the floor")
	}
}

func TestParseAndBytes(t *testing.T) {
	for _, s := range []string{"0x040d40fe1968b7dd", "040d40fe1968b7dd"} {
		tid, err := ParseTid(s)
		if err != nil || tid != 0x040d40fe1968b7dd {
			t.Fatalf("ParseTid(%q) = %v, %v", s, tid, err)
		}
	}
	// 17 digits are refused even when their value fits.
	for _, bad := range []string{"", "0x", "zz", "12345678901234567", "00000000000000001", "0x00000000000000001"} {
		if _, err := ParseOid(bad); err == nil {
			t.Errorf("ParseOid(%q) accepted", bad)
		}
		if _, err := ParseTid(bad); err == nil {
			t.Errorf("ParseTid(%q) accepted", bad)
		}
	}
	b := Oid(0x0102030405060708).Bytes()
	if o, err := OidFromBytes(b[:]); err != nil || o != 0x0102030405060708 {
		t.Fatalf("OidFromBytes: %v %v", o, err)
	}
	if _, err := TidFromBytes([]byte{1, 2}); err == nil {
		t.Fatal("short tid accepted")
	}
}
