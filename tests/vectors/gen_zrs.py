"""Print the zc.zrs protocol vectors zrs's Go tests check byte for byte.

Output goes to core/zrsproto/testdata/vectors.txt (tests/test_zrs_vectors.py
regenerates it and compares). Everything is produced by CPython's pickle the
way a Python 3 zc.zrs primary does (protocol 1, fast mode) and by ZODB's
TransactionMetaData for the extension bytes a FileStorage stores.

Line formats (hex fields; "-" is empty):
  msg NAME PAYLOAD                    one control message
  ext NAME STORED SENT SECONDARY      STORED: the extension as ZODB stores the dict;
                                      SENT: T carrying it, as a primary sends it;
                                      SECONDARY: what a Python secondary stores from SENT
  alt NAME PROTO PAYLOAD               the msg, pickled with the memo by pickle.dumps(obj, PROTO)
  extpy2 NAME STORED SENT             STORED: a Python 2 (protocol 1) extension pickle
  stream NAME start TID | frame LABEL PAYLOAD | end
"""
import hashlib
import importlib.metadata
import io
import math
import pickle
import random
import struct

from ZODB._compat import loads as zodb_loads
from ZODB.Connection import TransactionMetaData

TID = bytes.fromhex('036c6b90f7777778')
OID1 = bytes.fromhex('0000000000000001')
DTX = bytes.fromhex('036c6b90f3333333')
DIGEST = bytes.fromhex('d41d8cd98f00b204e9800998ecf8427e')
Z64 = b'\0' * 8


def fast1(obj):
    """Pickle obj as zc.zrs does: protocol 1, fast mode (no memo)."""
    f = io.BytesIO()
    p = pickle.Pickler(f, 1)
    p.fast = True
    p.dump(obj)
    return f.getvalue()


def h(b):
    return b.hex() if b else '-'


def ext_bytes(d):
    return TransactionMetaData(b'', b'', d).extension_bytes


MESSAGES = [
    ('T_initial', ('T', (TID, ' ', b'', b'initial database creation', {}))),
    ('T_ext', ('T', (TID, 'p', b'/ admin', b'desc', {'user_name': 'x'}))),
    ('T_binary', ('T', (TID, ' ', 'h\xe9llo'.encode(), b'\x00\xff\x80 raw', {}))),
    ('S_none', ('S', (OID1, TID, '', None))),
    ('S_oid0', ('S', (Z64, TID, '', None))),
    ('S_backptr', ('S', (OID1, TID, '', DTX))),
    ('B_0', ('B', (OID1, TID, '', None, 0))),
    ('B_1', ('B', (OID1, TID, '', None, 1))),
    ('B_300', ('B', (OID1, TID, '', DTX, 300))),
    ('B_70000', ('B', (OID1, TID, '', None, 70000))),
    ('C', ('C', (DIGEST,))),
    ('C_zero', ('C', (b'\0' * 16,))),
    ('C_old', ('C', ())),
]

