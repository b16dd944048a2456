package zeo

import (
	"encoding/binary"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
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

// loadBeforeArgs are the four 8-byte values of such a call: the msgid's
// oid and tid, then the arguments oid and before.
type loadBeforeArgs [4][8]byte

// parseLoadBefore fills a and reports true when p is a loadBefore call in
// the exact form ClientStorage sends.
func parseLoadBefore(p []byte, a *loadBeforeArgs) bool {
	if len(p) != len(loadBeforeCall) {
		return false
	}
	slot := 0
	for i := 0; i < len(p); i++ {
		if slot < len(loadBeforeSlots) && i == loadBeforeSlots[slot] {
			i += 7
			slot++
			continue
		}
		if p[i] != loadBeforeCall[i] {
			return false
		}
	}
	for i, off := range loadBeforeSlots {
		copy(a[i][:], p[off:off+8])
	}
	return true
}

// decodeLoadBefore returns the message of a loadBefore call in the exact
// form ClientStorage sends, or nil.
func decodeLoadBefore(p []byte) *Message {
	var a loadBeforeArgs
	if !parseLoadBefore(p, &a) {
		return nil
	}
	// One allocation for the four values' bytes, none aliasing p.
	var vals [4]*pyval.Value
	buf := make([]byte, 32)
	for i := range a {
		b := buf[i*8 : i*8+8 : i*8+8]
		copy(b, a[i][:])
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
	return appendLoadBeforeReply(make([]byte, 0, loadBeforeReplySize(data)), oid, tid, data, start, end)
}

// loadBeforeReplySize is the length of the pickle of a loadBefore reply
// carrying data.
func loadBeforeReplySize(data []byte) int { return 64 + len(data) }

// appendLoadBeforeReply appends the pickle of ((oid, tid), 0, '.reply',
// (data, start, end)), end nil meaning None, and reports false (leaving
// the pickle to the generic pickler) when data needs BINBYTES8.
func appendLoadBeforeReply(b, oid, tid, data, start, end []byte) ([]byte, bool) {
	if uint64(len(data)) > 0xffffffff {
		return b, false
	}
	b = appendLoadBeforeHead(b, oid, tid)
	if len(data) < 256 {
		b = append(b, 'C', byte(len(data)))
	} else {
		b = append(b, 'B')
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	}
	b = append(b, data...)
	return appendLoadBeforeTail(b, start, end), true
}

// appendLoadBeforeHead appends the reply's pickle up to its data: the
// msgid (oid, tid), the flags and the method name, and opens the
// arguments.
func appendLoadBeforeHead(b, oid, tid []byte) []byte {
	b = append(b, 0x80, 3, '(')
	b = appendShortBytes(b, oid)
	b = appendShortBytes(b, tid)
	b = append(b, 0x86, 'K', 0, 'X', 6, 0, 0, 0)
	return append(b, replyMethod...)
}

// appendLoadBeforeTail appends what follows the data: start, end (nil
// for None), and closes the message.
func appendLoadBeforeTail(b, start, end []byte) []byte {
	b = appendShortBytes(b, start)
	if end == nil {
		b = append(b, 'N')
	} else {
		b = appendShortBytes(b, end)
	}
	return append(b, 0x87, 't', '.')
}

// serveLoadBefore answers p when it is a loadBefore call in
// ClientStorage's form, on a registered pickle session, without building
// a value for the call or the reply: the storage appends the record's
// data straight into the reply frame (zodb.AppendLoadBefore), so a load
// allocates its payload and the frame. It reports false, having done
// nothing, for any other message; answers other than a revision (None,
// errors) go through the generic pickler. The caller holds no lock.
func (ss *session) serveLoadBefore(p []byte) (bool, error) {
	var a loadBeforeArgs
	if !ss.registered || ss.codec != (pickleCodec{}) || !parseLoadBefore(p, &a) {
		return false, nil
	}
	ss.srv.pub.RLock()
	defer ss.srv.pub.RUnlock()
	oid, before := zodb.Oid(binary.BigEndian.Uint64(a[2][:])), zodb.Tid(binary.BigEndian.Uint64(a[3][:]))
	// The frame: its length, the pickle up to the data, 5 bytes for the
	// data's opcode and length (BINBYTES; SHORT_BINBYTES takes 2 and the
	// data moves back by 3), the data, then the rest (which fits in the
	// room the storage leaves when it grows the frame for the data).
	f := appendLoadBeforeHead(make([]byte, 4, 64), a[0][:], a[1][:])
	mark := len(f) + 5
	out, start, end, ok, err := ss.loadBeforePublished(f[:mark], oid, before)
	if ok {
		if f, ok := finishLoadBeforeFrame(out, mark, start, end); ok {
			ss.queue(f)
			return true, nil
		}
		// Beyond what a frame can carry: the generic path says so.
	}
	id := pyval.Tuple(pyval.Bytes(a[0][:]), pyval.Bytes(a[1][:]))
	v, err := loadBeforeValue(out[mark:], start, end, ok, err)
	return true, ss.answer(id, v, err)
}

// finishLoadBeforeFrame completes a frame that serveLoadBefore laid out,
// with the data at f[mark:], and reports false if no frame can carry it.
func finishLoadBeforeFrame(f []byte, mark int, start, end zodb.Tid) ([]byte, bool) {
	n := len(f) - mark
	if uint64(n) > 0xffffffff {
		return nil, false
	}
	if n < 256 {
		f[mark-5], f[mark-4] = 'C', byte(n)
		copy(f[mark-3:], f[mark:])
		f = f[:len(f)-3]
	} else {
		f[mark-5] = 'B'
		binary.LittleEndian.PutUint32(f[mark-4:mark], uint32(n))
	}
	var s, e [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(start))
	var ep []byte
	if end != 0 {
		binary.BigEndian.PutUint64(e[:], uint64(end))
		ep = e[:]
	}
	f = appendLoadBeforeTail(f, s[:], ep)
	if uint64(len(f)-4) > maxPayload {
		return nil, false
	}
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	return f, true
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
