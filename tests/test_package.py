"""The .deb and .rpm that `make package` builds (packaging/nfpm.yaml).

Both packages are built once per session, by `make package` itself, into a
temporary DIST with a fixed VERSION, so the file names and versions are
known. Then:

- the .deb is installed into a scratch root with
  `fakeroot dpkg --root=DIR --force-script-chrootless --force-not-root`.
  --root gives dpkg its own database and file tree under DIR; chrootless
  runs the maintainer scripts on this host with DPKG_ROOT=DIR instead of
  chrooting into DIR (which needs root and a shell inside DIR), and our
  postinst then points systemd-sysusers and systemd-tmpfiles at DIR with
  --root. fakeroot fakes the chowns dpkg and systemd-tmpfiles make, so the
  whole install works the same as root (CI) or not, and nothing outside DIR
  is touched (the test checks the host's /etc/passwd and that systemctl is
  never called). A debootstrap tree would test the chroot path too but
  needs a Debian mirror and minutes per run; dpkg --root tests what we own:
  the file list, the conffile, and the scripts;
- the .rpm is read with Debian's rpm: `rpm -qpl` (files), `rpm -qpc`
  (config files), `rpm -qp --scripts` (the scriptlets, compared with
  packaging/rpm/). Installing it would need an RPM database and a chroot
  with /bin/sh, so its scripts are run directly below instead, like the
  .deb's, against stub commands that record what they were asked to do;
- docs/INSTALL.md is followed with the packaged zrs-recipe: its site files
  render, and the recipe prints the systemctl commands the page shows.
"""

import gzip
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 600

# A described pre-release build of a dirty tree: the package version then
# needs both '~' and '+' (packaging/version.sh), which dpkg and rpm must take.
VERSION = "v1.2.3-rc.1-4-gabc1234-dirty"
PKG_VERSION = "1.2.3~rc.1+git4.gabc1234.dirty"
RPM_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}

# Every file both packages install (directories aside), and where in the
# source tree the shipped-as-is ones come from.
SHIPPED = {
    "/usr/lib/systemd/system/zrs@.service": "systemd/zrs@.service",
    "/usr/lib/sysusers.d/zrs.conf": "systemd/sysusers.d/zrs.conf",
    "/usr/lib/tmpfiles.d/zrs.conf": "systemd/tmpfiles.d/zrs.conf",
    "/etc/zrs/site.yaml.example": "site.yaml.example",
    "/usr/share/doc/zrs/README.md": "README.md",
    "/usr/share/doc/zrs/INSTALL.md": "docs/INSTALL.md",
    "/usr/share/doc/zrs/OPERATIONS.md": "docs/OPERATIONS.md",
}
FILES = set(SHIPPED) | {
    "/usr/bin/zrs",
    "/usr/bin/zrs-recipe",
    "/usr/share/doc/zrs/zrs.txt",
    "/usr/share/doc/zrs/zrs-recipe.txt",
    "/usr/share/man/man1/zrs.1.gz",
    "/usr/share/man/man1/zrs-recipe.1.gz",
}
# Directories the packages own (the rpm lists them; dpkg owns all it unpacks).
DIRS = {"/etc/zrs", "/usr/share/doc/zrs"}
CONFIG = {"/etc/zrs/site.yaml.example"}

# Verbs the maintainer scripts may give systemctl: reload the unit files, and
# look (to tell the operator what still runs). Never start/stop/enable/restart.
ALLOWED_SYSTEMCTL = {"daemon-reload", "list-units"}


def run(argv, check=True, **kw):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=TIMEOUT, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
                    f"stderr:\n{proc.stderr[-4000:]}\nstdout:\n{proc.stdout[-4000:]}",
                    pytrace=False)
    return proc


