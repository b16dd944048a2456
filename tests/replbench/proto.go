package main

import (
	"github.com/zrs-replication/zrs/core/secondary"
)

// setProtocol makes the secondary ask for proto ("" is the default).
func setProtocol(o *secondary.Options, proto string) error {
	o.Protocol = secondary.Protocol(proto)
	return nil
}
