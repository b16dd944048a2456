// Package config is the daemon configuration of "zrs run --config FILE":
// one YAML file per instance (/etc/zrs/NAME.yaml on a host), saying what
// the flags of "zrs primary" and "zrs secondary" say.
//
// Load and Parse decode strictly and validate; Render writes a Config
// back as YAML (zrs-recipe renders the files "zrs run" reads with it, so
// the two can never disagree on the format). Every mistake is an *Error
// naming the file, the line and the key path, as an operator needs to
// fix it: "main.yaml:7: zeo.adress: unknown field".
//
// The decoding walks the gopkg.in/yaml.v3 node tree by hand rather than
// relying on yaml.v3's Decoder.KnownFields(true) alone, because its errors
// name a Go type and a line ("field adress not found in type
// config.ZEO"), not the key path an operator typed; the strict decoder
// still runs afterwards as a cross-check, so the two cannot drift apart.
// Rendering likewise builds the node tree itself so that durations are
// written as "10s" (yaml.v3 would write nanoseconds) and the keys come
// out in the documented order.
package config
