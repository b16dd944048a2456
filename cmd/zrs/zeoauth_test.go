package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zrs-replication/zrs/internal/config"
)

// testCA is a CA that issues client certificates and CRLs.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, cert: c, key: key}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue returns a certificate for a client (or, with server, for
// 127.0.0.1), its PEM and its key's PEM.
func (ca *testCA) issue(name string, serial int64, server bool) (tls.Certificate, []byte, []byte) {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// crl returns the PEM of a CRL valid from thisUpdate to nextUpdate that
// revokes serials.
func (ca *testCA) crl(thisUpdate, nextUpdate time.Time, serials ...int64) []byte {
	ca.t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(thisUpdate.Unix()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// authFixture is a server certificate and a --zeo-authenticate file.
type authFixture struct {
	t   *testing.T
	dir string
	srv *testCA // issues the server certificate
	z   *zeoFlags
}

func newAuthFixture(t *testing.T, authenticate ...[]byte) *authFixture {
	t.Helper()
	f := &authFixture{t: t, dir: t.TempDir(), srv: newTestCA(t, "server CA")}
	_, cert, key := f.srv.issue("server", 100, true)
	f.write("srv.pem", cert)
	f.write("srv.key", key)
	f.write("auth.pem", bytes.Join(authenticate, nil))
	f.z = &zeoFlags{addr: "127.0.0.1:0", cert: filepath.Join(f.dir, "srv.pem"), key: filepath.Join(f.dir, "srv.key"),
		authenticate: filepath.Join(f.dir, "auth.pem")}
	return f
}

func (f *authFixture) write(name string, b []byte) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// handshake connects a TLS client presenting cert to a server configured
// by the fixture's flags and returns the server's handshake error.
func (f *authFixture) handshake(cert tls.Certificate) error {
	t := f.t
	t.Helper()
	cfg, _, err := f.z.tlsConfig()
	if err != nil {
		t.Fatalf("tlsConfig: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.cert)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() { srvErr <- tls.Server(a, cfg).Handshake() }()
	go func() {
		cl := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
		if cl.Handshake() == nil {
			cl.Read(make([]byte, 1)) // the server's alert, if it refuses
		}
	}()
	select {
	case err := <-srvErr:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("TLS handshake hung")
		return nil
	}
}

func wantRefused(t *testing.T, err error, what, why string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s was accepted; want it refused (%s), as ZEO with VERIFY_CRL_CHECK_LEAF", what, why)
	} else if !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "--zeo-authenticate") {
		t.Errorf("%s refused with %q; want %q and the flag named", what, err, why)
	}
}

// TestZEOAuthenticateEnforcesCRLs: CRLs in the --zeo-authenticate file are
// enforced on the client's certificate as ZEO's <ssl> authenticate FILE does
// (OpenSSL with VERIFY_CRL_CHECK_LEAF).
func TestZEOAuthenticateEnforcesCRLs(t *testing.T) {
	ca, other := newTestCA(t, "client CA"), newTestCA(t, "other client CA")
	good, _, _ := ca.issue("good client", 201, false)
	revoked, _, _ := ca.issue("revoked client", 200, false)
	otherClient, _, _ := other.issue("other client", 300, false)
	now := time.Now()
	crl := ca.crl(now.Add(-time.Minute), now.Add(time.Hour), 200)

	f := newAuthFixture(t, ca.pem(), crl)
	wantRefused(t, f.handshake(revoked), "a revoked client certificate", "revoked by the CRL in "+f.z.authenticate)
	if err := f.handshake(good); err != nil {
		t.Errorf("a client certificate of the same CA, not revoked, was refused: %v", err)
	}

	// A second CA in the file without a CRL: its clients cannot be checked.
	f = newAuthFixture(t, ca.pem(), crl, other.pem())
	wantRefused(t, f.handshake(otherClient), "a client of a CA without a CRL in the file", `no CRL of its issuer "CN=other client CA"`)
	if err := f.handshake(good); err != nil {
		t.Errorf("a good client of the CA with a CRL was refused: %v", err)
	}

	// Without any CRL nothing is checked: the other CA's client is let in.
	f = newAuthFixture(t, ca.pem(), other.pem())
	if err := f.handshake(otherClient); err != nil {
		t.Errorf("without CRLs in the file a client was refused: %v", err)
	}

	// An expired CRL, or one not valid yet, is no CRL: clients are refused.
	f = newAuthFixture(t, ca.pem(), ca.crl(now.Add(-2*time.Hour), now.Add(-time.Hour), 200))
	wantRefused(t, f.handshake(good), "a client whose issuer's CRL expired", "expired at")
	f = newAuthFixture(t, ca.pem(), ca.crl(now.Add(time.Hour), now.Add(2*time.Hour), 200))
	wantRefused(t, f.handshake(good), "a client whose issuer's CRL is not valid yet", "is not valid before")

	// Several CRLs of one CA: the current one counts, not an expired one
	// that did not list the revoked serial yet.
	f = newAuthFixture(t, ca.pem(), ca.crl(now.Add(-3*time.Hour), now.Add(-2*time.Hour)), crl)
	wantRefused(t, f.handshake(revoked), "a revoked client with an old CRL beside the current one", "revoked by the CRL in "+f.z.authenticate)
	if err := f.handshake(good); err != nil {
		t.Errorf("a good client was refused with an expired CRL beside the current one: %v", err)
	}
}

// TestZEOAuthenticateBadCRLStopsStart: a CRL that does not parse, or that no
// CA of the file signed, is an error at start naming the file; a running
// server would otherwise never enforce it.
func TestZEOAuthenticateBadCRLStopsStart(t *testing.T) {
	ca, stranger := newTestCA(t, "client CA"), newTestCA(t, "stranger CA")
	now := time.Now()
	garbage := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte("not a CRL")})
	for _, c := range []struct {
		name string
		file [][]byte
		want string
	}{
		{"garbage", [][]byte{ca.pem(), garbage}, "CRL in "},
		{"signed by a CA not in the file", [][]byte{ca.pem(), stranger.crl(now, now.Add(time.Hour))}, `(issuer "CN=stranger CA") is not signed by a CA certificate of the file`},
	} {
		f := newAuthFixture(t, c.file...)
		_, _, err := f.z.tlsConfig()
		if err == nil {
			t.Errorf("%s: a bad CRL was accepted at start", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "--zeo-authenticate "+f.z.authenticate+": ") ||
			!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f.z.authenticate+" at offset ") {
			t.Errorf("%s: error %q; want the flag, %q and the block's offset", c.name, err, c.want)
		}
	}
}

// TestZEOAuthenticateDirectoryIgnoresCRLs: ZEO with a directory (capath)
// does not check CRLs; neither does zrs, and it says so at start.
func TestZEOAuthenticateDirectoryIgnoresCRLs(t *testing.T) {
	ca := newTestCA(t, "client CA")
	revoked, _, _ := ca.issue("revoked client", 200, false)
	now := time.Now()
	f := newAuthFixture(t)
	dir := filepath.Join(f.dir, "cas")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.write("cas/ca.pem", ca.pem())
	f.write("cas/ca.crl", ca.crl(now.Add(-time.Minute), now.Add(time.Hour), 200))
	f.z.authenticate = dir
	if err := f.handshake(revoked); err != nil {
		t.Errorf("a directory's CRL was enforced; ZEO does not: %v", err)
	}
	_, cas, err := f.z.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cas.log(slog.New(slog.NewTextHandler(&log, nil)), dir)
	if !strings.Contains(log.String(), "CRLs are not enforced") || !strings.Contains(log.String(), "ignored_crls=1") {
		t.Errorf("start log does not say the directory's CRL is ignored:\n%s", log.String())
	}
}

// TestZEOAuthenticateLogsCRLs: the start log says how many CRLs are
// enforced and which CAs have none.
func TestZEOAuthenticateLogsCRLs(t *testing.T) {
	ca, other := newTestCA(t, "client CA"), newTestCA(t, "other client CA")
	now := time.Now()
	f := newAuthFixture(t, ca.pem(), other.pem(), ca.crl(now.Add(-time.Minute), now.Add(time.Hour), 200))
	_, cas, err := f.z.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cas.log(slog.New(slog.NewTextHandler(&log, nil)), f.z.authenticate)
	for _, want := range []string{"enforcing CRLs", "crls=1", "CN=other client CA"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, log.String())
		}
	}
}

