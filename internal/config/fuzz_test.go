package config

import (
	"testing"
)

// FuzzParseConfig: any input gives a config or an error, never a panic,
// and every valid config survives Render and Parse unchanged.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte(base))
	f.Add([]byte(base + "zeo: {address: 8100, tls: {certificate: a, key: b}}\n"))
	f.Add([]byte("name: p\nrole: primary\npath: x\nreplication: {listen: 1}\ndurability: {}\n"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if len(AsErrors(err)) == 0 {
				t.Fatalf("error without position: %T %v", err, err)
			}
			return
		}
		out, err := Render(c)
		if err != nil {
			t.Fatalf("render of a valid config: %v", err)
		}
		c2, err := Parse("g.yaml", out)
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, out)
		}
		assertSame(t, c2, c)
	})
}
