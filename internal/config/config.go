package config

import (
	"fmt"
	"time"

	"github.com/zrs-replication/zrs/core/primary"
)

// Roles.
const (
	Primary   = "primary"
	Secondary = "secondary"
)

// MaxTransactionMB bounds max_transaction_mb (and --zeo-max-txn-mb): 1 TiB,
// far beyond any transaction, and safe to shift into bytes.
const MaxTransactionMB = 1 << 20

// Defaults applied by Parse to what a file leaves out.
const (
	DefaultLogLevel         = "info"
	DefaultMaxTransactionMB = 1024
	DefaultDurabilityLevel  = "async"
	DefaultQuorum           = 1
	DefaultSyncTimeout      = primary.DefaultSyncTimeout
	DefaultOnSyncTimeout    = "fail"
	// DefaultProtocol is what an empty replication.protocol means.
	DefaultProtocol = "auto"
)

// Config is one daemon instance. The yaml tags are the file's keys; the
// optional sections are pointers, nil when the file has no such section.
type Config struct {
	Name string `yaml:"name"` // instance name, in logs and the systemd STATUS
	Role string `yaml:"role"` // Primary or Secondary
	Path string `yaml:"path"` // the Data.fs
	// BlobDir is reserved: it must be empty until blobs are replicated.
	BlobDir     string       `yaml:"blob_dir,omitempty"`
	LogLevel    string       `yaml:"log_level"`       // debug, info, warn or error
	Admin       string       `yaml:"admin,omitempty"` // ADDR of the HTTP admin endpoint, "" for none
	ZEO         *ZEO         `yaml:"zeo,omitempty"`   // serve ZEO clients
	Replication *Replication `yaml:"replication,omitempty"`
	Durability  *Durability  `yaml:"durability,omitempty"` // primary only

	// Where the values came from, for errors: set by Parse.
	file  string
	lines map[string]int // key path -> line of its key
}

// ZEO is the zeo section: the flags --zeo, --zeo-msgpack, ... of the
// primary and secondary commands.
type ZEO struct {
	Address            string        `yaml:"address"`           // ADDR; socket name "zeo"
	Storage            string        `yaml:"storage,omitempty"` // the storage name clients ask for; "" means "1"
	Msgpack            bool          `yaml:"msgpack"`
	TransactionTimeout time.Duration `yaml:"transaction_timeout"` // 0: wait forever
	MaxTransactionMB   int           `yaml:"max_transaction_mb"`  // largest transaction a client may send, MiB
	TLS                *TLS          `yaml:"tls,omitempty"`
}

// TLS is zeo.tls: PEM files.
type TLS struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// Authenticate is a PEM file or a directory of them: the CAs a client
	// certificate must be signed by; "" accepts clients without one.
	Authenticate string `yaml:"authenticate,omitempty"`
}

// Replication is the replication section.
type Replication struct {
	Listen    string        `yaml:"listen,omitempty"`     // ADDR to serve secondaries on; socket name "replication"
	From      string        `yaml:"from,omitempty"`       // secondary: the primary's ADDR
	Protocol  string        `yaml:"protocol,omitempty"`   // secondary: auto (""), zrs2 or zrs3
	KeepAlive time.Duration `yaml:"keep_alive,omitempty"` // secondary: 0 for none
	// ReadTimeout and IdleTimeout (secondary): secondary.Options'; 0 for
	// the defaults (zrs2: wait forever; zrs3: 3 heartbeat intervals).
	ReadTimeout time.Duration `yaml:"read_timeout,omitempty"`
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
	// Compression (secondary, zrs3): false refuses zstd from the
	// primary, as --compression=false; unset accepts it.
	Compression *bool `yaml:"compression,omitempty" default:"true"`
}

// Durability is the durability section of a primary.
type Durability struct {
	Level         string        `yaml:"level"` // async or sync
	Quorum        int           `yaml:"quorum"`
	SyncTimeout   time.Duration `yaml:"sync_timeout"`
	OnSyncTimeout string        `yaml:"on_sync_timeout"` // fail or degrade
}

// defaults are the values of a Config whose file sets nothing.
func (c *Config) defaults() { c.LogLevel = DefaultLogLevel }

func (z *ZEO) defaults() { z.MaxTransactionMB = DefaultMaxTransactionMB }

func (d *Durability) defaults() {
	d.Level, d.Quorum, d.SyncTimeout, d.OnSyncTimeout =
		DefaultDurabilityLevel, DefaultQuorum, DefaultSyncTimeout, DefaultOnSyncTimeout
}

// NewZEO returns a zeo section with the defaults and the address.
func NewZEO(address string) *ZEO {
	z := &ZEO{Address: address}
	z.defaults()
	return z
}

// NewDurability returns a durability section with the defaults.
func NewDurability() *Durability {
	d := &Durability{}
	d.defaults()
	return d
}

// File is the file the config was parsed from ("" when built in code).
func (c *Config) File() string { return c.file }

// Where names a key of the file for messages: "main.yaml:9: zeo.tls.key",
// or the key alone when its line is not known.
func (c *Config) Where(key string) string {
	if line := c.lines[key]; line > 0 && c.file != "" {
		return fmt.Sprintf("%s:%d: %s", c.file, line, key)
	}
	return key
}

// IsPrimary reports whether the role is primary.
func (c *Config) IsPrimary() bool { return c.Role == Primary }

// ZEOAddress is zeo.address, "" without a zeo section.
func (c *Config) ZEOAddress() string {
	if c.ZEO == nil {
		return ""
	}
	return c.ZEO.Address
}

// ReplicationListen is replication.listen, "" when not set.
func (c *Config) ReplicationListen() string {
	if c.Replication == nil {
		return ""
	}
	return c.Replication.Listen
}

// ReplicationFrom is replication.from, "" when not set.
func (c *Config) ReplicationFrom() string {
	if c.Replication == nil {
		return ""
	}
	return c.Replication.From
}

// fmtDuration writes a duration the way Parse reads it back.
func fmtDuration(ns int64) string { return time.Duration(ns).String() }
