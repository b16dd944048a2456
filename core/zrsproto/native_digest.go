package zrsproto

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// TxnDigests returns two SHA-256 digests of a transaction's logical
// content, the same on every node holding the transaction whatever its
// file offsets or backpointer layout:
//
//   - meta covers the tid, user, description and extension;
//   - full covers the same plus the status and, for each record in
//     order, the oid, the record tid and the SHA-256 of the data
//     (resolved through backpointers; nil and empty differ).
//
// The extension is digested as its plain value (digestExtension), not
// as the bytes a file holds: a file written by an old Python ZODB and its
// replica agree, and so do a file whose extension shares one object
// between two keys and a replica that received it from a zc.zrs primary
// (which sends it without the sharing). The data_txn hint is left out: it
// describes the file's layout (a backpointer, or the same data inline),
// not the content. Each field is length-prefixed, so no two different
// contents share an input. A native primary compares its transaction at a secondary's
// start tid with the secondary's digests: full normally, meta when its
// own copy is packed (status 'p', records possibly removed by pack).
func TxnDigests(info *zodb.TxnInfo) (full, meta Digest) {
	h := sha256.New()
	writeMeta(h, info)
	h.Sum(meta[:0])

	h = sha256.New()
	writeMeta(h, info)
	h.Write([]byte{byte(info.Status)})
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(info.Records)))
	h.Write(n[:])
	for i := range info.Records {
		r := &info.Records[i]
		writeUint(h, uint64(r.Oid))
		writeUint(h, uint64(r.Tid))
		if r.Data == nil {
			h.Write([]byte{0})
		} else {
			d := sha256.Sum256(r.Data)
			h.Write([]byte{1})
			h.Write(d[:])
		}
	}
	h.Sum(full[:0])
	return full, meta
}

func writeMeta(h hash.Hash, info *zodb.TxnInfo) {
	writeUint(h, uint64(info.Tid))
	for _, f := range [][]byte{info.User, info.Description, digestExtension(info.Extension)} {
		writeUint(h, uint64(len(f)))
		h.Write(f)
	}
}

func writeUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

// IdentityOf returns the identity of a database whose first transaction
// is first: its tid and the first 16 bytes of its meta digest.
func IdentityOf(first *zodb.TxnInfo) Identity {
	_, meta := TxnDigests(first)
	id := Identity{First: first.Tid}
	copy(id.Sum[:], meta[:16])
	return id
}

// PositionOf returns the position a secondary whose last transaction is
// info announces.
func PositionOf(info *zodb.TxnInfo) *Position {
	full, meta := TxnDigests(info)
	return &Position{Tid: info.Tid, Full: full, Meta: meta}
}

// digestExtension returns the extension as the digests cover it: its
// plain items (key and value holding no object) pickled without the memo
// (protocol 3, fast mode). That depends only on the values, not on which
// of them the stored pickle shared or on the protocol it was written
// with. Items holding objects (a datetime) are left out: how they are
// pickled depends on their classes, which a node that received them
// re-pickled without (a Python secondary re-pickles the real objects,
// zrs the inert form), so two nodes holding the same transaction could
// disagree on their bytes. The records' data and the rest of the metadata
// still tell transactions apart. An extension that does not decode, or
// cannot be written out so, is used as it is.
func digestExtension(stored []byte) []byte {
	d, err := pyval.ExtensionDict(stored)
	if err != nil {
		return stored
	}
	plain := pyval.Dict()
	kv := d.PlainItems()
	for i := 0; i+1 < len(kv); i += 2 {
		if plain.TrySetItem(kv[i], kv[i+1]) != nil {
			return stored
		}
	}
	if plain.Len() == 0 {
		return nil
	}
	b, err := pyval.Pickle(plain, pyval.PickleOptions{Protocol: 3, Fast: true, Max: maxExtensionTree})
	if err != nil {
		return stored
	}
	return b
}
