package zodb

// TxnStatus is the status byte of a committed transaction.
type TxnStatus byte

// Transaction statuses as stored in a FileStorage transaction header.
const (
	StatusCommitted  TxnStatus = ' ' // an ordinary committed transaction
	StatusPacked     TxnStatus = 'p' // written by pack (or copied from a packed one); not undoable
	StatusCheckpoint TxnStatus = 'c' // voted but not finished; never seen by readers
)

// Valid reports whether s may appear on a committed transaction (' ' or 'p').
func (s TxnStatus) Valid() bool { return s == StatusCommitted || s == StatusPacked }

// MaxMetaLen is the longest user, description or extension a transaction may
// carry (each is stored with a 16-bit length).
const MaxMetaLen = 65535

// TxnMeta is the metadata of a transaction.
type TxnMeta struct {
	User        []byte // raw bytes; ZODB stores "path user", UTF-8
	Description []byte // raw bytes, UTF-8
	Extension   []byte // empty, or a pickled dict (protocol 3)
}

// TxnInfo is one committed transaction as an iterator yields it.
type TxnInfo struct {
	Tid    Tid
	Status TxnStatus
	TxnMeta
	Pos     int64        // storage-specific position of the transaction, -1 if none
	Records []DataRecord // in storage order
}

// DataRecord is one object revision inside a transaction.
type DataRecord struct {
	Oid Oid
	// Tid is the record's own serial. It normally equals the transaction's
	// tid; a restore may give a different one.
	Tid Tid
	// Data is the object's pickle, resolved through backpointers. It is nil
	// when the revision deletes the object or undoes its creation.
	Data []byte
	// DataTxn is, for a record that refers to data stored by an earlier
	// transaction (a backpointer), the tid of the transaction holding the
	// referenced record; 0 when the data is inline or nil.
	DataTxn Tid
}

// HistoryEntry describes one revision of an object, newest first.
type HistoryEntry struct {
	Tid         Tid
	Time        float64 // seconds since the epoch, from the tid
	User        []byte
	Description []byte
	Extension   []byte
	Size        int // length of the revision's data, 0 for a deletion
}

// UndoInfo describes one undoable transaction, as undoLog reports it.
type UndoInfo struct {
	Tid         Tid
	Time        float64 // seconds since the epoch, from the tid
	User        []byte
	Description []byte
	Extension   []byte // raw pickled dict, possibly empty
	Size        int64  // length of the transaction record in bytes
}
