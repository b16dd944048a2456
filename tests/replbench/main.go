// Command replbench measures zrs replication for bench/repl.sh: catch-up
// throughput, replication lag under a steady commit rate, the time a
// secondary one transaction behind waits for its first byte at the end of a
// huge file, and the primary's memory while many secondaries catch up. Each
// measuring subcommand prints one JSON line; it never judges the numbers.
//
//	replbench gen PATH [--mb N] [--records N] [--seed S]
//	replbench bigfile PRIMARY SECONDARY [--gb N] [--txns N]
//	replbench catchup SOURCE [--primary ADDR]
//	replbench lag [--rate R] [--seconds D]
//	replbench resume PRIMARY SECONDARY [--trials N]
//	replbench rss SOURCE --zrs BIN [--secondaries N]
//
// gen writes a database through the Go API; bigfile writes a sparse
// multi-GB pair (the secondary's copy lacks the last transaction). catchup
// replicates SOURCE into an empty file over loopback TCP, from an
// in-process primary or from the primary at ADDR (e.g. a zc.zrs one).
// Errors go to stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "replbench:", err)
		os.Exit(1)
	}
}

var commands = map[string]func(ctx context.Context, args []string) error{
	"gen":     runGen,
	"bigfile": runBigFile,
	"catchup": runCatchUp,
	"lag":     runLag,
	"resume":  runResume,
	"rss":     runRSS,
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: replbench gen|bigfile|catchup|lag|resume|rss")
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:])
}

// parse parses flags given before or after the positional arguments, and
// checks that there are exactly n positional ones.
func parse(fset *flag.FlagSet, args []string, n int) ([]string, error) {
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != n {
		return nil, fmt.Errorf("%s: want %d arguments, got %d", fset.Name(), n, len(pos))
	}
	return pos, nil
}

// printJSON writes v as one JSON line on stdout.
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// round3 keeps three decimals.
func round3(x float64) float64 {
	return float64(int64(x*1000+0.5)) / 1000
}

// percentiles returns the given percentiles (0-100) of ds in
// milliseconds, nearest-rank; ds is sorted in place.
func percentiles(ds []time.Duration, ps ...float64) []float64 {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	out := make([]float64, len(ps))
	if len(ds) == 0 {
		return out
	}
	for i, p := range ps {
		k := int(p/100*float64(len(ds))+0.999999) - 1
		k = max(0, min(k, len(ds)-1))
		out[i] = round3(ms(ds[k]))
	}
	return out
}
