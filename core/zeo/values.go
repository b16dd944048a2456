package zeo

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// Building messages.

func oneWay(name string, args ...*pyval.Value) *Message {
	return &Message{ID: pyval.Int(0), Flags: FlagOneWay, Name: name, Args: pyval.Tuple(args...)}
}

func replyMsg(id, v *pyval.Value) *Message {
	return &Message{ID: id, Flags: FlagReply, Name: ".reply", Args: v}
}

func errorMsg(id *pyval.Value, qualname string, payload *pyval.Value) *Message {
	return &Message{ID: id, Flags: FlagError, Name: ".reply", Args: pyval.Tuple(pyval.Str(qualname), payload)}
}

func tidValue(t zodb.Tid) *pyval.Value {
	b := t.Bytes()
	return pyval.Bytes(b[:])
}

func oidValue(o zodb.Oid) *pyval.Value {
	b := o.Bytes()
	return pyval.Bytes(b[:])
}

// tidOrNone is None for the zero tid ("no next revision").
func tidOrNone(t zodb.Tid) *pyval.Value {
	if t == 0 {
		return pyval.None()
	}
	return tidValue(t)
}

func oidList(oids []zodb.Oid) *pyval.Value {
	items := make([]*pyval.Value, len(oids))
	for i, o := range oids {
		items[i] = oidValue(o)
	}
	return pyval.List(items...)
}

// bytesOrNone is None for nil data (a deletion).
func bytesOrNone(b []byte) *pyval.Value {
	if b == nil {
		return pyval.None()
	}
	return pyval.Bytes(b)
}

// Reading arguments. Every failure is an *argError naming the argument.

type argError struct {
	method string
	index  int
	want   string
	got    *pyval.Value
}

func (e *argError) Error() string {
	return fmt.Sprintf("%s: argument %d must be %s, got %s", e.method, e.index+1, e.want, e.got)
}

// args is a call's argument tuple with typed accessors.
type args struct {
	method string
	items  []*pyval.Value
	err    error
}

func newArgs(method string, v *pyval.Value) *args {
	a := &args{method: method}
	if v == nil || (v.Kind() != pyval.KindTuple && v.Kind() != pyval.KindList) {
		a.err = fmt.Errorf("%s: arguments are %s, not a tuple", method, v)
		return a
	}
	a.items = v.Items()
	return a
}

// count checks the number of arguments is within [lo, hi].
func (a *args) count(lo, hi int) *args {
	if a.err == nil && (len(a.items) < lo || len(a.items) > hi) {
		msg := fmt.Sprintf("%s takes %d to %d arguments, got %d", a.method, lo, hi, len(a.items))
		if lo == hi {
			msg = fmt.Sprintf("%s takes %d arguments, got %d", a.method, lo, len(a.items))
		}
		// A TypeError, as Python raises for a call with the wrong
		// number of arguments.
		a.err = &clientError{qualname: excTypeError, args: []*pyval.Value{pyval.Str(msg)}}
	}
	return a
}

func (a *args) get(i int) *pyval.Value {
	if i < len(a.items) {
		return a.items[i]
	}
	return nil
}

func (a *args) fail(i int, want string) {
	if a.err == nil {
		a.err = &argError{method: a.method, index: i, want: want, got: a.get(i)}
	}
}

// p64 reads an 8-byte oid or tid.
func (a *args) p64(i int) uint64 {
	v := a.get(i)
	if v == nil {
		a.fail(i, "8 bytes")
		return 0
	}
	b, ok := v.AsBytes()
	if !ok || len(b) != 8 {
		a.fail(i, "8 bytes")
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (a *args) oid(i int) zodb.Oid { return zodb.Oid(a.p64(i)) }
func (a *args) tid(i int) zodb.Tid { return zodb.Tid(a.p64(i)) }

// optTid reads a tid that may be None (returned as 0) or missing.
func (a *args) optTid(i int) zodb.Tid {
	if v := a.get(i); v == nil || v.IsNone() {
		return 0
	}
	return a.tid(i)
}

func (a *args) isNone(i int) bool {
	v := a.get(i)
	return v == nil || v.IsNone()
}

// int reads an int (bools count, as in Python); def when missing.
func (a *args) int(i int, def int64) int64 {
	v := a.get(i)
	if v == nil {
		return def
	}
	n, ok := v.AsInt()
	if !ok {
		a.fail(i, "an int")
	}
	return n
}

// bool reads a truth value (bool, int or None); def when missing.
func (a *args) bool(i int, def bool) bool {
	v := a.get(i)
	if v == nil {
		return def
	}
	b, ok := v.AsBool()
	if !ok {
		a.fail(i, "a bool")
	}
	return b
}

// bytes reads bytes, or text as UTF-8 (older clients send str).
func (a *args) bytes(i int) []byte {
	v := a.get(i)
	if v == nil {
		a.fail(i, "bytes")
		return nil
	}
	if b, ok := v.AsBytes(); ok {
		return b
	}
	if s, ok := v.AsText(); ok {
		return []byte(s)
	}
	a.fail(i, "bytes")
	return nil
}

// data reads an object record: bytes, or None (returned as nil).
func (a *args) data(i int) []byte {
	if a.isNone(i) {
		return nil
	}
	b := a.bytes(i)
	if b == nil {
		return []byte{}
	}
	return b
}

// text reads str, or bytes that are UTF-8.
func (a *args) text(i int) string {
	v := a.get(i)
	if v != nil {
		if s, ok := v.AsText(); ok {
			return s
		}
		if b, ok := v.AsBytes(); ok && utf8.Valid(b) {
			return string(b)
		}
	}
	a.fail(i, "a str")
	return ""
}

// dict reads a dict or None (returned as nil).
func (a *args) dict(i int) *pyval.Value {
	v := a.get(i)
	if v == nil || v.IsNone() {
		return nil
	}
	if v.Kind() != pyval.KindDict {
		a.fail(i, "a dict")
		return nil
	}
	return v
}

// list reads a list or tuple's items.
func (a *args) list(i int) []*pyval.Value {
	v := a.get(i)
	if v == nil || (v.Kind() != pyval.KindList && v.Kind() != pyval.KindTuple) {
		a.fail(i, "a list")
		return nil
	}
	return v.Items()
}
