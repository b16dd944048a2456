package primary

import "sync"

// headSignal is the coalescing "new head" signal: Notify never blocks and
// wakes every goroutine currently waiting on the channel from C; any
// number of notifications while nobody looks collapse into one wake-up.
//
// A waiter takes C before it looks for new transactions, so a commit that
// lands after the look closes the channel it then waits on.
type headSignal struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced by Notify; guarded by mu
}

func newHeadSignal() *headSignal { return &headSignal{ch: make(chan struct{})} }

// C returns a channel closed by the next Notify.
func (s *headSignal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Notify wakes the current waiters. It takes a mutex for a few
// instructions and never waits for a waiter.
func (s *headSignal) Notify() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}
