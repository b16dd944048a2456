"""Small raw-file helpers: find transactions and damage them on purpose."""

import struct

from ZODB.FileStorage import FileIterator

TXN_HEADER = struct.Struct(">8sQcHHH")  # tid, tlen, status, ulen, dlen, elen
DATA_HEADER = struct.Struct(">8s8sQQHQ")  # oid, tid, prev, tloc, vlen, plen


def txn_positions(path):
    """(pos, end) of every transaction, end = pos + tlen + 8, via ZODB's iterator."""
    it = FileIterator(str(path))
    try:
        return [(t._tpos, t._tend + 8) for t in it]
    finally:
        it.close()


def read_txn_header(data, pos):
    tid, tlen, status, ulen, dlen, elen = TXN_HEADER.unpack_from(data, pos)
    return {"tid": tid, "tlen": tlen, "status": status, "first_record": pos + 23 + ulen + dlen + elen}


def patch(path, pos, new_bytes):
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(new_bytes)


def add_to_tlen(path, pos, delta):
    data = open(path, "rb").read(pos + 23)
    tlen = read_txn_header(data, pos)["tlen"]
    patch(path, pos + 8, struct.pack(">Q", tlen + delta))


def set_status(path, pos, status):
    patch(path, pos + 16, status)
