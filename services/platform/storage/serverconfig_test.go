package storage

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// startServer runs a redis-server with args on a free loopback port.
func startServer(t *testing.T, args ...string) *redis.Client {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (CI installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command("redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for c.Ping(ctx).Err() != nil {
		if ctx.Err() != nil {
			t.Fatal("redis-server did not answer PING")
		}
		<-time.After(20 * time.Millisecond)
	}
	return c
}

func TestCheckServerNamesWhatIsOff(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"as deploy/README.md asks", []string{"--maxmemory-policy", "noeviction", "--hash-max-listpack-value", "1024"}, nil},
		{"Redis's defaults", nil, []string{
			`Redis hash-max-listpack-value is 64: each submission record takes about twice the memory; set it to 1024 or more (deploy/README.md)`,
		}},
		{"evicting, small listpacks", []string{"--maxmemory-policy", "allkeys-lru", "--hash-max-listpack-value", "128"}, []string{
			`Redis maxmemory-policy is "allkeys-lru": Redis may evict sessions and queued submits when full; set noeviction (deploy/README.md)`,
			`Redis hash-max-listpack-value is 128: each submission record takes about twice the memory; set it to 1024 or more (deploy/README.md)`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckServer(ctx, startServer(t, tc.args...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CheckServer (-want +got):\n%s", diff)
			}
		})
	}
}
