package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every setting of zrs@.service, section by section: the appliance
// contract (zrs run reads the config the recipe renders, notifies, runs as
// zrs) and the hardening the package doc promises. A setting added,
// dropped or repeated (ReadWritePaths= adds up) fails here first.
func TestServiceContract(t *testing.T) {
	wantUnit(t, "zrs@.service", Service(), []string{
		"Unit/Description=zrs ZODB storage server %i",
		"Unit/After=network-online.target",
		"Unit/Wants=network-online.target",
		"Service/Type=notify",
		"Service/NotifyAccess=main",
		"Service/ExecStart=/usr/bin/zrs run --config /etc/zrs/%i.yaml",
		"Service/ExecReload=/bin/kill -HUP $MAINPID",
		"Service/User=zrs",
		"Service/Group=zrs",
		"Service/UMask=0027",
		"Service/StateDirectory=zrs/%i",
		"Service/StateDirectoryMode=0750",
		"Service/RuntimeDirectory=zrs",
		"Service/RuntimeDirectoryMode=0755",
		// Without it, stopping one instance removes the others' sockets.
		"Service/RuntimeDirectoryPreserve=yes",
		"Service/WatchdogSec=30s",
		"Service/KillSignal=SIGTERM",
		"Service/TimeoutStopSec=90s",
		"Service/Restart=on-failure",
		"Service/RestartSec=5s",
		"Service/LimitNOFILE=65536",
		"Service/ProtectSystem=strict",
		"Service/ReadWritePaths=/var/lib/zrs/%i",
		"Service/ProtectHome=yes",
		"Service/PrivateTmp=yes",
		"Service/PrivateDevices=yes",
		"Service/NoNewPrivileges=yes",
		"Service/ProtectKernelTunables=yes",
		"Service/ProtectKernelModules=yes",
		"Service/ProtectKernelLogs=yes",
		"Service/ProtectControlGroups=yes",
		"Service/ProtectClock=yes",
		"Service/ProtectHostname=yes",
		"Service/RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		"Service/RestrictNamespaces=yes",
		"Service/RestrictRealtime=yes",
		"Service/RestrictSUIDSGID=yes",
		"Service/LockPersonality=yes",
		"Service/MemoryDenyWriteExecute=yes",
		"Service/SystemCallArchitectures=native",
		"Service/CapabilityBoundingSet=", // no capabilities at all
		"Install/WantedBy=multi-user.target",
	})
}

// wantUnit compares every setting of a unit file, as "Section/Key=value",
// with want (in any order, each as often as it occurs).
func wantUnit(t *testing.T, name string, b []byte, want []string) {
	t.Helper()
	got := parseUnit(t, b)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		for _, s := range got {
			if !slices.Contains(want, s) {
				t.Errorf("%s has %q, not expected", name, s)
			}
		}
		for _, s := range want {
			if !slices.Contains(got, s) {
				t.Errorf("%s lacks %q", name, s)
			}
		}
		if !t.Failed() {
			t.Errorf("%s: settings %q, want %q (a repeated one?)", name, got, want)
		}
	}
}

func TestSysusersAndTmpfiles(t *testing.T) {
	if got := lines(Sysusers()); len(got) != 1 || got[0] != `u zrs - "zrs replication" /var/lib/zrs` {
		t.Errorf("sysusers: %q", got)
	}
	got := lines(Tmpfiles())
	want := []string{"d /var/lib/zrs 0750 zrs zrs -", "d /etc/zrs 0755 root root -"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tmpfiles: %q, want %q", got, want)
	}
}

func TestSocketTemplate(t *testing.T) {
	var b bytes.Buffer
	err := Socket.Execute(&b, SocketData{Unit: "zrs-zeo@main.socket", Name: "main", What: "ZEO",
		FDName: "zeo", Listen: "127.0.0.1:8100"})
	if err != nil {
		t.Fatal(err)
	}
	wantUnit(t, "TCP socket unit", b.Bytes(), []string{
		"Unit/Description=zrs main: ZEO socket (127.0.0.1:8100)",
		"Socket/ListenStream=127.0.0.1:8100",
		"Socket/FileDescriptorName=zeo",
		"Socket/Service=zrs@main.service",
		"Socket/FreeBind=yes",
		"Install/WantedBy=sockets.target",
	})
	b.Reset()
	err = Socket.Execute(&b, SocketData{Unit: "zrs-zeo@main.socket", Name: "main", What: "ZEO",
		FDName: "zeo", Listen: "/run/zrs/main.zeo", Unix: true, User: "zrs-main"})
	if err != nil {
		t.Fatal(err)
	}
	wantUnit(t, "unix socket unit", b.Bytes(), []string{
		"Unit/Description=zrs main: ZEO socket (/run/zrs/main.zeo)",
		"Socket/ListenStream=/run/zrs/main.zeo",
		"Socket/FileDescriptorName=zeo",
		"Socket/Service=zrs@main.service",
		"Socket/SocketUser=zrs-main",
		"Socket/SocketGroup=zrs-main",
		"Socket/SocketMode=0660",
		"Socket/RemoveOnStop=yes",
		"Install/WantedBy=sockets.target",
	})
}

func TestDropinTemplate(t *testing.T) {
	var b bytes.Buffer
	if err := Dropin.Execute(&b, DropinData{Name: "main", User: "zrs-main", ReadWritePaths: []string{"/srv/a", "/srv/b"}}); err != nil {
		t.Fatal(err)
	}
	wantUnit(t, "drop-in", b.Bytes(), []string{
		"Service/User=zrs-main",
		"Service/Group=zrs-main",
		"Service/ReadWritePaths=/srv/a",
		"Service/ReadWritePaths=/srv/b",
	})
	b.Reset()
	if err := Dropin.Execute(&b, DropinData{Name: "main"}); err != nil {
		t.Fatal(err)
	}
	wantUnit(t, "empty drop-in", b.Bytes(), nil)
}

// The template, instantiated as zrs@main.service, passes systemd-analyze
// verify. verify insists that ExecStart's program exists, so the copy runs
// /bin/true instead of /usr/bin/zrs (which is only there once the package is
// installed); SYSTEMD_UNIT_PATH puts the copy's directory first, and its
// trailing ":" keeps the system's units (sysinit.target, ...) reachable.
func TestServiceVerifies(t *testing.T) {
	dir := t.TempDir()
	unit := bytes.ReplaceAll(Service(), []byte("/usr/bin/zrs "), []byte("/bin/true "))
	if err := os.WriteFile(filepath.Join(dir, "zrs@.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "zrs@main.service")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify zrs@main.service: %v\n%s", err, out)
	}
}

// parseUnit lists the settings of a unit file as "Section/Key=value",
// in order.
func parseUnit(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	section := ""
	for _, l := range lines(b) {
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = l[1 : len(l)-1]
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || section == "" {
			t.Fatalf("unit line %q: not a setting in a section", l)
		}
		out = append(out, section+"/"+strings.TrimSpace(k)+"="+strings.TrimSpace(v))
	}
	return out
}

// lines returns the non-blank, non-comment lines of b.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
