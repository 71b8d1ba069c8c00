package crowdload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestScanServing(t *testing.T) {
	log := strings.Join([]string{
		"---- crowdload: starting gateway-1 (/bin/crowdgate) at T0",
		`{"level":"INFO","msg":"crowdgate is serving","grpc_addr":"127.0.0.1:2","http_addr":"127.0.0.1:1"}`,
		"---- crowdload: starting gateway-1 (/bin/crowdgate) at T1",
		`{"level":"INFO","msg":"connecting to redis"}`,
	}, "\n")
	tests := []struct {
		starts int
		addr   string
		want   bool
	}{
		{1, "127.0.0.1:1", true},
		{1, "127.0.0.1:9", false}, // another address
		{2, "127.0.0.1:1", false}, // the restart has not logged it yet
	}
	for _, tt := range tests {
		if got := scanServing(strings.NewReader(log), tt.starts, tt.addr); got != tt.want {
			t.Errorf("scanServing(incarnation %d, %s) = %v, want %v", tt.starts, tt.addr, got, tt.want)
		}
	}
}

// A redis-server the harness starts keeps what it acknowledged across a
// SIGKILL (appendonly yes, appendfsync always) and comes back on the same
// port; close leaves no process behind.
func TestRedisServerSurvivesSIGKILL(t *testing.T) {
	bin := redisServerBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := startRedis(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	if !strings.HasPrefix(rs.url, "redis://127.0.0.1:") {
		t.Errorf("url %q is not loopback", rs.url)
	}
	opts, _ := redis.ParseURL(rs.url)
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "crowdload:test:k", "paid once", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := rs.proc.pid()
	if err := rs.restart(ctx); err != nil {
		t.Fatal(err)
	}
	if rs.proc.pid() == pid || rs.proc.pid() == 0 {
		t.Errorf("pid after restart %d, before %d: want a new process", rs.proc.pid(), pid)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the killed redis-server (pid %d) still exists", pid)
	}
	got, err := c.Get(ctx, "crowdload:test:k").Result()
	if err != nil || got != "paid once" {
		t.Errorf("after SIGKILL and restart: %q, %v; want the acknowledged write", got, err)
	}
	last := rs.proc.pid()
	rs.close()
	if rs.proc.pid() != 0 {
		t.Error("redis-server still running after close")
	}
	if err := syscall.Kill(last, 0); err == nil {
		t.Errorf("redis-server pid %d still exists after close", last)
	}
}

// The harness starts tolokasim on a free loopback port and drives its admin
// API: keys, assignments, ledger and faults.
func TestTolokasimProcessAndAdminAPI(t *testing.T) {
	bin := binary(t, "tolokasim")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts, err := startTolokasim(ctx, bin, t.TempDir(), false, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.close()
	emu := newEmulator(ts.url, http.DefaultClient)
	if emu.apiURL() != ts.url+"/api/v1" {
		t.Errorf("apiURL %q", emu.apiURL())
	}
	if err := emu.addAPIKey(ctx, "k1", "acct"); err != nil {
		t.Fatal(err)
	}
	f := FaultsFor(0.3, DefaultFaultMix, time.Second, 7)
	if err := emu.setFaults(ctx, f); err != nil {
		t.Fatalf("the emulator refuses the harness's faults: %v", err)
	}
	var back EmulatorFaults
	if err := emu.do(ctx, http.MethodGet, "/_admin/faults", nil, &back); err != nil {
		t.Fatal(err)
	}
	if back.Rate() < 0.299 || back.Rate() > 0.301 || back.HangMS != 1000 || back.ErrorRates[503] == 0 {
		t.Errorf("faults read back %+v, want what was set (%+v)", back, f)
	}
	if err := emu.clearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.createAssignment(ctx, "999", "u1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an assignment in a pool that does not exist: %v, want a 404", err)
	}
	l, err := emu.ledger(ctx, "999")
	if err != nil || l.Count != 0 || len(l.Entries) != 0 {
		t.Errorf("ledger of an empty pool: %+v, %v", l, err)
	}

	pid := ts.proc.pid()
	if err := ts.proc.kill(); err != nil {
		t.Fatal(err)
	}
	if err := emu.healthy(ctx); err == nil {
		t.Error("the emulator answers after SIGKILL")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("pid %d still exists after kill", pid)
	}
}

// stop asks nicely first and kills a process that ignores SIGTERM.
func TestProcessStopEscalatesToSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := &process{name: "stubborn", bin: "/bin/sh", args: []string{"-c", `trap "" TERM; echo up; while :; do sleep 0.05; done`}, logPath: filepath.Join(dir, "log")}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	if err := p.waitFor(context.Background(), 10*time.Second, "up", func(context.Context) error {
		if b, _ := os.ReadFile(p.logPath); strings.Contains(string(b), "\nup\n") {
			return nil
		}
		return errors.New("not up")
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.start(); err == nil {
		t.Error("start of a running process succeeded")
	}
	begin := time.Now()
	p.stop(200 * time.Millisecond)
	if p.pid() != 0 {
		t.Fatal("still running after stop")
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Errorf("stopped after %s: SIGTERM should have been ignored for the grace period", d)
	}
	if err := p.exitError(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("exit error %v, want killed", err)
	}
	// A stopped process starts again, logging to the same file.
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	_ = p.kill()
	b, _ := os.ReadFile(p.logPath)
	if n := strings.Count(string(b), "---- crowdload: starting stubborn"); n != 2 {
		t.Errorf("log has %d start markers, want 2:\n%s", n, b)
	}
}

func TestWaitForReportsAnEarlyExit(t *testing.T) {
	p := &process{name: "crasher", bin: "/bin/sh", args: []string{"-c", "echo cannot bind >&2; exit 3"}, logPath: filepath.Join(t.TempDir(), "log")}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	err := p.waitFor(context.Background(), 10*time.Second, "ready", func(context.Context) error { return errors.New("no") })
	if err == nil || !strings.Contains(err.Error(), "exited before ready") || !strings.Contains(err.Error(), "cannot bind") {
		t.Errorf("waitFor = %v, want the early exit with the log tail", err)
	}
}

func TestFreePortIsLoopbackAndFree(t *testing.T) {
	p, err := freePort()
	if err != nil || p <= 0 {
		t.Fatalf("freePort = %d, %v", p, err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	ln.Close()
}
