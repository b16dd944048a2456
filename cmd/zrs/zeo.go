package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/zrs-replication/zrs/core/zeo"
	"github.com/zrs-replication/zrs/internal/admin"
	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// zeoFlags are the ZEO server flags of "zrs primary" and "zrs secondary".
type zeoFlags struct {
	addr         string
	storage      string
	msgpack      bool
	cert, key    string
	authenticate string
	maxTxnMB     int
	txnTimeout   time.Duration
	// names of cert, key and authenticate in messages: the flags, or
	// where a config file sets them; "" for the flags' names.
	certName, keyName, authName string

	// What load read from the TLS files before the storage opened, for
	// start to serve with (nil without TLS).
	tls *tls.Config
	cas *clientCAs
}

// load reads the TLS files; start serves with what it read.
func (z *zeoFlags) load() (err error) {
	z.tls, z.cas, err = z.tlsConfig()
	return err
}

func (z *zeoFlags) names() (cert, key, auth string) {
	if z.certName == "" {
		return "--zeo-cert", "--zeo-key", "--zeo-authenticate"
	}
	return z.certName, z.keyName, z.authName
}

func (z *zeoFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&z.addr, "zeo", "", "serve ZEO clients (ZODB.DB(ClientStorage(...))) on `ADDR`")
	fset.StringVar(&z.storage, "zeo-storage", zeo.DefaultStorageName, "the storage `NAME` ZEO clients ask for (ClientStorage's storage argument; the <filestorage NAME> of a runzeo config)")
	fset.BoolVar(&z.msgpack, "zeo-msgpack", false, "announce msgpack (M5) instead of pickles (Z5) to ZEO clients; ZEO 5.0 clients cannot use it")
	fset.StringVar(&z.cert, "zeo-cert", "", "serve ZEO over TLS with the certificate in `FILE` (PEM)")
	fset.StringVar(&z.key, "zeo-key", "", "private key `FILE` (PEM) of --zeo-cert")
	fset.StringVar(&z.authenticate, "zeo-authenticate", "", "require ZEO clients to present a certificate signed by a CA in `PATH` (a PEM file or a directory of them), as ZEO's <ssl> authenticate; CRLs in a file are enforced as ZEO does (a client is refused if revoked or if its CA has no current CRL there), CRLs in a directory are not")
	fset.DurationVar(&z.txnTimeout, "zeo-transaction-timeout", 0, "disconnect a ZEO client that holds the commit lock (voted, not finished) longer than `DURATION`, aborting its transaction (0: wait forever, as ZEO)")
	fset.IntVar(&z.maxTxnMB, "zeo-max-txn-mb", int(zeo.DefaultMaxTxnBytes>>20), "largest transaction a ZEO client may send, in `MB`")
}

// check validates the flags (usage errors) without touching files; set
// holds the names of the flags given.
func (z *zeoFlags) check(cmd string, set map[string]bool) error {
	if z.addr == "" {
		for name := range set {
			if strings.HasPrefix(name, "zeo-") {
				return usagef("%s: --%s needs --zeo ADDR (as every --zeo-* flag)", cmd, name)
			}
		}
		return nil
	}
	if _, err := netaddr.Parse(z.addr); err != nil {
		return usagef("%s: --zeo: %v", cmd, err)
	}
	if (z.cert == "") != (z.key == "") {
		return usagef("%s: --zeo-cert and --zeo-key go together", cmd)
	}
	if z.authenticate != "" && z.cert == "" {
		return usagef("%s: --zeo-authenticate needs --zeo-cert and --zeo-key (client certificates are checked inside TLS)", cmd)
	}
	if err := config.CheckStorageName(z.storage); err != nil {
		return usagef("%s: --zeo-storage: %v", cmd, err)
	}
	if z.txnTimeout < 0 {
		return usagef("%s: --zeo-transaction-timeout must not be negative", cmd)
	}
	if z.maxTxnMB <= 0 || z.maxTxnMB > config.MaxTransactionMB {
		return usagef("%s: --zeo-max-txn-mb must be between 1 and %d", cmd, config.MaxTransactionMB)
	}
	return nil
}

