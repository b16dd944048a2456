// Package zrsproto is the wire format of zc.zrs replication (protocols
// "zrs2.0" and "zrs2.1"), byte-compatible with Python zc.zrs primaries and
// secondaries.
//
// # Frames
//
// Both directions carry frames: a big-endian uint32 length, then that many
// bytes. The secondary opens with two frames, the protocol name and the
// 8-byte tid it has last committed (WriteHandshake/ReadHandshake); after
// that it sends only empty keep-alive frames, and a primary refuses any
// incoming frame longer than 8 bytes. The primary answers with a stream of
// transactions:
//
//	transaction := T (S DATA)* C
//
// T, S, B and C are control messages, each a pickle of the tuple
// (letter, fields); DATA frames are raw record pickles, an empty DATA
// meaning "no data" (a deletion or an undone creation). A 'B' header
// (zrs2.1, blob primaries) is followed by DATA and the blob file in 64 KiB
// frames; this package decodes B but StreamReader refuses it with
// ErrBlobsUnsupported.
//
// # Checksum
//
// Every C carries the MD5 of the start tid followed by every payload the
// primary sent on this connection before that C (the C's own payload is
// added after). StreamWriter and StreamReader keep that chain; a mismatch
// is ErrChecksum and the secondary must drop the connection and resume
// from its last committed transaction.
//
// # The pickle dialect
//
// Python zc.zrs pickles control messages with protocol 1 in "fast" mode
// (no memo). Python 3 primaries write text as BINUNICODE, non-empty bytes
// as _codecs.encode(<latin-1 text>, 'latin1') and empty bytes as
// __builtin__.bytes(); Python 2 primaries wrote bytes as SHORT_BINSTRING /
// BINSTRING and counts as text LONGs. EncodeControl writes the Python 3
// form byte for byte; DecodeControl reads both.
//
// The transaction extension makes a second dialect necessary. FileStorage
// stores it as a protocol-3 pickle of a dict (or nothing for an empty
// dict); T carries the dict itself. A Python secondary stores
// pickle.dumps(d, 3) of the dict it unpickled, so to store the same bytes
// we re-pickle the received dict exactly as CPython does, memo included.
// Python 2 strings inside an extension are read the way ZODB does on
// Python 3 (encoding='ASCII', errors='bytes'): text when ASCII, bytes
// otherwise.
//
// Both dialects come from package pyval, the hand-written pickle codec zrs
// shares with its ZEO server; its package doc says why og-rek does not
// fit. Objects in an extension (a datetime, a set: an application using
// FileStorage directly can put them there) are carried inert and written
// back as CPython writes them (pyval.UnpickleOptions.Objects); an object
// made by NEWOBJ is written with NEWOBJ even in a protocol-1 T message,
// where CPython would spell it with copy_reg._reconstructor.
//
// # Native protocol (zrs3)
//
// A zrs secondary opens with "zrs3", the start tid and a JSON Hello (its
// database Identity, the Position digests of its last transaction, the
// compressions it accepts); a zrs primary answers with a JSON Welcome or a
// refusal. After it, the primary's stream is the zrs2 stream above,
// optionally inside one zstd stream (NativeWriter, NativeReader), with
// 17-byte heartbeat frames between transactions; the secondary sends
// 9-byte acknowledgements. TxnDigests defines the position digests and
// IdentityOf the identity. A zc.zrs primary closes on "zrs3" without a
// word, which ReadWelcome reports as io.EOF. docs/PROTOCOL.md has the
// byte layout.
//
// # Errors
//
// Malformed input is an error wrapping ErrProtocol, never a panic; stream
// errors are *FrameError values giving the frame number on the connection.
package zrsproto
