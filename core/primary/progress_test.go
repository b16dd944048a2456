package primary

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestCatchUpProgressLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	end := int64(1000 << 20)
	c := &catchUpProgress{log: log, end: func() int64 { return end }, startPos: -1}
	c.sent(0)
	if !c.active {
		t.Fatal("a stream 1000 MB behind is not reported")
	}
	// 10 s to send the first 250 MB, the last line progressEvery ago: the
	// next send reports, the one right after it does not.
	c.started = time.Now().Add(-10 * time.Second)
	c.lastLog = time.Now().Add(-progressEvery)
	c.sent(250 << 20)
	c.sent(260 << 20)
	if n := strings.Count(buf.String(), "catching up"); n != 1 {
		t.Fatalf("%d progress lines for two sends progressEvery apart from the last, want 1:\n%s", n, &buf)
	}
	c.caughtUp()
	c.caughtUp()
	out := buf.String()
	for _, want := range []string{"catching up", "percent=25", "mb_per_s=26", "eta=30s", "caught up"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "caught up"); n != 1 {
		t.Errorf("caught up logged %d times", n)
	}

	buf.Reset()
	near := &catchUpProgress{log: log, end: func() int64 { return end }, startPos: -1}
	near.sent(end - 1<<20)
	near.sent(end)
	near.caughtUp()
	if buf.Len() != 0 {
		t.Errorf("a stream 1 MB behind logged:\n%s", buf.String())
	}
	var none *catchUpProgress
	none.sent(5)
	none.caughtUp()
}
