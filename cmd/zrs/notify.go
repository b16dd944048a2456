package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// statusInterval is how often the systemd STATUS is recomputed (and sent
// when it changed); a variable for the tests.
var statusInterval = 2 * time.Second

// notifier sends sd_notify messages to NOTIFY_SOCKET; without it every
// send does nothing. A failing socket is logged once, not per message.
type notifier struct {
	log    *slog.Logger
	warned sync.Once
}

func newNotifier(log *slog.Logger) *notifier { return &notifier{log: log} }

// Opening a large Data.fs without a current index scans it (a minute per
// tens of GB), longer than systemd's default start timeout; killed and
// restarted, the daemon would scan again from the same place forever.
// While the node starts, systemd is told every startExtendEvery to wait
// startExtendBy more (EXTEND_TIMEOUT_USEC, systemd 236 and later).
// startExtendEvery is a variable for the tests.
var startExtendEvery = 20 * time.Second

const startExtendBy = 60 * time.Second

// extendStartWhileOpening keeps extending systemd's start timeout until
// the returned function is called, or until ctx ends (a stop).
func extendStartWhileOpening(ctx context.Context, nt *notifier, name string) (opened func()) {
	msg := fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=%s: opening the storage", startExtendBy.Microseconds(), name)
	nt.send(msg)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(startExtendEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				// Told to stop: an extension now would push back the stop
				// timeout (systemd extends the current state's), and a
				// system shutdown would wait for the whole scan.
				nt.send(fmt.Sprintf("STATUS=%s: stopping once the storage's open returns (it cannot be cut short; TimeoutStopSec bounds the wait)", name))
				return
			case <-tick.C:
				nt.send(msg)
			}
		}
	}()
	return func() { close(done) }
}

func (nt *notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		nt.warned.Do(func() { nt.log.Warn("cannot notify systemd (NOTIFY_SOCKET)", "err", err) })
	}
}

// supervisor reports a running node to systemd: READY=1, STATUS= lines,
// watchdog pings, and STOPPING=1 before the node is stopped.
type supervisor struct {
	name   string
	node   *node
	notify *notifier
	log    *slog.Logger
}

// run sends READY=1 and the first STATUS, then refreshes STATUS and pings
// the watchdog (at half of WATCHDOG_USEC, when systemd set it) until
// sigCtx ends; then it sends STOPPING=1 and calls stopNode, so systemd
// hears of the stop before the node starts it. It returns early when done
// is closed (the node ended by itself).
func (s *supervisor) run(sigCtx context.Context, done <-chan struct{}, stopNode context.CancelFunc) {
	s.notify.send(sd.SdNotifyReady)
	last := s.status()
	s.notify.send("STATUS=" + last)
	s.log.Info("ready", "status", last)
	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	var watchdog <-chan time.Time
	if iv, err := sd.SdWatchdogEnabled(false); err != nil {
		s.log.Warn("systemd watchdog settings ignored", "err", err)
	} else if iv > 0 {
		wt := time.NewTicker(iv / 2)
		defer wt.Stop()
		watchdog = wt.C
		s.notify.send(sd.SdNotifyWatchdog)
	}
	for {
		select {
		case <-done:
			return
		case <-sigCtx.Done():
			s.notify.send(sd.SdNotifyStopping + "\nSTATUS=" + s.name + ": stopping")
			stopNode()
			return
		case <-tick.C:
			if st := s.status(); st != last {
				last = st
				s.notify.send("STATUS=" + st)
			}
		case <-watchdog:
			// Computing the status takes the node's locks: a node that is
			// stuck stops the pings, and systemd restarts it.
			s.status()
			s.notify.send(sd.SdNotifyWatchdog)
		}
	}
}

// status is the one-line STATUS: "main: primary, last tid 03f1...,
// 2 secondaries (max lag 1.2s), 3 ZEO clients" or "replica: secondary,
// last tid 03f1..., connected, caught up, 1 ZEO client".
func (s *supervisor) status() string {
	st := s.node.status.Status()
	parts := []string{st.Role, "last tid " + st.LastTid}
	if !st.PromotedAt.IsZero() {
		parts[0] = "primary (promoted)"
	}
	if d, stalled := st.Stalled(); stalled {
		parts = append(parts, "STALLED: "+stalledText(d))
	}
	if up := st.Upstream; up != nil {
		switch {
		case up.Promoting:
			parts = append(parts, "promotion not finished, read-only: run zrs promote again")
		case !up.Connected && up.LastError != "":
			parts = append(parts, "disconnected: "+up.LastError)
		case !up.Connected:
			parts = append(parts, "connecting to "+up.Address)
		case up.CaughtUp:
			parts = append(parts, "connected, caught up")
		default:
			parts = append(parts, "connected, catching up")
		}
	}
	if st.Serving {
		p := plural(len(st.Secondaries), "secondary", "secondaries")
		var lag float64
		for _, d := range st.Secondaries {
			lag = max(lag, d.LagSeconds)
		}
		if lag > 0 {
			p += fmt.Sprintf(" (max lag %s)", time.Duration(lag*float64(time.Second)).Round(time.Millisecond))
		}
		parts = append(parts, p)
	}
	if s.node.zeo != nil {
		parts = append(parts, plural(s.node.zeo.Clients(), "ZEO client", "ZEO clients"))
	}
	return s.name + ": " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
