package zeo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate signed by the CA, for a server (with the
// loopback IP) or a client.
func (ca *testCA) issue(t *testing.T, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLSWithClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "zrs test CA"), newTestCA(t, "another CA")
	_, addr, _ := newTestServer(t, Options{TLS: &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "server", true)},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}})
	good := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{ca.issue(t, "app", false)}}
	c := dialTest(t, addr, good)
	c.register(false)
	c.commit(1, store{c.newOid(), 0, []byte("over TLS")})

	// A Go client offers only a certificate whose issuer the server names
	// as acceptable: the intruder's is sent whatever the server asks for,
	// as another client could, so that the server's check is what refuses it.
	intruder := other.issue(t, "intruder", false)
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": {RootCAs: ca.pool, ServerName: "127.0.0.1"},
		"certificate of another CA": {RootCAs: ca.pool, ServerName: "127.0.0.1",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &intruder, nil }},
	} {
		if cl, err := dialTestErr(addr, cfg); err == nil {
			cl.conn.Close()
			t.Errorf("%s: connected", name)
		}
	}
}

// Ending a TLS session never blocks on a client that does not read:
// close is called under the publication lock (a client past MaxQueue),
// and tls.Conn.Close would first wait up to 5 s to write a close_notify
// alert, stalling every commit and load meanwhile.
func TestCloseTLSSessionDoesNotWaitForClient(t *testing.T) {
	srv, server := tlsPipeSession(t)
	ss := newSession(srv, server)
	done := make(chan struct{})
	go func() { ss.close(nil); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("closing a TLS session blocked on a client that does not read")
	}
}

// A TLS session holding the commit lock that ends while its client does
// not read frees the lock at once: its goodbye (error replies, the TLS
// close_notify, up to 1 + 5 s on a full socket) comes after the abort.
func TestEndingTLSSessionFreesCommitLockFirst(t *testing.T) {
	srv, server := tlsPipeSession(t)
	ss := newSession(srv, server)
	if err := srv.acquireCommit(context.Background(), ss); err != nil {
		t.Fatal(err)
	}
	srv.stats.active.Add(1)
	ss.txn = &transaction{ss: ss, locked: true, state: stVoted}
	go ss.end()

	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	other := newSession(srv, c1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.acquireCommit(ctx, other); err != nil {
		t.Fatalf("the commit lock of an ending session was not freed before its goodbye writes: %v", err)
	}
}

// tlsPipeSession returns a TLS server and the server side of a TLS
// connection, handshaken, whose client reads nothing from now on: a pipe
// has no buffer, so any write from the server blocks.
func tlsPipeSession(t *testing.T) (*Server, *tls.Conn) {
	t.Helper()
	ca := newTestCA(t, "zrs test CA")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}}
	srv, _, _ := newTestServer(t, Options{TLS: srvCfg})
	a, b := net.Pipe()
	t.Cleanup(func() { b.Close() })
	server := tls.Server(a, srvCfg)
	client := tls.Client(b, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv, server
}
