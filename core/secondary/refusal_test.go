package secondary

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A refusal repeats on every retry until an operator acts: it is an
// error once per refusalLogEvery (and at once for a new reason), with the
// number of refusals not shown since, and debug in between.
func TestRefusalIsLoggedOncePerPeriod(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var n nativeState
	step := func(reason, want string) {
		t.Helper()
		buf.Reset()
		n.logRefusal(log, reason, 7)
		if got := buf.String(); !strings.Contains(got, want) {
			t.Fatalf("refusal %q logged %q; want %q", reason, got, want)
		}
	}
	step("history diverged", `level=ERROR msg="the primary refuses this secondary: history diverged" tid=0000000000000007`+"\n")
	step("history diverged", `level=DEBUG`)
	step("history diverged", `level=DEBUG`)
	step("different database", `level=ERROR msg="the primary refuses this secondary: different database" tid=0000000000000007`+"\n")
	step("history diverged", `level=ERROR msg="the primary refuses this secondary: history diverged" tid=0000000000000007`+"\n")
	step("history diverged", `level=DEBUG`)
	n.mu.Lock()
	n.refusalLogged = n.refusalLogged.Add(-refusalLogEvery)
	n.mu.Unlock()
	step("history diverged", `level=ERROR msg="the primary refuses this secondary: history diverged" tid=0000000000000007 refused_since_last_logged=1`)
}
