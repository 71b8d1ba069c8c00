package pool

import (
	"context"
	"errors"
	"slices"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// WatchSettings tune the poll that finds what Toloka changes on its own.
type WatchSettings struct {
	// Interval is how often each open pool is read from Toloka.
	Interval time.Duration
}

// List returns the settings as configuration entries.
func (s *WatchSettings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("pool-poll-interval", "CROWDGATE_POOL_POLL_INTERVAL", "60s",
			"how often every open pool is read from Toloka (by one replica, whichever takes the tenant's turn) to learn of closes Toloka makes on its own (expiry, all work done) and raise pool.closed; "+
				"each poll is one request per open pool within the account's rate limits (0: off)",
			settings.DurationOrZero(&s.Interval)),
	}
}

// DefaultWatchSettings returns the settings' built-in defaults.
func DefaultWatchSettings() WatchSettings {
	var s WatchSettings
	settings.Defaults(s.List())
	return s
}

// Watch polls (Poll) every interval until ctx ends. A zero interval
// watches nothing.
func (t *Transitions) Watch(ctx context.Context, tenants func(context.Context) ([]string, error), interval time.Duration) {
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.Poll(ctx, tenants, interval)
	}
}

// Poll reads every open pool of the tenants whose turn this replica takes
// from Toloka, storing (and recording the events of) what changed: a pool
// Toloka closed on its own raises pool.closed with its last_close_reason.
// Pools Crowdgate knows closed are not read: Crowdgate opens them itself
// (and one whose action went out but whose call then failed is marked,
// and read until a read succeeds).
// A tenant's turn lasts nine tenths of interval: however many replicas
// poll, each tenant's pools are read about once an interval, not once per
// replica (each read spends the requester's Toloka quota).
func (t *Transitions) Poll(ctx context.Context, tenants func(context.Context) ([]string, error), interval time.Duration) {
	ts, err := tenants(ctx)
	if err != nil {
		t.log.WarnContext(ctx, "pool watch: cannot list tenants", "error", err.Error())
		return
	}
	for _, tenantID := range ts {
		mine, err := t.catalog.TakeTurn(ctx, "pool-watch:"+tenantID, interval*9/10)
		if err != nil {
			t.log.WarnContext(ctx, "pool watch: cannot take the tenant's turn", "tenant_id", tenantID, "error", err.Error())
			continue
		}
		if mine {
			t.watchTenant(ctx, tenantID)
		}
	}
}

// watchTenant refreshes the tenant's open pools, and those an action left
// stale (MarkPoolToReread), whatever their stored status.
func (t *Transitions) watchTenant(ctx context.Context, tenantID string) {
	// The marks first: a pool created and marked after its listing is read
	// next time, not taken for one no longer stored.
	reread, err := t.catalog.PoolsToReread(ctx, tenantID)
	if err != nil {
		t.log.WarnContext(ctx, "pool watch: cannot list the pools to read again", "tenant_id", tenantID, "error", err.Error())
	}
	ids, err := t.catalog.PoolIDs(ctx, tenantID)
	if err != nil {
		t.log.WarnContext(ctx, "pool watch: cannot list pools", "tenant_id", tenantID, "error", err.Error())
		return
	}
	for id, mark := range reread {
		if slices.Contains(ids, id) {
			continue
		}
		var nf *serviceerror.NotFound
		if _, err := t.catalog.Pool(ctx, tenantID, id); errors.As(err, &nf) { // a pool no longer stored
			_ = t.catalog.UnmarkPoolToReread(ctx, tenantID, id, mark)
		}
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		p, err := t.catalog.Pool(ctx, tenantID, id)
		mark, marked := reread[id]
		if err != nil || (p.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN && !marked) {
			continue
		}
		r, err := t.catalog.Resolve(ctx, p)
		if err != nil {
			continue
		}
		if _, err := t.refresh(ctx, r); err != nil {
			if ctx.Err() == nil {
				t.log.WarnContext(ctx, "pool watch: cannot read a pool from Toloka", "tenant_id", tenantID, "pool_id", id, "error", err.Error())
			}
			continue
		}
		if marked {
			// Only the mark listed before this read: one made since (an
			// action while Toloka was read) stays for the next poll.
			if err := t.catalog.UnmarkPoolToReread(ctx, tenantID, id, mark); err != nil {
				t.log.WarnContext(ctx, "pool watch: could not clear a pool's mark", "tenant_id", tenantID, "pool_id", id, "error", err.Error())
			}
		}
	}
}
