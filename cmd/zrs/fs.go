package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/zrs-replication/zrs/core/fs"
)

// runFS dispatches "zrs fs verify|dump".
func runFS(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 {
		return usagef("fs: want a subcommand: verify or dump")
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "verify":
		return runFSVerify(ctx, rest, e)
	case "dump":
		return runFSDump(ctx, rest, e)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, "Usage:\n  zrs fs verify [--progress] PATH\n  zrs fs dump [--json] PATH\n\nRun 'zrs fs verify --help' or 'zrs fs dump --help' for details.\n")
		return nil
	default:
		return usagef("fs: unknown subcommand %q (want verify or dump)", sub)
	}
}

// onePath parses the flags of a command that takes exactly one PATH.
func onePath(fset *flag.FlagSet, args []string, e *env) (string, error) {
	if err := parseFlags(fset, args, e); err != nil {
		return "", err
	}
	if fset.NArg() != 1 {
		return "", usagef("%s: want exactly one PATH, got %d arguments", fset.Name(), fset.NArg())
	}
	return fset.Arg(0), nil
}

// runFSVerify checks a Data.fs and prints a summary.
func runFSVerify(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("fs verify", flag.ContinueOnError)
	progress := fset.Bool("progress", false, "report progress on stderr even when it is not a terminal")
	strict := fset.Bool("strict", false, "an unfinished last transaction is a problem (exit 1), as for Python's fstest")
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), `Usage: zrs fs verify [--progress] [--strict] PATH

Check the Data.fs at PATH without modifying it (no lock is taken, so it can
run against a live database): magic, transaction headers, strictly
increasing tids, lengths and trailers, no unfinished ('c') transaction
before the last, data records exactly tiling each transaction, prev
pointers and backpointer targets. On success print a summary; on damage
print the first problem with its byte offset and exit 1.

An unfinished last transaction (status 'c', or not yet written whole) is a
commit in progress on a live database, or a crash's leftover that the next
read-write open moves to Data.fs.trN: it is reported as a note, not
checked, and the exit status stays 0 unless --strict.

Flags:
`)
		fset.PrintDefaults()
	}
	path, err := onePath(fset, args, e)
	if err != nil {
		return err
	}
	opts := fs.VerifyOptions{Strict: *strict}
	if *progress || e.stderrIsTerminal {
		opts.Progress = progressPrinter(e.stderr, *progress && !e.stderrIsTerminal)
	}
	rep, err := fs.Verify(ctx, path, opts)
	if err != nil {
		return fmt.Errorf("fs verify: %w", err)
	}
	return printVerifyReport(e.stdout, rep)
}

// progressPrinter draws "verified N of M MiB (P%)": on one rewritten line
// on a terminal, one line per report otherwise.
func progressPrinter(w io.Writer, lines bool) func(pos, size int64) {
	var last time.Time
	return func(pos, size int64) {
		done := pos >= size
		if !done && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		pct := 100.0
		if size > 0 {
			pct = float64(pos) * 100 / float64(size)
		}
		end := "\r"
		if lines || done {
			end = "\n"
		}
		fmt.Fprintf(w, "verified %d of %d MiB (%.0f%%)%s", pos>>20, size>>20, pct, end)
	}
}

func printVerifyReport(w io.Writer, r *fs.VerifyReport) error {
	fmt.Fprintf(w, "%s: OK (%s, %d bytes)\n", r.Path, r.Magic, r.Size)
	fmt.Fprintf(w, "  transactions: %d", r.Txns)
	if r.UndoneTxns > 0 {
		fmt.Fprintf(w, " (%d legacy 'u' skipped)", r.UndoneTxns)
	}
	fmt.Fprintf(w, "\n  data records: %d (%d backpointers, %d without data), %d bytes of pickles\n",
		r.Records, r.Backpointers, r.Deletions, r.DataBytes)
	fmt.Fprintf(w, "  objects:      %d\n", r.Oids)
	if r.Txns > 0 {
		fmt.Fprintf(w, "  tids:         %s (%s) .. %s (%s)\n", r.FirstTid, r.FirstTid.TimeString(), r.LastTid, r.LastTid.TimeString())
	}
	if u := r.Unfinished; u != nil {
		fmt.Fprintf(w, "  note:         %s (a commit in progress, or a crash's leftover that a read-write open moves to Data.fs.trN; not checked)\n", u)
	}
	if r.WarningCount > 0 {
		fmt.Fprintf(w, "  warnings:     %d\n", r.WarningCount)
		for _, wn := range r.Warnings {
			fmt.Fprintf(w, "    %s\n", wn)
		}
	}
	_, err := fmt.Fprint(w)
	return err
}

// runFSDump prints a Data.fs.
func runFSDump(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("fs dump", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "one JSON object per transaction per line")
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), `Usage: zrs fs dump [--json] PATH

Print every transaction and data record of the Data.fs at PATH, read-only,
in the line format of ZODB's fsdump.py; with --json, one JSON object per
transaction per line:
  {"pos","tid","status","user","description","extension","extension_sha1",
   "records":[{"oid","tid","data_len","sha1","data_txn"}...]}

Flags:
`)
		fset.PrintDefaults()
	}
	path, err := onePath(fset, args, e)
	if err != nil {
		return err
	}
	if err := fs.Dump(ctx, e.stdout, path, fs.DumpOptions{JSON: *asJSON, Warn: e.stderr}); err != nil {
		return fmt.Errorf("fs dump: %w", err)
	}
	return nil
}
