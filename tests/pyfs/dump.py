"""The JSON dump of a FileStorage, computed with ZODB's own iterator.

One dict per transaction, in file order, with the same keys and values that
`zrs fs dump --json` prints. The tests compare parsed objects, so only the
values matter, not the spelling of the JSON text.
"""

import base64
import hashlib
import json

from ZODB._compat import loads
from ZODB.FileStorage import FileIterator


class Unconvertible(Exception):
    """An extension value that the dump format has no JSON form for."""


def b64(data):
    return base64.b64encode(data).decode("ascii")


def text_or_base64(raw):
    """User and description: a string when valid UTF-8, else base64."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": b64(raw)}


def _key(k):
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, (bool, int)):
        return str(k)
    raise Unconvertible(type(k).__name__)


def to_json_value(v):
    """Convert an unpickled extension value by the rules of the dump format."""
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, bytes):
        return {"base64": b64(v)}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {_key(k): to_json_value(x) for k, x in v.items()}
    raise Unconvertible(type(v).__name__)


def extension_json(raw):
    if not raw:
        return None
    try:
        return to_json_value(loads(raw))
    except Exception:  # unpicklable or unconvertible: keep the bytes
        return {"raw_base64": b64(raw)}


def sha1_hex(data):
    return None if data is None else hashlib.sha1(data).hexdigest()


def record_dict(rec):
    return {
        "oid": rec.oid.hex(),
        "tid": rec.tid.hex(),
        "data_len": 0 if rec.data is None else len(rec.data),
        "sha1": sha1_hex(rec.data),
        "data_txn": None if rec.data_txn is None else rec.data_txn.hex(),
    }


def txn_dict(txn):
    ext = txn.extension_bytes
    return {
        "pos": txn._tpos,
        "tid": txn.tid.hex(),
        "status": txn.status,
        "user": text_or_base64(txn.user),
        "description": text_or_base64(txn.description),
        "extension": extension_json(ext),
        "extension_sha1": hashlib.sha1(ext).hexdigest(),
        "records": [record_dict(r) for r in txn],
    }


def dump(path):
    """Yield one dict per transaction of the FileStorage at path."""
    it = FileIterator(str(path))
    try:
        for txn in it:
            yield txn_dict(txn)
    finally:
        it.close()


def to_line(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def parse_lines(text):
    """Parse JSON-lines output; every non-empty line must be one object."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"line {n} is not JSON: {line[:200]!r}") from e
        if not isinstance(obj, dict):
            raise AssertionError(f"line {n} is not a JSON object: {line[:200]!r}")
        out.append(obj)
    return out
