package landing_test

// Landing throughput and latency, with a real Redis (REDIS_URL) and the
// Toloka emulator on loopback, all in this process:
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' \
//	    -bench 'BenchmarkLanding|BenchmarkEmulatorGetAssignment' -benchtime 5s ./services/landing/
//
// (The landing's figures in the README come from "crowdload landing", which
// drives the real binaries with wrk and measures the ceilings in the same
// run; this benchmark's load generator is an in-process Go client, which
// costs more CPU than the landing itself, so its throughput is lower. Use
// it for the CPU a landing costs, and for comparisons with benchstat.)
//
// BenchmarkLanding/warm lands again and again on assignments that already
// have a session (reloads, double clicks): the in-replica rate limits, then
// one Redis GET for the session; the code needs no storage.
// BenchmarkLanding/cold lands once on each of b.N new assignments: the
// rate limits (in the replica and shared), the catalog, Toloka's
// GET /assignments/{id} and the session's creation.
// BenchmarkEmulatorGetAssignment is the ceiling for cold landings: the
// emulator alone answering GET /assignments/{id} to the same kind of client.
//
// The "unlimited" ceiling and BenchmarkLanding/cold run without Toloka's rate
// limits, so they measure CPU; the "toloka-limits" variants run with
// Toloka's documented 300 requests/s per account (and the Toloka client's
// own 295/s limiter), which is what bounds cold landings in production.
// BenchmarkLanding/warm-unpipelined is warm without autopipelining the
// landing's Redis commands, for comparison.
//
// Each reports requests/s and latency percentiles (p50, p99) of the answers
// counted, and the CPU an answer costs: cpu-us/op for this process (client,
// landing and emulator together), redis-us/op for the Redis server (all its
// clients: use a Redis of your own for this figure), and, for CPU-bound
// variants, <unit>/s@2cores: what two otherwise idle cores would serve at that
// cost. On a shared machine the throughput moves with the neighbours' load;
// the CPU per answer much less.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// benchParallelism is RunParallel's multiplier: goroutines = it × GOMAXPROCS.
const benchParallelism = 8

// benchWarmAssignments is how many assignments the warm benchmark cycles over.
const benchWarmAssignments = 2000

func benchTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true, IdleConnTimeout: time.Minute}
}

// benchEnv is the emulator, the session service and a landing server. With
// tolokaLimits the emulator enforces Toloka's documented 300 requests/s per
// account and the Toloka client keeps to its default 295/s through the
// shared Redis limiter, as in production; without, neither limits.
func benchEnv(b *testing.B, tolokaLimits bool) (*sessiontest.Env, string) {
	return benchEnvWith(b, tolokaLimits, true)
}

