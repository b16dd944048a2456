package zrsproto

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/zrs-replication/zrs/core/zodb"
)

// nativeWindow bounds the zstd window, so each end holds at most this
// much history per connection.
const nativeWindow = 1 << 20

// nativeBuffer is the buffer between a NativeWriter's frames and the
// connection (or the compressor).
const nativeBuffer = 64 << 10

// NativeWriter writes the primary's side of a native stream after the
// welcome: the zrs2 transaction stream (StreamWriter, same frames and
// checksum chain) interleaved with heartbeat frames, optionally through
// one zstd stream flushed at every Flush. Not safe for concurrent use.
type NativeWriter struct {
	bw   *bufio.Writer
	zw   *zstd.Encoder // nil without compression
	sw   *StreamWriter
	oids bool // heartbeats carry the oid reservation
}

// Terms are what a Welcome fixes for the stream that follows it.
type Terms struct {
	Compression string // "" or CompressionZstd
	Checksum    string // "" (MD5) or ChecksumXXH64
	Oids        bool   // heartbeats carry the primary's oid reservation
}

// Terms returns the stream terms the welcome announces.
func (w *Welcome) Terms() Terms {
	return Terms{Compression: w.Compression, Checksum: w.Checksum, Oids: w.Oids}
}

// NewNativeWriter returns a writer for a connection whose handshake named
// start, with the welcome's terms: zstd when t.Compression is
// CompressionZstd, the checksum t.Checksum.
func NewNativeWriter(w io.Writer, start zodb.Tid, t Terms) (*NativeWriter, error) {
	sum, err := NewChecksumOf(t.Checksum, start)
	if err != nil {
		return nil, err
	}
	nw := &NativeWriter{oids: t.Oids}
	switch compression := t.Compression; compression {
	case "":
	case CompressionZstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithWindowSize(nativeWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		nw.zw, w = zw, zw
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	nw.bw = bufio.NewWriterSize(w, nativeBuffer)
	nw.sw = newStreamWriter(nw.bw, sum)
	return nw, nil
}

// WriteTxn writes one transaction (buffered until Flush).
func (nw *NativeWriter) WriteTxn(info *zodb.TxnInfo) error { return nw.sw.WriteTxn(info) }

// WriteHeartbeat writes a heartbeat frame (buffered until Flush), with
// h.Oids if the terms carry oids.
func (nw *NativeWriter) WriteHeartbeat(h Heartbeat) error {
	if nw.oids {
		return WriteFrame(nw.bw, EncodeHeartbeatOids(h))
	}
	return WriteFrame(nw.bw, EncodeHeartbeat(h))
}

// Flush sends everything written so far to the connection.
func (nw *NativeWriter) Flush() error {
	if err := nw.bw.Flush(); err != nil {
		return err
	}
	if nw.zw != nil {
		return nw.zw.Flush()
	}
	return nil
}

// Close flushes, ends the zstd frame (so the reader sees a clean end
// of stream) and releases the compressor.
func (nw *NativeWriter) Close() error {
	err := nw.bw.Flush()
	if nw.zw != nil {
		if cerr := nw.zw.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// NativeReader reads the secondary's side of a native stream after the
// welcome. Not safe for concurrent use; after an error the connection
// must be dropped.
type NativeReader struct {
	zr     *zstd.Decoder // nil without compression
	br     *bufio.Reader
	sr     *StreamReader
	hbSize uint32 // the length of a heartbeat frame under the terms
}

// NewNativeReader returns a reader for a connection whose handshake named
// start and whose welcome fixed the terms t.
func NewNativeReader(r io.Reader, start zodb.Tid, t Terms) (*NativeReader, error) {
	sum, err := NewChecksumOf(t.Checksum, start)
	if err != nil {
		return nil, err
	}
	nr := &NativeReader{hbSize: heartbeatLen}
	if t.Oids {
		nr.hbSize = heartbeatOidsLen
	}
	switch compression := t.Compression; compression {
	case "":
	case CompressionZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(8*nativeWindow))
		if err != nil {
			return nil, err
		}
		nr.zr, r = zr, zr
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	nr.br = bufio.NewReaderSize(r, nativeBuffer)
	nr.sr = newStreamReader(nr.br, sum)
	return nr, nil
}

// Next returns the next transaction, or the next heartbeat (exactly one
// of the two is non-nil when err is nil). Errors are as
// StreamReader.ReadTxn's, plus zstd decoding errors; io.EOF at a clean
// end between transactions.
func (nr *NativeReader) Next() (*zodb.TxnInfo, *Heartbeat, error) {
	hdr, err := nr.br.Peek(5)
	if err == nil && binary.BigEndian.Uint32(hdr) == nr.hbSize && hdr[4] == heartbeatLetter {
		// Heartbeats are frames of the connection too: counted, so that
		// an error's frame number is its place in the stream.
		nr.sr.frames++
		p, err := ReadFrame(nr.br, nr.hbSize)
		if err != nil {
			return nil, nil, &FrameError{Frame: nr.sr.frames, Kind: "heartbeat", Err: err}
		}
		h, err := DecodeHeartbeat(p)
		if err != nil {
			return nil, nil, &FrameError{Frame: nr.sr.frames, Kind: "heartbeat", Err: err}
		}
		return nil, &h, nil
	}
	info, err := nr.sr.ReadTxn()
	return info, nil, err
}

// Close releases the decompressor.
func (nr *NativeReader) Close() {
	if nr.zr != nil {
		nr.zr.Close()
	}
}
