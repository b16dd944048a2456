package zeo

import (
	"encoding/binary"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// A fast path for the commonest exchange of a ZEO server, loadBefore.
// ClientStorage pickles every loadBefore call the same way, so a pickle
// session recognises those 63 bytes and answers them without the generic
// codec, which builds a value tree through a stack machine for the call
// and for the reply (~40 allocations and several kB per load; on a small
// heap that garbage sets the pace of the collector): the storage appends
// the record's data straight into the reply frame. Anything that differs
// by one byte takes the generic path, and both paths give the same bytes
// (TestServeLoadBeforeMatchesGeneric; TestLoadBeforeFrameMatchesGeneric
// and FuzzLoadBeforeFrame for the reply, TestParseLoadBefore* and
// FuzzDecodePickle for the call).

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
	f := loadBeforeFrameHead(a[0][:], a[1][:])
	mark := len(f)
	out, start, end, ok, err := ss.loadBeforePublished(f, oid, before)
	if ss.srv.opts.afterLoad != nil {
		ss.srv.opts.afterLoad(true)
	}
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

// loadBeforeFrameHead lays out the reply frame to the loadBefore call
// with msgid (oid, tid) up to its data: the frame's length, the pickle up
// to the data, and 5 bytes for the data's opcode and length (BINBYTES;
// SHORT_BINBYTES takes 2 and the data moves back by 3). The data is
// appended to it, then finishLoadBeforeFrame completes the frame with
// mark = len of what this returned.
func loadBeforeFrameHead(oid, tid []byte) []byte {
	f := appendLoadBeforeHead(make([]byte, 4, 64), oid, tid)
	return append(f, 0, 0, 0, 0, 0)
}

// finishLoadBeforeFrame completes a frame laid out by loadBeforeFrameHead,
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

func appendShortBytes(b, v []byte) []byte {
	b = append(b, 'C', byte(len(v)))
	return append(b, v...)
}
