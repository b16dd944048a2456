// Package systemd holds the systemd files of zrs, one copy each, and embeds
// them so that zrs-recipe renders from the same text the packages ship.
//
// Shipped as they are (the deb and rpm install them; see packaging/):
//
//   - zrs@.service: the unit template, one storage server per instance
//     NAME, running "zrs run --config /etc/zrs/NAME.yaml" as Type=notify
//     under the zrs user, hardened (ProtectSystem=strict, NoNewPrivileges=,
//     an empty capability set, ...), to /usr/lib/systemd/system/;
//   - sysusers.d/zrs.conf: the zrs system user, to /usr/lib/sysusers.d/;
//   - tmpfiles.d/zrs.conf: /var/lib/zrs and /etc/zrs, to /usr/lib/tmpfiles.d/.
//
// Rendered per part by zrs-recipe (package recipes) from templates/:
//
//   - socket.tmpl: zrs-zeo@NAME.socket and zrs-replication@NAME.socket. A
//     part gets one socket unit per listener because FileDescriptorName=
//     names every socket of a unit alike, and "zrs run" tells the ZEO
//     listener from the replication one by that name;
//   - dropin.tmpl: zrs@NAME.service.d/zrs-recipe.conf, only for a part that
//     runs as another user or keeps files outside the template's
//     ReadWritePaths=.
//
// The templates are text/template files rather than Go code (or a unit file
// library) so that an operator reads the unit exactly as it will be written;
// systemd's unit syntax is line-based and needs no escaping beyond what the
// recipe validates out of the values (no newlines, IP literals only).
package systemd
