package pg

import (
	"context"
	"testing"
)

// An empty URL is refused, not read as the environment's defaults.
func TestOpenRefusesAnEmptyURL(t *testing.T) {
	if db, err := Open(context.Background(), ""); err == nil {
		db.Close()
		t.Fatal("Open(\"\") connected to whatever the environment's defaults name")
	}
}
