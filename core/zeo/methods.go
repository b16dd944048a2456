package zeo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zrs-replication/zrs/core/pyval"
	"github.com/zrs-replication/zrs/core/zodb"
)

// method is one server method. fn returns the reply value (ignored for
// one-way calls) or an error; load methods run under the read side of
// the publication lock with their reply queued before it is released.
type method struct {
	fn   func(ss *session, a *args, id *pyval.Value) (*pyval.Value, error)
	load bool
}

// methods is the whitelist of what clients may call.
var methods map[string]method

func init() {
	methods = map[string]method{
		"register":                        {fn: (*session).register},
		"get_info":                        {fn: (*session).getInfo},
		"lastTransaction":                 {fn: (*session).lastTransaction, load: true},
		"getInvalidations":                {fn: (*session).getInvalidations},
		"loadBefore":                      {fn: (*session).loadBefore, load: true},
		"loadSerial":                      {fn: (*session).loadSerial},
		"history":                         {fn: (*session).history},
		"getTid":                          {fn: (*session).getTid, load: true},
		"new_oids":                        {fn: (*session).newOids},
		"new_oid":                         {fn: (*session).newOid},
		"tpc_begin":                       {fn: (*session).tpcBegin},
		"storea":                          {fn: (*session).storea},
		"restorea":                        {fn: (*session).restorea},
		"checkCurrentSerialInTransaction": {fn: (*session).checkCurrentSerial},
		"deleteObject":                    {fn: (*session).deleteObject},
		"undoa":                           {fn: (*session).undoa},
		"vote":                            {fn: (*session).vote},
		"tpc_finish":                      {fn: (*session).tpcFinish},
		"tpc_abort":                       {fn: (*session).tpcAbort},
		"undoLog":                         {fn: (*session).undoLog},
		"undoInfo":                        {fn: (*session).undoInfo},
		"iterator_start":                  {fn: (*session).iteratorStart},
		"iterator_next":                   {fn: (*session).iteratorNext},
		"iterator_record_start":           {fn: (*session).iteratorRecordStart},
		"iterator_record_next":            {fn: (*session).iteratorRecordNext},
		"iterator_gc":                     {fn: (*session).iteratorGC},
		"record_iternext":                 {fn: (*session).recordIternext, load: true},
		"server_status":                   {fn: (*session).serverStatus},
		"ping":                            {fn: (*session).ping},
		"pack":                            {fn: (*session).pack},
		"set_client_label":                {fn: (*session).setClientLabel},
		"storeBlobStart":                  {fn: noBlobs},
		"storeBlobChunk":                  {fn: noBlobs},
		"storeBlobEnd":                    {fn: noBlobs},
		"storeBlobShared":                 {fn: noBlobs},
		"sendBlob":                        {fn: noBlobs},
	}
}

func noBlobs(ss *session, a *args, _ *pyval.Value) (*pyval.Value, error) {
	return nil, &clientError{qualname: excNotImplemented, args: []*pyval.Value{pyval.Str(
		"this zrs server has no blob support yet; " + a.method + " is refused")}}
}

// register(storage, read_only[, credentials]) → last tid.
func (ss *session) register(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(2, 3)
	name := a.text(0)
	ro := a.bool(1, false)
	if a.err != nil {
		return nil, a.err
	}
	if ss.registered {
		return nil, valueError("duplicate register() call")
	}
	if name != ss.srv.opts.Name {
		return nil, valueError(fmt.Sprintf("unknown storage: %q (this server serves %q)", name, ss.srv.opts.Name))
	}
	if !ro && ss.srv.readOnly() {
		ss.refusedWritable = true
		return nil, zodb.ErrReadOnly
	}
	// Subscribing and reading the tid are atomic with respect to
	// publication, and the reply is queued before any invalidation.
	s := ss.srv
	s.pub.Lock()
	defer s.pub.Unlock()
	ss.registered = true
	ss.readOnly = ro
	ss.fellBack = ro && ss.refusedWritable
	s.sessions[ss] = true
	s.log.Debug("zeo: client registered", "peer", ss.peer, "read_only", ro, "tid", s.published)
	if ss.fellBack && !s.readOnly() {
		// Promoted between the refusal and this register, maybe after
		// StorageWritable looked for fallback sessions (under pub, as
		// here): end this one too, once the reply is out, so that the
		// client reconnects writable.
		ss.stopReading("the storage became writable while a read-only fallback client registered; it reconnects to write")
	}
	return tidValue(s.published), nil
}

