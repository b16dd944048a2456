package config

import (
	"reflect"
)

// Diff returns the key paths whose values differ between a and b, in
// the documented key order: "log_level", "zeo.address", or a whole
// section ("durability") present in one and not the other. "zrs run"
// uses it on SIGHUP to tell what it applied from what needs a restart.
func Diff(a, b *Config) []string {
	return diff(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", nil)
}

func diff(a, b reflect.Value, path string, out []string) []string {
	for yf := range yamlFields(a.Type()) {
		key := joinPath(path, yf.key)
		fa, fb := a.Field(yf.index), b.Field(yf.index)
		if fa.Kind() != reflect.Pointer {
			if !fa.Equal(fb) {
				out = append(out, key)
			}
			continue
		}
		switch {
		case fa.IsNil() && fb.IsNil():
		case fa.IsNil() != fb.IsNil():
			out = append(out, key)
		case fa.Elem().Kind() != reflect.Struct: // an optional scalar
			if !fa.Elem().Equal(fb.Elem()) {
				out = append(out, key)
			}
		default:
			out = diff(fa.Elem(), fb.Elem(), key, out)
		}
	}
	return out
}
