package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoServerDependencies keeps the promise of the package comment: an app
// importing client pulls in the standard library only — no database
// driver, no Fiber, no NATS, none of the server's packages.
func TestNoServerDependencies(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/creditledger/creditledger/client" {
			t.Errorf("client depends on %s", p)
		}
	}
}