// tlsConfig loads the server certificate and the client CAs. With
// --zeo-authenticate it also returns what was loaded from it, for the log.
func (z *zeoFlags) tlsConfig() (*tls.Config, *clientCAs, error) {
	if z.cert == "" {
		return nil, nil, nil
	}
	certName, keyName, authName := z.names()
	pair, err := tls.LoadX509KeyPair(z.cert, z.key)
	if err != nil {
		if encryptedKey(z.key) {
			return nil, nil, fmt.Errorf("%s %s: the private key is encrypted; zrs reads unencrypted PEM keys only "+
				"(decrypt it once, e.g. openssl pkey -in KEY -out PLAIN.key, readable by the zrs user alone): %w", keyName, z.key, err)
		}
		return nil, nil, fmt.Errorf("%s %s / %s %s: %w", certName, z.cert, keyName, z.key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if z.authenticate == "" {
		return cfg, nil, nil
	}
	cas, err := loadCAs(z.authenticate)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", authName, z.authenticate, err)
	}
	if len(cas.certs) == 0 {
		return nil, nil, fmt.Errorf("%s %s: no PEM certificate found", authName, z.authenticate)
	}
	cfg.ClientCAs = cas.pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if len(cas.crls) > 0 {
		// VerifyConnection, not VerifyPeerCertificate: it also runs when a
		// client resumes a TLS session.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			now := time.Now
			if cfg.Time != nil {
				now = cfg.Time
			}
			if err := cas.checkRevocation(cs.VerifiedChains, now()); err != nil {
				return fmt.Errorf("--zeo-authenticate %s: %w", z.authenticate, err)
			}
			return nil
		}
	}
	return cfg, cas, nil
}

// encryptedKey reports whether the PEM file at path holds an encrypted
// private key (PKCS#8 "ENCRYPTED PRIVATE KEY", or an OpenSSL legacy
// "Proc-Type: 4,ENCRYPTED" header), which Go's TLS cannot load.
func encryptedKey(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return false
		}
		if blk.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}

// start serves st to ZEO clients when a ZEO address was given, on lns
// (opened by bind, or passed by systemd), with the TLS files load read.
// stop closes the server: transactions in progress may finish until its
// context is done, then are aborted (zeo.Server.Shutdown).
// Without an address it returns a nil server and a stop that does nothing.
func (z *zeoFlags) start(st zeo.Storage, m *admin.Metrics, log *slog.Logger, lns []net.Listener) (srv *zeo.Server, stop func(context.Context), err error) {
	if z.addr == "" {
		return nil, func(context.Context) {}, nil
	}
	tcfg, cas := z.tls, z.cas
	cas.log(log, z.authenticate)
	srv = zeo.NewServer(st, zeo.Options{
		Logger:             log,
		Name:               z.storage,
		Msgpack:            z.msgpack,
		TLS:                tcfg,
		MaxTxnBytes:        int64(z.maxTxnMB) << 20,
		TransactionTimeout: z.txnTimeout,
		// The server has logged why; the service manager restarts zrs,
		// and the storage recovers from the file as after a crash.
		Fatal: func(error) { os.Exit(exitFailure) },
	})
	for i, ln := range lns {
		if err := srv.Serve(ln); err != nil {
			for _, ln := range lns[i:] {
				ln.Close()
			}
			srv.Close()
			return nil, nil, err
		}
	}
	m.ObserveZEO(srv)
	codec := "pickle (Z5)"
	if z.msgpack {
		codec = "msgpack (M5)"
	}
	for _, ln := range lns {
		log.Info("serving ZEO", "addr", ln.Addr().String(), "storage", z.storage,
			"codec", codec, "tls", tcfg != nil, "client_certs", z.authenticate != "", "read_only", st.ReadOnly())
	}
	return srv, func(sctx context.Context) {
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("ZEO server shutdown", "err", err)
		}
	}, nil
}
