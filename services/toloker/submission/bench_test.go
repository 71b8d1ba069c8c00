package submission

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
	"github.com/redis/go-redis/v9"
)

// BenchmarkSubmitAccept measures durable acceptance: validation, the
// catalog (cached), the session (an in-memory fake) and the accept script
// on Redis, with delivery off. Run it against a real Redis:
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench BenchmarkSubmitAccept -benchtime 200000x ./services/toloker/submission/
//
// It reports submits/s and the p50/p99 latency of Submit.
func BenchmarkSubmitAccept(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.Settings.SyncTimeout = -1; c.Metrics = nil })
	var sessions []*crowdgatev1.Session
	for range 64 {
		sessions = append(sessions, f.toloker(tolokasim.UserState{}))
	}
	ctx := tenant.WithID(context.Background(), tenant.Default)
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
	)
	b.SetParallelism(16) // 16 × GOMAXPROCS concurrent callers
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := next.Add(1)
			s := sessions[n%int64(len(sessions))]
			t0 := time.Now()
			_, err := f.svc.Submit(ctx, &crowdgatev1.SubmitRequest{
				SessionId: s.SessionId, RetryId: fmt.Sprintf("bench-%d", n), Reward: "0.05", Quality: "0.9",
				CustomLog: `{"ip":"10.0.0.1"}`, RealTasksCount: proto.Int32(4),
			})
			local = append(local, time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "submits/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if tot := f.totals(); tot.Received != int64(len(lat)) {
		b.Fatalf("%d submits accepted, totals say %d", len(lat), tot.Received)
	}
}

// BenchmarkDeliveryThroughput delivers b.N queued submits through the
// workers to an emulator that, like Toloka, answers 429 beyond 300 requests
// a second, and reports deliveries/s, the share of that cap, and how many
// 429s were answered; it fails if any submit is lost or paid twice.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench BenchmarkDeliveryThroughput -benchtime 3000x ./services/toloker/submission/
//
// "client-limit" reserves each request through the shared Redis rate
// limiter at the cap (300/s); "no-client-limit" sends as fast as the workers
// go and leaves the limiting to Toloka's 429s and Retry-After.
func BenchmarkDeliveryThroughput(b *testing.B) {
	const capPerSecond = 300
	for _, bc := range []struct {
		name  string
		limit bool
	}{{"client-limit", true}, {"no-client-limit", false}} {
		b.Run(bc.name, func(b *testing.B) {
			// The Toloka client reserves each request through the shared
			// Redis rate limiter at the cap, or leaves the limiting to
			// Toloka's 429s, with the client's default retries.
			client := func(f *fixture, c *toloka.Config) {
				c.Retry = toloka.RetryPolicy{}
				c.Limits = toloka.Limits{Requests: ratelimit.Limit{Name: "bench-requests", Rate: capPerSecond, Per: time.Second, Burst: 1}}
				if bc.limit {
					l, err := ratelimit.New(ratelimit.Config{Client: f.redis.Client, Prefix: f.redis.Prefix + "ratelimit:"})
					if err != nil {
						b.Fatal(err)
					}
					c.Limiter = l
				}
			}
			f := newFixtureWith(b, tolokasim.RateLimits{RequestsPerSecond: capPerSecond}, client, func(c *Config) {
				c.Metrics = nil
				c.Settings.SyncTimeout, c.Settings.Concurrency, c.Settings.PollInterval = -1, 64, 200*time.Millisecond
				c.Settings.AttemptTimeout, c.Settings.LeaseTTL = 10*time.Second, 15*time.Second
			})

			s := f.toloker(tolokasim.UserState{})
			ids := make([]string, b.N)
			for i := range b.N {
				ids[i] = fmt.Sprintf("thru-%06d", i)
				f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: ids[i], Reward: "0.01"})
			}
			f.sim.ClearRequests()
			b.ResetTimer()
			start := time.Now()
			f.run(f.svc)
			f.waitTotals("all delivered", time.Duration(b.N)*time.Second/capPerSecond*3+10*time.Second,
				func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == int64(b.N) })
			elapsed := time.Since(start)
			b.StopTimer()

			f.paidOnce(ids)
			throttled := 0
			for _, r := range f.submitRequests() {
				if r.Status == http.StatusTooManyRequests {
					throttled++
				}
			}
			rate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "deliveries/s")
			b.ReportMetric(100*rate/capPerSecond, "%-of-cap")
			b.ReportMetric(float64(throttled), "429s")
		})
	}
}

