package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/primary"
	"github.com/zrs-replication/zrs/core/secondary"
	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// nodeOptions describe one daemon node, whether they came from the flags
// of "zrs primary" / "zrs secondary" or from the config file of "zrs
// run": everything after them is one code path.
type nodeOptions struct {
	role          string // config.Primary or config.Secondary
	path          string // the Data.fs
	replicateTo   string // ADDR to serve secondaries on, "" for none
	replicateFrom string // secondary: the primary's ADDR
	zeo           zeoFlags
	admin         string             // admin endpoint ADDR, "" for none
	durability    primary.Durability // primary only
	secondary     secondary.Options  // secondary only: protocol, timeouts, keep-alive
	log           *slog.Logger

	// Listeners inherited from systemd, served instead of listening on
	// replicateTo and zeo.addr (none: listen on the address). startNode
	// fills in the others, and adminLn, before it opens the storage.
	replicationLns, zeoLns []net.Listener
	adminLn                net.Listener
}

// node is a started daemon: its storage, the primary or secondary over
// it, and the servers in front.
type node struct {
	o       nodeOptions
	st      *fs.FileStorage
	metrics *admin.Metrics
	status  admin.Node           // what /status and the systemd STATUS report
	prim    *primary.Primary     // the primary, or a secondary's relay; nil otherwise
	sec     *secondary.Secondary // nil on a primary
	zeo     *zeo.Server          // nil without a ZEO address

	stopZEO   func(context.Context) // stops within the context (one deadline for the whole stop)
	adm       *adminEndpoint        // serving from before the storage opened
	relayDone chan error            // a secondary's relay Serve result (nil without a relay)
}

// startNode opens the storage and starts listening and serving; run then
// drives the node until ctx ends. On error nothing is left open.
func startNode(ctx context.Context, o nodeOptions) (*node, error) {
	// What a typo or another process can make fail is tried before the
	// storage opens, which without a Data.fs.index scans the whole file:
	// the storage's lock, then the TLS files and every address. ZEO
	// clients and secondaries connecting meanwhile wait in the listen
	// backlog, as they do for a socket systemd holds; the admin endpoint
	// answers at once that the daemon is starting.
	if ctx.Err() != nil { // stopped before it began
		o.closeListeners()
		return nil, errStoppedWhileStarting
	}
	lock, err := fs.LockStorage(o.path)
	if err != nil {
		o.closeListeners()
		return nil, err
	}
	if err := o.bind(ctx); err != nil {
		lock.Close()
		if ctx.Err() != nil { // a listen cut short by the stop
			return nil, errStoppedWhileStarting
		}
		return nil, err
	}
	metrics := admin.NewMetrics()
	adm, err := startAdmin(o.adminLn, metrics, o.log)
	if err != nil {
		lock.Close()
		o.closeListeners()
		return nil, err
	}
	// abandon undoes the start before anything serves the storage.
	abandon := func() {
		sctx, cancel := stopContext(context.Background())
		defer cancel()
		adm.stop(sctx)
		o.closeListeners()
	}
	st, err := fs.Open(o.path, fs.Options{Logger: o.log, Lock: lock})
	if err != nil {
		abandon()
		return nil, err
	}
	if ctx.Err() != nil {
		// Stopped (SIGTERM, systemctl stop) during the open, which cannot
		// be cut short: stop now rather than start serving first.
		o.log.Info("stopped while the storage was opening: not serving", "path", o.path)
		abandon()
		if err := st.Close(); err != nil {
			return nil, err
		}
		return nil, errStoppedWhileStarting
	}
	n := &node{o: o, st: st, metrics: metrics, adm: adm, stopZEO: func(context.Context) {}}
	if o.role == config.Primary {
		err = n.startPrimary(ctx)
	} else {
		err = n.startSecondary(ctx)
	}
	if err != nil {
		n.closeOnError()
		return nil, err
	}
	return n, nil
}

// errStoppedWhileStarting: the daemon was told to stop while its storage
// opened; it stopped without serving (exit 0).
var errStoppedWhileStarting = errors.New("stopped while starting")

