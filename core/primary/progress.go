package primary

import (
	"log/slog"
	"time"
)

// Catch-up progress logging: a stream that starts far behind logs how far
// it has come (percent of the file, MB/s, ETA) every progressEvery, and
// once when it has caught up. Streams that start close to the end log
// nothing, so a busy primary's log stays readable.
const (
	progressEvery    = 10 * time.Second
	progressMinBytes = 64 << 20 // streams starting less behind than this are not reported
)

// catchUpProgress tracks one stream's catch-up. The zero value (or one
// made for a storage that does not tell its size) logs nothing.
type catchUpProgress struct {
	log      *slog.Logger
	end      func() int64 // the storage's committed end
	startPos int64        // file offset of the first transaction sent
	started  time.Time
	lastLog  time.Time
	active   bool // started far enough behind to be reported
	done     bool // "caught up" was logged
}

// newCatchUpProgress returns a tracker for a stream of p, nil when the
// storage cannot tell its committed end.
func newCatchUpProgress(p *Primary, log *slog.Logger) *catchUpProgress {
	ce, ok := p.st.(committedEnd)
	if !ok {
		return nil
	}
	return &catchUpProgress{log: log, end: ce.CommittedEnd, startPos: -1}
}

// sent records that the transaction at file offset pos was sent.
func (c *catchUpProgress) sent(pos int64) {
	if c == nil || c.done || pos < 0 {
		return
	}
	now := time.Now()
	if c.startPos < 0 {
		c.startPos, c.started, c.lastLog = pos, now, now
		c.active = c.end()-pos >= progressMinBytes
		return
	}
	if c.active && now.Sub(c.lastLog) >= progressEvery {
		c.lastLog = now
		c.report(pos, now)
	}
}

// report logs the position reached, the rate so far and the time left.
func (c *catchUpProgress) report(pos int64, now time.Time) {
	end := c.end()
	done := float64(pos-c.startPos) / 1e6
	secs := now.Sub(c.started).Seconds()
	rate := done / max(secs, 1e-9)
	left := float64(end-pos) / 1e6
	eta := time.Duration(left / max(rate, 1e-9) * float64(time.Second)).Round(time.Second)
	c.log.Info("catching up",
		"percent", int(100*float64(pos)/float64(max(end, 1))),
		"mb_per_s", int(rate), "eta", eta.String(), "sent_mb", int(done), "left_mb", int(left))
}

// caughtUp logs, once, that a reported catch-up has finished.
func (c *catchUpProgress) caughtUp() {
	if c == nil || !c.active || c.done {
		return
	}
	c.done = true
	done := float64(c.end()-c.startPos) / 1e6
	secs := time.Since(c.started).Seconds()
	c.log.Info("caught up", "sent_mb", int(done), "seconds", int(secs), "mb_per_s", int(done/max(secs, 1e-9)))
}