// BenchmarkRedisMemoryPerSubmission makes b.N submits (each delivered at
// once, as the accepting replica does) and reports the Redis memory each
// leaves behind, by MEMORY USAGE of every key under the test's prefix: the
// record, its idempotency key, its entries in the pool's and the
// assignment's indexes, the Toloker's pay counters. Streams are listed but
// not counted: the outbox's entry is deleted when the submission settles
// and its event intent once relayed. It needs a real Redis (miniredis has
// no MEMORY USAGE); the record's encoding depends on the server's
// hash-max-listpack-value (storage.MinHashListpackValue):
//
//	redis-server --port 6399 --save '' --hash-max-listpack-value 1024 &
//	REDIS_URL=redis://127.0.0.1:6399/0 go test -run '^$' -bench RedisMemoryPerSubmission -benchtime 2000x -v ./services/toloker/submission/
func BenchmarkRedisMemoryPerSubmission(b *testing.B) {
	f := newFixture(b, nil)
	ctx := context.Background()
	if err := f.redis.Client.Do(ctx, "MEMORY", "USAGE", "none").Err(); err != nil && !errors.Is(err, redis.Nil) {
		b.Skip("needs a real Redis (REDIS_URL): ", err)
	}
	var sessions []*crowdgatev1.Session
	for range 20 {
		sessions = append(sessions, f.toloker(tolokasim.UserState{}))
	}
	b.ResetTimer()
	for i := range b.N {
		s := sessions[i%len(sessions)]
		sub, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{
			SessionId: s.SessionId, RetryId: fmt.Sprintf("retry-%08d", i), Reward: "0.05", Quality: "0.9",
			CustomLog: `{"ip":"10.0.0.1"}`, RealTasksCount: proto.Int32(4),
		})
		if err != nil {
			b.Fatal(err)
		}
		if sub.GetSubmission().GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
			b.Fatalf("submit %d is %v, want DELIVERED", i, sub.GetSubmission().GetState())
		}
	}
	b.StopTimer()
	type family struct {
		keys  int
		bytes int64
	}
	families := map[string]*family{}
	var kept int64
	ids := regexp.MustCompile(`[0-9a-z]{20,}|retry-\d+|user\d+|\d{3,}`)
	shard, idShard := regexp.MustCompile(`\{sub:\d+\}`), regexp.MustCompile(`_\d+$`) // one family over every shard
	it := f.redis.Client.Scan(ctx, 0, f.redis.Prefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		n, err := f.redis.Client.MemoryUsage(ctx, k).Result()
		if err != nil {
			b.Fatal(err)
		}
		typ, _ := f.redis.Client.Type(ctx, k).Result()
		enc, _ := f.redis.Client.ObjectEncoding(ctx, k).Result()
		name := strings.TrimPrefix(k, f.redis.Prefix)
		name = idShard.ReplaceAllString(shard.ReplaceAllString(name, "{sub:N}"), "_N")
		name = ids.ReplaceAllString(name, "…") + " (" + typ + ", " + enc + ")"
		if families[name] == nil {
			families[name] = &family{}
		}
		families[name].keys++
		families[name].bytes += n
		if typ != "stream" {
			kept += n
		}
	}
	if err := it.Err(); err != nil {
		b.Fatal(err)
	}
	names := slices.Collect(maps.Keys(families))
	slices.SortFunc(names, func(x, y string) int { return cmp.Compare(families[y].bytes, families[x].bytes) })
	for _, name := range names {
		fm := families[name]
		b.Logf("%-62s %6d keys %9d B  %7.1f B/submission", name, fm.keys, fm.bytes, float64(fm.bytes)/float64(b.N))
	}
	b.ReportMetric(float64(kept)/float64(b.N), "B/submission")
}
