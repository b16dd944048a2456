package zrsproto

// extensionDict turns a stored extension (empty, or a pickle of a dict)
// into the dict a T message carries. Python 2 strings in it become text
// when they are ASCII and bytes otherwise, as ZODB's own unpickler
// (encoding='ASCII', errors='bytes') reads them.
func extensionDict(stored []byte) (*value, error) {
	if len(stored) == 0 {
		return &value{k: kDict}, nil
	}
	v, err := unpickle(stored)
	if err != nil {
		return nil, err
	}
	if v.k != kDict {
		return nil, protoErrorf("extension is a %v, not a dict", v.k)
	}
	return normalize(v, make(map[*value]*value)), nil
}

// extensionBytes turns the dict of a T message into the bytes a Python
// ZODB secondary would store for it: empty for an empty dict, otherwise
// pickle.dumps(d, 3) of the dict as unpickled from the message.
func extensionBytes(v *value) ([]byte, error) {
	if v.k == kNone {
		return nil, nil
	}
	if v.k != kDict {
		return nil, protoErrorf("T extension is a %v, not a dict", v.k)
	}
	if v.dictLen() == 0 {
		return nil, nil
	}
	b, err := newPickler(3, maxExtension).pickle(normalize(v, make(map[*value]*value)))
	if err != nil {
		return nil, protoErrorf("T extension: %v", err)
	}
	if len(b) > maxExtension {
		return nil, protoErrorf("T extension pickles to %d bytes, more than FileStorage's %d", len(b), maxExtension)
	}
	return b, nil
}

// normalize returns v with Python 2 strings replaced by text (ASCII) or
// bytes, keeping object identity: a node shared in v is shared in the
// result. Cycles are kept as they are (the picklers refuse them).
func normalize(v *value, seen map[*value]*value) *value {
	if n, ok := seen[v]; ok {
		return n
	}
	switch v.k {
	case kBinStr:
		n := &value{k: kBytes, s: v.s}
		if isASCII(v.s) {
			n.k = kStr
		}
		seen[v] = n
		return n
	case kTuple, kList, kDict:
		n := &value{k: v.k, items: make([]*value, len(v.items))}
		seen[v] = n
		for i, it := range v.items {
			n.items[i] = normalize(it, seen)
		}
		return n
	}
	seen[v] = v
	return v
}