// writable fails unless the session may write.
func (ss *session) writable() error {
	if ss.readOnly || ss.srv.readOnly() {
		return zodb.ErrReadOnly
	}
	return nil
}

// interfaces are the ones ClientStorage declares from get_info.
var interfaces = [][2]string{
	{"ZODB.interfaces", "IStorageRestoreable"},
	{"ZODB.interfaces", "IStorageIteration"},
	{"ZODB.interfaces", "IStorageUndoable"},
	{"ZODB.interfaces", "IStorageCurrentRecordIteration"},
	{"ZODB.interfaces", "IExternalGC"},
	{"ZODB.interfaces", "IStorage"},
	{"zope.interface", "Interface"},
}

func (ss *session) getInfo(a *args, _ *pyval.Value) (*pyval.Value, error) {
	ifs := make([]*pyval.Value, len(interfaces))
	for i, f := range interfaces {
		ifs[i] = pyval.Tuple(pyval.Str(f[0]), pyval.Str(f[1]))
	}
	_, isOidser := ss.srv.st.(Oidser)
	return pyval.Dict(
		pyval.Str("length"), pyval.Int(int64(ss.srv.st.Len())),
		pyval.Str("size"), pyval.Int(ss.srv.size()),
		pyval.Str("name"), pyval.Str(ss.srv.opts.Name),
		pyval.Str("supportsUndo"), pyval.Bool(true),
		pyval.Str("supports_record_iternext"), pyval.Bool(isOidser),
		pyval.Str("interfaces"), pyval.Tuple(ifs...),
	), nil
}

// lastTransaction returns the published tid (runs under pub).
func (ss *session) lastTransaction(a *args, _ *pyval.Value) (*pyval.Value, error) {
	return tidValue(ss.srv.lastPublished()), nil
}

// loadBefore(oid, before) → (data, start, end|None), None, or POSKeyError.
// It runs under pub and never looks past the published tid. Calls in
// ClientStorage's own form skip it (serveLoadBefore).
func (ss *session) loadBefore(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(2, 2)
	oid, before := a.oid(0), a.tid(1)
	if a.err != nil {
		return nil, a.err
	}
	return loadBeforeValue(ss.loadBeforePublished(nil, oid, before))
}

// loadBeforePublished appends to dst the revision of oid before before
// that the clients may see, under pub. found false without an error means
// there is none (the answer None); end is 0 when the successor is
// unpublished or absent. Unless found, out is dst.
func (ss *session) loadBeforePublished(dst []byte, oid zodb.Oid, before zodb.Tid) (out []byte, start, end zodb.Tid, found bool, err error) {
	ss.srv.stats.loads.Add(1)
	if limit := ss.srv.lastPublished() + 1; before > limit {
		before = limit
	}
	out, start, end, err = zodb.AppendLoadBefore(ss.ctx, ss.srv.st, dst, oid, before)
	switch {
	case errors.Is(err, zodb.ErrNoRevision):
		return dst, 0, 0, false, nil
	case errors.Is(err, zodb.ErrNotFound):
		return dst, 0, 0, false, &zodb.NotFoundError{Oid: oid}
	case err != nil:
		return dst, 0, 0, false, err
	}
	if end > ss.srv.lastPublished() {
		// Unpublished successors stay unknown: the client learns of them
		// through their invalidation.
		end = 0
	}
	return out, start, end, true, nil
}

