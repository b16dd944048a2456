package zrsproto

import "github.com/zrs-replication/zrs/core/pyval"

// extensionDict turns a stored extension (empty, or a pickle of a dict)
// into the dict a T message carries (pyval.ExtensionDict). Errors wrap
// ErrProtocol.
func extensionDict(stored []byte) (*pyval.Value, error) {
	d, err := pyval.ExtensionDict(stored)
	if err != nil {
		return nil, protoError(err)
	}
	return d, nil
}

// extensionBytes turns the dict of a T message into the bytes a Python
// ZODB secondary would store for it (pyval.ExtensionBytes): empty for an
// empty dict, otherwise pickle.dumps(d, 3) of the dict as unpickled from
// the message. Errors wrap ErrProtocol.
func extensionBytes(v *pyval.Value) ([]byte, error) {
	b, err := pyval.ExtensionBytes(v)
	if err != nil {
		return nil, protoErrorf("T %v", err)
	}
	return b, nil
}
