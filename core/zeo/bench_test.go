package zeo

import (
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

// BenchmarkCommit measures one client's commits (tpc_begin, storea, vote,
// tpc_finish with its fsync) over loopback TCP. bench/zeo.sh compares
// the server with Python's from real ZODB clients.
func BenchmarkCommit(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	c := dialTest(b, addr, nil)
	c.register(false)
	oid := c.newOid()
	serial := c.commit(1, store{oid, 0, []byte("x")})
	data := make([]byte, 200)
	b.ResetTimer()
	for i := range b.N {
		serial = c.commit(int64(i+2), store{oid, serial, data})
	}
}

// BenchmarkLoadBefore measures loadBefore round trips of a current object.
func BenchmarkLoadBefore(b *testing.B) {
	_, addr, _ := newTestServer(b, Options{})
	c := dialTest(b, addr, nil)
	c.register(false)
	oid := c.newOid()
	c.commit(1, store{oid, 0, make([]byte, 200)})
	b.ResetTimer()
	for range b.N {
		c.call("loadBefore", oidValue(oid), tidValue(zodb.MaxTid))
	}
}
