"""Generate a FileStorage with Python's ZODB, covering what zrs must read.

The content is a function of the seed, and transaction ids come from a fake
clock, so two runs with the same arguments give byte-identical files.

What the file contains (each kind appears many times in the default 600
transactions):
  - an OOBTree growing to thousands of keys (bucket splits: many objects);
  - PersistentMappings and PersistentLists created and modified, with str
    (non-ASCII too), bytes, ints (big ones too), floats, bools, None, lists,
    tuples and nested dicts;
  - objects deleted with IExternalGC.deleteObject in a manual two-phase commit
    whose metadata is not valid UTF-8;
  - undo of modifications, undo of undo (backpointers to backpointers), undo of
    a creation (records with no data), and one transaction undoing two earlier
    ones (two records of one oid in one transaction);
  - empty transactions;
  - user/description with non-ASCII text, extensions with str, int, float,
    nested, bytes values and int keys;
  - optionally a pack in the middle (status 'p' transactions).
"""

import contextlib
import random
import time as _time
import types

import transaction
from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping
from persistent.TimeStamp import TimeStamp

import ZODB
import ZODB.BaseStorage
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileIterator, FileStorage
from ZODB.serialize import referencesf

# 2024-01-01T00:00:00Z: all tids are in the past, so ZODB never complains.
CLOCK_START = 1704067200.0

USERS = ["", "alice", "jürgen ☃", "zoë", "管理者", "bob"]
NOTES = ["", "déjà vu", "edit ✎", "bulk insert", "naïve café", "日本語のメモ", "plain"]


@contextlib.contextmanager
def fake_clock(start=CLOCK_START, step=1.25):
    """Make ZODB's tid choice deterministic: each tpc_begin sees a later time."""
    state = {"now": start}

    def now():
        state["now"] += step
        return state["now"]

    real = ZODB.BaseStorage.time
    ZODB.BaseStorage.time = types.SimpleNamespace(time=now, gmtime=_time.gmtime)
    try:
        yield
    finally:
        ZODB.BaseStorage.time = real