// loadBeforeValue is loadBefore's reply value for loadBeforePublished's
// results (data: what it appended).
func loadBeforeValue(data []byte, start, end zodb.Tid, found bool, err error) (*pyval.Value, error) {
	switch {
	case err != nil:
		return nil, err
	case !found:
		return pyval.None(), nil
	}
	return pyval.Tuple(pyval.Bytes(data), tidValue(start), tidOrNone(end)), nil
}

func (ss *session) loadSerial(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(2, 2)
	oid, serial := a.oid(0), a.tid(1)
	if a.err != nil {
		return nil, a.err
	}
	ss.srv.stats.loads.Add(1)
	if serial > ss.srv.publishedTid() {
		// In the storage, perhaps, but not yet published (see tpcFinish).
		return nil, &zodb.NotFoundError{Oid: oid, Tid: serial}
	}
	data, err := ss.srv.st.LoadSerial(ss.ctx, oid, serial)
	if errors.Is(err, zodb.ErrNotFound) {
		return nil, &zodb.NotFoundError{Oid: oid, Tid: serial}
	}
	if err != nil {
		return nil, err
	}
	return pyval.Bytes(data), nil
}

// getTid(oid) → the current serial (runs under pub).
func (ss *session) getTid(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	oid := a.oid(0)
	if a.err != nil {
		return nil, a.err
	}
	// As Python's getTid: headers only, and a revision that points back
	// to an undone creation has a tid although it cannot be loaded.
	serial, err := zodb.TidBefore(ss.ctx, ss.srv.st, oid, ss.srv.lastPublished()+1)
	if errors.Is(err, zodb.ErrNotFound) || errors.Is(err, zodb.ErrNoRevision) {
		return nil, &zodb.NotFoundError{Oid: oid}
	}
	if err != nil {
		return nil, err
	}
	return tidValue(serial), nil
}

// history(oid, size=1) → [ {time, tid, user_name, description, size, ext...} ].
func (ss *session) history(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 2)
	oid := a.oid(0)
	size := a.int(1, 1)
	if a.err != nil {
		return nil, a.err
	}
	if size < 1 {
		size = 1
	}
	size = min(size, 1<<20)
	// Revisions not yet published are left out (the storage may hold a few
	// waiting for publication, see tpcFinish): ask for some more.
	limit := ss.srv.publishedTid()
	hs, err := ss.srv.st.History(ss.ctx, oid, int(size)+historySlack)
	if errors.Is(err, zodb.ErrNotFound) {
		return nil, &zodb.NotFoundError{Oid: oid}
	}
	if err != nil {
		return nil, err
	}
	out := make([]*pyval.Value, 0, len(hs))
	for _, h := range hs {
		if h.Tid > limit {
			continue
		}
		if len(out) == int(size) {
			break
		}
		// As FileStorage.history: the extension's items, then the
		// revision's own, which win over extension keys of the same name.
		// An extension holding more than plain values (which Python would
		// load) leaves its items out, as the undo log does, rather than
		// failing the whole history.
		d := pyval.Dict()
		mergeExtension(d, h.Extension)
		d.SetItem(pyval.Str("time"), pyval.Float(h.Time))
		d.SetItem(pyval.Str("user_name"), pyval.Bytes(h.User))
		d.SetItem(pyval.Str("description"), pyval.Bytes(h.Description))
		d.SetItem(pyval.Str("tid"), tidValue(h.Tid))
		d.SetItem(pyval.Str("size"), pyval.Int(int64(h.Size)))
		out = append(out, d)
	}
	return pyval.List(out...), nil
}

// extensionValue decodes a stored extension for a reply. ZEO replies are
// pickled without the memo, so an extension whose pickle shares objects
// many times over would be written out in full; past a few times what an
// extension can hold (a file written by a local program, not by ZODB),
// it is refused.
func extensionValue(ext []byte) (*pyval.Value, error) {
	e, err := pyval.ExtensionDict(ext)
	if err != nil {
		return nil, err
	}
	if _, ok := e.TreeSize(4 * pyval.MaxExtension); !ok {
		return nil, fmt.Errorf("the extension's shared objects expand past %d bytes", 4*pyval.MaxExtension)
	}
	return e, nil
}

