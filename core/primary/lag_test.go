package primary

import (
	"testing"

	"github.com/zrs-replication/zrs/core/zodb"
)

// Once the ring is full, each commit replaces the oldest one it remembers:
// a tid older than every remembered commit gets no exact count.
func TestCommitRingReplacesTheOldest(t *testing.T) {
	p := &Primary{}
	for i := 1; i <= commitRingSize+1; i++ {
		p.recordCommit(zodb.Tid(i))
	}
	if n, exact := p.commits.lagTxns(1); exact {
		t.Fatalf("lag behind the forgotten commit 1: %d, exact", n)
	}
	if n, exact := p.commits.lagTxns(2); !exact || n != commitRingSize-1 {
		t.Fatalf("lag behind commit 2: %d, exact %v; want %d, exact", n, exact, commitRingSize-1)
	}
	for i := commitRingSize + 2; i <= 3*commitRingSize; i++ {
		p.recordCommit(zodb.Tid(i))
	}
	oldest := zodb.Tid(2*commitRingSize + 1)
	if n, exact := p.commits.lagTxns(oldest - 1); exact {
		t.Fatalf("lag behind the forgotten commit %s: %d, exact", oldest-1, n)
	}
	if n, exact := p.commits.lagTxns(oldest); !exact || n != commitRingSize-1 {
		t.Fatalf("lag behind commit %s: %d, exact %v; want %d, exact", oldest, n, exact, commitRingSize-1)
	}
}
