package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zrs-replication/zrs/core/fs"
	"github.com/zrs-replication/zrs/core/zodb"
)

// update regenerates the golden dumps in testdata with Python ZODB (the
// interpreter named by $ZRS_PYTHON, default python3, with ZODB 6.4).
var update = flag.Bool("update", false, "regenerate testdata golden files with Python ZODB")

// testdata/pydump.fs was written by ZODB 6.4 with this script, then its
// dumps were captured by -update:
//
//	import transaction, ZODB, ZODB.FileStorage, ZODB.Connection
//	from persistent.mapping import PersistentMapping
//	st = ZODB.FileStorage.FileStorage("Data.fs"); db = ZODB.DB(st)
//	c = db.open(); r = c.root()
//	t = transaction.get(); t.note("add a"); t.setUser("bob")
//	t.setExtendedInfo("k", "v"); t.setExtendedInfo(1, [b"x", 2.5, None, True])
//	r["a"] = PersistentMapping(x=1); transaction.commit()
//	transaction.get().note("modify a \u00e9t\u00e9")
//	r["a"]["y"] = 2; r["b"] = PersistentMapping(); transaction.commit()
//	db.undo(db.undoLog(0, 1)[0]["id"]); transaction.get().note("undo"); transaction.commit()
//	c.cacheMinimize(); oid = r["a"]._p_oid; del r["a"]; transaction.commit()
//	txn = ZODB.Connection.TransactionMetaData(user="gc", description="delete a")
//	st.tpc_begin(txn); st.deleteObject(oid, st.load(oid)[1], txn)
//	st.tpc_vote(txn); st.tpc_finish(txn); db.close()
const pyDumpFS = "testdata/pydump.fs"

// pyGolden runs Python to regenerate a golden file.
func pyGolden(t *testing.T, golden string, args ...string) {
	t.Helper()
	py := os.Getenv("ZRS_PYTHON")
	if py == "" {
		py = "python3"
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", py, args, err)
	}
	if err := os.WriteFile(golden, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func dumpFile(t *testing.T, path string, opts fs.DumpOptions) string {
	t.Helper()
	var out bytes.Buffer
	if err := fs.Dump(context.Background(), &out, path, opts); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestDumpTextMatchesPythonFsdump(t *testing.T) {
	golden := "testdata/pydump.fs.fsdump"
	if *update {
		pyGolden(t, golden, "-c", "import sys; from ZODB.FileStorage.fsdump import fsdump; fsdump(sys.argv[1])", pyDumpFS)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpFile(t, pyDumpFS, fs.DumpOptions{}); got != string(want) {
		t.Errorf("dump differs from Python's fsdump:\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDumpJSONMatchesPythonIterator(t *testing.T) {
	golden := "testdata/pydump.fs.jsonl"
	if *update {
		pyGolden(t, golden, filepath.Join("..", "..", "tests", "pydump.py"), pyDumpFS)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	got := dumpFile(t, pyDumpFS, fs.DumpOptions{JSON: true})
	g, w := parseJSONLines(t, got), parseJSONLines(t, string(want))
	if len(g) != len(w) {
		t.Fatalf("got %d lines, want %d", len(g), len(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, g[i], w[i])
		}
	}
}

// parseJSONLines parses one JSON object per non-empty line, keeping
// numbers exact, as the tests compare parsed values.
func parseJSONLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestDumpTxnJSONExtensions(t *testing.T) {
	cases := []struct {
		name string
		ext  []byte
		want string
	}{
		{"empty", nil, `null`},
		// {'a': b'\x00', 'b': (1, 2**70), 3: None, True: 1.5} pickled with protocol 3
		{"mixed", []byte("\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01C\x01\x00q\x02X\x01\x00\x00\x00bq\x03K\x01\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00@\x86q\x04K\x03N\x88G?\xf8\x00\x00\x00\x00\x00\x00u."),
			`{"a":{"base64":"AA=="},"b":[1,1180591620717411303424],"3":null,"True":1.5}`},
		{"garbage", []byte("not a pickle"), `{"raw_base64":"bm90IGEgcGlja2xl"}`},
		{"global", []byte("\x80\x03cbuiltins\nset\nq\x00."), `{"raw_base64":"gANjYnVpbHRpbnMKc2V0CnEALg=="}`},
	}
	for _, c := range cases {
		info := &zodb.TxnInfo{Tid: 1, Status: ' ', TxnMeta: zodb.TxnMeta{User: []byte{0xff}, Extension: c.ext}}
		b, err := fs.DumpTxnJSON(info)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var got, want any
		json.Unmarshal(m["extension"], &got)
		json.Unmarshal([]byte(c.want), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: extension = %s, want %s", c.name, m["extension"], c.want)
		}
		if string(m["user"]) != `{"base64":"/w=="}` {
			t.Errorf("%s: user = %s", c.name, m["user"])
		}
	}
}

func TestDumpTextQuoting(t *testing.T) {
	txns := synthHistory(2)
	txns[1].User = []byte("it's \"x\"\n\x01\xc3\xa9")
	txns[1].Description = []byte("don't")
	got := dumpFile(t, synthWrite(t, synthBuild(txns).Bytes), fs.DumpOptions{})
	for _, want := range []string{`user=b'it\'s "x"\n\x01\xc3\xa9'`, `description=b"don't"`} {
		if !strings.Contains(got, want) {
			t.Errorf("dump lacks %s:\n%s", want, got)
		}
	}
}
