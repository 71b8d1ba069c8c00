package submission

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// A submission is unpaid while it is QUEUED: from its acceptance (or an
// operator's retry of it) until Toloka accepts it or refuses it for good.
// With CROWDGATE_SUBMIT_MAX_ATTEMPTS 0 a submit Toloka keeps refusing
// for a reason that may pass (a stopped pool, a redirect, throttling, a
// credential this replica cannot open) waits for ever, so its Toloker's
// wait is measured: each shard keeps the submissions whose attempt failed
// in a set by when they began waiting (unpaidKey: their creation, or an
// operator's retry), joined at a failed attempt and left at settlement by
// the finish script, and the gauge
// crowdgate_submission_oldest_unpaid_seconds reads the sets' heads. A
// submit paid at its first attempt, nearly all of them, costs the set
// nothing (only one whose next attempt time was set can be in it); a
// submit never attempted at all waits in the outbox's streams, which
// crowdgate_submission_outbox_lag_seconds watches.

var (
	//go:embed lua/unpaid.lua
	unpaidLua    string
	unpaidScript = redis.NewScript(unpaidLua)
)

// unpaidLook bounds the members one read of a shard's set looks at (and
// removes when they are not QUEUED): the rest wait for the next read.
const unpaidLook = 32

// unpaidRounds bounds the reads of one shard's set for one value of the
// gauge (unpaidLook × unpaidRounds stale members gone past at most).
const unpaidRounds = 64

// unpaidEvery is how often a replica reads the sets for the gauge.
const unpaidEvery = 15 * time.Second

// unpaidWarnAfter is how long a submission may wait unpaid before the
// gauge's reader logs it (at most once per unpaidWarnEvery), naming it for
// the operator.
const (
	unpaidWarnAfter = time.Hour
	unpaidWarnEvery = 10 * time.Minute
)

// OldestUnpaid is since when the oldest submission still waiting to be
// paid (QUEUED) has waited, across every tenant; zero when none waits.
func (s *Service) OldestUnpaid(ctx context.Context) (time.Time, error) {
	since, _, err := s.oldestUnpaid(ctx)
	return since, err
}

// oldestUnpaid is OldestUnpaid and the shard's member (tenant TAB id) of
// that submission.
func (s *Service) oldestUnpaid(ctx context.Context) (time.Time, string, error) {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return time.Time{}, "", err
	}
	var oldest time.Time
	var member string
	for shard := range shards {
		m, since, err := s.shardOldestUnpaid(ctx, shard)
		if err != nil {
			return time.Time{}, "", err
		}
		if !since.IsZero() && (oldest.IsZero() || since.Before(oldest)) {
			oldest, member = since, m
		}
	}
	return oldest, member, nil
}

// shardOldestUnpaid is the member (tenant TAB id) and the start of the
// wait of shard's oldest unpaid submission; zero when none waits. Members
// settled without leaving the set (by a replica from before it) are
// dropped unpaidLook at a time: it goes on past them, within a bound,
// rather than read "none waits" with a queued submission behind them.
func (s *Service) shardOldestUnpaid(ctx context.Context, shard int) (string, time.Time, error) {
	key := s.st.unpaidKey(shard)
	for range unpaidRounds {
		raw, err := unpaidScript.Run(ctx, s.rdb, []string{key}, s.st.recordPrefix(shard), unpaidLook).Result()
		if errors.Is(err, redis.Nil) {
			return "", time.Time{}, nil // none waits
		}
		if err != nil {
			return "", time.Time{}, storage.Unavailable(err)
		}
		found, ok := raw.([]any)
		if !ok {
			continue // stale members removed, more remain: read on
		}
		member, _ := found[0].(string)
		ms, _ := found[1].(string)
		n, err := strconv.ParseFloat(ms, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("submission: the unpaid set of shard %d holds the score %q", shard, ms)
		}
		return member, time.UnixMilli(int64(n)), nil
	}
	return "", time.Time{}, nil // more stale members than one read goes past
}

// runUnpaidGauge keeps crowdgate_submission_oldest_unpaid_seconds until
// ctx ends, and logs a submission unpaid for over unpaidWarnAfter.
func (s *Service) runUnpaidGauge(ctx context.Context) {
	var warned time.Time
	t := time.NewTicker(unpaidEvery)
	defer t.Stop()
	for {
		since, member, err := s.oldestUnpaid(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("submission: could not read the oldest unpaid submission", slog.String("error", err.Error()))
		case err == nil && since.IsZero():
			s.m.oldestUnpaid.Set(0)
		case err == nil:
			age := max(s.now().Sub(since), 0)
			s.m.oldestUnpaid.Set(age.Seconds())
			if age > unpaidWarnAfter && time.Since(warned) > unpaidWarnEvery {
				warned = time.Now()
				tenantID, id, _ := strings.Cut(member, "\t")
				s.log.Warn("submission: a submission has waited over an hour to be paid; ListSubmissions shows its last error",
					slog.String("tenant_id", tenantID), slog.String("submission_id", id), slog.Duration("waited", age.Round(time.Second)))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