def goarch():
    return run(["go", "env", "GOARCH"], cwd=REPO).stdout.strip()


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """(deb, rpm) paths, built by `make package` once per session."""
    missing = [src for src in SHIPPED.values() if not (REPO / src).exists()]
    if missing:
        pytest.fail("make package needs these files, not in the tree yet: " + ", ".join(missing),
                    pytrace=False)
    dist = tmp_path_factory.mktemp("dist")
    run(["make", "-s", "package", f"DIST={dist}", f"VERSION={VERSION}"], cwd=REPO)
    arch = goarch()
    deb = dist / f"zrs_{PKG_VERSION}_{arch}.deb"
    rpm = dist / f"zrs-{PKG_VERSION}.{RPM_ARCH[arch]}.rpm"
    built = sorted(p.name for p in dist.iterdir())
    assert built == sorted([deb.name, rpm.name]), f"make package left {built}"
    return deb, rpm


# --- packaging/version.sh ---------------------------------------------------

@pytest.mark.parametrize("version,want", [
    ("v1.2.3", "1.2.3"),
    ("1.2.3", "1.2.3"),
    ("v1.2.3-rc.1", "1.2.3~rc.1"),
    ("v1.2.3-4-gabc1234", "1.2.3+git4.gabc1234"),
    ("v1.2.3-4-gabc1234-dirty", "1.2.3+git4.gabc1234.dirty"),
    ("v1.2.3-dirty", "1.2.3+dirty"),
    (VERSION, PKG_VERSION),
    ("abc1234", "0.0.0+git.abc1234"),
    ("abc1234-dirty", "0.0.0+git.abc1234.dirty"),
    ("dev", "0.0.0+dev"),
])
def test_version_mapping(version, want):
    assert run([REPO / "packaging/version.sh", version]).stdout == want + "\n"