// mergeExtension adds a transaction's extension items to d, as Python
// storages do for history and undoLog entries. An extension it cannot
// read adds nothing (see the callers), and an item holding objects is left
// out: ZEO clients refuse to unpickle them, and the whole reply would be
// lost (with ZEO's own server, the client's connection breaks).
func mergeExtension(d *pyval.Value, ext []byte) {
	if len(ext) == 0 {
		return
	}
	e, err := extensionValue(ext)
	if err != nil {
		return
	}
	kv := e.PlainItems()
	for i := 0; i+1 < len(kv); i += 2 {
		d.SetItem(kv[i], kv[i+1])
	}
}

// newOids(n=100) → up to 100 fresh oids.
func (ss *session) newOids(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(0, 1)
	n := a.int(0, 100)
	if a.err != nil {
		return nil, a.err
	}
	if err := ss.writable(); err != nil {
		return nil, err
	}
	n = max(1, min(n, 100))
	oids := make([]zodb.Oid, 0, n)
	for range n {
		o, err := ss.srv.st.NewOid(ss.ctx)
		if err != nil {
			return nil, err
		}
		oids = append(oids, o)
	}
	return oidList(oids), nil
}

func (ss *session) newOid(a *args, _ *pyval.Value) (*pyval.Value, error) {
	if err := ss.writable(); err != nil {
		return nil, err
	}
	o, err := ss.srv.st.NewOid(ss.ctx)
	if err != nil {
		return nil, err
	}
	return oidValue(o), nil
}

// historySlack is how many revisions history reads beyond what it was
// asked for, to make up for those not yet published.
const historySlack = 16

// undoLog(first, last) → [ {id, time, user_name, description, size, ext...} ].
func (ss *session) undoLog(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(0, 2)
	first, last := a.int(0, 0), a.int(1, -20)
	if a.err != nil {
		return nil, a.err
	}
	return ss.undoEntries(first, last, nil)
}

// undoInfo(first, last, specification) is undoLog filtered by a dict
// whose items must all equal (or, for a ZopeUndo Prefix, prefix) the
// entry's.
func (ss *session) undoInfo(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(0, 3)
	first, last := a.int(0, 0), a.int(1, -20)
	spec := a.dict(2)
	if a.err != nil {
		return nil, a.err
	}
	return ss.undoEntries(first, last, spec)
}

func (ss *session) undoEntries(first, last int64, spec *pyval.Value) (*pyval.Value, error) {
	if last < 0 {
		last = first - last
	}
	first = max(first, 0)
	last = min(max(last, first), first+1<<20)
	limit := ss.srv.publishedTid() // transactions not yet published are left out
	filter := func(u *zodb.UndoInfo) bool {
		if u.Tid > limit {
			return false
		}
		return spec == nil || matchSpec(undoEntry(u), spec)
	}
	infos, err := ss.srv.st.UndoLog(ss.ctx, int(first), int(last), filter)
	if err != nil {
		return nil, err
	}
	entries := make([]*pyval.Value, 0, len(infos))
	for i := range infos {
		entries = append(entries, undoEntry(&infos[i]))
	}
	return pyval.List(entries...), nil
}

func undoEntry(u *zodb.UndoInfo) *pyval.Value {
	tb := u.Tid.Bytes()
	d := pyval.Dict(
		pyval.Str("id"), pyval.Bytes([]byte(base64.StdEncoding.EncodeToString(tb[:]))),
		pyval.Str("time"), pyval.Float(u.Time),
		pyval.Str("user_name"), pyval.Bytes(u.User),
		pyval.Str("description"), pyval.Bytes(u.Description),
		pyval.Str("size"), pyval.Int(u.Size),
	)
	// As FileStorage's undo log: an extension that cannot be read (here:
	// one holding more than plain values) leaves its items out rather
	// than the transaction, or the whole log, out.
	mergeExtension(d, u.Extension)
	return d
}

