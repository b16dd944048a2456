package zeo

import (
	"encoding/binary"

	"github.com/zrs-replication/zrs/core/pyval"
)

// A fast path for the commonest exchange of a ZEO server, loadBefore.
// ClientStorage pickles every loadBefore call the same way, so the pickle
// codec recognises those 63 bytes and their reply shape and skips the
// generic codec, which builds a value tree through a stack machine and
// costs ~40 allocations and several kB per call; on a small heap that
// garbage is what sets the pace of the collector. Anything that differs
// by one byte takes the generic path, and both paths give the same result
// (tests compare them; FuzzDecodePickle checks every input it accepts).

// loadBeforeCall is the layout of zodbpickle protocol 3, fast mode, for
// ((oid, tid), False, 'loadBefore', (oid, tid)): 8-byte SHORT_BINBYTES
// at the offsets of loadBeforeSlots, everything else fixed.
var loadBeforeCall = []byte("\x80\x03(C\x08________C\x08________\x86\x89X\x0a\x00\x00\x00loadBeforeC\x08________C\x08________\x86t.")

// loadBeforeSlots are the offsets of the four 8-byte values.
var loadBeforeSlots = [4]int{5, 15, 42, 52}

// decodeLoadBefore returns the message of a loadBefore call in the exact
// form ClientStorage sends, or nil.
func decodeLoadBefore(p []byte) *Message {
	if len(p) != len(loadBeforeCall) {
		return nil
	}
	slot := 0
	for i := 0; i < len(p); i++ {
		if slot < len(loadBeforeSlots) && i == loadBeforeSlots[slot] {
			i += 7
			slot++
			continue
		}
		if p[i] != loadBeforeCall[i] {
			return nil
		}
	}
	// One allocation for the four values' bytes, none aliasing p.
	var vals [4]*pyval.Value
	buf := make([]byte, 32)
	for i, off := range loadBeforeSlots {
		b := buf[i*8 : i*8+8 : i*8+8]
		copy(b, p[off:off+8])
		vals[i] = pyval.Bytes(b)
	}
	return &Message{ID: pyval.Tuple(vals[0], vals[1]), Flags: FlagReply, Name: "loadBefore", Args: pyval.Tuple(vals[2], vals[3])}
}

// encodeLoadBeforeReply writes the reply to a loadBefore call, a message
// ((oid, tid), 0, '.reply', (data, start, end or None)), as the generic
// pickler would, and reports whether m has that shape.
func encodeLoadBeforeReply(m *Message) ([]byte, bool) {
	if m.Flags != FlagReply || m.Name != replyMethod || m.ID == nil || m.Args == nil ||
		m.ID.Kind() != pyval.KindTuple || m.Args.Kind() != pyval.KindTuple {
		return nil, false
	}
	id, args := m.ID.Items(), m.Args.Items()
	if len(id) != 2 || len(args) != 3 {
		return nil, false
	}
	oid, ok1 := bytes8(id[0])
	tid, ok2 := bytes8(id[1])
	start, ok3 := bytes8(args[1])
	data, ok4 := args[0].AsBytes()
	if !ok1 || !ok2 || !ok3 || !ok4 || args[0].Kind() != pyval.KindBytes {
		return nil, false
	}
	var end []byte
	if !args[2].IsNone() {
		if end, ok1 = bytes8(args[2]); !ok1 {
			return nil, false
		}
	}
	b := make([]byte, 0, 64+len(data))
	b = append(b, 0x80, 3, '(')
	b = appendShortBytes(b, oid)
	b = appendShortBytes(b, tid)
	b = append(b, 0x86, 'K', 0, 'X', 6, 0, 0, 0)
	b = append(b, replyMethod...)
	if len(data) < 256 {
		b = append(b, 'C', byte(len(data)))
	} else if uint64(len(data)) <= 0xffffffff {
		b = append(b, 'B')
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	} else {
		return nil, false // BINBYTES8: leave it to the generic pickler
	}
	b = append(b, data...)
	b = appendShortBytes(b, start)
	if end == nil {
		b = append(b, 'N')
	} else {
		b = appendShortBytes(b, end)
	}
	return append(b, 0x87, 't', '.'), true
}

// bytes8 returns v's bytes if v is a bytes value of length 8.
func bytes8(v *pyval.Value) ([]byte, bool) {
	if v.Kind() != pyval.KindBytes {
		return nil, false
	}
	b, _ := v.AsBytes()
	return b, len(b) == 8
}

func appendShortBytes(b, v []byte) []byte {
	b = append(b, 'C', byte(len(v)))
	return append(b, v...)
}
