package archive_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// TestAnArchiveResentAfterAShortRetentionRecordsProjectArchivedOnce: an
// archive sent again records project.archived again only within the
// log's window for repeats, min(retention, 24 h) (lua/append.lua). With
// CROWDGATE_EVENT_RETENTION below a day, a resend of ArchiveProject two
// hours after the archive used to record project.archived a second time
// (and the webhooks delivered it again).
func TestAnArchiveResentAfterAShortRetentionRecordsProjectArchivedOnce(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))

	_, evs, a := c.archiverOn(t, env.Redis.Client, events.Settings{Retention: time.Hour})
	if _, err := a.ArchiveProject(bg, tenant.Default, prj.GetProjectId()); err != nil {
		t.Fatal(err)
	}
	// Two hours pass (Redis's clock too: the seen mark is dated back, and
	// the tenant's next event trims the marks older than the retention).
	env.Clock.Advance(2 * time.Hour)
	_, seen := events.Keys(env.Redis.Prefix, tenant.Default)
	ids, _ := env.Redis.Client.ZRange(bg, seen, 0, -1).Result()
	old := float64(time.Now().Add(-2 * time.Hour).UnixMilli())
	for _, id := range ids {
		env.Redis.Client.ZAdd(bg, seen, redis.Z{Score: old, Member: id})
	}
	if err := evs.Append(bg, evs.New(tenant.Default, events.TypeProjectArchived, "projects/other")); err != nil {
		t.Fatal(err)
	}
	// The caller's resend (an automation retrying, say).
	if _, err := a.ArchiveProject(bg, tenant.Default, prj.GetProjectId()); err != nil {
		t.Fatal(err)
	}
	f, _ := events.NewFilter("types", []string{"project.archived"})
	got, _, err := evs.List(bg, tenant.Default, events.Query{Filter: f, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range got {
		if ev.GetResource() == "projects/"+prj.GetProjectId() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d project.archived events for project %s (retention 1h, resend 2h after the archive), want 1", n, prj.GetProjectId())
	}
}
