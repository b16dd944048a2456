package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/zrs-replication/zrs/internal/config"
	"github.com/zrs-replication/zrs/internal/netaddr"
)

// Socket names (FileDescriptorName= of the socket units) zrs run knows.
const (
	socketZEO         = "zeo"
	socketReplication = "replication"
)

// inheritedListeners takes the sockets systemd passed (LISTEN_FDS) and
// assigns them to the config's ZEO and replication addresses. With none
// passed both are nil and the node listens itself.
func inheritedListeners(c *config.Config, log *slog.Logger) (zeoLns, replLns []net.Listener, err error) {
	passed := passedFDs()
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return nil, nil, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	n := 0
	for _, lns := range byName {
		n += len(lns)
	}
	if n != passed {
		closeAll(byName)
		return nil, nil, fmt.Errorf("sockets passed by systemd: %d of LISTEN_FDS=%d are not listening stream sockets (zrs serves TCP or unix stream sockets only)", passed-n, passed)
	}
	zeoLns, replLns, err = assignListeners(c, byName)
	if err != nil {
		closeAll(byName)
		return nil, nil, err
	}
	for _, ln := range zeoLns {
		log.Info("using the ZEO socket passed by systemd", "addr", ln.Addr().String())
	}
	for _, ln := range replLns {
		log.Info("using the replication socket passed by systemd", "addr", ln.Addr().String())
	}
	return zeoLns, replLns, nil
}

// passedFDs is LISTEN_FDS when the sockets are meant for this process.
func passedFDs() int {
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// assignListeners maps passed sockets to the config: by name ("zeo",
// "replication"), else by the address they are bound to. A socket that
// matches nothing in the config is an error naming it.
func assignListeners(c *config.Config, byName map[string][]net.Listener) (zeoLns, replLns []net.Listener, err error) {
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names)
	zeoAddr, replAddr := c.ZEOAddress(), c.ReplicationListen()
	where := c.File()
	if where == "" {
		where = "the config"
	}
	for _, name := range names {
		for _, ln := range byName[name] {
			switch {
			case name == socketZEO && zeoAddr == "":
				return nil, nil, fmt.Errorf("socket %q (%s) passed by systemd: %s has no zeo.address", name, ln.Addr(), where)
			case name == socketReplication && replAddr == "":
				return nil, nil, fmt.Errorf("socket %q (%s) passed by systemd: %s has no replication.listen", name, ln.Addr(), where)
			case name == socketZEO, name != socketReplication && boundTo(ln, zeoAddr):
				zeoLns = append(zeoLns, ln)
			case name == socketReplication, boundTo(ln, replAddr):
				replLns = append(replLns, ln)
			default:
				return nil, nil, fmt.Errorf("socket %q (%s) passed by systemd matches neither zeo.address (%q) nor replication.listen (%q) of %s; name it \"zeo\" or \"replication\" with FileDescriptorName=",
					name, ln.Addr(), zeoAddr, replAddr, where)
			}
		}
	}
	return zeoLns, replLns, nil
}

// boundTo reports whether ln is bound to the ADDR addr: the same socket
// path, or the same port and host (a bare port means every interface; a
// host name matches any of its addresses).
func boundTo(ln net.Listener, addr string) bool {
	if addr == "" {
		return false
	}
	a, err := netaddr.Parse(addr)
	if err != nil {
		return false
	}
	switch la := ln.Addr().(type) {
	case *net.UnixAddr:
		return a.Network == netaddr.Unix && filepath.Clean(a.Host) == filepath.Clean(la.Name)
	case *net.TCPAddr:
		if a.Network != netaddr.TCP || a.Port != la.Port {
			return false
		}
		if a.Host == "" {
			return la.IP.IsUnspecified()
		}
		if ip := net.ParseIP(a.Host); ip != nil {
			return ip.Equal(la.IP) || ip.IsUnspecified() && la.IP.IsUnspecified()
		}
		ips, err := net.LookupIP(a.Host)
		if err != nil {
			return false
		}
		return slices.ContainsFunc(ips, la.IP.Equal)
	}
	return false
}

func closeAll(byName map[string][]net.Listener) {
	for _, lns := range byName {
		for _, ln := range lns {
			ln.Close()
		}
	}
}
