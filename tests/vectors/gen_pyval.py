"""Print the ZEO-dialect pickle vectors core/pyval's Go tests check byte for byte.

Output goes to core/pyval/testdata/zeo-pickles.txt (tests/test_pyval_vectors.py
regenerates it and compares). Every pickle is what a ZEO client or server
writes: zodbpickle's Pickler, protocol 3, fast mode (no memo).

Line format:
  pickle NAME HEX VALUE
HEX is the pickle; VALUE (the rest of the line) is the Python value as typed
JSON: null, true/false, "text" (a str), [..] (a list), {"i": "123"} (an int),
{"f": "<8 bytes of the IEEE double, big-endian, hex>"}, {"b": "<hex>"} (bytes),
{"t": [..]} (a tuple), {"d": [[key, value], ..]} (a dict, in order).
"""
import importlib.metadata
import io
import json
import math
import struct

from zodbpickle import pickle

Z64 = b'\0' * 8


def p64(n):
    return struct.pack('>Q', n)


def zeo_pickle(obj):
    """Pickle obj as ZEO does: protocol 3, fast mode."""
    f = io.BytesIO()
    p = pickle.Pickler(f, 3)
    p.fast = True
    p.dump(obj)
    return f.getvalue()


def typed(v):
    """The typed JSON form of v (see the module doc)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return {'i': str(v)}
    if isinstance(v, float):
        return {'f': struct.pack('>d', v).hex()}
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return {'b': v.hex()}
    if isinstance(v, tuple):
        return {'t': [typed(x) for x in v]}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, dict):
        return {'d': [[typed(k), typed(x)] for k, x in v.items()]}
    raise TypeError(type(v))


INTS = [0, 1, 255, 256, 65535, 65536, -1, -256, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
        2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 2**100, -2**100, 140186712695568]
FLOATS = [0.0, -0.0, 1.0, 1.5, -2.25, 1 / 3, 1e300, 5e-324, math.inf, -math.inf, math.nan, 1700000000.123456]
BYTES = [b'', b'\x00', b'x', b'\xff' * 255, bytes(range(256)), bytes(range(256)) * 273 + b'abc']
TEXTS = ['', 'a', '.reply', '\xe9t\xe9', '\u20ac', '\U0001f600', 'x' * 300, 'line\nbreak']

GET_INFO = {
    'length': 2, 'size': 1046, 'name': 'Data.fs', 'supportsUndo': True,
    'supports_record_iternext': True,
    'interfaces': (('ZODB.interfaces', 'IStorageRestoreable'), ('ZODB.interfaces', 'IStorageIteration'),
                   ('zope.interface', 'Interface')),
}
CONFLICT = {'message': 'database conflict error', 'oid': p64(1),
            'class_name': 'persistent.mapping.PersistentMapping', 'serials': (p64(9), p64(7))}

MESSAGES = [
    # calls, as a ZEO 5/6 client sends them
    ('register', (1, False, 'register', ('1', 0))),
    ('register_ro', (2, False, 'register', ('1', True))),
    ('heartbeat', (-1, 0, '.reply', None)),
    ('loadBefore', ((Z64, p64(1)), False, 'loadBefore', (Z64, p64(1)))),
    ('tpc_begin', (0, True, 'tpc_begin', (140186712695568, b'', b'initial database creation', {}, None, ' '))),
    ('tpc_begin_ext', (0, True, 'tpc_begin', (140186712699984, b'/ alice', b'first commit', {'foo': 'bar'}, p64(5), ' '))),
    ('storea', (0, True, 'storea', (p64(2), Z64, b'\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.', 140186712699984))),
    ('storea_none_serial', (0, True, 'storea', (p64(2), None, b'data', 7))),
    ('vote', (3, False, 'vote', (140186712695568,))),
    ('new_oids', (5, False, 'new_oids', ())),
    ('undoLog', (11, False, 'undoLog', (0, -20))),
    ('iterator_gc', (0, True, 'iterator_gc', ([1, 2, 3],))),
    ('history', (12, False, 'history', (p64(1), 10))),
    # replies and one-way calls, as a ZEO server sends them
    ('reply_tid', (1, 0, '.reply', Z64)),
    ('reply_none', (3, 0, '.reply', None)),
    ('reply_empty_list', (3, 0, '.reply', [])),
    ('reply_oids', (5, 0, '.reply', [p64(i) for i in range(1, 101)])),
    ('reply_get_info', (2, 0, '.reply', GET_INFO)),
    ('reply_load', ((Z64, p64(9)), 0, '.reply', (b'\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.', p64(3), None))),
    ('reply_poskeyerror', ((Z64, p64(1)), 2, '.reply', ('ZODB.POSException.POSKeyError', (Z64,)))),
    ('reply_readonly', (1, 2, '.reply', ('ZODB.POSException.ReadOnlyError', ()))),
    ('reply_conflict', (3, 2, '.reply', ('ZODB.POSException.ConflictError', CONFLICT))),
    ('reply_vote_conflicts', (3, 0, '.reply', [{'oid': p64(1), 'serials': (p64(9), p64(7)), 'data': b'd'}])),
    ('reply_history', (12, 0, '.reply', [{'time': 1700000000.5, 'tid': p64(9), 'user_name': b'', 'description': b'x',
                                         'size': 166, 'foo': 'bar'}])),
    ('reply_invalidations', (7, 0, '.reply', (p64(9), [p64(1), p64(2)]))),
    ('reply_iterator_next', (8, 0, '.reply', (p64(9), ' ', b'', b'', {}))),
    ('reply_big_id', (9, 0, '.reply', 2**64 - 1)),
    ('info', (0, True, 'info', ({'length': 1, 'size': 166},))),
    ('invalidateTransaction', (0, True, 'invalidateTransaction', (p64(9), [Z64, p64(2), p64(1), p64(2)]))),
    ('receiveBlobChunk', (0, True, 'receiveBlobChunk', (p64(2), p64(9), bytes(range(256)) * 230))),
    # containers
    ('tuples', tuple(tuple(range(n)) for n in range(6))),
    ('nested', {'a': [(), [[]], {}], 'b': ({'c': (None, True, False)},), 'e': [[[[[1]]]]]}),
    ('dict1', {'k': 'v'}),
    ('dict999', {'k%d' % i: i for i in range(999)}),
    ('dict1000', {'k%d' % i: i for i in range(1000)}),
    ('dict1001', {'k%d' % i: i for i in range(1001)}),
    ('dict2000', {'k%d' % i: None for i in range(2000)}),
    ('dict_keys', {1: 'int', b'k': 'bytes', None: 'none', (1, 'a'): 'tuple', 2.5: 'float', True: 'bool'}),
    ('list1', [1]),
    ('list1000', list(range(1000))),
    ('list1001', list(range(1001))),
    ('list2001', [None] * 2001),
]


def main():
    print('# ZEO pickle vectors from tests/vectors/gen_pyval.py (zodbpickle %s, protocol 3, fast mode). Do not edit.'
          % importlib.metadata.version('zodbpickle'))
    values = [('int%d' % i, v) for i, v in enumerate(INTS)]
    values += [('float%d' % i, v) for i, v in enumerate(FLOATS)]
    values += [('bytes%d_len%d' % (i, len(v)), v) for i, v in enumerate(BYTES)]
    values += [('str%d' % i, v) for i, v in enumerate(TEXTS)]
    values += [('none', None), ('true', True), ('false', False)]
    values += MESSAGES
    for name, v in values:
        print('pickle %s %s %s' % (name, zeo_pickle(v).hex(),
                                   json.dumps(typed(v), separators=(',', ':'))))


if __name__ == '__main__':
    main()
