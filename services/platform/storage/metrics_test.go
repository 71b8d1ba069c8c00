package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// series returns the gathered families as name -> label value of "command"
// (or "") -> count (counters) or sample count (histograms).
func series(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		out[mf.GetName()] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			cmd := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "command" {
					cmd = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[mf.GetName()][cmd] = v
		}
	}
	return out
}

// TestInstrumentCountsCommandsByNameAndPoolStatistics: every command is
// timed under its name (never its keys), a pipeline once as "pipeline";
// errors are counted, but a missing key (redis.Nil) and a script not yet
// loaded (NOSCRIPT, which Script.Run answers by loading it) are not errors.
func TestInstrumentCountsCommandsByNameAndPoolStatistics(t *testing.T) {
	r := redistest.New(t)
	reg := prometheus.NewRegistry()
	if err := storage.Instrument(reg, r.Client); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := r.Prefix + "secret-key-name"
	if err := r.Client.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key: %v", err)
	}
	if err := r.Client.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Incr(ctx, key).Err(); err == nil {
		t.Fatal("INCR of a string succeeded")
	}
	if _, err := r.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, key)
		p.Exists(ctx, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	script := redis.NewScript(`return redis.call('GET', KEYS[1]) .. '` + r.Prefix + `'`)
	if err := script.Run(ctx, r.Client, []string{key}).Err(); err != nil {
		t.Fatal(err)
	}

	got := series(t, reg)
	duration := got["crowdgate_redis_command_duration_seconds"]
	for _, cmd := range []string{"get", "set", "incr", "pipeline", "evalsha", "eval"} {
		if duration[cmd] < 1 {
			t.Errorf("crowdgate_redis_command_duration_seconds{command=%q} count = %v, want at least 1 (all: %v)", cmd, duration[cmd], duration)
		}
	}
	if errs := got["crowdgate_redis_command_errors_total"]; len(errs) != 1 || errs["incr"] != 1 {
		t.Errorf("crowdgate_redis_command_errors_total = %v, want incr 1 only (redis.Nil and NOSCRIPT are no errors)", errs)
	}
	for _, name := range []string{"crowdgate_redis_pool_hit_total", "crowdgate_redis_pool_miss_total", "crowdgate_redis_pool_timeout_total",
		"crowdgate_redis_pool_conn_total_current", "crowdgate_redis_pool_conn_idle_current", "crowdgate_redis_pool_conn_stale_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	if got["crowdgate_redis_pool_conn_total_current"][""] < 1 {
		t.Errorf("crowdgate_redis_pool_conn_total_current = %v, want at least one connection", got["crowdgate_redis_pool_conn_total_current"])
	}
	for name, byCmd := range got {
		for cmd := range byCmd {
			if cmd != "" && (len(cmd) > 32 || cmd != cmdLabel(cmd)) {
				t.Errorf("%s has command label %q", name, cmd)
			}
		}
	}
}

// cmdLabel is what a command label may look like: a short lower-case name.
func cmdLabel(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return ""
		}
	}
	return s
}
