module github.com/zrs-replication/zrs

go 1.26.0

require (
	github.com/kisielk/og-rek v1.3.0
	github.com/klauspost/compress v1.20.4
	golang.org/x/sync v0.23.0
)

require (
	github.com/aristanetworks/gomap v0.0.0-20230726210543-f4e41046dced // indirect
	golang.org/x/exp v0.0.0-20230725093048-515e97ebf090 // indirect
)
