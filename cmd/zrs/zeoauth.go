package main

// The client CAs and CRLs of --zeo-authenticate.
//
// Python ZEO (<ssl> authenticate FILE) loads FILE with
// ssl.create_default_context(cafile=FILE): OpenSSL reads the certificates
// and the CRLs in it, and ZEO turns on VERIFY_CRL_CHECK_LEAF when at least
// one CRL was read. A site that revokes a client by adding its CA's CRL to
// the bundle relies on that, so zrs checks the client's certificate the
// same way:
//   - the CRL of the certificate's issuer (same name, signed by the
//     issuer's key) must be in the file, else the client is refused,
//     whichever CA signed it;
//   - that CRL must be current (thisUpdate passed, nextUpdate not passed),
//     else the client is refused;
//   - a certificate whose serial the CRL lists is refused, unless the entry's
//     reason is removeFromCRL.
//
// Only the client's own certificate is checked, not the CAs above it (as
// CHECK_LEAF). Where OpenSSL keeps several CRLs of one issuer, it uses a
// current one, the latest issued; so does zrs. A directory (ZEO's capath)
// gets no CRL checking in Python: OpenSSL reads a directory lazily and ZEO
// counts no CRL when it decides; zrs ignores CRLs there too and says so in
// the log. zrs is stricter in two ways, both found at start: a CRL that does
// not parse or that no CA of the file signed stops zrs (OpenSSL would
// silently never use it), and so does a CRL with a critical extension (delta
// CRLs, issuing distribution points), which zrs does not interpret.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// clientCAs is what --zeo-authenticate named.
type clientCAs struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
	// crls are the CRLs of a file; each is signed by one of certs.
	crls []*fileCRL
	// dirCRLs counts the CRL blocks found in a directory: not enforced.
	dirCRLs int
}

// fileCRL is one CRL of the file and where it is.
type fileCRL struct {
	rl      *x509.RevocationList
	where   string              // "FILE at offset N", for messages
	revoked map[string]struct{} // revoked serials (decimal)
	// signerKey is the public key (SubjectPublicKeyInfo) of the CA of the
	// file that signed the CRL, checked once at load: a handshake then
	// matches an issuer to its CRLs without checking signatures again.
	signerKey []byte
}

// reasonRemoveFromCRL is the RFC 5280 CRLReason that un-revokes a serial;
// OpenSSL does not count such an entry as a revocation.
const reasonRemoveFromCRL = 8

// loadCAs reads every certificate of a PEM file, or of every file in a
// directory, and the CRLs ("X509 CRL" blocks) of a file.
func loadCAs(path string) (*clientCAs, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range ents {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	cas := &clientCAs{pool: x509.NewCertPool()}
	for _, f := range files {
		all, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for rest := all; ; {
			var blk *pem.Block
			start := len(all) - len(rest) + max(bytes.Index(rest, []byte("-----BEGIN")), 0)
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			where := fmt.Sprintf("%s at offset %d", f, start)
			switch blk.Type {
			case "CERTIFICATE":
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, fmt.Errorf("certificate in %s: %w", where, err)
				}
				cas.pool.AddCert(c)
				cas.certs = append(cas.certs, c)
			case "X509 CRL":
				if fi.IsDir() {
					cas.dirCRLs++
					continue
				}
				c, err := parseCRL(blk.Bytes, where)
				if err != nil {
					return nil, err
				}
				cas.crls = append(cas.crls, c)
			}
		}
	}
	for _, c := range cas.crls {
		ca := c.signer(cas.certs)
		if ca == nil {
			return nil, fmt.Errorf("CRL in %s (issuer %q) is not signed by a CA certificate of the file", c.where, c.rl.Issuer)
		}
		c.signerKey = ca.RawSubjectPublicKeyInfo
	}
	return cas, nil
}

func parseCRL(der []byte, where string) (*fileCRL, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL in %s: %w", where, err)
	}
	for _, e := range rl.Extensions {
		if e.Critical {
			return nil, fmt.Errorf("CRL in %s (issuer %q): critical extension %v is not supported (delta CRL, issuing distribution point?)", where, rl.Issuer, e.Id)
		}
	}
	c := &fileCRL{rl: rl, where: where, revoked: make(map[string]struct{}, len(rl.RevokedCertificateEntries))}
	for _, r := range rl.RevokedCertificateEntries {
		for _, e := range r.Extensions {
			if e.Critical {
				return nil, fmt.Errorf("CRL in %s (issuer %q): entry for serial %s has critical extension %v, which is not supported (indirect CRL?)", where, rl.Issuer, r.SerialNumber, e.Id)
			}
		}
		if r.ReasonCode != reasonRemoveFromCRL {
			c.revoked[r.SerialNumber.String()] = struct{}{}
		}
	}
	return c, nil
}

