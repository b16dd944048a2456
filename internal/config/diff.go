package config

import (
	"fmt"
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
			if !isDefault(a.Type().Field(yf.index), fa, fb) {
				out = append(out, key)
			}
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

// isDefault reports whether an optional scalar set in only one of two
// configs is set there to what its absence means (the field's "default"
// tag), so that both mean the same.
func isDefault(f reflect.StructField, a, b reflect.Value) bool {
	def, ok := f.Tag.Lookup("default")
	if !ok {
		return false
	}
	set := a
	if set.IsNil() {
		set = b
	}
	return set.Elem().Kind() != reflect.Struct && fmt.Sprint(set.Elem().Interface()) == def
}
