// Command faultproxy runs a fault-injecting TCP proxy (internal/faultproxy)
// for the Python tests, controlled by one command per line on stdin.
//
//	faultproxy --listen ADDR --target ADDR [-v]
//
// Once listening it prints {"ok":true,"listen":"HOST:PORT"}, so --listen may
// use port 0. Then every command line gets exactly one JSON line in reply,
// {"ok":true} or {"ok":false,"error":"..."}; stats adds "stats". DIR is c2s
// (client to server) or s2c (server to client):
//
//	delay DIR DURATION       latency per chunk, e.g. 50ms; 0 removes it
//	stall DIR on|off         stop or resume forwarding
//	cut DIR N|off            close after forwarding exactly N more bytes
//	flip DIR OFFSET BIT      flip BIT (0-7, 0 = least significant) at stream OFFSET
//	fliprandom DIR PROB SEED flip a random bit of each byte with probability PROB
//	refuse on|off            accept and close new connections at once
//	drop                     close every open connection
//	heal                     clear every fault
//	stats                    counters: accepted, refused, dial_failed, active,
//	                         cuts, dropped, flipped, c2s, s2c (bytes)
//	quit                     close the proxy and exit
//
// Blank lines and lines starting with # get no reply. End of stdin, quit,
// SIGINT and SIGTERM close the proxy and exit with status 0; a bad command
// line is reported and the proxy carries on.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zrs-replication/zrs/internal/faultproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		os.Exit(1)
	}
}

// reply is one line of output.
type reply struct {
	OK     bool              `json:"ok"`
	Error  string            `json:"error,omitempty"`
	Listen string            `json:"listen,omitempty"`
	Stats  *faultproxy.Stats `json:"stats,omitempty"`
}

// errQuit ends the command loop cleanly.
var errQuit = errors.New("quit")

// run starts the proxy and serves commands from stdin until it ends, quit,
// or ctx is cancelled. A goroutine reading stdin may outlive run until stdin
// is closed.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("faultproxy", flag.ContinueOnError)
	fl.SetOutput(stderr)
	listen := fl.String("listen", "127.0.0.1:0", "address to listen on")
	target := fl.String("target", "", "address to forward connections to")
	verbose := fl.Bool("v", false, "log connection events to stderr")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *target == "" || fl.NArg() != 0 {
		return fmt.Errorf("usage: faultproxy --listen ADDR --target ADDR [-v]")
	}
	opts := []faultproxy.Option{}
	if *verbose {
		opts = append(opts, faultproxy.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	p, err := faultproxy.New(ctx, *listen, *target, opts...)
	if err != nil {
		return err
	}
	defer p.Close()
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(reply{OK: true, Listen: p.Addr()}); err != nil {
		return err
	}
	return serve(ctx, p, stdin, enc)
}

// serve runs each line of stdin as a command and writes its reply.
func serve(ctx context.Context, p *faultproxy.Proxy, stdin io.Reader, enc *json.Encoder) error {
	lines := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case line, ok = <-lines:
			if !ok {
				return nil
			}
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		r, err := command(p, fields)
		if errors.Is(err, errQuit) {
			return enc.Encode(reply{OK: true})
		}
		if err != nil {
			r = reply{Error: fmt.Sprintf("%s: %v", fields[0], err)}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

// command runs one command line, already split into fields.
func command(p *faultproxy.Proxy, f []string) (reply, error) {
	ok := reply{OK: true}
	switch f[0] {
	case "drop", "heal", "stats", "quit":
		if len(f) != 1 {
			return reply{}, fmt.Errorf("takes no arguments")
		}
		switch f[0] {
		case "drop":
			p.DropAll()
		case "heal":
			p.Heal()
		case "stats":
			s := p.Stats()
			return reply{OK: true, Stats: &s}, nil
		case "quit":
			return ok, errQuit
		}
		return ok, nil
	case "refuse":
		if len(f) != 2 {
			return reply{}, fmt.Errorf("want refuse on|off")
		}
		on, err := onOff(f[1])
		if err != nil {
			return reply{}, err
		}
		p.Refuse(on)
		return ok, nil
	}
	return ok, dirCommand(p, f)
}

// dirCommand runs a command whose first argument is a direction.
func dirCommand(p *faultproxy.Proxy, f []string) error {
	want := map[string]int{"delay": 3, "stall": 3, "cut": 3, "flip": 4, "fliprandom": 4}
	n, known := want[f[0]]
	if !known {
		return fmt.Errorf("unknown command")
	}
	if len(f) != n {
		return fmt.Errorf("want %d arguments, got %d", n-1, len(f)-1)
	}
	dir, err := faultproxy.ParseDir(f[1])
	if err != nil {
		return err
	}
	switch f[0] {
	case "delay":
		d, err := time.ParseDuration(f[2])
		if err != nil {
			return err
		}
		p.Delay(dir, d)
	case "stall":
		on, err := onOff(f[2])
		if err != nil {
			return err
		}
		p.Stall(dir, on)
	case "cut":
		n := int64(-1)
		if f[2] != "off" {
			if n, err = strconv.ParseInt(f[2], 10, 64); err != nil || n < 0 {
				return fmt.Errorf("bad byte count %q (want N ≥ 0 or off)", f[2])
			}
		}
		p.CutAfter(dir, n)
	case "flip":
		off, err1 := strconv.ParseInt(f[2], 10, 64)
		bit, err2 := strconv.ParseUint(f[3], 10, 8)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return p.FlipBit(dir, off, uint(bit))
	case "fliprandom":
		prob, err1 := strconv.ParseFloat(f[2], 64)
		seed, err2 := strconv.ParseUint(f[3], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return p.FlipRandom(dir, prob, seed)
	}
	return nil
}

func onOff(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("want on or off, got %q", s)
}
