package zodb

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTypedErrorsWrapSentinels(t *testing.T) {
	cases := []struct {
		err      error
		sentinel error
		text     string
	}{
		{&NotFoundError{Oid: 7}, ErrNotFound, "object 0000000000000007 not found"},
		{&NotFoundError{Oid: 7, Tid: 9}, ErrNotFound, "at tid 0000000000000009"},
		{&ConflictError{Oid: 1, Committed: 3, Old: 2}, ErrConflict, "committed serial 0000000000000003, writer's serial 0000000000000002"},
		{&UndoError{Tid: 5, Reason: "packed"}, ErrUndo, "cannot undo transaction 0000000000000005: packed"},
		{&UndoError{Tid: 5, Oid: 2, Reason: "changed later"}, ErrUndo, "object 0000000000000002"},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("outer: %w", c.err)
		if !errors.Is(wrapped, c.sentinel) {
			t.Errorf("%v does not wrap %v", c.err, c.sentinel)
		}
		if !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("%q lacks %q", c.err.Error(), c.text)
		}
	}
	var ce *ConflictError
	if !errors.As(fmt.Errorf("x: %w", &ConflictError{Oid: 4}), &ce) || ce.Oid != 4 {
		t.Fatal("errors.As ConflictError")
	}
}