// signer returns the first of certs that signed the CRL, or nil.
func (c *fileCRL) signer(certs []*x509.Certificate) *x509.Certificate {
	for _, ca := range certs {
		if bytes.Equal(c.rl.RawIssuer, ca.RawSubject) && c.rl.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// issuedBy reports whether ca (a certificate with the name and key of the
// CRL's signer, found at load) issued the CRL.
func (c *fileCRL) issuedBy(ca *x509.Certificate) bool {
	return bytes.Equal(c.rl.RawIssuer, ca.RawSubject) && bytes.Equal(c.signerKey, ca.RawSubjectPublicKeyInfo)
}

func (c *fileCRL) current(now time.Time) bool {
	return !now.Before(c.rl.ThisUpdate) && (c.rl.NextUpdate.IsZero() || !now.After(c.rl.NextUpdate))
}

// checkRevocation refuses a client whose certificate, as verified in any of
// chains, is revoked or cannot be checked against its issuer's CRL.
func (cas *clientCAs) checkRevocation(chains [][]*x509.Certificate, now time.Time) error {
	if len(chains) == 0 {
		return errors.New("no verified client certificate to check against the CRLs")
	}
	for _, chain := range chains {
		if err := cas.checkLeaf(chain, now); err != nil {
			return err
		}
	}
	return nil
}

func (cas *clientCAs) checkLeaf(chain []*x509.Certificate, now time.Time) error {
	leaf, issuer := chain[0], chain[0]
	if len(chain) > 1 {
		issuer = chain[1]
	} else if ca := cas.issuerOf(leaf); ca != nil {
		// The client's own certificate is in the file: Go's chain stops
		// there, OpenSSL's goes on to its CA, whose CRL applies.
		issuer = ca
	}
	var best *fileCRL
	for _, c := range cas.crls {
		if !c.issuedBy(issuer) {
			continue
		}
		if best == nil || c.current(now) && !best.current(now) ||
			c.current(now) == best.current(now) && c.rl.ThisUpdate.After(best.rl.ThisUpdate) {
			best = c
		}
	}
	who := fmt.Sprintf("client certificate %q (serial %s)", leaf.Subject, leaf.SerialNumber)
	switch {
	case best == nil:
		return fmt.Errorf("%s: no CRL of its issuer %q; with CRLs in the file every client's issuer needs one", who, issuer.Subject)
	case now.Before(best.rl.ThisUpdate):
		return fmt.Errorf("%s: the CRL of its issuer, in %s, is not valid before %s", who, best.where, best.rl.ThisUpdate.UTC().Format(time.RFC3339))
	case !best.current(now):
		return fmt.Errorf("%s: the CRL of its issuer, in %s, expired at %s", who, best.where, best.rl.NextUpdate.UTC().Format(time.RFC3339))
	}
	if _, ok := best.revoked[leaf.SerialNumber.String()]; ok {
		return fmt.Errorf("%s: revoked by the CRL in %s", who, best.where)
	}
	return nil
}

// issuerOf returns the CA certificate of the file that signed c, other
// than c itself, or nil.
func (cas *clientCAs) issuerOf(c *x509.Certificate) *x509.Certificate {
	for _, ca := range cas.certs {
		if !ca.Equal(c) && bytes.Equal(ca.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// log says at start what is enforced; cas may be nil (no
// --zeo-authenticate).
func (cas *clientCAs) log(log *slog.Logger, path string) {
	switch {
	case cas == nil:
	case cas.dirCRLs > 0:
		log.Warn("zeo: --zeo-authenticate is a directory: its CRLs are not enforced (as ZEO with a directory); put the CA certificates and CRLs in one file to enforce them",
			"path", path, "ignored_crls", cas.dirCRLs)
	case len(cas.crls) > 0:
		now := time.Now()
		var without []string
		for _, ca := range cas.certs {
			has := false
			for _, c := range cas.crls {
				has = has || c.issuedBy(ca)
			}
			if !has {
				without = append(without, ca.Subject.String())
			}
		}
		log.Info("zeo: enforcing CRLs of --zeo-authenticate: a client is refused if its certificate is revoked or its issuer has no current CRL in the file",
			"path", path, "crls", len(cas.crls), "cas_without_crl", without)
		for _, c := range cas.crls {
			if !c.current(now) {
				log.Warn("zeo: CRL not current; clients of its issuer are refused until it is replaced",
					"crl", c.where, "issuer", c.rl.Issuer.String(), "this_update", c.rl.ThisUpdate, "next_update", c.rl.NextUpdate)
			}
		}
	default:
		log.Info("zeo: no CRL in --zeo-authenticate; client certificates are not checked for revocation", "path", path)
	}
}
