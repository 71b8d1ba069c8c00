package archive_test

import (
	"context"
	"errors"

	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// failSRemOnce fails the first SREM (the credential's release, the step
// after the archived project is stored) as a Redis that answers an error
// (a failover, a timeout) does.
type failSRemOnce struct{ done atomic.Bool }

func (h *failSRemOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failSRemOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "srem") && h.done.CompareAndSwap(false, true) {
			err := errors.New("injected: connection reset")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (h *failSRemOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestAnArchiveWhoseLastStepFailedStillRecordsProjectArchived: the
// project is archived in Toloka and stored ARCHIVED, then releasing its
// credential fails (a Redis error): the call answers an error, and the
// caller retries, as it should. The log has project.archived once. (The
// call used to answer before it recorded the event, and the retry found
// the project ARCHIVED and returned it at once: the log never got
// project.archived. A retry now does the last steps again, so a replica
// killed between storing the project and recording the event loses it no
// more.)
func TestAnArchiveWhoseLastStepFailedStillRecordsProjectArchived(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))

	// The same archive use case, its catalog on a Redis client whose first
	// SREM fails.
	_, evs, a := c.archiverOn(t, env.Redis.HookedClient(t, &failSRemOnce{}), events.Settings{})

	if _, err := a.ArchiveProject(bg, tenant.Default, prj.GetProjectId()); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first archive = %v; the test needs its credential release to fail", err)
	}
	p, err := a.ArchiveProject(bg, tenant.Default, prj.GetProjectId()) // the caller retries
	if err != nil {
		t.Fatalf("retried archive: %v", err)
	}
	if p.GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		t.Fatalf("project after the retry = %v, want ARCHIVED", p.GetStatus())
	}
	got, _, err := evs.List(bg, tenant.Default, events.Query{Filter: mustFilter(t, "project.archived"), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d project.archived events for the archived project %s, want 1", len(got), prj.GetProjectId())
	}
}

func mustFilter(t *testing.T, types ...string) events.Filter {
	t.Helper()
	f, err := events.NewFilter("types", types)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
