package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// StateSampleInterval is how often the gauges of what is live and dead now
// (crowdgate_sessions_live, crowdgate_submission_dead_letters) are sampled.
const StateSampleInterval = 30 * time.Second

// stateSampleTimeout bounds one sample (it runs within a scrape).
const stateSampleTimeout = 5 * time.Second

// stateSources are where the state gauges come from: every tenant, every
// pool of a tenant, and the counts of a tenant's pools.
type stateSources struct {
	tenants     func(ctx context.Context) ([]string, error)
	pools       func(ctx context.Context, tenantID string) ([]string, error)
	liveSession func(ctx context.Context, tenantID string, poolIDs []string) (int64, error)
	deadLetters func(ctx context.Context, tenantID string, poolIDs []string) (int64, error)
}

// stateCollector exports how many sessions are live and how many
// submissions are dead now, over every tenant's pools.
//
// Counting visits every pool (1 + tenants + 2 × pools cheap commands,
// pipelined), so it is never done per scrape: a scrape after
// StateSampleInterval has passed samples again, and one replica does the
// counting for all of them in each interval. The first replica to need a
// sample in an interval takes that interval's lock in Redis (SET NX),
// counts and stores the result with its time; the others read the stored
// result (one HGETALL). In between, scrapes are answered from memory. So
// the gauges may be up to two intervals old, and the replicas agree.
type stateCollector struct {
	src    stateSources
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
	log    *slog.Logger

	live, dead *prometheus.Desc

	mu        sync.Mutex
	sampledAt time.Time // when this replica last sampled (its clock)
	values    [2]float64
}

func newStateCollector(src stateSources, rdb redis.UniversalClient, prefix string, now func() time.Time, log *slog.Logger) *stateCollector {
	return &stateCollector{
		src: src, rdb: rdb, prefix: prefix, now: now, log: log,
		live: prometheus.NewDesc("crowdgate_sessions_live",
			"Sessions live now (started, not ended or expired), over every tenant's pools; sampled at most every 30 s by one replica for all.", nil, nil),
		dead: prometheus.NewDesc("crowdgate_submission_dead_letters",
			"Submissions DEAD now (Toloka refused them; they wait for an operator's retry), over every tenant's pools; sampled at most every 30 s by one replica for all.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.live
	ch <- c.dead
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	now := c.now()
	if c.sampledAt.IsZero() || now.Sub(c.sampledAt) >= StateSampleInterval {
		// On failure too: a Redis in trouble is not asked again at every
		// scrape; the last values stand until the next interval.
		c.sampledAt = now
		ctx, cancel := context.WithTimeout(context.Background(), stateSampleTimeout)
		if v, err := c.sample(ctx, now); err != nil {
			c.log.Warn("state gauges: could not sample; the last values stand", "err", err.Error())
		} else {
			c.values = v
		}
		cancel()
	}
	v := c.values
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, v[0])
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, v[1])
}

// The shared result: a hash with the sample's time (unix ms) and counts.
func (c *stateCollector) resultKey() string { return c.prefix + "metrics:state" }
func (c *stateCollector) lockKey(interval int64) string {
	return c.prefix + "metrics:state-lock:" + strconv.FormatInt(interval, 10)
}

// sample returns the live and dead counts: the stored result when it is of
// this interval, else a count of its own when this replica wins the
// interval's lock, else the stored result as it is (another replica is
// counting).
func (c *stateCollector) sample(ctx context.Context, now time.Time) ([2]float64, error) {
	stored, err := c.rdb.HGetAll(ctx, c.resultKey()).Result()
	if err != nil {
		return [2]float64{}, err
	}
	at, _ := strconv.ParseInt(stored["at"], 10, 64)
	storedValues := [2]float64{parseFloat(stored["live"]), parseFloat(stored["dead"])}
	if len(stored) > 0 && now.Sub(time.UnixMilli(at)) < StateSampleInterval {
		return storedValues, nil
	}
	interval := now.UnixMilli() / StateSampleInterval.Milliseconds()
	won, err := c.rdb.SetNX(ctx, c.lockKey(interval), "1", 2*StateSampleInterval).Result()
	if err != nil {
		return [2]float64{}, err
	}
	if !won {
		return storedValues, nil
	}
	v, err := c.count(ctx)
	if err != nil {
		return [2]float64{}, err
	}
	err = c.rdb.HSet(ctx, c.resultKey(), "at", now.UnixMilli(), "live", v[0], "dead", v[1]).Err()
	return v, err
}

// count visits every tenant's pools.
func (c *stateCollector) count(ctx context.Context) ([2]float64, error) {
	tenants, err := c.src.tenants(ctx)
	if err != nil {
		return [2]float64{}, err
	}
	var live, dead int64
	for _, t := range tenants {
		pools, err := c.src.pools(ctx, t)
		if err != nil {
			return [2]float64{}, err
		}
		if len(pools) == 0 {
			continue
		}
		n, err := c.src.liveSession(ctx, t, pools)
		if err != nil {
			return [2]float64{}, err
		}
		live += n
		if n, err = c.src.deadLetters(ctx, t, pools); err != nil {
			return [2]float64{}, err
		}
		dead += n
	}
	return [2]float64{float64(live), float64(dead)}, nil
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// registerStateGauges registers the state gauges of wire's capabilities.
func registerStateGauges(w wiring, src stateSources) error {
	return w.metrics.Register(newStateCollector(src, w.redis, w.cfg.Redis.Prefix, w.opts.now, w.log))
}
