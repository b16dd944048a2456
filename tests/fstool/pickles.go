package main

import (
	"bytes"

	ogórek "github.com/kisielk/og-rek"

	"github.com/zrs-replication/zrs/core/zodb"
)

// mappingClassPickle is the class pickle ZODB writes for a
// persistent.mapping.PersistentMapping (protocol 3, class memoised at 0).
const mappingClassPickle = "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00."

var mappingClass = ogórek.Class{Module: "persistent.mapping", Name: "PersistentMapping"}

// pickle3 encodes v as a protocol-3 pickle.
func pickle3(v any) []byte {
	var b bytes.Buffer
	enc := ogórek.NewEncoderWithConfig(&b, &ogórek.EncoderConfig{Protocol: 3})
	if err := enc.Encode(v); err != nil {
		panic(err) // only our own fixed value types are encoded
	}
	return b.Bytes()
}

// mappingRecord returns the data record of a PersistentMapping whose
// `data` dict is items: the class pickle followed by the state pickle.
func mappingRecord(items map[any]any) []byte {
	state := pickle3(map[any]any{"data": items})
	return append([]byte(mappingClassPickle), state...)
}

// persistentRef is the reference ZODB pickles for a persistent object:
// BINPERSID of (oid bytes, class).
func persistentRef(oid zodb.Oid) ogórek.Ref {
	b := oid.Bytes()
	return ogórek.Ref{Pid: ogórek.Tuple{ogórek.Bytes(b[:]), mappingClass}}
}
