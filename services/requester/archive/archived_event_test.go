package archive_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"

	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/archive"
	"github.com/crowdgate/crowdgate/services/requester/pool"
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
	hooked := env.Redis.HookedClient(t, &failSRemOnce{})
	client, err := toloka.New(toloka.Config{
		SandboxURL: env.SimURL + "/api/v1", ProductionURL: env.SimURL + "/api/v1",
		Now: env.Clock.Now, Sleep: env.Clock.Sleep, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	box := boxOf(t, env)
	cat := catalog.New(hooked, env.Redis.Prefix, box, client, env.Clock.Now, slog.New(slog.DiscardHandler))
	evs, err := events.New(events.Config{Redis: env.Redis.Client, Prefix: env.Redis.Prefix, Now: env.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(cat, pool.NewTransitions(cat, evs, slog.New(slog.DiscardHandler)), c.work, c.work, c.work, evs, env.Clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

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

// boxOf is the gateway's secret box (newComponent gave it its key).
func boxOf(t *testing.T, env *gatewaytest.Env) *secretbox.Box {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(env.Config.Secrets.Key)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return box
}
