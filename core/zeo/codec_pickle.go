package zeo

import (
	"errors"
	"fmt"

	"github.com/zrs-replication/zrs/core/pyval"
)

// pickleClasses are the only classes a message may carry instances of:
// Zope's undo screen sends ZopeUndo.Prefix objects in undoInfo
// specifications. They decode to inert pyval objects; nothing is called.
var pickleClasses = []string{"ZopeUndo.Prefix.Prefix"}

// extensionGlobals are the classes besides plain data that a
// transaction extension may hold in a tpc_begin, as ZEO's own server
// accepts them from its builtins: the data types set, frozenset,
// bytearray and complex. They stay inert pyval objects and are stored as
// Python FileStorage stores them. Anything else that ZEO's server would
// also accept from builtins (a call of eval, say) is refused: stored, it
// would run in every Python process that later reads the transaction's
// extension.
var extensionGlobals = map[string]bool{
	"builtins.set": true, "builtins.frozenset": true, "builtins.bytearray": true, "builtins.complex": true,
}

// checkObjects refuses objects of extensionGlobals in any shape but the
// one CPython writes for them at protocol 3 — set and frozenset of a
// list, bytearray of bytes, complex of two floats, by REDUCE with nothing
// added — so that what is stored is what any Python can load (ZEO's
// server makes the call, and a bad one fails there).
func checkObjects(v *pyval.Value) error {
	return v.Walk(func(o *pyval.Value) error {
		if o.Kind() != pyval.KindObject || !extensionGlobals[o.Class()] {
			return nil
		}
		reduce, args, added, _ := o.Made()
		a := args.Items()
		ok := reduce && !added
		switch o.Class() {
		case "builtins.set", "builtins.frozenset":
			ok = ok && len(a) == 1 && a[0].Kind() == pyval.KindList
		case "builtins.bytearray":
			ok = ok && len(a) == 1 && a[0].Kind() == pyval.KindBytes
		case "builtins.complex":
			ok = ok && len(a) == 2 && a[0].Kind() == pyval.KindFloat && a[1].Kind() == pyval.KindFloat
		}
		if !ok {
			return fmt.Errorf("%s not as Python pickles one: %v", o.Class(), args)
		}
		return nil
	})
}

// maxExpansion bounds what a decoded message may grow to when written out
// again without sharing (see pyval.Value.TreeSize): a fast-mode pickle,
// which is what every ZEO peer sends, never grows, so 4x is lenient while
// keeping a memo-built tree from exploding when a reply echoes it.
func maxExpansion(n int) int { return 4*n + 1024 }

// pickleCodec is ZEO's "Z" encoding: zodbpickle's Pickler, protocol 3,
// fast mode (no memo).
type pickleCodec struct{}

func (pickleCodec) Name() string { return "Z" }

func (pickleCodec) Encode(m *Message) ([]byte, error) { return encodePickle(m) }

// encodePickle is pickleCodec.Encode. (ClientStorage's loadBefore is
// answered by the session without it: see fast_pickle.go.)
func encodePickle(m *Message) ([]byte, error) {
	v, err := messageValue(m)
	if err != nil {
		return nil, err
	}
	b, err := pyval.Pickle(v, pyval.PickleOptions{Protocol: 3, Fast: true})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Name, err)
	}
	return checkPayload(m, b)
}

// Decode accepts any pickle of protocols 0-4 (memo included) of plain
// data, ZopeUndo.Prefix objects and extensionGlobals; other globals are refused, as
// the Python server refuses globals outside its short allowed list (which
// also lets through other builtins, zrs does not: see extensionGlobals).
func (pickleCodec) Decode(p []byte) (*Message, error) { return decodePickle(p) }

// decodePickle is pickleCodec.Decode.
func decodePickle(p []byte) (*Message, error) {
	objects := false // an allowed global was used: checkObjects has work
	v, err := pyval.UnpickleWith(p, pyval.UnpickleOptions{
		Classes: pickleClasses, Objects: true, MaxValues: maxValues(len(p)),
		Globals: func(name string) bool {
			ok := extensionGlobals[name]
			objects = objects || ok
			return ok
		}})
	if err != nil {
		var pe *pyval.Error
		if errors.As(err, &pe) {
			return nil, &DecodeError{Codec: "Z", Offset: pe.Pos, Err: pe.Err}
		}
		return nil, &DecodeError{Codec: "Z", Err: err}
	}
	if objects {
		if err := checkObjects(v); err != nil {
			return nil, &DecodeError{Codec: "Z", Err: err}
		}
	}
	if _, ok := v.TreeSize(maxExpansion(len(p))); !ok {
		return nil, &DecodeError{Codec: "Z", Err: fmt.Errorf(
			"shared objects expand past %d bytes, or an object contains itself", maxExpansion(len(p)))}
	}
	m, err := decodeMessage(v)
	if err != nil {
		return nil, &DecodeError{Codec: "Z", Err: err}
	}
	return m, nil
}
