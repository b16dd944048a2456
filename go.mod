module github.com/zrs-replication/zrs

go 1.26
