"""kill -9 of the ZEO server while Python clients commit: nothing acknowledged is lost.

`zrs primary --zeo` serves a fresh Data.fs to CLIENTS client processes
(this file run as a script), each an unmodified ZODB.DB(ClientStorage)
application committing in a loop: small PersistentMapping changes, keys
added to one OOBTree that all clients share (bucket conflicts resolved
client-side), and now and then an undo of its own latest change to a
mapping, so the undo write path is crossed too. A client records a
transaction only after its commit returned, with the tid its
tpc_finish answered (the _p_serial ZODB sets on every object the
transaction stored), as one flushed JSON line; a commit that failed
because the server died is not recorded, whatever became of it.

The server is killed with SIGKILL at a random moment, ROUNDS times, and
restarted on the same file and port (the clients reconnect by themselves).
After each kill, Python's FileStorage, read-only, opens the file the kill
left, and every transaction recorded so far must be in it with the
recorded content (a historical connection at that tid). At the end the
file must also pass ZODB's fstest and `zrs fs verify`.

A killed process's writes stay in the page cache, so this catches an
acknowledgement sent before the transaction was written and marked
finished, not one sent before its fsync (core/fs's tests check that order).

The kill delays and the clients' choices come from one seed, printed by the
test; ZRS_CRASH_SEED=N replays it (the timing of the processes still varies).
"""

import base64
import faulthandler
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from zeoserver import zeo  # noqa: F401 (fixture)

CLIENTS = 3
ROUNDS = 5
PROGRESS = 25  # transactions recorded after each restart before the kill can come
WAIT = 30  # seconds for any one step before the test fails
UNDO_EVERY = 0.08  # share of a client's transactions that undo its latest mapping change


def payload(client, n):
    return f"client {client} transaction {n} " + "x" * (n % 97)


# --- the client process ---------------------------------------------------------------

def undo(db, target, note):
    """Undo transaction target and return the undo's tid.

    This is DB.undo's work, through the same MVCC undo instance (so the
    application's connections see the undone objects invalidated), but
    with an abort that releases the storage. DB.undo's data manager does
    not: when the connection drops between its vote and tpc_finish,
    ClientStorage.tpc_finish raises ClientDisconnected before it releases
    its commit lock, the data manager has already closed its storage, so
    its tpc_abort fails with AttributeError and ClientStorage.tpc_abort is
    never called. The client's next tpc_begin then waits for that lock
    forever, whatever the server (ZODB 6.4, ZEO 6.2).
    """
    from ZODB.Connection import TransactionMetaData

    st = db._mvcc_storage.undo_instance()
    meta = TransactionMetaData(description=note)
    tids = []
    st.tpc_begin(meta)
    try:
        st.undo(base64.b64encode(target), meta)
        st.tpc_vote(meta)
        st.tpc_finish(meta, tids.append)
    except BaseException:
        st.tpc_abort(meta)
        raise
    return tids[0]


