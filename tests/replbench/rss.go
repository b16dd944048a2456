package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// procStatus reads VmRSS and VmHWM (in kB) of pid.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm, sc.Err()
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runRSS starts the primary daemon (--zrs BIN primary SOURCE) as its own
// process, lets --secondaries in-process secondaries catch up from it at
// once into empty files, and samples the primary's resident memory.
func runRSS(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("rss", flag.ContinueOnError)
	bin := fset.String("zrs", "bin/zrs", "the zrs binary")
	n := fset.Int("secondaries", 10, "secondaries catching up at once")
	limit := fset.Duration("limit", 30*time.Second, "stop sampling after this long even if they have not caught up (memory per stream does not grow with the file)")
	proto := protoFlag(fset)
	pos, err := parse(fset, args, 1)
	if err != nil {
		return err
	}
	source := pos[0]
	size, err := fileSize(source)
	if err != nil {
		return err
	}
	target, err := lastTid(source)
	if err != nil {
		return err
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(*bin, "primary", source, "--replicate-to", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	stopPrimary := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		return cmd.Wait()
	}
	if err := waitListening(ctx, addr, time.Minute); err != nil {
		return errors.Join(err, stopPrimary())
	}
	idle, _, err := procStatus(pid)
	if err != nil {
		return errors.Join(err, stopPrimary())
	}
	dir, err := os.MkdirTemp(filepath.Dir(source), "rss-")
	if err != nil {
		return errors.Join(err, stopPrimary())
	}
	defer os.RemoveAll(dir)

	var maxRSS int64
	samplerDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := procStatus(pid); err == nil {
				maxRSS = max(maxRSS, rss)
			}
			select {
			case <-t.C:
			case <-stopSampling:
				return
			}
		}
	}()

	secs := make([]*tracked, *n)
	for i := range secs {
		if secs[i], err = newTracked(filepath.Join(dir, fmt.Sprintf("s%d.fs", i)), addr, *proto, false, nil); err != nil {
			return errors.Join(err, stopPrimary())
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	var caughtUp atomic.Int64
	lctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()
	for _, s := range secs {
		reached := s.expect(target)
		s.start()
		wg.Go(func() {
			select {
			case <-reached:
				caughtUp.Add(1)
			case <-lctx.Done():
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var copied int64
	for i := range secs {
		if sz, err := fileSize(filepath.Join(dir, fmt.Sprintf("s%d.fs", i))); err == nil {
			copied += sz
		}
	}
	_, hwm, herr := procStatus(pid)
	close(stopSampling)
	<-samplerDone
	var errs []error
	for _, s := range secs {
		errs = append(errs, s.stop(), s.Close())
	}
	errs = append(errs, herr, ctx.Err())
	if err := errors.Join(append(errs, stopPrimary())...); err != nil {
		return err
	}
	return printJSON(map[string]any{"op": "rss", "label": protoLabel("zrs primary", *proto), "proto": *proto, "bytes": size, "secondaries": *n,
		"idle_rss_mb": round3(float64(idle) / 1024), "max_rss_mb": round3(float64(maxRSS) / 1024),
		"hwm_mb": round3(float64(hwm) / 1024), "seconds": round3(elapsed.Seconds()),
		"caught_up": caughtUp.Load(), "copied_bytes": copied,
		"aggregate_mb_s": round3(float64(copied) / 1e6 / elapsed.Seconds())})
}