SHARED = 'a shared string'
EXTENSIONS = [
    ('empty', {}),
    ('user_name', {'user_name': 'x'}),
    ('typical', {'user_name': 'alice', 'request': '/app/edit', 'size': 3}),
    ('ints', {'a': 0, 'b': 255, 'c': 256, 'd': 65535, 'e': 65536, 'f': -1, 'g': -129,
              'h': 2**31 - 1, 'i': -2**31, 'j': 2**31, 'k': -2**31 - 1, 'l': 2**63,
              'm': -2**63 - 1, 'n': 2**70, 'o': -2**64, 'p': 127, 'q': -128, 'r': 2**1000}),
    ('floats', {'a': 0.0, 'b': -0.0, 'c': 1.5, 'd': 1e300, 'e': math.inf, 'f': -math.inf, 'g': 1 / 3}),
    ('consts', {'t': True, 'f': False, 'n': None}),
    ('bytes', {'e': b'', 'one': b'x', 'hi': b'\xff', 'long': bytes(range(256)) * 2, 'mid': b'ab\x00'}),
    ('text', {'ascii': 'abc', 'latin': '\xe9t\xe9', 'bmp': '\u20ac', 'astral': '\U0001f600',
              'surrogate': 'a\udc80', 'long': 'x' * 300, 'empty': ''}),
    ('singletons', {'a': 'a', 'b': 'x', 'c': 'x', 'd': '\xe9', 'e': '\xe9', 'f': '\u0100', 'g': '\u0100',
                    'h': b'x', 'i': b'x', 'j': b'', 'k': b'', 'l': '', 'm': '', 'n': 'ab', 'o': 'ab',
                    'p': b'ab', 'q': b'ab', 'r': (), 's': ()}),
    ('shared', {'a': SHARED, 'b': SHARED, 'c': [SHARED], 'd': (SHARED, SHARED)}),
    ('tuples', {'t0': (), 't1': (1,), 't2': (1, 'a'), 't3': (1, 2, 3), 't4': (1, 2, 3, 4),
                'nested': ((1,), ((),)), (1, 'k'): 'tuple key'}),
    ('lists', {'l0': [], 'l1': [1], 'l2': [1, 2], 'mixed': [None, True, 'x', b'y', [[]], {}]}),
    ('nested', {'d': {'e': {'f': {}}, 'g': [{'h': 1}]}}),
    ('keys', {1: 'int', 2.5: 'float', b'k': 'bytes', None: 'none', True: 'bool', '\xe9': 'latin'}),
    ('d1000', {'k%d' % i: i for i in range(1000)}),
    ('d1001', {'k%d' % i: i for i in range(1001)}),
    ('d2000', {i: 'v' for i in range(2000)}),
    ('list1001', {'l': list(range(1001)), 'l1000': list(range(1000))}),
    ('memo300', {'k%d' % i: 'v%d' % i for i in range(300)}),
]


