package config

import (
	"reflect"
	"strings"
)

// Diff returns the key paths whose values differ between a and b, in
// the documented key order: "log_level", "zeo.address", or a whole
// section ("durability") present in one and not the other. "zrs run"
// uses it on SIGHUP to tell what it applied from what needs a restart.
func Diff(a, b *Config) []string {
	return diff(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", nil)
}

func diff(a, b reflect.Value, path string, out []string) []string {
	t := a.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		key = joinPath(path, key)
		fa, fb := a.Field(i), b.Field(i)
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
		default:
			out = diff(fa.Elem(), fb.Elem(), key, out)
		}
	}
	return out
}
