// Package recipes turns a site file (site.yaml) into what runs each of its
// storages on a host: the modern form of the zc.zrs buildout recipe, where
// a buildout part rendered a ZEO server's config and a control script.
//
// A site lists parts, each a storage server (an instance zrs@NAME of the
// zrs@.service template), under defaults that every part inherits unless
// it overrides them. A part's keys are those of the daemon config of "zrs
// run --config" (package internal/config: role, path, zeo, replication,
// durability, ...) plus data_dir and user. ParseSite decodes strictly and
// validates the whole site: every part as the daemon would (the same
// Validate), what a systemd socket needs on top (IP addresses, not host
// names; absolute socket paths), and what parts on one host cannot share
// (ports, socket paths, data files). Every error names the file, the line
// and the key path: "site.yaml:12: parts.main.zeo.adress: unknown field".
//
// Render produces, per part, /etc/zrs/NAME.yaml (rendered by
// internal/config, so the daemon reads exactly what the recipe writes),
// zrs-zeo@NAME.socket and zrs-replication@NAME.socket for the listeners it
// has (one socket unit per listener, because FileDescriptorName= names
// every socket of a unit alike), and a drop-in for a part that runs as
// another user or writes outside /var/lib/zrs/NAME. The unit text comes
// from the templates of package systemd.
//
// Apply is buildout-like: it remembers what it installed, with content
// hashes, in /var/lib/zrs-recipe/installed.json under the root; a second
// run changes nothing; files of a part (or a listener) that left the site
// are removed; a file it did not write, or one edited by hand since, is
// never overwritten or removed without Force. DryRun shows the unified
// diff instead. It never runs systemctl unless asked to; it reports the
// commands to run.
//
// Import reads a Python ZEO configuration (ZConfig, with %import zc.zrs and
// <zrs>, or the 2.x <primary> and <secondary> sections) and writes the
// equivalent site file, with comments for what has no equivalent.
//
// Written by hand where a library could serve: the YAML walk (yaml.v3's
// KnownFields errors name a Go type, not the key path an operator typed,
// and cannot tell a key left out from one set to its zero value, which
// merging defaults needs); the unified diff (a longest-common-subsequence
// over files of a few dozen lines, not worth a dependency); and the
// ZConfig reader (no Go implementation exists, and these files use a small
// part of the syntax).
package recipes