// bind loads the ZEO TLS files and opens every address systemd did not
// pass a socket for; on error it closes every listener, passed or not.
func (o *nodeOptions) bind(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			o.closeListeners()
		}
	}()
	if o.zeo.addr != "" {
		if err := o.zeo.load(); err != nil {
			return err
		}
		if len(o.zeoLns) == 0 {
			ln, err := netaddr.Listen(ctx, o.zeo.addr)
			if err != nil {
				return fmt.Errorf("zeo (--zeo, zeo.address): listen %s: %w", o.zeo.addr, err)
			}
			o.zeoLns = []net.Listener{ln}
		}
	}
	if o.replicateTo != "" && len(o.replicationLns) == 0 {
		ln, err := netaddr.Listen(ctx, o.replicateTo)
		if err != nil {
			return fmt.Errorf("replication (--replicate-to, replication.listen): %w", err)
		}
		o.replicationLns = []net.Listener{ln}
	}
	if o.admin != "" {
		ln, err := netaddr.Listen(ctx, o.admin)
		if err != nil {
			return fmt.Errorf("admin endpoint (--admin, admin): %w", err)
		}
		o.adminLn = ln
	}
	return nil
}

// closeListeners closes the listeners not yet handed to a server.
func (o *nodeOptions) closeListeners() {
	for _, ln := range slices.Concat(o.zeoLns, o.replicationLns, []net.Listener{o.adminLn}) {
		if ln != nil {
			ln.Close()
		}
	}
}

// closeOnError releases what a failed start opened.
func (n *node) closeOnError() {
	sctx, cancel := stopContext(context.Background())
	defer cancel()
	n.adm.stop(sctx)
	n.stopZEO(sctx)
	switch {
	case n.sec != nil:
		n.sec.Close()
	case n.prim != nil:
		n.prim.Close()
	default:
		n.st.Close()
	}
	if n.relayDone != nil {
		<-n.relayDone
	}
	n.o.closeListeners() // those no server took (closing again is harmless)
}

func (n *node) startPrimary(ctx context.Context) error {
	o := n.o
	n.prim = primary.New(n.st, primary.Options{Logger: o.log, Durability: o.durability})
	n.metrics.ObservePrimary(n.prim)
	if o.replicateTo != "" {
		if err := n.listenReplication(); err != nil {
			return err
		}
	}
	if err := n.startServers(ctx, n.prim, &admin.PrimaryNode{Primary: n.prim, Path: o.path, Storage: n.st}); err != nil {
		return err
	}
	o.log.Info("primary started", "path", o.path, "last", n.st.LastTransaction())
	return nil
}

func (n *node) startSecondary(ctx context.Context) error {
	o := n.o
	var target secondary.Storage = n.st
	if o.replicateTo != "" {
		n.prim = primary.New(n.st, primary.Options{Logger: o.log})
		n.metrics.ObservePrimary(n.prim)
		if err := n.listenReplication(); err != nil {
			return err
		}
		n.relayDone = make(chan error, 1)
		go func() { n.relayDone <- n.prim.Serve(context.WithoutCancel(ctx)) }()
		target = n.prim
	}
	from := o.replicateFrom
	dial := secondary.DialFunc(func(ctx context.Context) (net.Conn, error) { return netaddr.Dial(ctx, from) })
	sopts := o.secondary
	sopts.Logger, sopts.Dialer = o.log, n.metrics.CountDialer(dial)
	sopts.NodeID = nodeID(o.path)
	sopts.OnPromote = func() {
		if n.zeo != nil { // set before the admin endpoint, which promotes, starts
			n.zeo.StorageWritable()
		}
	}
	n.sec = secondary.New(target, from, sopts)
	n.metrics.ObserveSecondary(n.sec, n.prim == nil) // a relay's primary counts its own commits
	if err := n.startServers(ctx, n.sec, &admin.SecondaryNode{Secondary: n.sec, Relay: n.prim, Path: o.path, Storage: n.st}); err != nil {
		return err
	}
	o.log.Info("secondary started", "path", o.path, "last", n.st.LastTransaction(), "primary", from)
	return nil
}

// listenReplication serves secondaries on the replication listeners
// (opened by bind, or passed by systemd), their bytes counted in the
// metrics.
func (n *node) listenReplication() error {
	lns := n.o.replicationLns
	for i, ln := range lns {
		if err := n.prim.AddListener(n.metrics.CountListener(ln)); err != nil {
			for _, ln := range lns[i:] {
				ln.Close()
			}
			return err
		}
		n.o.log.Info("listening for secondaries", "addr", ln.Addr().String())
	}
	return nil
}

// startServers starts the ZEO server and lets the admin endpoint report
// an.
func (n *node) startServers(ctx context.Context, st zeo.Storage, an admin.Node) error {
	n.status = an
	srv, stop, err := n.o.zeo.start(st, n.metrics, n.o.log, n.o.zeoLns)
	if err != nil {
		return err
	}
	n.zeo, n.stopZEO = srv, stop
	n.adm.ready(an)
	return nil
}

