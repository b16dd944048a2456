"""Print the ZEO wire vectors core/zeo's codec tests check.

Input: tests/vectors/zeo-transcripts/*.txt, decoded captures of a real ZEO
server talking to real ClientStorage clients (one line per message:
"CONN DIR LENGTH REPR", the repr cut with "..." when long). Output goes to
core/zeo/testdata/transcripts.txt (tests/test_zeo_vectors.py regenerates it
and compares).

Only complete reprs are used. For a pickle-mode capture each message is
pickled again the way ZEO does (zodbpickle, protocol 3, fast mode) and the
script asserts that the result has exactly the captured length, so HEX is
what was on the wire. There is no Python msgpack package in the test
environment: msgpack lines carry the captured length and "-" for HEX, and
the Go test checks that its encoding has that length.

Line format:
  wire CODEC SOURCE DIR LENGTH HEX VALUE
CODEC is Z or M, SOURCE is FILE:LINE, DIR is C>S or S>C, VALUE the message
tuple in core/pyval's typed JSON (see gen_pyval.py).
"""
import ast
import importlib.metadata
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from gen_pyval import typed, zeo_pickle  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent / 'zeo-transcripts'


def main():
    print('# ZEO wire vectors from tests/vectors/gen_zeo.py (zodbpickle %s). Do not edit.'
          % importlib.metadata.version('zodbpickle'))
    for path in sorted(HERE.glob('*.txt')):
        codec = None
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            conn, direction, size, text = line.split(' ', 3)
            if size == 'HANDSHAKE':
                codec = ast.literal_eval(text)[:1].decode()
                continue
            if text.endswith('...'):
                continue
            msg = ast.literal_eval(text)
            payload = '-'
            if codec == 'Z':
                p = zeo_pickle(msg)
                assert len(p) == int(size), (path.name, lineno, len(p), size)
                payload = p.hex()
            print('wire %s %s:%d %s %s %s %s' % (codec, path.name, lineno, direction, size, payload,
                                                 json.dumps(typed(msg), separators=(',', ':'))))


if __name__ == '__main__':
    main()