def random_value(rnd, depth):
    kind = rnd.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return rnd.choice([None, True, False])
    if kind == 1:
        return rnd.choice([0, 1, 255, 256, 65536, -1, -70000, 2**40, -2**40, 2**80])
    if kind == 2:
        return rnd.randint(-2**34, 2**34)
    if kind == 3:
        return rnd.choice([0.5, -2.25, 1e-300, rnd.random()])
    if kind in (4, 5):
        return ''.join(rnd.choice('ab\xe9\u20ac\U0001f600 ') for _ in range(rnd.randrange(4)))
    if kind in (6, 7):
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(4)))
    if kind == 8:
        return tuple(random_value(rnd, depth + 1) for _ in range(rnd.randrange(5)))
    if kind == 9:
        return [random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return random_dict(rnd, depth + 1)


def random_key(rnd):
    return rnd.choice([
        lambda: ''.join(rnd.choice('abc\xe9') for _ in range(rnd.randrange(3))),
        lambda: rnd.randrange(-3, 300),
        lambda: bytes(rnd.randrange(250, 256) for _ in range(rnd.randrange(2))),
        lambda: (rnd.randrange(3), 'k'),
    ])()


def random_dict(rnd, depth=0):
    return {random_key(rnd): random_value(rnd, depth) for _ in range(rnd.randrange(6))}


def ext_line(name, d):
    stored = ext_bytes(d)
    sent = fast1(('T', (TID, ' ', b'', b'', zodb_loads(stored) if stored else {})))
    secondary = ext_bytes(pickle.loads(sent)[1][4])
    # A primary re-reading what a secondary stored sends the same T again.
    again = fast1(('T', (TID, ' ', b'', b'', zodb_loads(secondary) if secondary else {})))
    assert again == sent, name
    assert secondary == pickle.dumps(pickle.loads(sent)[1][4], 3) or not secondary, name
    print('ext %s %s %s %s' % (name, h(stored), h(sent), h(secondary)))


# Extensions as Python 2 ZODB stored them (cPickle protocol 1: str as
# SHORT_BINSTRING, with memo PUTs). Hand-assembled here, since no Python 2
# runs in this environment; what matters is how Python 3 ZODB reads them.
PY2_EXTENSIONS = [
    ('py2_user', b'}q\x01U\tuser_nameq\x02U\x05aliceq\x03s.'),
    ('py2_nonascii', b'}q\x01(U\x01kq\x02U\x02\xe9\xffq\x03U\x01nq\x04K\x05u.'),
    ('py2_unicode', b'}q\x01(U\x01kq\x02X\x02\x00\x00\x00\xc3\xa9q\x03U\x01lq\x04L12345678901234567890L\nu.'),
]


def stream(name, start, txns):
    """Frames of a primary's stream; txns are (T fields, [(S or B fields, data, chunks)])."""
    print('stream %s start %s' % (name, start.hex()))
    md5 = hashlib.md5(start)

    def send(label, payload):
        md5.update(payload)
        print('frame %s %s' % (label, h(payload)))

    for tfields, records in txns:
        send('T', fast1(('T', tfields)))
        for fields, data, chunks in records:
            send('B' if len(fields) == 5 else 'S', fast1(('B' if len(fields) == 5 else 'S', fields)))
            send('DATA', data or b'')
            for c in chunks:
                send('CHUNK', c)
        send('C', fast1(('C', (md5.digest(),))))
    print('end')


def main():
    print('# zc.zrs vectors from tests/vectors/gen_zrs.py (pickle from CPython 3, ZODB %s). Do not edit.'
          % importlib.metadata.version('ZODB'))
    for name, obj in MESSAGES:
        print('msg %s %s' % (name, fast1(obj).hex()))
    # The same messages pickled with the memo or newer protocols, which a
    # decoder should tolerate although zc.zrs never sends them.
    for name, obj in MESSAGES:
        for proto in (1, 2, 3):
            print('alt %s %d %s' % (name, proto, pickle.dumps(obj, proto).hex()))
    for name, d in EXTENSIONS:
        ext_line(name, d)
    rnd = random.Random(20240503)
    for i in range(300):
        ext_line('random%d' % i, random_dict(rnd))
    for name, stored in PY2_EXTENSIONS:
        sent = fast1(('T', (TID, ' ', b'', b'', zodb_loads(stored))))
        print('extpy2 %s %s %s' % (name, h(stored), h(sent)))

    tid = [bytes.fromhex(x) for x in ('036c6b90f7777778', '036c6b90fbbbbbbb', '036c6b9100000000', '036c6b9104444444')]
    root = b'\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s.'
    obj1 = b'\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01.'
    obj2 = b'\x80\x03c__main__\nThing\nq\x00.\x80\x03K\x2a.'
    oid = lambda n: struct.pack('>Q', n)
    stream('plain', Z64, [
        ((tid[0], ' ', b'', b'initial database creation', {}), [((Z64, tid[0], '', None), root, [])]),
        ((tid[1], ' ', b'/ alice', b'add two', {'user_name': 'alice', 'n': 2}),
         [((oid(1), tid[1], '', None), obj1, []), ((oid(2), tid[1], '', None), obj2, [])]),
        ((tid[2], ' ', b'', b'undo', {}),
         [((oid(1), tid[2], '', tid[1]), obj1, []), ((oid(2), tid[2], '', None), None, [])]),
        ((tid[3], 'p', b'', b'', {}), []),
    ])
    stream('resume', tid[1], [
        ((tid[2], ' ', b'', b'undo', {}),
         [((oid(1), tid[2], '', tid[1]), obj1, []), ((oid(2), tid[2], '', None), None, [])]),
    ])
    blob = b'\x80\x03cZODB.blob\nBlob\nq\x00.N.'
    stream('blob', Z64, [
        ((tid[0], ' ', b'', b'initial database creation', {}), [((Z64, tid[0], '', None), root, [])]),
        ((tid[1], ' ', b'', b'', {}), [((oid(1), tid[1], '', None, 1), blob, [b'test\n'])]),
    ])


if __name__ == '__main__':
    main()
