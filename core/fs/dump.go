package fs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	ogorek "github.com/kisielk/og-rek"

	"github.com/zrs-replication/zrs/core/zodb"
)

// DumpOptions choose the form of Dump's output.
type DumpOptions struct {
	// JSON selects one JSON object per transaction per line (the form the
	// tests compare with Python's iterator); otherwise the text is the
	// line format of Python's fsdump.
	JSON bool
	// Warn, if set, is told when the dump stops before the end of the
	// file: at a commit in progress, a crash's torn tail, or damage that
	// looks like either (Python's iterator logs a warning there).
	Warn io.Writer
}

// Dump writes every transaction of the Data.fs at path to w. The text form
// matches the lines of ZODB's fsdump.py: for each transaction
//
//	Trans #00000 tid=<hex> size=<tlen> time=<UTC time> offset=<first data record>
//	    status=' ' user=b'...' description=b'...'
//
// then one line per record
//
//	data #00000 oid=<hex> size=<n> class=<module.Class>[ bp=<data_txn hex>]
//
// with "class=undo or abort of object creation" and no size for a record
// without data. The JSON form is described by DumpTxnJSON.
func Dump(ctx context.Context, w io.Writer, path string, opts DumpOptions) error {
	it, err := OpenFileIterator(path, 0, zodb.MaxTid)
	if err != nil {
		return err
	}
	defer it.Close()
	if it.end == 0 { // the iterator takes an empty file for an empty database
		return &RecordError{Path: path, Record: "file header", Pos: 0,
			Err: errors.New("empty file (0 bytes): no FileStorage header yet (a read-write open would start a new database here)")}
	}
	bw := bufio.NewWriter(w)
	for i := 0; ; i++ {
		info, err := it.Next(ctx)
		if err == io.EOF {
			u := it.Unfinished()
			if u == nil {
				break
			}
			if !it.unfinishedCommit && !finishedSince(it, u) {
				// Not what a commit in progress or a crash leaves: a
				// finished transaction cut short, or a damaged length.
				bw.Flush()
				return fmt.Errorf("%w (not an unfinished commit: damage; `zrs fs verify` tells more)", u)
			}
			if opts.Warn != nil {
				fmt.Fprintf(opts.Warn, "warning: stopped before the end of the file: %v "+
					"(a commit in progress or a crash's leftover: `zrs fs verify` tells)\n", u)
			}
			break
		}
		if err != nil {
			bw.Flush()
			return err
		}
		if opts.JSON {
			err = writeJSONLine(bw, info)
		} else {
			err = writeTextTxn(bw, i, info, &it.cur)
		}
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// finishedSince reports whether the transaction at which iteration
// stopped (u names its offset), cut short in the file as it was when the
// iterator opened it, is there whole now, its trailer repeating its
// length: a commit that was being written then (a live database), as
// verify judges it. A damaged length finds no such trailer.
func finishedSince(it *FileIterator, u error) bool {
	var re *RecordError
	if !errors.As(u, &re) {
		return true
	}
	var b [TxnHeaderSize]byte
	if n, _ := it.r.ReadAt(b[:], re.Pos); n < TxnHeaderSize {
		return false
	}
	tlen := int64(binary.BigEndian.Uint64(b[8:16]))
	if tlen < TxnHeaderSize || re.Pos+tlen+TrailerSize <= it.end {
		return false
	}
	return trailerIs(it.r, re.Pos, tlen)
}

// writeTextTxn writes transaction number i in fsdump's format.
func writeTextTxn(w io.Writer, i int, info *zodb.TxnInfo, h *TxnHeader) error {
	_, err := fmt.Fprintf(w, "Trans #%05d tid=%s size=%d time=%s offset=%d\n    status=%s user=b%s description=b%s\n",
		i, info.Tid, h.Len, info.Tid.TimeString(), h.DataPos(),
		pyRepr([]byte{byte(info.Status)}), pyRepr(info.User), pyRepr(info.Description))
	if err != nil {
		return err
	}
	for j, r := range info.Records {
		size, class := "", "undo or abort of object creation"
		if r.Data != nil {
			size, class = fmt.Sprintf(" size=%d", len(r.Data)), pickleClassName(r.Data)
		}
		bp := ""
		if r.DataTxn != 0 {
			bp = " bp=" + r.DataTxn.String()
		}
		if _, err := fmt.Fprintf(w, "  data #%05d oid=%s%s class=%s%s\n", j, r.Oid, size, class, bp); err != nil {
			return err
		}
	}
	return nil
}

// pyRepr quotes b the way Python's repr quotes a bytes or ASCII str value,
// without the b prefix.
func pyRepr(b []byte) string {
	q := byte('\'')
	if bytes.IndexByte(b, '\'') >= 0 && bytes.IndexByte(b, '"') < 0 {
		q = '"'
	}
	var s strings.Builder
	s.WriteByte(q)
	for _, c := range b {
		switch {
		case c == q || c == '\\':
			s.WriteByte('\\')
			s.WriteByte(c)
		case c == '\t':
			s.WriteString(`\t`)
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\r':
			s.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&s, `\x%02x`, c)
		default:
			s.WriteByte(c)
		}
	}
	s.WriteByte(q)
	return s.String()
}

// pickleClassName returns "module.Class" for an object record, read from
// its class pickle as ZODB's get_pickle_metadata does: a GLOBAL opcode
// (possibly after MARK) gives the names directly; a tuple
// ((module, name), args) or (module, name) is decoded. Other forms give a
// Go rendering of what was decoded, and an undecodable pickle ".".
func pickleClassName(data []byte) string {
	p := data
	if len(p) >= 2 && p[0] == 0x80 {
		p = p[2:]
	}
	prefix := 0
	switch {
	case bytes.HasPrefix(p, []byte("(c")):
		prefix = 2
	case bytes.HasPrefix(p, []byte("c")):
		prefix = 1
	}
	if prefix > 0 {
		if parts := bytes.SplitN(p[prefix:], []byte("\n"), 3); len(parts) == 3 {
			return string(parts[0]) + "." + string(parts[1])
		}
		return "."
	}
	v, err := ogorek.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return "."
	}
	if t, ok := v.(ogorek.Tuple); ok && len(t) == 2 {
		if inner, ok := t[0].(ogorek.Tuple); ok && len(inner) == 2 {
			t = inner
		}
		if c, ok := t[0].(ogorek.Class); ok {
			return c.Module + "." + c.Name
		}
		return fmt.Sprint(t[0]) + "." + fmt.Sprint(t[1])
	}
	return fmt.Sprint(v) + "."
}