// A file holding the client CA, its CRL and, besides, a client's own
// certificate: OpenSSL (Python ZEO) still checks that client against its
// CA's CRL, although Go's verified chain stops at the certificate found
// in the file. Accepted while not revoked, refused once revoked.
func TestZEOAuthenticatePinnedClientCertificate(t *testing.T) {
	for _, revoked := range []bool{false, true} {
		ca := newTestCA(t, "client CA")
		leaf, leafPEM, _ := ca.issue("pinned client", 201, false)
		now := time.Now()
		var revoke []int64
		if revoked {
			revoke = []int64{201}
		}
		f := newAuthFixture(t, ca.pem(), ca.crl(now.Add(-time.Minute), now.Add(time.Hour), revoke...), leafPEM)
		err := f.handshake(leaf)
		switch {
		case !revoked && err != nil:
			t.Errorf("a pinned client whose CA's current CRL does not list it was refused: %v", err)
		case revoked && (err == nil || !strings.Contains(err.Error(), "revoked")):
			t.Errorf("a pinned client its CA's CRL revokes: %v, want refused as revoked", err)
		}
	}
}

// zrs run's TLS errors name the config file's keys and lines, not the
// flags the user never typed.
func TestZEOTLSErrorsNameTheConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "main.yaml")
	text := "name: m\nrole: primary\npath: " + filepath.Join(dir, "Data.fs") + "\nzeo:\n  address: " + filepath.Join(dir, "z.sock") +
		"\n  tls:\n    certificate: " + filepath.Join(dir, "nocert.pem") + "\n    key: " + filepath.Join(dir, "nokey.pem") + "\n"
	c, err := config.Parse(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	o, err := nodeOptionsFrom(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = o.zeo.tlsConfig()
	want := file + ":7: zeo.tls.certificate " + filepath.Join(dir, "nocert.pem") + " / " + file + ":8: zeo.tls.key "
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "--zeo") {
		t.Fatalf("%v\nwant it to name %q", err, want)
	}
}

// An encrypted private key (ZEO's <ssl> password-function) is named as
// such, with what to do, instead of Go's "failed to parse private key".
func TestZEOEncryptedKeyIsExplained(t *testing.T) {
	ca := newTestCA(t, "ca")
	_, certPEM, _ := ca.issue("server", 7, true)
	dir := t.TempDir()
	cert := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string][]byte{
		"pkcs8": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("not a key in the clear")}),
		"legacy": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("ciphertext"),
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}}),
	} {
		path := filepath.Join(dir, name+".key")
		if err := os.WriteFile(path, key, 0o600); err != nil {
			t.Fatal(err)
		}
		z := zeoFlags{addr: "127.0.0.1:0", cert: cert, key: path}
		_, _, err := z.tlsConfig()
		if err == nil || !strings.Contains(err.Error(), "--zeo-key "+path+": the private key is encrypted") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A key that is merely wrong keeps the general message.
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600)
	z := zeoFlags{addr: "127.0.0.1:0", cert: cert, key: bad}
	if _, _, err := z.tlsConfig(); err == nil || strings.Contains(err.Error(), "encrypted") {
		t.Errorf("a damaged key: %v", err)
	}
}
