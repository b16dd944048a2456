package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/zrs-replication/zrs/internal/admin"
)

const promoteUsage = `Usage: zrs promote ADDR

Turn the running secondary whose admin endpoint (--admin) is at ADDR into
the primary: it stops replicating from its primary, and its storage
becomes writable, without a restart (a relay keeps serving its own
secondaries). Prints the new role and the last transaction; on a node
already promoted, says so and since when, and exits 0. Exits 1 if the node
was started as a primary, or if the promotion did not finish within the
node's 30 s (a transaction still waiting for its fsync): the node then no
longer replicates and stays read-only until "zrs promote" is run again.
ADDR is a port, host:port, or a unix socket path.

Before promoting, stop writes on the old primary (or make sure it is
dead) and check with "zrs status" that the secondary is caught up:
transactions the old primary committed after the secondary's last one
are not on the new primary.

Flags:
`

// runPromote runs "zrs promote".
func runPromote(ctx context.Context, args []string, e *env) error {
	fset := flag.NewFlagSet("promote", flag.ContinueOnError)
	fset.Usage = usageFunc(fset, promoteUsage)
	addr, err := oneAddr(fset, args, e)
	if err != nil {
		return err
	}
	c, err := adminClient("promote", addr)
	if err != nil {
		return err
	}
	// Longer than the node's own bound, so that a promotion that times
	// out there is reported with the node's reason.
	ctx, cancel := context.WithTimeout(ctx, admin.PromoteTimeout+10*time.Second)
	defer cancel()
	res, err := c.Promote(ctx)
	if errors.Is(err, admin.ErrNotSecondary) {
		return fmt.Errorf("promote %s: %w (nothing to promote)", addr, err)
	}
	if err != nil {
		return err
	}
	if res.Already {
		fmt.Fprintf(e.stdout, "already promoted: %s has been %s since %s; last tid %s\n",
			addr, res.Role, res.PromotedAt.Format(time.RFC3339), res.LastTid)
		return nil
	}
	fmt.Fprintf(e.stdout, "promoted: %s is now %s; last tid %s (took %.1f ms)\n",
		addr, res.Role, res.LastTid, res.TookSeconds*1000)
	return nil
}
