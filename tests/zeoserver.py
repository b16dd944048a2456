"""ZEO servers for the ZEO tests: `zrs primary --zeo` (the default) or ZEO's runzeo.

One class, ZeoServer, starts "a ZEO server for a Data.fs" and knows how to
stop, kill and restart it; the tests only talk to it through ClientStorage,
a raw socket (ruok, handshake) or its log. Which implementation serves is
chosen for the whole run by the environment:

    ZRS_ZEO_SERVER=zrs     (default, what `make test` runs) bin/zrs primary/secondary --zeo
    ZRS_ZEO_SERVER=runzeo  python -m ZEO.runzeo over a FileStorage, for comparison

runzeo is configured the way zrs always behaves: client-side conflict
resolution (vote returns conflict dicts, the Python client resolves),
getInvalidations answered for any tid (invalidation-age), and
for a "secondary" it serves a read-only ZEO fan-out (a ClientStorage of the
primary), which is ZEO's own way of serving a read-only copy that sends
invalidations. Nothing here skips: a server that does not start, or does
not stop cleanly on SIGTERM, fails the test with its log tail.

Fixtures for the test modules (import the ones a module uses):
  codec       "pickle" or "msgpack", both for every test that asks for it
  zeo         factory: zeo(codec=..., transport="tcp"|"unix", tls=None,
              replicate=False, datafs=None) -> a started ZeoServer;
              zeo.secondary(primary, ...) -> a ZeoServer replicating it
  pki         a CA, server and client certificates, and a client
              certificate from another CA, made with the openssl CLI
              (make_revocation adds a revoked client and the CA's CRL)
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_KIND = os.environ.get("ZRS_ZEO_SERVER", "zrs")
if SERVER_KIND not in ("zrs", "runzeo"):
    raise RuntimeError(f"ZRS_ZEO_SERVER={SERVER_KIND!r}: want zrs or runzeo")

START_TIMEOUT = 30  # seconds until a server listens
STOP_TIMEOUT = 60  # seconds a server may take to exit after SIGTERM
CLIENT_TIMEOUT = 30  # ClientStorage wait_timeout: a client that cannot connect fails
CODECS = ("pickle", "msgpack")


# --- certificates --------------------------------------------------------------

@dataclass
class Pki:
    """PEM files: a CA, a server and a client certificate it signed, and a
    client certificate signed by another CA (which the server must refuse)."""
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path
    other_key: Path

    def client_context(self, which="client"):
        """An SSLContext trusting our CA, holding the named client certificate
        ("client", "other" or None for no certificate)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if which == "client":
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        elif which == "other":
            ctx.load_cert_chain(str(self.other_cert), str(self.other_key))
        return ctx