def client_main(addr_text, client, seed, records_path, stop_path):
    """Commit until stop_path exists; append one JSON line per acknowledged commit."""
    import transaction
    import ZODB
    from ZEO.ClientStorage import ClientStorage

    from zeoserver import parse_addr

    # A client that does not stop is asked, with SIGUSR1, where it waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rng = random.Random(seed)
    db = ZODB.DB(ClientStorage(parse_addr(addr_text), wait_timeout=WAIT, server_sync=True))
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    out = open(records_path, "a", buffering=1)
    # Opening the DB talks to the server, and fails if it dies meanwhile:
    # the test kills it only once every client is past this point.
    Path(f"{stop_path}.ready-{client}").touch()

    def record(**fields):
        out.write(json.dumps(fields) + "\n")
        out.flush()

    undoable = None  # tid of this client's latest acknowledged change of u<client>
    n = 0
    failures = 0
    while not os.path.exists(stop_path):
        n += 1
        kind = rng.random()
        try:
            tm.begin()
            root = conn.root()
            m, u, tree = root[f"m{client}"], root[f"u{client}"], root["tree"]
            if kind < UNDO_EVERY and undoable is not None:
                target, undoable = undoable, None
                tid = undo(db, target, f"client {client} undo {target.hex()}")
                record(kind="undo", client=client, tid=tid.hex(), target=target.hex())
                continue
            if kind < 0.35:  # u alone, so that undoing this transaction can succeed
                u["v"] = n
                tm.get().note(f"client {client} set u {n}")
                tm.commit()
                undoable = u._p_serial
                record(kind="u", client=client, tid=u._p_serial.hex(), n=n)
            elif kind < 0.7:
                m["seq"] = n
                m[f"k{n % 20}"] = payload(client, n)
                tm.get().note(f"client {client} set m {n}")
                tm.commit()
                record(kind="m", client=client, tid=m._p_serial.hex(), n=n)
            else:
                m["seq"] = n  # m's serial is the transaction's tid
                tree[f"{client}-{n:06d}"] = payload(client, n)
                tm.get().note(f"client {client} tree {n}")
                tm.commit()
                record(kind="tree", client=client, tid=m._p_serial.hex(), n=n)
            failures = 0
        except Exception as e:  # the server went away, or a conflict: not acknowledged
            tm.abort()
            failures += 1
            print(f"client {client} transaction {n}: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
            time.sleep(min(0.01 * failures, 0.2))
    conn.close()
    db.close()
    out.close()


# --- the test -----------------------------------------------------------------------------

class Clients:
    def __init__(self, tmp_path, srv, seed):
        self.srv = srv
        addr_text = srv.addr_text
        self.records = tmp_path / "records.jsonl"
        self.stop_file = tmp_path / "stop-clients"
        self.procs, self.logs = [], []
        self.records.touch()
        for c in range(CLIENTS):
            log = tmp_path / f"client{c}.log"
            self.logs.append(log)
            with open(log, "w") as f:
                self.procs.append(subprocess.Popen(
                    [sys.executable, __file__, "client", addr_text, str(c), str(seed * 100 + c),
                     str(self.records), str(self.stop_file)],
                    stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=Path(__file__).parent))

    def wait(self, cond, failure):
        """Poll cond while every client runs; fail with failure (and the
        clients' log tails) if it is not true within WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while not cond():
            self.check_running()
            assert time.monotonic() < deadline, f"{failure}{self.tails()}"
            time.sleep(0.02)

    def wait_ready(self):
        """Until every client has opened its DB."""
        for c in range(CLIENTS):
            self.wait(Path(f"{self.stop_file}.ready-{c}").exists,
                      f"client {c} did not open its DB within {WAIT}s")

    def read(self):
        """Every complete line recorded so far (a line being written is left for later)."""
        text = self.records.read_text()
        return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]

    def tails(self):
        return "".join(f"\n--- client {c} (tail) ---\n{log.read_text(errors='replace')[-6000:]}"
                       for c, log in enumerate(self.logs))

    def server_tail(self):
        return f"\n--- server log {self.srv.log_path} (tail) ---\n{self.srv.log()[-6000:]}"

    def check_running(self):
        for c, p in enumerate(self.procs):
            assert p.poll() is None, f"client {c} exited {p.returncode}{self.tails()}"

    def stop(self):
        self.stop_file.touch()
        for c, p in enumerate(self.procs):
            try:
                p.wait(WAIT)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
                time.sleep(1)
                p.kill()
                p.wait()
                raise AssertionError(f"client {c} did not stop within {WAIT}s{self.tails()}"
                                     f"{self.server_tail()}")
            assert p.returncode == 0, f"client {c} exited {p.returncode}{self.tails()}"

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def setup_db(srv):
    """The objects the clients share; created before they start (concurrent
    first opens would race to create the root)."""
    import transaction
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    db = srv.db()
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    with tm:
        root = conn.root()
        root["tree"] = OOBTree()
        for c in range(CLIENTS):
            root[f"m{c}"] = PersistentMapping()
            root[f"u{c}"] = PersistentMapping()
    db.close()


def check_file(path, records, what):
    """Every record's transaction is in the file at path, with its content."""
    import ZODB
    from ZODB.FileStorage import FileStorage
    from ZODB.utils import p64, u64

    st = FileStorage(str(path), read_only=True)
    db = ZODB.DB(st)
    try:
        tids = {t.tid for t in st.iterator()}
        missing = [r for r in records if bytes.fromhex(r["tid"]) not in tids]
        assert not missing, (f"{what}: {len(missing)} of {len(records)} acknowledged transactions "
                             f"are not in the file, first {missing[:5]}")

        def state(tid, name):
            conn = db.open(at=tid)
            try:
                obj = conn.root()[name]
                obj._p_activate()
                return obj._p_serial, dict(obj)
            finally:
                conn.close()

        for r in records:
            tid, c = bytes.fromhex(r["tid"]), r["client"]
            if r["kind"] == "undo":
                serial, got = state(tid, f"u{c}")
                _, want = state(p64(u64(bytes.fromhex(r["target"])) - 1), f"u{c}")
                assert serial == tid, f"{what}: {r}: the undo did not write u{c}"
                assert got == want, f"{what}: {r}: u{c} is {got} after the undo, not {want}"
                continue
            if r["kind"] == "u":
                serial, u = state(tid, f"u{c}")
                assert serial == tid and u["v"] == r["n"], f"{what}: {r}: u{c} is {u} at {serial.hex()}"
                continue
            serial, m = state(tid, f"m{c}")
            assert serial == tid and m["seq"] == r["n"], f"{what}: {r}: m{c} is {m} at {serial.hex()}"
            if r["kind"] == "m":
                assert m[f"k{r['n'] % 20}"] == payload(c, r["n"]), f"{what}: {r}: m{c} is {m}"
            else:
                conn = db.open(at=tid)
                try:
                    got = conn.root()["tree"].get(f"{c}-{r['n']:06d}")
                finally:
                    conn.close()
                assert got == payload(c, r["n"]), f"{what}: {r}: the tree holds {got!r}"
    finally:
        db.close()


def test_kill_zeo_server_while_python_clients_commit(zeo, run_zrs, tmp_path):
    from ZODB.scripts.fstest import check as fstest_check

    seed = int(os.environ.get("ZRS_CRASH_SEED") or random.randrange(1 << 30))
    print(f"ZRS_CRASH_SEED={seed}")
    rng = random.Random(seed)
    srv = zeo()
    setup_db(srv)
    clients = Clients(tmp_path, srv, seed)
    try:
        clients.wait_ready()
        checked = 0
        for rnd in range(ROUNDS):
            clients.wait(lambda: len(clients.read()) >= checked + PROGRESS,
                         f"seed {seed}, round {rnd}: fewer than {PROGRESS} commits within {WAIT}s of "
                         f"the (re)start")
            time.sleep(rng.uniform(0, 0.4))
            srv.check_running()
            srv.kill()
            records = clients.read()
            check_file(srv.datafs, records, f"seed {seed}, after kill {rnd}")
            print(f"kill {rnd}: {len(records)} acknowledged transactions, all in the file")
            checked = len(records)
            srv.start()
        clients.stop()
    except BaseException:
        srv.kill()
        srv.failed = True  # reported here: the fixture's stop does not add an error
        raise
    finally:
        clients.kill()
    srv.stop()

    records = clients.read()
    kinds = {k: sum(r["kind"] == k for r in records) for k in ("m", "u", "tree", "undo")}
    print(f"{len(records)} acknowledged transactions: {kinds}")
    assert all(kinds.values()), f"seed {seed}: a kind of transaction was never committed: {kinds}"
    check_file(srv.datafs, records, f"seed {seed}, at the end")
    fstest_check(str(srv.datafs))
    run_zrs("fs", "verify", srv.datafs)


if __name__ == "__main__" and sys.argv[1:2] == ["client"]:
    addr, client, seed, records_path, stop_path = sys.argv[2:]
    client_main(addr, int(client), int(seed), records_path, stop_path)
