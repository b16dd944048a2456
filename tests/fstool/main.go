// Command fstool drives zrs's FileStorage for the Python peer tests: it
// writes, copies, opens and loads Data.fs files through the Go API and
// prints JSON results, so the tests can compare them with Python ZODB.
//
//	fstool write PATH [--txns N] [--seed S]
//	fstool copy SRC DST
//	fstool open PATH...
//	fstool hold-lock PATH
//	fstool load PATH
//	fstool undo PATH TID...
//	fstool bench iterate PATH | load PATH N | commit PATH N
//	fstool serve-primary PATH --replicate-to ADDR [--admin ADDR] [--txns N] [--commit-every D]
//
// Errors go to stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fstool:", err)
		os.Exit(1)
	}
}

// commands maps each subcommand to its implementation.
var commands = map[string]func(ctx context.Context, args []string) error{
	"write":         runWrite,
	"copy":          runCopy,
	"open":          runOpen,
	"hold-lock":     runHoldLock,
	"load":          runLoad,
	"undo":          runUndo,
	"bench":         runBench,
	"serve-primary": runServePrimary,
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: fstool write|copy|open|hold-lock|load|bench")
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:])
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

// needArgs checks the number of positional arguments.
func needArgs(cmd string, args []string, n int) error {
	if len(args) != n {
		return fmt.Errorf("%s: want %d arguments, got %d", cmd, n, len(args))
	}
	return nil
}
