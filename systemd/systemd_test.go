package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The keys the appliance contract fixes for zrs@.service: zrs run reads
// the config the recipe renders, notifies, and runs hardened as zrs.
func TestServiceContract(t *testing.T) {
	keys := parseUnit(t, Service())
	want := map[string]string{
		"ExecStart":               "/usr/bin/zrs run --config /etc/zrs/%i.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Type":                    "notify",
		"User":                    "zrs",
		"Group":                   "zrs",
		"StateDirectory":          "zrs/%i",
		"RuntimeDirectory":        "zrs",
		"WatchdogSec":             "30s",
		"KillSignal":              "SIGTERM",
		"TimeoutStopSec":          "90s",
		"Restart":                 "on-failure",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"RestrictRealtime":        "yes",
		"SystemCallArchitectures": "native",
		"ReadWritePaths":          "/var/lib/zrs/%i",
		"WantedBy":                "multi-user.target",
	}
	for k, v := range want {
		if got := keys[k]; got != v {
			t.Errorf("zrs@.service %s=%q, want %q", k, got, v)
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
	keys := parseUnit(t, b.Bytes())
	for k, v := range map[string]string{"ListenStream": "127.0.0.1:8100", "FileDescriptorName": "zeo",
		"Service": "zrs@main.service", "WantedBy": "sockets.target", "FreeBind": "yes"} {
		if keys[k] != v {
			t.Errorf("%s=%q, want %q\n%s", k, keys[k], v, b.String())
		}
	}
	b.Reset()
	err = Socket.Execute(&b, SocketData{Unit: "zrs-zeo@main.socket", Name: "main", What: "ZEO",
		FDName: "zeo", Listen: "/run/zrs/main.zeo", Unix: true, User: "zrs"})
	if err != nil {
		t.Fatal(err)
	}
	keys = parseUnit(t, b.Bytes())
	if keys["SocketUser"] != "zrs" || keys["SocketMode"] != "0660" || keys["FreeBind"] != "" {
		t.Errorf("unix socket unit:\n%s", b.String())
	}
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

// parseUnit maps each key of a unit file to its last value (enough for
// these files, where the keys checked occur once).
func parseUnit(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range lines(b) {
		if strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("unit line %q has no '='", l)
		}
		m[k] = v
	}
	return m
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
