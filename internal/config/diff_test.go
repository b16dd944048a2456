package config

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	a, err := Parse("a.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Parse("b.yaml", []byte(full))
	if d := Diff(a, b); len(d) != 0 {
		t.Errorf("same config: %q", d)
	}
	b.LogLevel = "warn"
	b.ZEO.Address = "8300"
	b.ZEO.TLS.Authenticate = ""
	b.Durability = nil
	off := false
	b.Replication.Compression = &off // unset in a
	want := []string{"log_level", "zeo.address", "zeo.tls.authenticate", "replication.compression", "durability"}
	if d := Diff(a, b); !slices.Equal(d, want) {
		t.Errorf("diff %q, want %q", d, want)
	}
	on := true
	a.Replication.Compression = &on
	if d := Diff(a, b); !slices.Contains(d, "replication.compression") {
		t.Errorf("compression true against false: diff %q", d)
	}
	a.Replication.Compression = &off
	if d := Diff(a, b); slices.Contains(d, "replication.compression") {
		t.Errorf("compression false against false: diff %q", d)
	}
	// Unset means true: setting it to true changes nothing.
	a.Replication.Compression, b.Replication.Compression = nil, &on
	if d := Diff(a, b); slices.Contains(d, "replication.compression") {
		t.Errorf("compression unset against true: diff %q", d)
	}
	if d := Diff(b, a); slices.Contains(d, "replication.compression") {
		t.Errorf("compression true against unset: diff %q", d)
	}
}
