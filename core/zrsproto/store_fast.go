package zrsproto

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/zrs-replication/zrs/core/zodb"
)

// The S message is most of a stream's control traffic (one per record), and
// its pickle has one fixed shape: ('S', (oid, serial, '', data_txn or
// None)) in protocol 1, the 8-byte strings as _codecs.encode(<latin-1
// text>, 'latin1') calls. appendStore writes that shape directly and
// decodeStoreFast reads it, instead of building and walking a pyval tree
// for each record; both agree byte for byte with the generic codec
// (TestStoreFastPathMatchesGeneric), and anything else, such as a Python
// 2 primary's pickle, takes the generic path.

const (
	storeHead    = "(X\x01\x00\x00\x00S("
	codecsEncode = "c_codecs\nencode\n(X"
	latin1Tail   = "X\x06\x00\x00\x00latin1tR"
	emptyText    = "X\x00\x00\x00\x00"
	storeTail    = "tt."
)

// appendStore appends the pickle of an S message to dst.
func appendStore(dst []byte, m *Store) []byte {
	dst = append(dst, storeHead...)
	oid, tid := m.Oid.Bytes(), m.Tid.Bytes()
	dst = appendLatin1Bytes(dst, oid[:])
	dst = appendLatin1Bytes(dst, tid[:])
	dst = append(dst, emptyText...)
	if m.DataTxn == 0 {
		dst = append(dst, 'N')
	} else {
		d := m.DataTxn.Bytes()
		dst = appendLatin1Bytes(dst, d[:])
	}
	return append(dst, storeTail...)
}

// appendLatin1Bytes appends _codecs.encode(<b as latin-1 text>, 'latin1')
// for non-empty b: the UTF-8 of the text, as BINUNICODE.
func appendLatin1Bytes(dst, b []byte) []byte {
	dst = append(dst, codecsEncode...)
	n := 0
	for _, c := range b {
		n += utf8.RuneLen(rune(c))
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	for _, c := range b {
		dst = utf8.AppendRune(dst, rune(c))
	}
	return append(dst, latin1Tail...)
}

// decodeStoreFast decodes p if it is exactly appendStore's shape.
func decodeStoreFast(p []byte) (Store, bool) {
	var m Store
	if !bytes.HasPrefix(p, []byte(storeHead)) {
		return m, false
	}
	p = p[len(storeHead):]
	var oid, tid, dtx uint64
	var ok bool
	if oid, p, ok = readLatin1Tid(p); !ok {
		return m, false
	}
	if tid, p, ok = readLatin1Tid(p); !ok {
		return m, false
	}
	if !bytes.HasPrefix(p, []byte(emptyText)) {
		return m, false
	}
	p = p[len(emptyText):]
	if len(p) > 0 && p[0] == 'N' {
		p = p[1:]
	} else if dtx, p, ok = readLatin1Tid(p); !ok || dtx == 0 {
		return m, false
	}
	if string(p) != storeTail {
		return m, false
	}
	m.Oid, m.Tid, m.DataTxn = zodb.Oid(oid), zodb.Tid(tid), zodb.Tid(dtx)
	return m, true
}

// readLatin1Tid reads one _codecs.encode call holding 8 latin-1 bytes.
func readLatin1Tid(p []byte) (uint64, []byte, bool) {
	if !bytes.HasPrefix(p, []byte(codecsEncode)) || len(p) < len(codecsEncode)+4 {
		return 0, nil, false
	}
	p = p[len(codecsEncode):]
	n := int(binary.LittleEndian.Uint32(p))
	p = p[4:]
	if n < 8 || n > 16 || len(p) < n {
		return 0, nil, false
	}
	text := p[:n]
	p = p[n:]
	var v uint64
	count := 0
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		if r == utf8.RuneError || r > 0xff || count == 8 {
			return 0, nil, false
		}
		v = v<<8 | uint64(r)
		text = text[size:]
		count++
	}
	if count != 8 || !bytes.HasPrefix(p, []byte(latin1Tail)) {
		return 0, nil, false
	}
	return v, p[len(latin1Tail):], true
}
