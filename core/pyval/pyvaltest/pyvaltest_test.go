package pyvaltest

import "testing"

func TestFromJSON(t *testing.T) {
	v, err := FromJSON([]byte(`{"t":[null,true,"é",[{"i":"-18446744073709551617"}],{"f":"3ff8000000000000"},{"b":"00ff"},{"d":[["k",{"i":"1"}]]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.String(); got != `(None, True, 'é', [-18446744073709551617], 1.5, b'\x00\xff', {'k': 1})` {
		t.Errorf("got %s", got)
	}
	for _, bad := range []string{`1`, `{"x":"1"}`, `{"i":"x"}`, `{"f":"00"}`, `{"b":"zz"}`, `{"d":[[1]]}`,
		`{"d":[[[], 1]]}`, `{"t":1}`, `{"i":1}`, `null null`, `{"i":"1","b":""}`} {
		if v, err := FromJSON([]byte(bad)); err == nil {
			t.Errorf("%s parsed as %v", bad, v)
		}
	}
}