// run serves until ctx ends (a secondary also until its replication
// fails for good), or until the storage closes itself after a failed
// write or fsync, then stops gracefully: see runPrimary and runSecondary.
// After a storage failure it returns an error (the failure, from the
// storage's Close), so the daemon exits 1 and its service manager
// restarts it: reopening the file recovers it.
func (n *node) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-n.st.Failed():
			n.o.log.Error("the storage closed after a failed write or fsync; stopping (a restart recovers the file)")
			cancel(errStorageFailed)
		case <-ctx.Done():
		}
	}()
	var err error
	if n.sec != nil {
		err = n.runSecondary(ctx)
	} else {
		err = n.runPrimary(ctx)
	}
	if err == nil && errors.Is(context.Cause(ctx), errStorageFailed) {
		err = errStorageFailed
	}
	return err
}

// errStorageFailed ends run when the storage has closed itself.
var errStorageFailed = errors.New("the storage closed after a failed write or fsync")

// runPrimary serves secondaries until ctx ends, then, within one
// shutdownTimeout, stops the ZEO server (transactions in progress finish
// or are aborted), lets connected secondaries receive what was
// committed, and closes the storage, saving its index.
func (n *node) runPrimary(ctx context.Context) error {
	// Secondaries may still connect while the ZEO transactions in flight
	// finish: with sync durability those commits wait for them.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	var served chan error // nil without replication: never ready
	if n.o.replicateTo != "" {
		served = make(chan error, 1)
		go func() { served <- n.prim.Serve(serveCtx) }()
	}
	var serr error
	select {
	case <-ctx.Done():
	case serr = <-served: // serving failed
		served = nil
	}
	n.o.log.Info("stopping primary")
	sctx, cancel := stopContext(ctx)
	defer cancel()
	n.stopZEO(sctx)
	stopServing()
	if served != nil {
		serr = <-served
	}
	n.adm.stop(sctx)
	if err := n.prim.Shutdown(sctx); err != nil {
		return err
	}
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return serr
	}
	n.o.log.Info("primary stopped", "last", n.st.LastTransaction())
	return nil
}

// runSecondary replicates until ctx ends (or, once promoted, serves as a
// primary until then), then stops the ZEO server, aborts a transaction
// being received (it is received again next time) and closes the
// storage, saving its index.
func (n *node) runSecondary(ctx context.Context) error {
	runErr := n.sec.Run(ctx)
	if n.sec.Promoted() || errors.Is(runErr, secondary.ErrPromoted) {
		// Promoted: now a primary (serving a relay's secondaries, if
		// any) until stopped.
		runErr = nil
		<-ctx.Done()
	}
	n.o.log.Info("stopping secondary")
	sctx, cancel := stopContext(ctx)
	defer cancel()
	defer n.adm.stop(sctx)
	n.stopZEO(sctx)
	var closeErr error
	if n.prim != nil {
		// A relay: its secondaries receive what it has within this stop's
		// deadline, as a primary's do, and then its storage is closed
		// (the index saved). The relay's own Close would start a deadline
		// of its own, outlasting this one: the stop would fail first and
		// the index go unsaved. Closing the secondary is then quick: its
		// replication has stopped and the relay is closed.
		n.prim.Shutdown(sctx)
		closeErr = n.sec.Close()
	} else {
		closeErr = closeWithin(sctx, n.sec.Close)
	}
	if n.relayDone != nil {
		select {
		case <-n.relayDone:
		case <-sctx.Done(): // closeWithin gave up already: so does the stop
		}
	}
	if runErr != nil {
		return runErr
	}
	if closeErr == nil {
		n.o.log.Info("secondary stopped", "last", n.st.LastTransaction())
	}
	return closeErr
}

// nodeID names this secondary to its primary, the same across restarts
// (see secondary.Options.NodeID): a digest of the machine (its
// /etc/machine-id when readable, and its host name) and of the file (its
// absolute path, device and inode), so that containers sharing a host
// name and a machine id but not a volume still differ.
func nodeID(path string) string {
	h := sha256.New()
	machine, _ := os.ReadFile("/etc/machine-id")
	host, _ := os.Hostname()
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	var dev, ino uint64
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			dev, ino = uint64(st.Dev), st.Ino
		}
	}
	fmt.Fprintf(h, "%s\n%s\n%s\n%d:%d", bytes.TrimSpace(machine), host, abs, dev, ino)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