// benchEnvWith is benchEnv; without autoPipeline the landing's Redis
// commands each take their own round trip.
func benchEnvWith(b *testing.B, tolokaLimits, autoPipeline bool) (*sessiontest.Env, string) {
	b.Helper()
	if !redistest.Real() {
		b.Skip("the landing benchmark needs a real Redis: set REDIS_URL")
	}
	r := redistest.New(b)
	// The limits are checked on every landing (the assignment's by the
	// session service, in its lock script), but set high enough that one
	// benchmark client from one address is never refused.
	high := ratelimit.Limit{Rate: 10_000_000, Per: time.Second, Burst: 10_000_000}
	limRedis := storage.AutoPipelined(r.Client)
	if !autoPipeline {
		limRedis = r.Client
	}
	lim, err := ratelimit.New(ratelimit.Config{Client: limRedis, Prefix: r.Prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		b.Fatal(err)
	}
	env := sessiontest.New(b, sessiontest.Options{
		Redis: r,
		Sim: func(c *tolokasim.Config) {
			c.RequestLogSize = -1
			if tolokaLimits {
				c.RateLimits = tolokasim.RateLimits{CreateProjectPerMinute: -1, CreateProjectPerDay: -1, CreatePoolPerMinute: -1, CreatePoolPerDay: -1}
			}
		},
		Session: func(c *session.Config) {
			if !autoPipeline {
				c.DirectLanding = true
			}
			c.Limiter, c.PerAssignment = lim, high
		},
		Toloka: func(c *toloka.Config) {
			c.HTTPClient = &http.Client{Transport: benchTransport()}
			if tolokaLimits {
				lim, err := ratelimit.New(ratelimit.Config{Client: r.Client, Prefix: r.Prefix + "toloka-ratelimit:"})
				if err != nil {
					b.Fatal(err)
				}
				c.Limiter = lim
			}
		},
	})
	h, err := landing.New(landing.Config{Sessions: env.Sessions, Limiter: lim, Settings: landing.Settings{PerIP: high, PerAssignment: high}})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /start", h)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return env, srv.URL + "/start?assignment_id="
}

// assignments starts n assignments in a new pool.
func assignments(b *testing.B, env *sessiontest.Env, n int) []string {
	b.Helper()
	pool := env.NewPool(b, tenant.Default, nil)
	ids := make([]string, n)
	for i := range ids {
		a, err := env.Sim.CreateAssignment(pool.TolokaPoolId, fmt.Sprintf("toloker-%08d", i))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	return ids
}

// load describes one benchmark's requests.
type load struct {
	// unit names what is counted ("landings").
	unit string
	// want is the status counted; also (when not 0) a status allowed but
	// not counted (429 from a rate-limited emulator).
	want, also int
	// header is added to every request.
	header http.Header
	// url is the i-th request's URL.
	url func(i int) string
	// rateBound says a rate limit, not the CPU, bounds the throughput.
	rateBound bool
}

// runRequests runs b.N GETs over keep-alive connections from parallel
// clients, checks each status, and reports the throughput and latency of the
// counted answers and the CPU they cost (this process's and Redis's).
func runRequests(b *testing.B, rdb redis.UniversalClient, l load) {
	b.Helper()
	unit, want, also, header, url := l.unit, l.want, l.also, l.header, l.url
	client := &http.Client{
		Transport:     benchTransport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	var (
		mu    sync.Mutex
		all   []time.Duration
		next  int
		nextM sync.Mutex
	)
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0, redis0 := time.Now(), processCPU(), redisCPU(b, rdb)
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			nextM.Lock()
			i := next
			next++
			nextM.Unlock()
			req, _ := http.NewRequest(http.MethodGet, url(i), nil)
			for k, v := range header {
				req.Header[k] = v
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case want:
				lat = append(lat, time.Since(t0))
			case also:
			default:
				b.Errorf("status %d, want %d", resp.StatusCode, want)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed, cpu, redisUsed := time.Since(start), processCPU()-cpu0, redisCPU(b, rdb)-redis0
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	// CPU per answer, of this process (client, server, emulator) and of the
	// Redis server, and what two otherwise idle cores would serve at that
	// cost: throughput on a shared machine varies with its other load, the
	// CPU an answer costs much less.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-us/op")
	b.ReportMetric(float64(redisUsed.Microseconds())/float64(len(all)), "redis-us/op")
	if !l.rateBound {
		perOp := float64(cpu+redisUsed) / float64(len(all))
		b.ReportMetric(2*float64(time.Second)/perOp, unit+"/s@2cores")
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func BenchmarkLanding(b *testing.B) {
	warm := func(autoPipeline bool) func(b *testing.B) {
		return func(b *testing.B) {
			env, start := benchEnvWith(b, false, autoPipeline)
			ids := assignments(b, env, benchWarmAssignments)
			for _, id := range ids { // every assignment has its session
				if _, err := env.Sessions.Land(b.Context(), id); err != nil {
					b.Fatal(err)
				}
			}
			runRequests(b, env.Redis.Client, load{unit: "landings", want: http.StatusSeeOther, url: func(i int) string { return start + ids[i%len(ids)] }})
		}
	}
	b.Run("warm", warm(true))
	// The same without autopipelining: one round trip per command.
	b.Run("warm-unpipelined", warm(false))
	b.Run("cold", func(b *testing.B) {
		env, start := benchEnv(b, false)
		ids := assignments(b, env, b.N)
		runRequests(b, env.Redis.Client, load{unit: "landings", want: http.StatusSeeOther, url: func(i int) string { return start + ids[i] }})
	})
	// One requester account, with Toloka's rate limits: cold landings are
	// bounded by the account's Toloka quota, not by Crowdgate.
	b.Run("cold-toloka-limits", func(b *testing.B) {
		env, start := benchEnv(b, true)
		ids := assignments(b, env, b.N)
		runRequests(b, env.Redis.Client, load{unit: "landings", want: http.StatusSeeOther, url: func(i int) string { return start + ids[i] }, rateBound: true})
	})
}

func BenchmarkEmulatorGetAssignment(b *testing.B) {
	for _, limits := range []bool{false, true} {
		name := "unlimited"
		if limits {
			name = "toloka-limits" // 429s are not counted: what the account is served
		}
		b.Run(name, func(b *testing.B) {
			env, _ := benchEnv(b, limits)
			ids := assignments(b, env, benchWarmAssignments)
			hdr := http.Header{"Authorization": {"ApiKey " + sessiontest.APIKey(tenant.Default)}}
			base := env.SimServer.URL + "/api/v1/assignments/"
			runRequests(b, env.Redis.Client, load{unit: "gets", want: http.StatusOK, also: http.StatusTooManyRequests, header: hdr,
				url: func(i int) string { return base + ids[i%len(ids)] }, rateBound: limits})
		})
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server has used (all its clients).
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	info, err := rdb.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