// jsonTxn is one line of the JSON dump; the field order is the brief's.
type jsonTxn struct {
	Pos           int64           `json:"pos"`
	Tid           string          `json:"tid"`
	Status        string          `json:"status"`
	User          any             `json:"user"`
	Description   any             `json:"description"`
	Extension     json.RawMessage `json:"extension"`
	ExtensionSHA1 string          `json:"extension_sha1"`
	Records       []jsonRecord    `json:"records"`
}

type jsonRecord struct {
	Oid     string  `json:"oid"`
	Tid     string  `json:"tid"`
	DataLen int     `json:"data_len"`
	SHA1    *string `json:"sha1"`
	DataTxn *string `json:"data_txn"`
}

func writeJSONLine(w io.Writer, info *zodb.TxnInfo) error {
	b, err := DumpTxnJSON(info)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// DumpTxnJSON returns the JSON form of one transaction (without newline):
//
//	{"pos":N,"tid":"<hex>","status":" ","user":S,"description":S,
//	 "extension":E,"extension_sha1":"<sha1 of the raw extension>","records":[R...]}
//
// S is the text when it is valid UTF-8, else {"base64":"..."}; E is null
// for an empty extension, else the unpickled value converted to JSON
// (bytes as {"base64":...}, tuples as arrays, dict keys as Python's str()
// of str, int, bool and None keys), or {"raw_base64":"..."} when it does
// not unpickle or holds anything else. R is
// {"oid","tid","data_len","sha1" (null without data),"data_txn" (null
// unless a backpointer)}.
func DumpTxnJSON(info *zodb.TxnInfo) ([]byte, error) {
	sum := sha1.Sum(info.Extension)
	t := jsonTxn{
		Pos: info.Pos, Tid: info.Tid.String(), Status: string(rune(info.Status)),
		User: jsonText(info.User), Description: jsonText(info.Description),
		Extension: extensionJSON(info.Extension), ExtensionSHA1: hex.EncodeToString(sum[:]),
		Records: make([]jsonRecord, 0, len(info.Records)),
	}
	for _, r := range info.Records {
		t.Records = append(t.Records, recordJSON(r))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(t); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func recordJSON(r zodb.DataRecord) jsonRecord {
	j := jsonRecord{Oid: r.Oid.String(), Tid: r.Tid.String(), DataLen: len(r.Data)}
	if r.Data != nil {
		sum := sha1.Sum(r.Data)
		s := hex.EncodeToString(sum[:])
		j.SHA1 = &s
	}
	if r.DataTxn != 0 {
		s := r.DataTxn.String()
		j.DataTxn = &s
	}
	return j
}

// jsonText is a string when b is UTF-8, else {"base64": ...}.
func jsonText(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]string{"base64": base64.StdEncoding.EncodeToString(b)}
}

// errUnconvertible: an extension value the dump format has no JSON for.
var errUnconvertible = errors.New("no JSON form")

// extensionJSON converts a raw extension to its JSON form.
func extensionJSON(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	d := ogorek.NewDecoderWithConfig(bytes.NewReader(raw), &ogorek.DecoderConfig{StrictUnicode: true, PyDict: true})
	v, err := d.Decode()
	var conv any
	if err == nil {
		conv, err = pickleToJSON(v)
	}
	var b []byte
	if err == nil {
		b, err = json.Marshal(conv)
	}
	if err != nil {
		b, _ = json.Marshal(map[string]string{"raw_base64": base64.StdEncoding.EncodeToString(raw)})
	}
	return b
}

// pickleToJSON converts a decoded pickle value by the dump format's rules.
func pickleToJSON(v any) (any, error) {
	switch v := v.(type) {
	case ogorek.None:
		return nil, nil
	case string, bool:
		return v, nil
	case ogorek.ByteString: // a Python 2 str: ZODB decodes it as ASCII, else bytes
		if isASCII(string(v)) {
			return string(v), nil
		}
		return map[string]string{"base64": base64.StdEncoding.EncodeToString([]byte(v))}, nil
	case ogorek.Bytes:
		return map[string]string{"base64": base64.StdEncoding.EncodeToString([]byte(v))}, nil
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), nil
	case *big.Int:
		return json.Number(v.String()), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errUnconvertible
		}
		return v, nil
	case ogorek.Tuple:
		return sliceToJSON(v)
	case []any:
		return sliceToJSON(v)
	case ogorek.Dict:
		return dictToJSON(v)
	}
	return nil, fmt.Errorf("%w: %T", errUnconvertible, v)
}

func sliceToJSON(s []any) (any, error) {
	out := make([]any, len(s))
	for i, x := range s {
		c, err := pickleToJSON(x)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func dictToJSON(d ogorek.Dict) (any, error) {
	out := make(map[string]any, d.Len())
	var err error
	d.Iter()(func(k, x any) bool {
		var key string
		if key, err = pickleKey(k); err != nil {
			return false
		}
		out[key], err = pickleToJSON(x)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pickleKey renders a dict key as Python's str() would, for the key types
// the dump format accepts.
func pickleKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case ogorek.ByteString:
		if isASCII(string(k)) {
			return string(k), nil
		}
	case int64:
		return strconv.FormatInt(k, 10), nil
	case *big.Int:
		return k.String(), nil
	case bool:
		if k {
			return "True", nil
		}
		return "False", nil
	case ogorek.None:
		return "None", nil
	}
	return "", fmt.Errorf("%w: key %T", errUnconvertible, k)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
