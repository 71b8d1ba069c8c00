package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/testing/protocmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

var ctx = context.Background()

// FindAssignment resolves an assignment id to its pool, project and
// account, within one tenant when asked; another tenant's assignment is not
// found, and only an answer that holds for every tenant is final.
func TestFindAssignment(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	cat := env.Catalog
	acme := env.NewPool(t, "acme", nil)
	aid := env.StartAssignment(t, acme, "toloker-1")

	found, err := cat.FindAssignment(ctx, aid, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if found.Pool.GetPoolId() != acme.GetPoolId() || found.Project.GetProjectId() != acme.GetProjectId() || found.Assignment.UserID != "toloker-1" {
		t.Errorf("found %v", found)
	}
	if _, err := cat.FindAssignment(ctx, aid, "acme", nil); err != nil {
		t.Errorf("within its tenant: %v", err)
	}
	var nf *catalog.AssignmentNotFound
	var domain *serviceerror.NotFound
	if _, err := cat.FindAssignment(ctx, aid, "globex", nil); !errors.As(err, &nf) || nf.Final || !errors.As(err, &domain) {
		t.Errorf("another tenant's assignment = %v, want a NotFound that is not final", err)
	}
	unknown := aid[:12] + "ffffffffffffffffffffffff"
	if _, err := cat.FindAssignment(ctx, unknown, "", nil); !errors.As(err, &nf) || !nf.Final || len(nf.AskedIn) != 1 {
		t.Errorf("an id Toloka does not know = %v, want a final NotFound asked in one pool", err)
	}
	if _, err := cat.FindAssignment(ctx, "00000fffff--"+aid[12:], "", nil); !errors.As(err, &nf) || !nf.Final || len(nf.AskedIn) != 0 {
		t.Errorf("an id of no known pool = %v, want a final NotFound without a Toloka call", err)
	}
	var ia *serviceerror.InvalidArgument
	if _, err := cat.FindAssignment(ctx, "00000FFFFF--"+aid[12:], "", nil); !errors.As(err, &ia) || ia.Field != "assignment_id" {
		t.Errorf("a malformed id = %v, want INVALID_ARGUMENT on assignment_id", err)
	}
	// check runs before Toloka is asked, and its refusal stops the search.
	refused := errors.New("refused")
	before := len(env.Sim.Requests("/api/v1/assignments/"))
	refuse := &catalog.Check{Vet: func(*catalog.Resolved, string) error { return refused }}
	if _, err := cat.FindAssignment(ctx, aid, "", refuse); !errors.Is(err, refused) {
		t.Errorf("check's refusal = %v", err)
	}
	if after := len(env.Sim.Requests("/api/v1/assignments/")); after != before {
		t.Errorf("a refused check still asked Toloka (%d requests)", after-before)
	}
}

// A check's key about a pool is read with the pool and its project, in
// their round trip (not a command of its own), and Vet gets its value: ""
// while the key does not exist.
func TestACheckReadsItsKeyWithThePool(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	cat := env.Catalog
	p := env.NewPool(t, "acme", nil)
	aid := env.StartAssignment(t, p, "toloker-1")
	key := env.Redis.Prefix + "test-budget:{" + p.GetTenantId() + "/" + p.GetPoolId() + "}"
	var alone, piped []string // the check key's reads: on their own, in a pipeline
	env.Redis.Client.AddHook(keyReads{key: key, alone: &alone, piped: &piped})
	var keyedFor, vetted []string
	check := &catalog.Check{
		Key: func(tenantID, poolID string) string {
			keyedFor = append(keyedFor, tenantID+"/"+poolID)
			return key
		},
		Vet: func(_ *catalog.Resolved, value string) error {
			vetted = append(vetted, value)
			return nil
		},
	}
	for _, set := range []string{"", "7"} {
		if set != "" {
			if err := env.Redis.Client.Set(ctx, key, set, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cat.FindAssignment(ctx, aid, "", check); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{p.GetTenantId() + "/" + p.GetPoolId(), p.GetTenantId() + "/" + p.GetPoolId()}
	if diff := cmp.Diff(want, keyedFor); diff != "" {
		t.Errorf("Key asked for (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"", "7"}, vetted); diff != "" {
		t.Errorf("values Vet got (-want +got):\n%s", diff)
	}
	if len(alone) != 0 || len(piped) != 2 {
		t.Errorf("the key was read %d times on its own and %d times with the pool, want 0 and 2", len(alone), len(piped))
	}
}

// keyReads records the reads of one key, on their own or in a pipeline
// that also reads a pool.
type keyReads struct {
	key          string
	alone, piped *[]string
}

func (h keyReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h keyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if reads(cmd, h.key) {
			*h.alone = append(*h.alone, cmd.String())
		}
		return next(ctx, cmd)
	}
}

func (h keyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		pool := false
		for _, c := range cmds {
			pool = pool || strings.Contains(fmt.Sprint(c.Args()...), ":pool:")
		}
		for _, c := range cmds {
			if reads(c, h.key) && pool {
				*h.piped = append(*h.piped, c.String())
			} else if reads(c, h.key) {
				*h.alone = append(*h.alone, c.String())
			}
		}
		return next(ctx, cmds)
	}
}

func reads(cmd redis.Cmder, key string) bool {
	args := cmd.Args()
	return len(args) == 2 && strings.EqualFold(fmt.Sprint(args[0]), "get") && args[1] == key
}

// A pool's route never changes, so it is read once; records are always
// read fresh.
func TestRouteIsReadOnce(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	cat := env.Catalog
	p := env.NewPool(t, "acme", nil)
	r, err := cat.Route(ctx, "acme", p.GetPoolId())
	if err != nil {
		t.Fatal(err)
	}
	if r.TolokaPoolID != p.GetTolokaPoolId() || r.CredentialID != "cred_acme" || r.ProjectID != p.GetProjectId() {
		t.Errorf("route %+v", r)
	}
	if _, err := cat.Route(ctx, "globex", p.GetPoolId()); err == nil {
		t.Error("another tenant routed the pool")
	}
	if err := env.Redis.Client.Del(ctx, env.Redis.Prefix+"pool:acme:{"+p.GetPoolId()+"}").Err(); err != nil {
		t.Fatal(err)
	}
	if again, err := cat.Route(ctx, "acme", p.GetPoolId()); err != nil || again != r {
		t.Errorf("second Route = %+v, %v; want it from memory", again, err)
	}
	var nf *serviceerror.NotFound
	if _, err := cat.Pool(ctx, "acme", p.GetPoolId()); !errors.As(err, &nf) {
		t.Errorf("Pool after the record was deleted = %v, want NotFound (records are not cached)", err)
	}
}

// Every cold landing asks the index of Toloka pool ids which pools have
// the assignment's pool id. A replica keeps what the index said for a few
// seconds; it keeps no empty answer, so a pool registered next is found at
// once.
func TestTheTolokaPoolIndexIsKeptBriefly(t *testing.T) {
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	cat := env.Catalog
	p := env.NewPool(t, "acme", nil)
	aid := env.StartAssignment(t, p, "toloker-1")
	if _, err := cat.FindAssignment(ctx, aid, "", nil); err != nil {
		t.Fatal(err)
	}
	index := env.Redis.Prefix + "pool-by-toloka:SANDBOX:" + p.GetTolokaPoolId()
	entry, err := env.Redis.Client.Get(ctx, index).Result()
	if err != nil {
		t.Fatalf("the pool's index entry %s: %v", index, err)
	}
	if err := env.Redis.Client.Del(ctx, index).Err(); err != nil {
		t.Fatal(err)
	}
	if found, err := cat.FindAssignment(ctx, aid, "", nil); err != nil || found.Pool.GetPoolId() != p.GetPoolId() {
		t.Fatalf("within the index's lifetime in memory: %v, %v; want the pool, as found before", found, err)
	}
	clock.Advance(5 * time.Second)
	var nf *catalog.AssignmentNotFound
	if _, err := cat.FindAssignment(ctx, aid, "", nil); !errors.As(err, &nf) || len(nf.AskedIn) != 0 {
		t.Fatalf("after its lifetime, with the entry gone: %v; want NotFound, no pool asked", err)
	}
	// The empty answer was not kept.
	if err := env.Redis.Client.Set(ctx, index, entry, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if found, err := cat.FindAssignment(ctx, aid, "", nil); err != nil || found.Pool.GetPoolId() != p.GetPoolId() {
		t.Errorf("once the entry is back: %v, %v; want the pool at once", found, err)
	}

	// A kept answer that misses the assignment's pool (one registered
	// since) is not the last word: a fresh one that names other pools is
	// searched too.
	other := env.NewPool(t, "acme", nil)
	if err := env.Redis.Client.Set(ctx, index, "acme\x1f"+other.GetPoolId(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if _, err := cat.FindAssignment(ctx, aid, "", nil); !errors.As(err, &nf) {
		t.Fatalf("through an entry naming another pool: %v; want NotFound", err)
	}
	if err := env.Redis.Client.Set(ctx, index, entry, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if found, err := cat.FindAssignment(ctx, aid, "", nil); err != nil || found.Pool.GetPoolId() != p.GetPoolId() {
		t.Errorf("with the other pool's answer kept and the entry back: %v, %v; want the pool at once", found, err)
	}
}

// A cold landing reads the pool and its project as they are now, in one
// round trip once the replica knows the pool's project: what a requester
// changed since the last landing (an archived project, a new platform URL)
// is seen at once.
func TestFindAssignmentReadsThePoolAndProjectAsTheyAreNow(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	cat := env.Catalog
	p := env.NewPool(t, "acme", nil)
	for i, change := range []func(*crowdgatev1.Project, *crowdgatev1.Pool){
		nil,
		func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) { prj.PlatformUrl = "https://platform.example/v2" },
		func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) {
			prj.Status = crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED
		},
		func(_ *crowdgatev1.Project, pool *crowdgatev1.Pool) {
			pool.Status = crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED
		},
	} {
		prj, err := cat.Project(ctx, "acme", p.GetProjectId())
		if err != nil {
			t.Fatal(err)
		}
		pool, err := cat.Pool(ctx, "acme", p.GetPoolId())
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(prj, pool)
			if err := cat.PutProject(ctx, prj); err != nil {
				t.Fatal(err)
			}
			if _, err := cat.ChangePool(ctx, "acme", pool.GetPoolId(), func(*crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) { return pool, true, nil }); err != nil {
				t.Fatal(err)
			}
		}
		var seen *catalog.Resolved
		aid := env.StartAssignment(t, p, fmt.Sprintf("toloker-%d", i))
		see := &catalog.Check{Vet: func(r *catalog.Resolved, _ string) error { seen = r; return nil }}
		if _, err := cat.FindAssignment(ctx, aid, "", see); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(prj, seen.Project, protocmp.Transform()); diff != "" {
			t.Errorf("landing %d: the project (-stored +seen):\n%s", i, diff)
		}
		if diff := cmp.Diff(pool, seen.Pool, protocmp.Transform()); diff != "" {
			t.Errorf("landing %d: the pool (-stored +seen):\n%s", i, diff)
		}
	}
}

// A sealed key copied onto another credential's record does not open, and
// an account opens only with the right key, within its tenant.
func TestSealedKeyIsBoundToItsCredential(t *testing.T) {
	_, srv := tolokasim.NewTestServer(tolokasim.Config{APIKeys: map[string]string{"k1.a.b": "one", "k2.a.b": "two"}, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(srv.Close)
	client, err := toloka.New(toloka.Config{SandboxURL: srv.URL + "/api/v1", ProductionURL: srv.URL + "/api/v1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := redistest.New(t)
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(r.Client, r.Prefix, box, client, nil, slog.New(slog.DiscardHandler))
	for id, key := range map[string]string{"one": "k1.a.b", "two": "k2.a.b"} {
		if err := cat.CreateCredential(ctx, &crowdgatev1.Credential{CredentialId: id, TenantId: "default", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX}, key); err != nil {
			t.Fatal(err)
		}
	}
	acct, err := cat.Account(ctx, "default", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
		t.Fatalf("the opened account does not authenticate: %v", err)
	}
	secret := func(id string) string { return r.Prefix + "credential-secret:default:{" + id + "}" }
	sealed, err := r.Client.Get(ctx, secret("one")).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, secret("two"), sealed, 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = cat.Account(ctx, "default", "two")
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) {
		t.Errorf("a sealed key moved to another credential: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := cat.Account(ctx, "other-tenant", "one"); err == nil {
		t.Error("another tenant opened the credential")
	}
	// A credential id is never taken twice, and a refused create keeps the
	// first credential's key.
	var exists *serviceerror.AlreadyExists
	if err := cat.CreateCredential(ctx, &crowdgatev1.Credential{CredentialId: "one", TenantId: "default", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX}, "k2.a.b"); !errors.As(err, &exists) {
		t.Errorf("second create of credential one = %v, want AlreadyExists", err)
	}
	if still, _ := r.Client.Get(ctx, secret("one")).Bytes(); string(still) != string(sealed) {
		t.Error("a refused create changed the stored key")
	}
}
