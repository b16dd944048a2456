// Package pyval is a model of the plain Python values that ZODB's network
// protocols carry — None, bool, int, float, str, bytes, tuple, list,
// dict — and a pickle codec for them that writes what CPython writes,
// byte for byte.
//
// # Values
//
// A *Value is one Python object. Dicts keep insertion order (which
// decides the bytes Python writes) and Python's key equality (1, 1.0 and
// True are one key). Pointers are object identity: a decoded pickle that
// refers to one object twice through its memo yields one *Value in two
// places, and the memo encoder refers to it again the same way.
//
// # Pickle dialects
//
// Pickle writes three dialects, each checked against CPython's output:
//
//   - protocol 1, fast mode (no memo), with Python 3's protocol-1
//     spellings for bytes (_codecs.encode(<latin-1 text>, 'latin1'), and
//     __builtin__.bytes() when empty): zc.zrs control messages;
//   - protocol 3, fast mode: what ZEO clients and servers exchange
//     (zodbpickle's Pickler with fast = True): PROTO 3, TUPLE1-3,
//     SHORT_BINBYTES/BINBYTES, BINUNICODE, BININT1/BININT2/BININT/LONG1,
//     NEWTRUE/NEWFALSE, EMPTY_DICT with SETITEM or MARK … SETITEMS,
//     EMPTY_LIST with APPEND or MARK … APPENDS, BINFLOAT;
//   - protocol 3 with the memo: pickle.dumps(d, 3), which is how Python
//     FileStorage stores a transaction's extension dict (ExtensionBytes).
//     To store the same bytes as a Python peer, the received dict is
//     re-pickled exactly as CPython does: the memo, including the objects
//     CPython shares after unpickling (empty and one-character strings,
//     bytes of length 0 and 1), SETITEMS/APPENDS batches of 1000 and
//     CPython's empty trailing batch when a dict's size is a multiple of
//     1000.
//
// Unpickle reads protocols 0-4 as Python 2 and Python 3 write them, memo
// included. It never imports or calls anything: the only globals it
// accepts are the two calls Python 3 writes bytes with below protocol 3,
// and, through UnpickleWith, instances of classes the caller names (ZEO's
// undoInfo specifications carry ZopeUndo.Prefix objects) or, for
// transaction extensions, any object (UnpickleOptions.Objects), which
// stay inert KindObject values that Pickle writes back as CPython does. Python 2 strings decode to KindBinStr, which
// is text or bytes depending on where it is used; ExtensionDict
// normalises them as ZODB does on Python 3 (encoding='ASCII',
// errors='bytes': text when ASCII, bytes otherwise).
//
// # Why the codec is written by hand
//
// github.com/kisielk/og-rek, which the rest of zrs uses for pickles, does
// not fit either side. Its decoder returns dicts as Go maps (or its Dict
// type), which lose the insertion order that decides the bytes Python
// writes, and it has no notion of object identity for the memo. Its
// encoder has no fast mode matching CPython's protocol-1 output and
// cannot reproduce CPython's memo indexes and batching. So this package
// carries a small codec (unpickle.go, pickle.go) limited to what occurs in
// these protocols.
//
// # Untrusted input
//
// The decoder checks every length against the bytes it was given, so
// nothing is allocated ahead of the bytes that justify it; errors are
// *Error values giving the byte offset, never panics. Justified is not
// small: a one-byte opcode such as None makes a Value of about 100 bytes,
// so a pickle of them costs up to about 150 bytes per byte.
// UnpickleOptions.MaxValues bounds that for input from untrusted peers
// (ZEO clients): with a limit of len(p)/K values, a pickle costs about
// 150/K bytes per byte on top of the strings it carries. A memo can make
// a small pickle describe a large tree (one object shared many times) or
// a container that contains itself: the encoders refuse cycles and
// nesting deeper than MaxDepth, PickleOptions.Max bounds the output, and
// TreeSize measures a value before a caller echoes it back.
package pyval