class Generator:
    def __init__(self, path, seed):
        self.rng = random.Random(seed)
        self.storage = FileStorage(str(path), create=True)
        self.db = ZODB.DB(self.storage)
        self.conn = self.db.open()
        self.root = self.conn.root()
        self.txns = 1  # "initial database creation" by ZODB.DB
        self.next_key = 0
        self.next_name = 0

    # -- values --------------------------------------------------------------

    def value(self, depth=0):
        r = self.rng
        kind = r.randrange(12 if depth < 2 else 8)
        if kind == 0:
            return r.randrange(-1000, 1000)
        if kind == 1:
            return r.choice([2**31, -(2**63), 2**70 + r.randrange(1000), 0])
        if kind == 2:
            return r.choice([0.5, -1.25, 3.141592653589793, 1e100, r.random()])
        if kind == 3:
            return r.choice(["", "x", "déjà vu", "snow ☃", "中文", "a\nb\t\"q\"\\"]) * r.randrange(1, 4)
        if kind == 4:
            return bytes(r.randrange(256) for _ in range(r.randrange(0, 40)))
        if kind == 5:
            return r.choice([None, True, False])
        if kind == 6:
            return "s%d" % r.randrange(10**6)
        if kind == 7:
            return "long " * r.randrange(5, 60)
        if kind == 8:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if kind == 9:
            return tuple(self.value(depth + 1) for _ in range(r.randrange(4)))
        if kind == 10:
            return {"k%d" % i: self.value(depth + 1) for i in range(r.randrange(4))}
        return {i: self.value(depth + 1) for i in range(r.randrange(3))}

    def name(self):
        self.next_name += 1
        return "n%05d" % self.next_name

    # -- commits -------------------------------------------------------------

    def metadata(self):
        """Set user, description and sometimes an extension on the current txn."""
        r = self.rng
        t = transaction.get()
        user = r.choice(USERS)
        if user:
            t.setUser(user)
        note = r.choice(NOTES)
        if note:
            t.note(note)
        if r.random() < 0.3:
            t.setExtendedInfo("k", "v")
            t.setExtendedInfo("n", r.randrange(-5, 10**6))
            if r.random() < 0.5:
                t.setExtendedInfo("nested", {"a": [1, 2, (3, "x")], "b": b"\x00\xff", "f": 1.5,
                                             "big": 2**70, "none": None, "flag": True})
            if r.random() < 0.3:
                t.extension[7] = "int key"

    def commit(self):
        transaction.commit()
        self.txns += 1

    def last_undo_id(self):
        return self.db.undoLog(0, 1)[0]["id"]

    def storage_txn(self, user, description, extension, body):
        """A manual two-phase commit on the storage, outside the Connection."""
        st = self.storage
        t = TransactionMetaData(user, description, extension)
        st.tpc_begin(t)
        body(t)
        st.tpc_vote(t)
        tid = st.tpc_finish(t)
        self.txns += 1
        return tid

    # -- actions -------------------------------------------------------------

    def setup(self):
        root = self.root
        root["tree"] = OOBTree()
        root["maps"] = PersistentMapping()
        root["lists"] = PersistentMapping()
        root["trash"] = PersistentMapping()
        root["undo"] = PersistentMapping({"target": PersistentMapping({"v": 0})})
        transaction.get().setUser("jürgen ☃")
        transaction.get().note("déjà vu")
        transaction.get().setExtendedInfo("k", "v")
        self.commit()

    def tree_insert(self):
        tree = self.root["tree"]
        for _ in range(self.rng.randrange(30, 90)):
            self.next_key += 1
            key = "key%07d" % self.rng.randrange(10**7)
            tree[key] = self.value()
        self.metadata()
        self.commit()

    def tree_delete(self):
        tree = self.root["tree"]
        keys = list(tree.keys())
        for k in self.rng.sample(keys, min(len(keys), self.rng.randrange(1, 40))):
            del tree[k]
        self.metadata()
        self.commit()

    def map_new(self):
        m = PersistentMapping({"k%d" % i: self.value() for i in range(self.rng.randrange(1, 8))})
        self.root["maps"][self.name()] = m
        if self.rng.random() < 0.3:
            self.root["lists"][self.name()] = PersistentList(self.value() for _ in range(5))
        self.metadata()
        self.commit()

    def map_modify(self):
        maps = self.root["maps"]
        if not maps:
            return self.map_new()
        for name in self.rng.sample(sorted(maps), min(len(maps), self.rng.randrange(1, 4))):
            m = maps[name]
            m["k%d" % self.rng.randrange(10)] = self.value()
            if self.rng.random() < 0.2:
                m["ref"] = maps[self.rng.choice(sorted(maps))]  # a persistent reference
        self.metadata()
        self.commit()

    def delete_object(self):
        """Unlink an object, then drop it with deleteObject in a manual tpc."""
        trash = self.root["trash"]
        name = self.name()
        trash[name] = PersistentMapping({"doomed": self.value()})
        self.metadata()
        self.commit()
        oid = trash[name]._p_oid
        del trash[name]
        self.commit()
        serial = self.storage.load(oid)[1]
        user = self.rng.choice([b"gc \xff\xfe not utf-8", "gc ☃".encode(), b""])
        self.storage_txn(user, b"deleteObject \xc3(", {"gc": True, "oid": oid},
                         lambda t: self.storage.deleteObject(oid, serial, t))

    def empty_txn(self):
        self.storage_txn(b"", "empty ∅".encode(), {}, lambda t: None)

    def undo_modification(self):
        target = self.root["undo"]["target"]
        target["v"] = target["v"] + 1
        target["payload"] = self.value()
        self.metadata()
        self.commit()
        self.db.undo(self.last_undo_id())
        transaction.get().note("undo ↶")
        self.commit()
        if self.rng.random() < 0.5:  # undo the undo: a backpointer to a backpointer
            self.db.undo(self.last_undo_id())
            transaction.get().note("redo ↷")
            self.commit()

    def undo_creation(self):
        holder = self.root["undo"]
        holder[self.name()] = PersistentMapping({"short-lived": self.value()})
        self.commit()
        self.db.undo(self.last_undo_id())
        self.metadata()
        self.commit()

    def undo_two_at_once(self):
        """One transaction undoing two others that touched the same object."""
        target = self.root["undo"]["target"]
        ids = []
        for _ in range(2):
            target["v"] = target["v"] + 1
            self.commit()
            ids.append(self.last_undo_id())
        self.db.undoMultiple(list(reversed(ids)))
        transaction.get().note("undo two")
        self.commit()

    ACTIONS = [
        ("tree_insert", 40), ("tree_delete", 4), ("map_new", 16), ("map_modify", 16),
        ("delete_object", 6), ("undo_modification", 8), ("undo_creation", 4),
        ("undo_two_at_once", 3), ("empty_txn", 3),
    ]

    def step(self):
        names, weights = zip(*self.ACTIONS)
        getattr(self, self.rng.choices(names, weights)[0])()

    def pack_middle(self):
        """Pack at the time of the middle transaction: earlier ones get status 'p'."""
        tids = [t.tid for t in self.storage.iterator()]
        packtime = TimeStamp(tids[len(tids) // 2]).timeTime()
        self.storage.pack(packtime, referencesf)

    def close(self):
        self.conn.close()
        self.db.close()


def generate(path, txns=600, seed=1, pack=False):
    """Write a new FileStorage at path; return a summary dict.

    At least `txns` transactions are committed; with pack, fewer remain.
    """
    with fake_clock():
        transaction.manager.explicit = False
        transaction.abort()
        g = Generator(path, seed)
        try:
            g.setup()
            # Every kind of record at least once, whatever the seed.
            for name, _ in g.ACTIONS:
                getattr(g, name)()
            while g.txns < txns:
                g.step()
            if pack:
                g.pack_middle()
                for _ in range(10):
                    g.map_modify()
            summary = {"path": str(path), "commits": g.txns, "seed": seed, "pack": pack,
                       "objects": len(g.storage), "size": g.storage.getSize()}
        finally:
            transaction.abort()
            g.close()
    summary["txns"] = sum(1 for _ in FileIterator(str(path)))
    return summary