// matchSpec reports whether every item of spec matches d's.
func matchSpec(d, spec *pyval.Value) bool {
	kv := spec.DictItems()
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].AsText()
		if !ok {
			return false
		}
		got, ok := d.Lookup(k)
		if !ok || !valueMatches(got, kv[i+1]) {
			return false
		}
	}
	return true
}

// valueMatches compares an entry's value to a specification value: text
// and bytes compare by their bytes; a ZopeUndo Prefix (what Zope's undo
// screen sends) matches when the value's first '/'-separated parts are
// the prefix's path, ignoring the user name after the last space, as
// its __eq__ does.
func valueMatches(got, want *pyval.Value) bool {
	gs, gok := stringish(got)
	if path, ok := prefixPath(want); ok {
		if !gok {
			return false
		}
		parts := strings.Split(gs, "/")
		// The user name logged after the path does not count.
		if last := parts[len(parts)-1]; strings.Contains(last, " ") {
			parts[len(parts)-1] = last[:strings.LastIndex(last, " ")]
		}
		return slices.Equal(parts[:min(len(parts), len(path))], path)
	}
	ws, wok := stringish(want)
	if gok && wok {
		return gs == ws
	}
	gi, gok := got.AsInt()
	wi, wok := want.AsInt()
	return gok && wok && gi == wi
}

func stringish(v *pyval.Value) (string, bool) {
	if s, ok := v.AsText(); ok {
		return s, true
	}
	if b, ok := v.AsBytes(); ok {
		return string(b), true
	}
	return "", false
}

// prefixPath returns the path of a decoded ZopeUndo.Prefix.Prefix (its
// state holds "path", the value split at '/', and "length").
func prefixPath(v *pyval.Value) ([]string, bool) {
	if v.Kind() != pyval.KindObject || v.Class() != "ZopeUndo.Prefix.Prefix" || v.State() == nil {
		return nil, false
	}
	pv, ok := v.State().Lookup("path")
	if !ok {
		return nil, false
	}
	var path []string
	for _, it := range pv.Items() {
		s, ok := stringish(it)
		if !ok {
			return nil, false
		}
		path = append(path, s)
	}
	if n, ok := v.State().Lookup("length"); ok {
		if l, ok := n.AsInt(); ok && int(l) < len(path) {
			path = path[:max(l, 0)]
		}
	}
	return path, true
}

// undoa(trans_id, txn) records an undo of trans_id (undoLog's "id").
func (ss *session) undoa(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(2, 2)
	raw := a.bytes(0)
	if a.err != nil {
		return nil, a.err
	}
	tb, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(tb) != 8 {
		return nil, txnErrorf("undoa: %q is not a transaction id from undoLog", raw)
	}
	tid, _ := zodb.TidFromBytes(tb)
	return nil, ss.record(a, 1, op{kind: opUndo, tid: tid})
}

func (ss *session) serverStatus(a *args, _ *pyval.Value) (*pyval.Value, error) {
	m := ss.srv.statusMap()
	d := pyval.Dict()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v *pyval.Value
		switch x := m[k].(type) {
		case int64:
			v = pyval.Int(x)
		case int:
			v = pyval.Int(int64(x))
		case string:
			v = pyval.Str(x)
		case bool:
			v = pyval.Bool(x)
		case float64:
			v = pyval.Float(x)
		default:
			v = pyval.None()
		}
		d.SetItem(pyval.Str(k), v)
	}
	return d, nil
}

