package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

const statusUsage = `Usage: zrs status ADDR [--json]

Ask the zrs daemon whose admin endpoint (--admin) is at ADDR for its role,
its last transaction, and its replication: for a secondary, its primary
and whether it is connected and caught up; for a primary (or a relay),
each connected secondary with its lag. --json prints the endpoint's JSON
as is (for scripts). ADDR is a port, host:port, or a unix socket path.

Flags:
`

// requestTimeout bounds one admin request from the command line.
const requestTimeout = 30 * time.Second

// runStatus runs "zrs status".
func runStatus(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the status as JSON")
	fset.Usage = usageFunc(fset, statusUsage)
	addr, err := oneAddr(fset, args, e)
	if err != nil {
		return err
	}
	c, err := adminClient("status", addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, raw, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := e.stdout.Write(raw)
		return err
	}
	return printStatus(e.stdout, st, time.Now())
}

// adminClient is the client of the admin endpoint at addr for command
// cmd (an address that does not parse is a usage error).
func adminClient(cmd, addr string) (*admin.Client, error) {
	// net/http logs a response that came unasked (a ZEO port's greeting)
	// on the standard logger; the client's error says what it means.
	log.SetOutput(io.Discard)
	c, err := admin.NewClient(addr)
	if err != nil {
		return nil, usagef("%s: %v", cmd, err)
	}
	return c, nil
}

// oneAddr parses the flags and the single ADDR argument.
func oneAddr(fset *flag.FlagSet, args []string, e *env) (string, error) {
	if err := parseFlags(fset, args, e); err != nil {
		return "", err
	}
	if fset.NArg() != 1 {
		return "", usagef("%s: want one ADDR (the daemon's --admin address), got %d arguments", fset.Name(), fset.NArg())
	}
	return fset.Arg(0), nil
}

// printStatus prints st as a small report with a table of secondaries.
func printStatus(w io.Writer, st admin.Status, now time.Time) error {
	fmt.Fprintf(w, "role:     %s\n", st.Role)
	fmt.Fprintf(w, "path:     %s\n", st.Path)
	fmt.Fprintf(w, "last tid: %s%s\n", st.LastTid, tidTimeNote(st.LastTidTime, now))
	if !st.PromotedAt.IsZero() {
		fmt.Fprintf(w, "promoted: %s\n", st.PromotedAt.Format(time.RFC3339Nano))
	}
	if d, stalled := st.Stalled(); stalled {
		fmt.Fprintf(w, "STALLED:  %s\n", stalledText(d))
	}
	if st.Durability != "" {
		note := ""
		if st.SyncDegraded {
			note = " — DEGRADED: commits do not wait for secondaries until they catch up"
		}
		fmt.Fprintf(w, "durability: %s%s\n", st.Durability, note)
	}
	if up := st.Upstream; up != nil {
		state := "disconnected"
		switch {
		case up.Promoting:
			state = "replication stopped by a promotion that has not finished: run zrs promote again"
		case up.Connected && up.CaughtUp:
			state = "connected, caught up"
		case up.Connected:
			state = "connected, receiving"
		}
		fmt.Fprintf(w, "primary:  %s (%s)\n", up.Address, state)
		// A connected secondary's last error is the previous connection's.
		if up.LastError != "" && (!up.Connected || up.Promoting) {
			fmt.Fprintf(w, "error:    %s\n", up.LastError)
		}
	}
	if !st.Serving {
		return nil
	}
	if len(st.Secondaries) == 0 {
		fmt.Fprintln(w, "secondaries: none connected")
		return nil
	}
	fmt.Fprintf(w, "secondaries: %d connected\n", len(st.Secondaries))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tPROTO\tLAST SENT\tLAG\tCONNECTED")
	for _, d := range st.Secondaries {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", d.Peer, d.Proto, d.LastSent, lagText(d),
			now.Sub(d.ConnectedSince).Round(time.Second))
	}
	return tw.Flush()
}

// stalledText says what an fsync running for d means.
func stalledText(d time.Duration) string {
	return fmt.Sprintf("the storage's fsync has not returned for %s: the disk is not answering, commits wait", d.Round(time.Second))
}

// tidTimeNote is " (TIME, AGE ago)" for a tid's time, "" for none.
func tidTimeNote(t, now time.Time) string {
	if t.IsZero() {
		return " (empty database)"
	}
	return fmt.Sprintf(" (%s, %s ago)", t.Format("2006-01-02 15:04:05.000000 MST"), now.Sub(t).Round(time.Millisecond))
}

// lagText describes a secondary's lag.
func lagText(d admin.Downstream) string {
	if d.CaughtUp {
		return "caught up"
	}
	var parts []string
	if d.LagTransactions != nil {
		parts = append(parts, fmt.Sprintf("%d txns", *d.LagTransactions))
	}
	if d.LagBytes != nil {
		parts = append(parts, fmt.Sprintf("%d bytes", *d.LagBytes))
	}
	parts = append(parts, fmt.Sprintf("%.3fs", d.LagSeconds))
	return strings.Join(parts, ", ")
}