@pytest.mark.parametrize("version", ["", "v1.2", "1.2.3-1", "release-2", "dev-dirty"])
def test_version_mapping_refuses(version):
    proc = run([REPO / "packaging/version.sh", version], check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert f'cannot turn version "{version}"' in proc.stderr


def test_version_mapping_takes_this_tree():
    """The Makefile's own VERSION (git describe, or dev) is accepted."""
    version = run(["make", "-s", "--eval", "print-version: ; @echo $(VERSION)", "print-version"],
                  cwd=REPO).stdout.strip()
    out = run([REPO / "packaging/version.sh", version]).stdout.strip()
    assert out[0].isdigit() and "-" not in out, out


# --- the .deb ---------------------------------------------------------------

def test_deb_control(packages, tmp_path):
    deb, _ = packages
    fields = run(["dpkg-deb", "--field", deb, "Package", "Version", "Architecture"]).stdout
    assert fields.splitlines() == [
        "Package: zrs", f"Version: {PKG_VERSION}", f"Architecture: {goarch()}"]
    control = tmp_path / "DEBIAN"
    run(["dpkg-deb", "--control", deb, control])
    assert set((control / "conffiles").read_text().split()) == CONFIG
    assert sorted(p.name for p in control.iterdir()) == [
        "conffiles", "control", "md5sums", "postinst", "postrm", "prerm"]
    for name in ("postinst", "prerm", "postrm"):
        assert (control / name).read_bytes() == (REPO / "packaging/deb" / name).read_bytes()
        assert os.access(control / name, os.X_OK), name


def stub_dir(tmp_path, log, fail=(), grep_matches=False):
    """A directory of stub commands that append their argv to log; those in
    fail exit 2 (getent: "not found"). list-units prints nothing; grep
    finds nothing unless grep_matches (zrs instances are running)."""
    d = tmp_path / "stubs"
    d.mkdir()
    for name in ("systemctl", "systemd-sysusers", "systemd-tmpfiles", "useradd", "install",
                 "getent", "grep"):
        rc = 2 if name in fail else 0
        if name == "grep":  # the scripts pipe list-units into grep -q .
            rc = 0 if grep_matches else 1
        (d / name).write_text(f'#!/bin/sh\necho "{name} $*" >>"{log}"\nexit {rc}\n')
        (d / name).chmod(0o755)
    return d


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_deb_installs_into_scratch_root(packages, tmp_path):
    deb, _ = packages
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    log = tmp_path / "systemctl.log"
    stubs = tmp_path / "only-systemctl"
    stubs.mkdir()
    (stubs / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >>"{log}"\n')
    (stubs / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}")
    host_passwd = Path("/etc/passwd").read_bytes()

    def dpkg(*args):
        return run(["fakeroot", "dpkg", f"--root={root}", "--force-not-root",
                    "--force-script-chrootless", "--log=/dev/null", *args], env=env)

    dpkg("--install", deb)
    listed = run(["dpkg", f"--root={root}", "--listfiles", "zrs"]).stdout.split()
    assert {p for p in listed if (root / p.lstrip("/")).is_file()} == FILES
    assert DIRS <= set(listed)
    for dst, src in SHIPPED.items():
        assert (root / dst.lstrip("/")).read_bytes() == (REPO / src).read_bytes(), dst
    assert os.access(root / "usr/bin/zrs-recipe", os.X_OK)
    assert not has_interpreter(root / "usr/bin/zrs"), "zrs is not static (CGO_ENABLED=0)"

    out = run([root / "usr/bin/zrs", "version"]).stdout
    assert out == f"zrs {VERSION}\n"
    assert "zrs-recipe" in run([root / "usr/bin/zrs-recipe", "--help"]).stdout
    assert (root / "usr/share/doc/zrs/zrs.txt").read_text() == \
        run([root / "usr/bin/zrs", "--help"]).stdout

    # postinst: the user and the data root, made inside the root only.
    passwd = (root / "etc/passwd").read_text().splitlines()
    user = [line.split(":") for line in passwd if line.startswith("zrs:")]
    assert len(user) == 1 and user[0][5:] == ["/var/lib/zrs", "/usr/sbin/nologin"], passwd
    data = root / "var/lib/zrs"
    assert data.is_dir() and (data.stat().st_mode & 0o777) == 0o750
    assert Path("/etc/passwd").read_bytes() == host_passwd
    # DPKG_ROOT is set: the running system's systemd is none of our business.
    assert calls(log) == []

    # An edited config file survives reinstalling the package.
    example = root / "etc/zrs/site.yaml.example"
    example.write_text("# mine\n")
    dpkg("--install", deb)
    assert example.read_text() == "# mine\n"

    # What the operator and zrs-recipe made is theirs: remove and purge keep
    # the databases, the rendered configs and the user.
    (data / "main").mkdir()
    (data / "main/Data.fs").write_bytes(b"FS30")
    (root / "etc/zrs/main.yaml").write_text("name: main\n")
    dpkg("--remove", "zrs")
    assert not (root / "usr/bin/zrs").exists()
    assert not (root / "usr/lib/systemd/system/zrs@.service").exists()
    assert example.exists(), "remove (not purge) keeps conffiles"
    dpkg("--purge", "zrs")
    assert not example.exists()
    assert (data / "main/Data.fs").read_bytes() == b"FS30"
    assert (root / "etc/zrs/main.yaml").exists()
    assert any(line.startswith("zrs:") for line in (root / "etc/passwd").read_text().splitlines())
    assert calls(log) == []
    assert run(["dpkg", f"--root={root}", "--status", "zrs"], check=False).returncode != 0


def listed_commands(usage):
    """The commands `zrs --help` lists under "Available commands:" (their
    leading lower-case words: "fs verify", "primary", ...)."""
    lines = usage.split("Available commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    commands = []
    for line in lines:
        if line.startswith("  ") and not line.startswith("   "):
            words = []
            for w in line.split():
                if not re.fullmatch(r"[a-z]+", w):
                    break
                words.append(w)
            commands.append(" ".join(words))
    return commands


def test_man_pages(packages, tmp_path):
    """Each binary's man page renders without a groff warning and says what
    its --help texts say: a subsection per command `zrs --help` lists, and
    every line of each text as typed. (That hyphens are escaped, which
    Debian's groff does not need but others do, is packaging/manpage's
    own test.)"""
    deb, _ = packages
    run(["dpkg-deb", "--extract", deb, tmp_path])
    usage = run([tmp_path / "usr/bin/zrs", "--help"]).stdout
    commands = listed_commands(usage)
    assert {"fs verify", "primary", "secondary", "promote", "run"} <= set(commands), commands
    for name, cmds in (("zrs", commands), ("zrs-recipe", ["import"])):
        roff = gzip.decompress((tmp_path / f"usr/share/man/man1/{name}.1.gz").read_bytes())
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou"], input=roff,
                              capture_output=True, timeout=TIMEOUT)
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
        text = proc.stdout.decode()
        lines = {line.strip() for line in text.splitlines()}
        assert f"{name} - " in text
        headings = set(text.splitlines())  # a subsection's heading is indented by 3
        missing = [c for c in cmds if f"   {name} {c}" not in headings]
        assert not missing, f"man {name} has no subsection for {missing}"
        for cmd in [[]] + [c.split() for c in cmds]:
            for line in run([tmp_path / "usr/bin" / name, *cmd, "--help"]).stdout.splitlines():
                assert line.strip() in lines, f"man {name} lacks this line of {name} {' '.join(cmd)} --help: {line!r}"


def has_interpreter(path):
    """Whether the ELF64 file at path asks for a dynamic loader (PT_INTERP)."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:5] == b"\x7fELF\x02", f"{path}: not an ELF64 file"
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


# --- the .rpm ---------------------------------------------------------------

def rpm_query(rpm, *args):
    return run(["rpm", "--query", "--package", *args, rpm]).stdout


def test_rpm_files(packages):
    _, rpm = packages
    assert set(rpm_query(rpm, "--list").split()) == FILES | DIRS
    assert set(rpm_query(rpm, "--configfiles").split()) == CONFIG
    assert rpm_query(rpm, "--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}") == \
        f"zrs {PKG_VERSION} 1 {RPM_ARCH[goarch()]}"


def test_rpm_scriptlets(packages):
    _, rpm = packages
    out = rpm_query(rpm, "--scripts")
    for label, name in (("postinstall", "post"), ("preuninstall", "preun"),
                        ("postuninstall", "postun")):
        body = (REPO / "packaging/rpm" / name).read_text()
        assert f"{label} scriptlet (using /bin/sh):\n{body}" in out, label
    assert "preinstall" not in out


# --- the maintainer scripts, run against stubs ------------------------------

SCRIPTS = [
    ("deb/postinst", ["configure", ""]),
    ("deb/postinst", ["configure", "1.2.2"]),
    ("deb/prerm", ["remove"]),
    ("deb/prerm", ["upgrade", "1.2.4"]),
    ("deb/postrm", ["remove"]),
    ("deb/postrm", ["purge"]),
    ("rpm/post", ["1"]),
    ("rpm/post", ["2"]),
    ("rpm/preun", ["0"]),
    ("rpm/preun", ["1"]),
    ("rpm/postun", ["0"]),
    ("rpm/postun", ["1"]),
]


# The scripts that change the installed unit files, hence reload systemd;
# and the calls after which running instances are told what to do (restart
# them after an upgrade, stop them after a removal).
RELOADS = {"deb/postinst", "deb/postrm", "rpm/post", "rpm/postun"}
TELLS = {("deb/postinst", "configure 1.2.2"), ("deb/prerm", "remove"), ("rpm/post", "2"), ("rpm/preun", "0")}


@pytest.mark.parametrize("booted,running", [(False, False), (True, False), (True, True)],
                         ids=["no-systemd", "systemd", "systemd-running"])
@pytest.mark.parametrize("script,args", SCRIPTS, ids=[f"{s} {' '.join(a)}" for s, a in SCRIPTS])
def test_script_never_starts_or_stops(script, args, booted, running, tmp_path):
    """Run as on a real host (no DPKG_ROOT) against stubs, with and without a
    booted systemd (the script's /run/systemd/system check pointed at a
    directory of the test's) and zrs instances running or not: systemctl is
    only ever asked to reload or to list, systemd reloads after every change
    of the unit files, running instances are told what to run themselves;
    postinst makes the user and data root through systemd-sysusers/-tmpfiles
    with our conf files."""
    log = tmp_path / "calls.log"
    stubs = stub_dir(tmp_path, log, grep_matches=running)
    env = {"PATH": f"{stubs}:/usr/bin:/bin"}
    body = (REPO / "packaging" / script).read_text()
    assert body.count("/run/systemd/system") == 1, "one check of a booted systemd"
    run_systemd = tmp_path / "run-systemd-system"
    if booted:
        run_systemd.mkdir()
    copy = tmp_path / "script"
    copy.write_text(body.replace("/run/systemd/system", str(run_systemd)))
    run(["/bin/sh", "-n", copy])
    out = run(["/bin/sh", copy, *args], env=env).stdout
    asked = [c.split()[1] for c in calls(log) if c.startswith("systemctl ")]
    assert set(asked) <= ALLOWED_SYSTEMCTL, asked
    assert ("daemon-reload" in asked) == (booted and script in RELOADS), asked
    told = re.findall(r"systemctl (restart|stop) ", out)
    assert bool(told) == (running and (script, " ".join(args)) in TELLS), out
    if script in ("deb/postinst", "rpm/post"):
        assert "systemd-sysusers zrs.conf" in calls(log)
        assert "systemd-tmpfiles --create zrs.conf" in calls(log)
    else:
        assert not [c for c in calls(log) if c.startswith(("systemd-", "useradd", "install"))]


@pytest.mark.parametrize("script,args", [("deb/postinst", ["configure", ""]), ("rpm/post", ["1"])])
def test_postinst_without_systemd(script, args, tmp_path):
    """Where systemd-sysusers and -tmpfiles are missing (a container), the
    same user and directory are made with useradd and install."""
    log = tmp_path / "calls.log"
    stubs = stub_dir(tmp_path, log, fail={"getent"})
    for gone in ("systemd-sysusers", "systemd-tmpfiles", "systemctl"):
        (stubs / gone).unlink()
    run(["/bin/sh", REPO / "packaging" / script, *args], env={"PATH": str(stubs)})
    useradd = [c for c in calls(log) if c.startswith("useradd ")]
    assert len(useradd) == 1
    assert "--system" in useradd[0] and "--home-dir /var/lib/zrs" in useradd[0]
    assert useradd[0].endswith(" zrs")
    assert "install -d -m 0750 -o zrs -g zrs /var/lib/zrs" in calls(log)


# --- docs/INSTALL.md, followed with the packaged zrs-recipe -----------------

def test_install_doc_renders_with_packaged_recipe(packages, tmp_path):
    """The two site files of docs/INSTALL.md (db1's primary, db2's secondary)
    render with the zrs-recipe the .deb ships into the files the page names,
    and the recipe prints the systemctl commands the page tells to run; so
    do the shipped site.yaml.example and the page's own claims about it."""
    deb, _ = packages
    tree = tmp_path / "deb"
    run(["dpkg-deb", "--extract", deb, tree])
    recipe = tree / "usr/bin/zrs-recipe"
    doc = (REPO / "docs/INSTALL.md").read_text()
    sites = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert len(sites) == 2, "docs/INSTALL.md: want db1's and db2's site.yaml"
    enable = dict((m.group(2), m.group(1).strip())
                  for m in re.finditer(r"^(systemctl enable --now [^#\n]*)# (db\d)$", doc, re.M))
    assert set(enable) == {"db1", "db2"}, enable
    units = {
        "db1": {"etc/zrs/main.yaml", "etc/systemd/system/zrs-zeo@main.socket",
                "etc/systemd/system/zrs-replication@main.socket"},
        "db2": {"etc/zrs/main.yaml", "etc/systemd/system/zrs-zeo@main.socket"},
    }
    for host, site in zip(("db1", "db2"), sites):
        (tmp_path / f"{host}.yaml").write_text(site)
        root = tmp_path / host
        out = run([recipe, "--site", tmp_path / f"{host}.yaml", "--root", root]).stdout
        lines = [line.strip() for line in out.splitlines()]
        assert "systemctl daemon-reload" in lines and enable[host] in lines, out
        rendered = {str(p.relative_to(root)) for p in root.rglob("*")
                    if p.is_file() and "zrs-recipe" not in p.parts}
        assert rendered == units[host], rendered
        again = run([recipe, "--site", tmp_path / f"{host}.yaml", "--root", root]).stdout
        assert "no changes" in again, again

    root = tmp_path / "example"
    run([recipe, "--site", tree / "etc/zrs/site.yaml.example", "--root", root])
    assert (root / "etc/zrs/main.yaml").is_file()
