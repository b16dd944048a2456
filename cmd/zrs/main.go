package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// daemonGCPercent is the garbage collector's target for zrs processes
// when GOGC is not set. A daemon's heap is mostly the FileStorage index,
// a map without pointers that is cheap to scan; at Go's default (100) the
// heap may grow to twice it before a collection, which made a primary
// serving ten catching-up secondaries pass 100 MB. 50 keeps the peak at
// 1.5 times the live heap (bench/repl.sh's RSS run, 10 secondaries, 626k
// objects: 116 → 72-89 MB over zrs2, 136 → 97-105 MB over zrs3). GOGC
// still overrides it.
const daemonGCPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful stop; a second one, the default
	// action again, ends the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], newEnv(os.Stdout, os.Stderr))
	stop()
	os.Exit(report(err, os.Stderr))
}

// env is what a subcommand writes to; tests give buffers.
type env struct {
	stdout, stderr io.Writer
	// stderrIsTerminal reports whether progress may be drawn on stderr.
	stderrIsTerminal bool
}

func newEnv(stdout, stderr *os.File) *env {
	e := &env{stdout: stdout, stderr: stderr}
	if fi, err := stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		e.stderrIsTerminal = true
	}
	return e
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// report prints err (if any) and returns the exit code for it.
func report(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "zrs: %v\nRun 'zrs --help' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "zrs: %v\n", err)
		return exitFailure
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 {
		printUsage(e.stderr)
		return usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "-help", "--help", "help":
		printUsage(e.stdout)
		return nil
	case "version", "--version":
		return runVersion(ctx, rest, e)
	case "fs":
		return runFS(ctx, rest, e)
	case "primary":
		return runPrimary(ctx, rest, e)
	case "secondary":
		return runSecondary(ctx, rest, e)
	case "status":
		return runStatus(ctx, rest, e)
	case "promote":
		return runPromote(ctx, rest, e)
	case "run":
		return runRun(ctx, rest, e)
	default:
		return usagef("unknown command %q", cmd)
	}
}
