package main

import (
	"fmt"

	"github.com/zrs-replication/zrs/core/secondary"
)

// setProtocol makes the secondary ask for proto ("" is the default). This
// secondary speaks zrs2 only.
func setProtocol(_ *secondary.Options, proto string) error {
	if proto != "" && proto != "zrs2" {
		return fmt.Errorf("protocol %q: this secondary speaks zrs2 only", proto)
	}
	return nil
}
