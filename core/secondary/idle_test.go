package secondary

import (
	"testing"
	"time"
)

// Heartbeats alone (17 bytes every interval, 2 s by default) never bring
// what a window of a message in progress must, whatever the idle time:
// a frame that will never end is always noticed.
func TestIdleWindowOutweighsHeartbeats(t *testing.T) {
	const beat, every = 17, 2 * time.Second
	for _, idle := range []time.Duration{time.Second, 6 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour} {
		r := newIdleReader(nil, idle)
		beats := int64(idle/every+1) * beat
		if r.minWindow < 10*beats {
			t.Errorf("idle %v: a window needs %d bytes, heartbeats alone bring %d", idle, r.minWindow, beats)
		}
	}
}
