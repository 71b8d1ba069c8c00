package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersionIsStampedAndLogged: `tolokasim -version` prints what the build
// stamped with -ldflags (as the Makefile and the Dockerfile do), and the
// emulator logs its build when it starts.
func TestVersionIsStampedAndLogged(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tolokasim")
	const pkg = "github.com/crowdgate/crowdgate/services/platform/buildinfo."
	ldflags := "-X " + pkg + "Version=v9.8.7-test -X " + pkg + "Commit=0123456789abcdef0123456789abcdef01234567 -X " + pkg + "BuildTime=2026-11-23T10:00:00Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-version")
	cmd.Env = append(os.Environ(), "TOLOKASIM_LOG_LEVEL=nonsense") // needs no configuration
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tolokasim -version: %v", err)
	}
	for _, want := range []string{"tolokasim v9.8.7-test", "commit 0123456789abcdef0123456789abcdef01234567", "built 2026-11-23T10:00:00Z", "go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tolokasim -version = %q, want it to contain %q", out, want)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr=127.0.0.1:0"}, func(string) string { return "" }, pw)
		pw.Close()
	}()
	logged := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "tolokasim is starting") {
				logged <- sc.Text()
			}
		}
		close(logged)
	}()
	select {
	case line := <-logged:
		if !strings.Contains(line, "version=dev") || !strings.Contains(line, "go_version=go1.") {
			t.Errorf("start-up line %q: want the (unstamped test binary's) version and Go version", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no start-up line with the build")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
