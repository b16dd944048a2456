"""Print the transaction-extension vectors with objects that core/pyval's Go tests check.

Output goes to core/pyval/testdata/ext-objects.txt (tests/test_pyval_vectors.py
regenerates it and compares). Applications that use FileStorage directly can
put any picklable value into a transaction's extension; these are the values
such extensions hold (datetime, Decimal, set, UUID, OrderedDict, deque), each
written three ways.

Line format:
  ext NAME STORED T1 BACK
STORED is what Python FileStorage stores for the extension dict (zodbpickle,
protocol 3, with the memo); T1 is the dict as a zc.zrs primary sends it inside
a T message (pickle protocol 1, fast mode); BACK is what a Python secondary
stores after loading T1: zodbpickle.dumps(pickle.loads(T1), 3).
"""
import collections
import datetime
import decimal
import importlib.metadata
import pickle
import uuid

from zodbpickle import pickle as zpickle

from gen_zrs import fast1  # pickles as a zc.zrs primary pickles T messages

WHEN = datetime.datetime(2026, 11, 26, 9, 30, 5, 123456)
SHARED = datetime.date(2020, 1, 2)
UTC = WHEN.replace(tzinfo=datetime.timezone.utc)


class Job:
    """A plain class: pickled by copyreg's default rules (__main__.Job)."""

    def __init__(self, state):
        self.state = state

CASES = [
    ('datetime', {'when': WHEN}),
    ('datetime_utc', {'when': WHEN.replace(tzinfo=datetime.timezone.utc)}),
    ('date_time_delta', {'d': SHARED, 't': datetime.time(12, 0), 'dt': datetime.timedelta(days=2, seconds=5)}),
    ('shared', {'a': SHARED, 'b': SHARED, 'c': [SHARED]}),
    ('set', {'tags': {'x'}}),
    ('frozenset', {'tags': frozenset(['y'])}),
    ('decimal', {'amount': decimal.Decimal('1.50'), 'user_name': 'alice'}),
    ('uuid', {'request': uuid.UUID(int=2**100 + 5)}),
    ('ordereddict', {'o': collections.OrderedDict([('a', 1), ('b', [2])])}),
    ('ordereddict1', {'o': collections.OrderedDict([('a', 1)])}),
    ('deque', {'q': collections.deque([1, 'two', b'3'], maxlen=5)}),
    ('deque1', {'q': collections.deque([1])}),
    ('deque1000', {'q': collections.deque(range(1000))}),
    ('deque1001', {'q': collections.deque(range(1001))}),
    ('class_as_value', {'cls': decimal.Decimal, 'fn': len}),
    ('nested', {'x': {'y': (WHEN, [decimal.Decimal('-0')])}, 'z': 'plain'}),
    # CPython shares these again after loading: timezone.utc is one object,
    # state-dict keys are interned.
    ('two_utc', {'start': UTC, 'end': UTC + datetime.timedelta(hours=1)}),
    ('two_uuid', {'a': uuid.UUID(int=5), 'b': uuid.UUID(int=6)}),
    ('two_instances', {'a': Job('done'), 'b': Job('failed')}),
    # Objects and classes as dict keys.
    ('object_keys', {'per_day': {datetime.date(2020, 1, 2): 3, datetime.date(2020, 1, 3): 4}, 'cls': {int: 'x'}}),
    # A namedtuple: copy_reg._reconstructor(cls, tuple, items) below protocol 2.
    ('namedtuple', {'dt': decimal.Decimal('1.50').as_tuple()}),
    # Written below protocol 3 under Python 2 names: exceptions, UserDict.
    ('exception', {'error': KeyError('k')}),
    ('userdict', {'u': collections.UserDict({'k': 1})}),
]


def main():
    print('# Extension vectors with objects from tests/vectors/gen_extobj.py (zodbpickle %s). Do not edit.'
          % importlib.metadata.version('zodbpickle'))
    for name, ext in CASES:
        stored = zpickle.dumps(ext, 3)
        t1 = fast1(ext)
        back = zpickle.dumps(pickle.loads(t1), 3)
        print('ext %s %s %s %s' % (name, stored.hex(), t1.hex(), back.hex()))


if __name__ == '__main__':
    main()
