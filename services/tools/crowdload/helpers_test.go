package crowdload

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds the binaries the tests build once.
var binDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "crowdload-test-bin-")
	if err != nil {
		panic(err)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var builds sync.Map // pkg -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// binary builds ./cmd/<name> of the repository once per test binary.
func binary(t *testing.T, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(name, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		repo, err := findRepo("")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(binDir, name)
		b.err = buildBinary(context.Background(), repo, "./cmd/"+name, b.path)
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", name, b.err)
	}
	return b.path
}

// redisServerBin returns the redis-server binary, skipping the test when
// it is not installed (CI installs it).
func redisServerBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (CI installs it): cannot test a Redis the harness starts and restarts")
	}
	return p
}
