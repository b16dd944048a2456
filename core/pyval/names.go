package pyval

import "strings"

// Python 3 renamed some modules and builtins that pickles refer to. A
// pickle below protocol 3 may carry the Python 2 names (Python 3 writes
// them too, for Python 2 readers), and Python 3's unpickler maps them back
// when it loads one; its pickler maps the other way when it writes
// protocol 2 or lower. These are the renames that can occur in the values
// zrs carries: builtins such as set, the helper copy_reg pickles plain
// instances with, exceptions, the UserDict family. A rarer renamed module
// (Python's tables list about a hundred) keeps the name it was read with,
// which Python 3 loads from a pickle below protocol 3 only.

// py2Modules maps Python 2 module names to Python 3's.
var py2Modules = map[string]string{
	"__builtin__": "builtins",
	"copy_reg":    "copyreg",
}

// py2Moved maps Python 2 globals that moved to another module, among them
// the UserDict family, which Python 3 writes below protocol 3 under its
// Python 2 names. Python 2's exceptions module is builtins in Python 3.
var py2Moved = map[string]string{
	"UserDict\nUserDict":         "collections\nUserDict",
	"UserDict\nIterableUserDict": "collections\nUserDict",
	"UserList\nUserList":         "collections\nUserList",
	"UserString\nUserString":     "collections\nUserString",
	"__builtin__\nreduce":        "functools\nreduce",
	"__builtin__\nintern":        "sys\nintern",
}

// py2Builtins maps Python 2 builtins to the Python 3 builtins that
// replaced them.
var py2Builtins = map[string]string{
	"unicode": "str",
	"long":    "int",
	"xrange":  "range",
	"unichr":  "chr",
}

// py3Name returns the Python 3 name of a global read from a pickle below
// protocol 3.
func py3Name(mod, name string) (string, string) {
	if moved, ok := py2Moved[mod+"\n"+name]; ok {
		mod, name, _ = strings.Cut(moved, "\n")
		return mod, name
	}
	if mod == "exceptions" {
		return "builtins", name
	}
	if m, ok := py2Modules[mod]; ok {
		if mod == "__builtin__" {
			if n, ok := py2Builtins[name]; ok {
				name = n
			}
		}
		return m, name
	}
	return mod, name
}

// py2Name returns the name Python 3's pickler writes below protocol 3 for
// the global module.name.
func py2Name(mod, name string) (string, string) {
	for m2, m3 := range py2Modules {
		if mod != m3 {
			continue
		}
		if mod == "builtins" {
			for n2, n3 := range py2Builtins {
				if name == n3 {
					name = n2
				}
			}
		}
		return m2, name
	}
	return mod, name
}