// statusMap is server_status (and the ruok probe's document).
func (s *Server) statusMap() map[string]any {
	s.pub.RLock()
	last, registered := s.published, len(s.sessions)
	s.pub.RUnlock()
	var lockTime any
	if at := s.lockedAt.Load(); at != 0 {
		lockTime = float64(at) / 1e9
	}
	return map[string]any{
		"connections":             int64(registered), // as ZEO: registered clients, not sockets
		"loads":                   s.stats.loads.Load(),
		"stores":                  s.stats.stores.Load(),
		"commits":                 s.stats.commits.Load(),
		"aborts":                  s.stats.aborts.Load(),
		"active_txns":             s.stats.active.Load(),
		"lock_time":               lockTime,
		"conflicts":               s.stats.conflicts.Load(),
		"conflicts_resolved":      s.stats.resolved.Load(),
		"start":                   s.start.Format(time.ANSIC),
		"waiting":                 s.stats.waiting.Load(),
		"timeout-thread-is-alive": false,
		"last-transaction":        last.Hex(),
	}
}

func (ss *session) ping(a *args, _ *pyval.Value) (*pyval.Value, error) { return pyval.None(), nil }

func (ss *session) pack(a *args, _ *pyval.Value) (*pyval.Value, error) {
	return nil, &clientError{qualname: excNotImplemented, args: []*pyval.Value{pyval.Str(
		"pack is not supported by zrs yet; the database keeps every revision (use Python's fspack offline meanwhile)")}}
}

func (ss *session) setClientLabel(a *args, _ *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	v := a.get(0)
	if v != nil {
		s, ok := stringish(v)
		if !ok {
			s = v.String()
		}
		ss.label.Store(&s)
	}
	return nil, nil
}

// getInvalidations(tid) → (last tid, oids changed after tid) or None when
// tid is not a transaction of this storage. The oids come from iterating
// the storage, so any tid still in the file is answered.
func (ss *session) getInvalidations(a *args, id *pyval.Value) (*pyval.Value, error) {
	a.count(1, 1)
	since := a.tid(0)
	if a.err != nil {
		return nil, a.err
	}
	s := ss.srv
	s.pub.RLock()
	upto := s.published
	s.pub.RUnlock()
	if since > upto {
		return pyval.None(), nil
	}
	seen := make(map[zodb.Oid]bool)
	var oids []zodb.Oid
	ok, err := changedSince(ss.ctx, s.st, since, upto, seen, &oids, true)
	if err != nil || !ok {
		return pyval.None(), err
	}
	// Catch up with what was published meanwhile, and queue the reply
	// before any later invalidation.
	s.pub.RLock()
	defer s.pub.RUnlock()
	if s.published > upto {
		if _, err := changedSince(ss.ctx, s.st, upto, s.published, seen, &oids, false); err != nil {
			return nil, err
		}
		upto = s.published
	}
	if err := ss.answer(id, pyval.Tuple(tidValue(upto), oidList(oids)), nil); err != nil {
		return nil, err
	}
	return nil, errReplied
}

// changedSince adds to oids the objects changed by transactions after
// since up to upto. With mustExist it reports false when since is not a
// transaction of the storage (nothing can be said about what the client
// missed).
func changedSince(ctx context.Context, st Storage, since, upto zodb.Tid, seen map[zodb.Oid]bool, oids *[]zodb.Oid, mustExist bool) (bool, error) {
	if since == upto {
		return true, nil
	}
	start := since + 1
	if mustExist {
		start = since
	}
	it, err := st.Iterate(ctx, start, upto)
	if err != nil {
		return false, err
	}
	defer it.Close()
	first := true
	for {
		t, err := it.Next(ctx)
		if errors.Is(err, errEOF) {
			return !mustExist || !first, nil
		}
		if err != nil {
			return false, err
		}
		if first && mustExist {
			first = false
			if t.Tid != since {
				return false, nil
			}
			continue
		}
		first = false
		for _, r := range t.Records {
			if !seen[r.Oid] {
				seen[r.Oid] = true
				*oids = append(*oids, r.Oid)
			}
		}
	}
}
