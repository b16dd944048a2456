"""The application side of `make demo`: an unmodified ZODB program using
ZEO's ClientStorage against the zrs daemons.

    demo_app.py write HOST:PORT N   commit N transactions (a BTree of
                                    orders and a Length counter) on the primary
    demo_app.py read HOST:PORT N    read-only client on the secondary: wait
                                    for the N orders, print what it sees
"""

import sys
import time

import transaction
import ZODB
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from ZEO.ClientStorage import ClientStorage


def connect(addr, **kw):
    host, port = addr.rsplit(":", 1)
    return ZODB.DB(ClientStorage((host, int(port)), wait_timeout=30, **kw))


def write(addr, n):
    db = connect(addr)
    conn = db.open()
    root = conn.root()
    if "orders" not in root:
        root["orders"] = OOBTree()
        root["count"] = Length()
        transaction.commit()
    start = time.time()
    for i in range(n):
        root["orders"]["order-%05d" % i] = {"qty": i % 7 + 1, "sku": "sku-%d" % (i % 13)}
        root["count"].change(1)
        transaction.get().note("order %d" % i)
        transaction.commit()
    took = time.time() - start
    print("app: committed %d transactions through ZEO on the primary in %.2fs (%.0f/s); last tid %s"
          % (n, took, n / took, db.lastTransaction().hex()))
    print("app: undo log head: %s" % [d["description"] for d in db.undoLog(0, 3)])
    db.close()


def read(addr, n):
    db = connect(addr, read_only=True)
    conn = db.open()
    deadline = time.time() + 30
    while True:
        transaction.begin()
        root = conn.root()
        count = root["count"]() if "count" in root else 0
        if count >= n or time.time() > deadline:
            break
        time.sleep(0.05)
    orders = root["orders"]
    print("app: read-only client on the secondary sees %d orders (Length %d); last: %s = %r"
          % (len(orders), count, orders.maxKey(), dict(orders[orders.maxKey()])))
    try:
        root["count"].change(1)
        transaction.commit()
        print("app: ERROR: a write on the secondary was accepted")
        sys.exit(1)
    except Exception as e:  # ReadOnlyError from ClientStorage
        transaction.abort()
        print("app: writing on the secondary is refused: %s" % type(e).__name__)
    db.close()
    if count < n:
        print("app: ERROR: the secondary has %d of %d orders" % (count, n))
        sys.exit(1)


if __name__ == "__main__":
    mode, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"write": write, "read": read}[mode](addr, n)