def wait_until(what, cond, timeout=20):
    """Poll cond every 50 ms; fail the test naming what if it is not true within timeout s."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"openssl {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}",
                    pytrace=False)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "3",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_leaf(d, ca, name, usage, san=None):
    ext = d / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={usage}", "subjectKeyIdentifier=hash",
             "authorityKeyIdentifier=keyid"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "3", "-extfile", ext.name, cwd=d)


def make_pki(d):
    """Write a Pki into directory d with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl CLI not found: run tests/setup.sh", pytrace=False)
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    _make_leaf(d, "ca", "server", "serverAuth", san="DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, "ca", "client", "clientAuth")
    _make_leaf(d, "otherca", "other", "clientAuth")
    return Pki(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
               client_cert=d / "client.pem", client_key=d / "client.key",
               other_cert=d / "other.pem", other_key=d / "other.key")


def make_revocation(d, pki):
    """Issue, in directory d, a client certificate from pki's CA, revoke it,
    and write the CA's certificate followed by its CRL (an authenticate file
    that ZEO checks CRLs with). Returns (bundle, revoked_cert, revoked_key)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca.pem", "ca.key"):
        shutil.copy(pki.ca.parent / name, d / name)
    _make_leaf(d, "ca", "revoked", "clientAuth")
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = ca_section\n[ca_section]\n"
                              "database = index.txt\ncrlnumber = crlnumber\n"
                              "default_md = sha256\ndefault_crl_days = 3\n")
    _openssl("ca", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
             "-revoke", "revoked.pem", cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
             "-gencrl", "-out", "ca.crl", cwd=d)
    bundle = d / "ca-with-crl.pem"
    bundle.write_bytes((d / "ca.pem").read_bytes() + (d / "ca.crl").read_bytes())
    return bundle, d / "revoked.pem", d / "revoked.key"


# --- the wire, raw ---------------------------------------------------------------

def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(sock):
    (n,) = struct.unpack(">I", _recv_exact(sock, 4))
    return _recv_exact(sock, n)


def send_frame(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def raw_connect(addr, timeout=10, tls_context=None):
    """A plain (or TLS) socket to a ZEO address (a (host, port) tuple or a path)."""
    if isinstance(addr, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(addr)
    if tls_context is not None:
        sock = tls_context.wrap_socket(sock, server_hostname="localhost")
    return sock


def handshake(addr, **kw):
    """The server's first frame (b"Z5" or b"M5")."""
    with raw_connect(addr, **kw) as sock:
        return recv_frame(sock)


def ruok(addr, **kw):
    """The `ruok` probe: after the server's handshake frame, send the framed
    b"ruok"; the server answers one framed JSON document and closes."""
    with raw_connect(addr, **kw) as sock:
        hello = recv_frame(sock)
        send_frame(sock, b"ruok")
        doc = recv_frame(sock)
        try:
            rest = sock.recv(1)
        except (ConnectionResetError, ssl.SSLError):
            rest = b""
        assert rest == b"", f"ruok: more bytes after the JSON document: {rest!r}"
    return hello, json.loads(doc)


# --- servers ------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_addr(text):
    """'host:port' -> (host, port); a path (anything with '/') stays a str."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def _zrs_log_addr(line_re, text):
    m = re.search(line_re + r'.*? addr=("?)([^"\s]+)\1', text)
    return m.group(2) if m else None


class ZeoServer:
    """One ZEO server process over datafs. kind is "zrs" or "runzeo".

    role "primary" (writable; with replicate=True also a replication source)
    or "secondary" (read-only copy of `upstream`, a primary ZeoServer).
    .addr is what ClientStorage takes; .addr_text the address as configured.
    """

    def __init__(self, kind, datafs, workdir, *, listen, codec="pickle", pki=None,
                 replicate=False, role="primary", upstream=None, zrs_bin=None, name=None,
                 admin=None, storage="1", extra_args=()):
        assert codec in CODECS, codec
        self.kind, self.datafs, self.workdir = kind, Path(datafs), Path(workdir)
        self.listen, self.codec, self.pki = listen, codec, pki
        self.replicate, self.role, self.upstream = replicate, role, upstream
        self.zrs_bin = zrs_bin
        self.admin = admin  # zrs --admin ADDR (a unix socket path), None for none
        self.storage = storage  # the storage name clients ask for
        self.extra_args = list(extra_args)  # more zrs flags
        self.name = name or f"{kind} {role}"
        self.log_path = self.workdir / f"{self.name.replace(' ', '-')}.log"
        self.proc = None
        self.addr = self.addr_text = self.repl_addr = None
        self.starts = 0
        self.failed = False  # already reported: the teardown's stop() does not repeat it
        self.datafs.parent.mkdir(parents=True, exist_ok=True)

    # -- diagnostics
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<no log: {e}>"

    def fail(self, msg):
        self.failed = True
        pytest.fail(f"{self.name} ({self.addr_text}): {msg}\n--- {self.log_path} (tail) ---\n"
                    f"{self.log()[-6000:]}", pytrace=False)

    def check_running(self):
        if self.proc is None or self.proc.poll() is not None:
            self.fail(f"not running (exit code {self.proc and self.proc.returncode})")

    # -- lifecycle
    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv, env = self._command()
        with open(self.log_path, "a") as log:
            log.write(f"### start {self.starts}: {' '.join(map(str, argv))}\n")
            log.flush()
            self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)
        self._wait_ready(log_start + 1)
        return self

    def stop(self):
        """SIGTERM; the server must exit 0 within STOP_TIMEOUT."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.fail(f"still running {STOP_TIMEOUT}s after SIGTERM")
        if self.proc.returncode != 0 and not self.failed:
            self.fail(f"exit code {self.proc.returncode} after SIGTERM")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        """Stop, then start again on the same Data.fs and the same address."""
        self.stop()
        self.start()
        return self

    # -- per implementation
    def _listen_arg(self):
        # After the first start, keep the address (port 0 resolved) so that
        # clients that reconnect on their own find the restarted server.
        return self.addr_text if self.addr_text else self.listen

    def _command(self):
        if self.kind == "zrs":
            return self._zrs_command(), None
        return self._runzeo_command()

    def _zrs_command(self):
        argv = [self.zrs_bin, self.role, self.datafs, "--zeo", self._listen_arg()]
        if self.role == "primary" and self.replicate:
            argv += ["--replicate-to", self.repl_addr or "127.0.0.1:0"]
        if self.role == "secondary":
            argv += ["--replicate-from", self.upstream.repl_addr]
        if self.codec == "msgpack":
            argv.append("--zeo-msgpack")
        if self.admin:
            argv += ["--admin", self.admin]
        if self.storage != "1":
            argv += ["--zeo-storage", self.storage]
        if self.pki:
            argv += ["--zeo-cert", self.pki.server_cert, "--zeo-key", self.pki.server_key,
                     "--zeo-authenticate", self.pki.ca]
        return argv + self.extra_args

    def _runzeo_command(self):
        listen = self._listen_arg()
        if listen.endswith(":0"):  # runzeo logs the asked address, not the bound one
            listen = f"{listen[:-2]}:{_free_port()}"
            self.addr_text = listen
        ssl_section = ""
        if self.pki:
            ssl_section = (f"  <ssl>\n    certificate {self.pki.server_cert}\n"
                           f"    key {self.pki.server_key}\n"
                           f"    authenticate {self.pki.ca}\n  </ssl>\n")
        if self.role == "secondary":
            up = self.upstream
            storage = (f"<zeoclient {self.storage}>\n  server {up.addr_text}\n"
                       f"  storage {up.storage}\n  read-only true\n</zeoclient>\n")
            read_only = "true"
        else:
            storage = f"<filestorage {self.storage}>\n  path {self.datafs}\n</filestorage>\n"
            read_only = "false"
        conf = self.workdir / f"{self.name.replace(' ', '-')}.conf"
        conf.write_text(
            f"<zeo>\n  address {listen}\n  read-only {read_only}\n"
            f"  client-conflict-resolution true\n"
            # Answer getInvalidations for any tid (by iterating the file), as
            # zrs does; stock runzeo remembers only the last 100 transactions.
            f"  invalidation-age 1000000000\n"
            f"  msgpack {'true' if self.codec == 'msgpack' else 'false'}\n{ssl_section}</zeo>\n"
            f"{storage}"
            "<eventlog>\n  level INFO\n  <logfile>\n    path STDERR\n"
            "    format %(asctime)s %(levelname)s %(name)s %(message)s\n  </logfile>\n</eventlog>\n")
        env = dict(os.environ)
        env.pop("ZEO_MSGPACK", None)
        return [sys.executable, "-m", "ZEO.runzeo", "-C", conf], env

    def _wait_ready(self, log_start):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.check_running()
            if self.kind == "zrs":
                text = self.log()[log_start:]
                got = _zrs_log_addr(r'msg="serving ZEO"', text)
                if got and self.replicate and self.role == "primary":
                    self.repl_addr = self.repl_addr or _zrs_log_addr(
                        r'msg="listening for secondaries"', text)
                    got = got if self.repl_addr else None
                if got:
                    self.addr_text, self.addr = got, parse_addr(got)
                    return
            else:
                if not self.addr_text:
                    self.addr_text = self.listen
                self.addr = parse_addr(self.addr_text)
                try:
                    raw_connect(self.addr, timeout=1).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.kill()
                self.fail(f"not serving ZEO after {START_TIMEOUT}s")
            time.sleep(0.02)

    # -- clients
    def client(self, tls="client", **kw):
        """A ClientStorage connected to this server (fails after CLIENT_TIMEOUT)."""
        from ZEO.ClientStorage import ClientStorage
        kw.setdefault("wait_timeout", CLIENT_TIMEOUT)
        if self.pki is not None and tls is not False:
            kw.setdefault("ssl", self.pki.client_context(tls))
            kw.setdefault("ssl_server_hostname", "localhost")
        return ClientStorage(self.addr, **kw)

    def db(self, **kw):
        """ZODB.DB over a new ClientStorage (see client).

        server_sync defaults to True here: each transaction begins with a
        ping, so it sees every commit made before it by any client (without
        it, another client's commit is seen only once its invalidation has
        arrived, which is what test_invalidations_arrive_without_sync checks).
        """
        import ZODB
        kw.setdefault("server_sync", True)
        db_kw = {k: kw.pop(k) for k in ("pool_size", "cache_size") if k in kw}
        return ZODB.DB(self.client(**kw), **db_kw)


class Servers:
    """The `zeo` fixture: starts servers for one test and stops them after it."""

    def __init__(self, request, tmp_path):
        self._request, self._tmp = request, tmp_path
        self._sock_dir = None
        self.started = []
        self.kind = SERVER_KIND

    def _zrs_bin(self):
        return self._request.getfixturevalue("zrs_bin") if self.kind == "zrs" else None

    def _listen(self, transport, name):
        if transport == "tcp":
            return "127.0.0.1:0"
        assert transport == "unix", transport
        if self._sock_dir is None:  # unix socket paths are limited to ~107 bytes
            self._sock_dir = Path(tempfile.mkdtemp(prefix="zrs-zeo-"))
        return str(self._sock_dir / f"{name}.sock")

    def __call__(self, codec="pickle", transport="tcp", pki=None, replicate=False, datafs=None,
                 name="primary", storage="1"):
        datafs = Path(datafs) if datafs else self._tmp / name / "Data.fs"
        srv = ZeoServer(self.kind, datafs, self._tmp, listen=self._listen(transport, name),
                        codec=codec, pki=pki, replicate=replicate, zrs_bin=self._zrs_bin(),
                        name=f"{self.kind} {name}", storage=storage)
        self.started.append(srv)
        return srv.start()

    def secondary(self, primary, codec="pickle", transport="tcp", name="secondary"):
        assert primary.replicate or self.kind == "runzeo", "start the primary with replicate=True"
        srv = ZeoServer(self.kind, self._tmp / name / "Data.fs", self._tmp,
                        listen=self._listen(transport, name), codec=codec, role="secondary",
                        upstream=primary, zrs_bin=self._zrs_bin(), name=f"{self.kind} {name}")
        self.started.append(srv)
        return srv.start()

    def close(self):
        errors = []
        for srv in reversed(self.started):
            try:
                srv.stop()
            except BaseException as e:  # pytest.fail: report after stopping the rest
                srv.kill()
                errors.append(e)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture
def zeo(request, tmp_path):
    servers = Servers(request, tmp_path)
    yield servers
    servers.close()


@pytest.fixture(params=CODECS)
def codec(request):
    return request.param


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def report(config, lines):
    """Write lines on the terminal whatever pytest's capture mode (figures
    and lists a run must show, not only when it fails)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


SYNC_ARGS = ["--durability", "sync", "--quorum", "1", "--sync-timeout", "20s"]


def start_server(work, *, codec, zrs_bin, sync=False):
    """A started SERVER_KIND ZEO server on work/Data.fs and, with sync (zrs
    only), a zrs primary with synchronous replication (quorum 1) and its
    started secondary on work/secondary/Data.fs: every commit is answered
    once the secondary acknowledged it. Returns (server, secondary or None)."""
    server = ZeoServer(SERVER_KIND, work / "Data.fs", work, listen="127.0.0.1:0", codec=codec,
                       zrs_bin=zrs_bin, replicate=sync, extra_args=SYNC_ARGS if sync else ())
    server.start()
    if not sync:
        return server, None
    secondary = ZeoServer(SERVER_KIND, work / "secondary" / "Data.fs", work, listen="127.0.0.1:0",
                          role="secondary", upstream=server, zrs_bin=zrs_bin).start()
    return server, secondary
