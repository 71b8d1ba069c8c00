package crowdload

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSubmitsFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c SubmitsConfig)
	}{
		{name: "defaults", check: func(t *testing.T, c SubmitsConfig) {
			if c.Sessions != 64 || c.Concurrency != 32 || c.Duration != 10*time.Second || c.RedisBenchmark != "redis-benchmark" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "given", args: []string{"--sessions", "8", "--concurrency", "4", "--duration", "2s", "--gateway-env", "CROWDGATE_LOG_LEVEL=warn"},
			check: func(t *testing.T, c SubmitsConfig) {
				if c.Sessions != 8 || c.Concurrency != 4 || c.Duration != 2*time.Second || len(c.GatewayEnv) != 1 {
					t.Errorf("parsed: %+v", c)
				}
			}},
		{name: "no sessions", args: []string{"--sessions", "0"}, wantErr: "--sessions"},
		{name: "no callers", args: []string{"--concurrency", "0"}, wantErr: "--concurrency"},
		{name: "short duration", args: []string{"--duration", "500ms"}, wantErr: "--duration"},
		{name: "sync timeout is the benchmark's", args: []string{"--gateway-env", "CROWDGATE_SUBMIT_SYNC_TIMEOUT=2s"}, wantErr: "CROWDGATE_SUBMIT_SYNC_TIMEOUT"},
		{name: "harness env", args: []string{"--gateway-env", "REDIS_URL=redis://x"}, wantErr: "REDIS_URL"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseSubmitsFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"EVAL local e = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET') if e then return {'replay', e} end 7 a,b ""q""","19562.00","1.594","0.272","1.463","2.567","3.399","11.055"
`
	rps, p50, p99, mx, err := parseRedisBenchmarkCSV(out)
	if err != nil {
		t.Fatal(err)
	}
	if rps != 19562 || p50 != 1463*time.Microsecond || p99 != 3399*time.Microsecond || mx != 11055*time.Microsecond {
		t.Errorf("got rps %v p50 %v p99 %v max %v", rps, p50, p99, mx)
	}
	if _, _, _, _, err := parseRedisBenchmarkCSV("ERROR: connection refused\n"); err == nil {
		t.Error("no result line: want an error")
	}
}

func TestRedisBenchmarkArgsOneSlotOneLine(t *testing.T) {
	args := redisBenchmarkArgs(6379, 32, 1000, map[string]string{"pb": strings.Repeat("\x00", 300), "fp": "abc"})
	i := 0
	for i < len(args) && args[i] != "EVAL" {
		i++
	}
	if i+2 >= len(args) || args[i+2] != "7" {
		t.Fatalf("no EVAL with 7 keys in %q", args)
	}
	if strings.Contains(args[i+1], "\n") {
		t.Error("the script must be one line (redis-benchmark --csv names the test by its command)")
	}
	for _, k := range args[i+3 : i+10] {
		if !strings.Contains(k, "{sub:0}") {
			t.Errorf("key %q is outside the hash slot", k)
		}
	}
	if pb := args[i+12]; len(pb) != 300 || strings.ContainsRune(pb, 0) {
		t.Errorf("payload: %d bytes, want 300 printable", len(pb))
	}
}

// TestRunSubmitsEndToEnd runs the benchmark briefly against real
// processes and checks that every accepted submit is stored once. The
// figures are not asserted.
func TestRunSubmitsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server, tolokasim and crowdgate")
	}
	cfg := SubmitsConfig{
		Sessions: 4, Concurrency: 4, Duration: time.Second, RedisBenchmark: "redis-benchmark",
		RedisServer: redisServerBin(t), Tolokasim: binary(t, "tolokasim"), Crowdgate: binary(t, "crowdgate"),
	}
	res, err := RunSubmits(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.GRPC.Accepted == 0 || res.REST.Accepted == 0 {
		t.Fatalf("nothing accepted: gRPC %+v, REST %+v", res.GRPC, res.REST)
	}
	if !res.TotalsOK() || res.Received != res.Accepted+res.Unconfirmed && res.Unconfirmed == 0 {
		t.Errorf("totals: %d received, %d accepted, %d unanswered", res.Received, res.Accepted, res.Unconfirmed)
	}
	var b strings.Builder
	res.WriteSummary(&b)
	if !strings.Contains(b.String(), "stored exactly once") {
		t.Errorf("summary lacks the totals check:\n%s", b.String())
	}
}
