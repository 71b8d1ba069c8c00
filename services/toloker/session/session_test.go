package session_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

var ctx = context.Background()

func land(t *testing.T, env *sessiontest.Env, aid string) *session.Landing {
	t.Helper()
	l, err := env.Sessions.Land(ctx, aid)
	if err != nil {
		t.Fatalf("Land(%s): %v", aid, err)
	}
	return l
}

func exchange(t *testing.T, env *sessiontest.Env, code string) *crowdgatev1.ExchangeCodeResponse {
	t.Helper()
	resp, err := env.Sessions.Exchange(ctx, tenant.Default, code)
	if err != nil {
		t.Fatalf("Exchange(%s): %v", code, err)
	}
	return resp
}

// started lands and exchanges the code: the session the Toloker is in.
func started(t *testing.T, env *sessiontest.Env, aid string) *crowdgatev1.Session {
	t.Helper()
	return exchange(t, env, land(t, env, aid).Code).Session
}

// poolHex is a Toloka pool id as assignment ids start with it.
func poolHex(tolokaPoolID string) string {
	n, _ := strconv.ParseUint(tolokaPoolID, 10, 64)
	s := strconv.FormatUint(n, 16)
	return strings.Repeat("0", 10-len(s)) + s
}

func isInvalid(field string) func(error) bool {
	return func(err error) bool {
		var ia *serviceerror.InvalidArgument
		return errors.As(err, &ia) && ia.Field == field
	}
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

func isUnavailable(err error) bool {
	var un *serviceerror.Unavailable
	return errors.As(err, &un)
}

func notActive(status string) func(error) bool {
	return func(err error) bool {
		var na *session.NotActiveError
		var fp *serviceerror.FailedPrecondition
		return errors.As(err, &na) && na.Status == status && errors.As(err, &fp)
	}
}

func endedWith(reason crowdgatev1.EndReason) func(error) bool {
	return func(err error) bool {
		var ended *session.EndedError
		var fp *serviceerror.FailedPrecondition
		return errors.As(err, &ended) && ended.Session.GetEndReason() == reason && errors.As(err, &fp)
	}
}

func TestLandingStartsASessionAndRedirectsWithACode(t *testing.T) {
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")

	l := land(t, env, aid)
	if !l.Created {
		t.Error("the first landing did not start the session")
	}
	if want := "https://platform.example/start?code=" + l.Code; l.RedirectURL != want {
		t.Errorf("redirect %q, want %q", l.RedirectURL, want)
	}
	got := exchange(t, env, l.Code).Session
	want := &crowdgatev1.Session{
		SessionId: got.GetSessionId(), TenantId: tenant.Default, ProjectId: pool.ProjectId, PoolId: pool.PoolId,
		AssignmentId: aid, UserId: "toloker-1", State: crowdgatev1.SessionState_SESSION_STATE_ACTIVE,
		CreateTime:  timestamppb.New(clock.Now()),
		ExpireTime:  timestamppb.New(clock.Now().Add(600*time.Second + defaults.ExpiryMargin)),
		ReturnUrl:   defaults.DefaultReturnURL,
		RewardTotal: "0",
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got.GetSessionId(), "ses_") {
		t.Errorf("session id %q", got.GetSessionId())
	}
	if n := env.AssignmentGets(aid); n != 1 {
		t.Errorf("Toloka was asked %d times, want 1", n)
	}
}

func TestRepeatLandingsGetTheSameSessionAndAskTolokaOnce(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")

	// A double click (concurrent first landings), then reloads.
	const clicks = 8
	codes := make(chan string, clicks+3)
	var created sync.Map
	var wg sync.WaitGroup
	for i := range clicks {
		wg.Go(func() {
			l, err := env.Sessions.Land(ctx, aid)
			if err != nil {
				t.Error(err)
				return
			}
			created.Store(i, l.Created)
			codes <- l.Code
		})
	}
	wg.Wait()
	for range 3 {
		l := land(t, env, aid)
		if l.Created {
			t.Error("a reload started a new session")
		}
		codes <- l.Code
	}
	close(codes)
	starts := 0
	created.Range(func(_, v any) bool {
		if v.(bool) {
			starts++
		}
		return true
	})
	if starts != 1 {
		t.Errorf("%d landings started a session, want 1", starts)
	}
	sessions := map[string]bool{}
	seen := map[string]bool{}
	for code := range codes {
		if seen[code] {
			t.Errorf("code %s handed out twice", code)
		}
		seen[code] = true
		sessions[exchange(t, env, code).Session.GetSessionId()] = true
	}
	if len(sessions) != 1 {
		t.Errorf("%d sessions for one assignment: %v", len(sessions), sessions)
	}
	if n := env.AssignmentGets(aid); n != 1 {
		t.Errorf("Toloka was asked %d times, want 1", n)
	}
	if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 1 {
		t.Errorf("LiveCount = %d, %v; want 1", n, err)
	}
}

func TestLandingRefusals(t *testing.T) {
	simClock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Sim: func(c *tolokasim.Config) { c.Now = simClock.Now }})
	pool := env.NewPool(t, tenant.Default, nil)
	unmanaged := env.NewUnmanagedPool(t, "stranger")
	foreign := env.StartAssignment(t, unmanaged, "toloker-f")
	submitted := env.StartAssignment(t, pool, "toloker-s")
	env.Submit(t, pool, "toloker-s", true)
	expired := env.StartAssignment(t, pool, "toloker-e")
	simClock.Advance(601 * time.Second)
	forged := poolHex(pool.TolokaPoolId) + "--" + strings.Repeat("ab", 12)

	for _, tc := range []struct {
		name string
		aid  string
		want func(error) bool
	}{
		{"empty", "", isInvalid("assignment_id")},
		{"malformed", "not-an-assignment", isInvalid("assignment_id")},
		{"upper-case hex", strings.ToUpper(forged), isInvalid("assignment_id")},
		{"one character more", forged + "0", isInvalid("assignment_id")},
		{"query syntax", forged[:35] + "&", isInvalid("assignment_id")},
		{"unknown pool", "00ffffffff--" + strings.Repeat("0", 24), isNotFound},
		{"unknown assignment in a managed pool", forged, isNotFound},
		{"assignment of a pool Crowdgate does not manage", foreign, isNotFound},
		{"submitted", submitted, notActive("SUBMITTED")},
		{"expired", expired, notActive("EXPIRED")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := env.Sessions.Land(ctx, tc.aid)
			if !tc.want(err) {
				t.Errorf("Land(%q) = %+v, %v", tc.aid, l, err)
			}
		})
	}
	if n := env.AssignmentGets(foreign); n != 0 {
		t.Errorf("Toloka was asked %d times about an assignment of an unmanaged pool", n)
	}
}

func TestFinalAnswersAreRemembered(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	submitted := env.StartAssignment(t, pool, "toloker-s")
	env.Submit(t, pool, "toloker-s", true)
	forged := poolHex(pool.TolokaPoolId) + "--" + strings.Repeat("cd", 12)

	for _, aid := range []string{submitted, forged} {
		for range 3 {
			if _, err := env.Sessions.Land(ctx, aid); err == nil {
				t.Fatalf("Land(%s) succeeded", aid)
			}
		}
		if n := env.AssignmentGets(aid); n != 1 {
			t.Errorf("Toloka was asked %d times about %s, want 1", n, aid)
		}
	}
	for aid, want := range map[string]time.Duration{submitted: defaults.NotActiveTTL, forged: defaults.NotFoundTTL} {
		ttl := env.Redis.Client.PTTL(ctx, env.Redis.Prefix+"ses-neg:{"+aid+"}").Val()
		if ttl <= want-2*time.Second || ttl > want {
			t.Errorf("%s: the answer is remembered for %v, want %v", aid, ttl, want)
		}
	}
}

func TestTolokaUnreachable(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/assignments", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.Land(ctx, aid); !isUnavailable(err) {
		t.Fatalf("Land with Toloka failing = %v, want Unavailable", err)
	}
	// Nothing is remembered from a failure: once Toloka answers, it works.
	env.Sim.ClearFaults()
	if s := started(t, env, aid); s.GetUserId() != "toloker-1" {
		t.Errorf("session of %q", s.GetUserId())
	}

	// Toloka not listening at all.
	down := sessiontest.New(t, sessiontest.Options{})
	pool = down.NewPool(t, tenant.Default, nil)
	aid = down.StartAssignment(t, pool, "toloker-1")
	down.SimServer.Close()
	if _, err := down.Sessions.Land(ctx, aid); !isUnavailable(err) {
		t.Fatalf("Land with Toloka down = %v, want Unavailable", err)
	}
}

// An assignment's first landings are limited across replicas, in the
// step that takes its resolve lock: each spends one slot, whichever replica
// it reaches; one the limit refuses asks Toloka nothing and answers when to
// try again; a landing that finds its session spends nothing.
func TestAnAssignmentsFirstLandingsAreLimitedAcrossReplicas(t *testing.T) {
	r := redistest.New(t)
	lim, err := ratelimit.New(ratelimit.Config{Client: r.Client, Prefix: r.Prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	env := sessiontest.New(t, sessiontest.Options{Redis: r, Session: func(c *session.Config) {
		c.Limiter, c.PerAssignment = lim, ratelimit.Limit{Rate: 2, Per: time.Hour, Burst: 2}
	}})
	other, err := session.NewService(env.Config, env.Tolokers) // a second replica
	if err != nil {
		t.Fatal(err)
	}
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/assignments", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	for i, replica := range []*session.Service{env.Sessions, other} {
		if _, err := replica.Land(ctx, aid); !isUnavailable(err) {
			t.Fatalf("first landing %d, Toloka failing: %v, want Unavailable", i+1, err)
		}
	}
	env.Sim.ClearFaults()
	asked := env.AssignmentGets(aid)
	_, err = env.Sessions.Land(ctx, aid)
	var limited *session.LimitedError
	if !errors.As(err, &limited) || limited.Exhausted.RetryAfter <= 0 || limited.Exhausted.RetryAfter > 30*time.Minute {
		t.Fatalf("a third first landing = %v, want a *session.LimitedError with a RetryAfter within the limit's spacing", err)
	}
	if code := serviceerror.ToStatus(err).Code(); code != codes.ResourceExhausted {
		t.Errorf("the refusal is %v over the API, want RESOURCE_EXHAUSTED", code)
	}
	if n := env.AssignmentGets(aid); asked == 0 || n != asked {
		t.Errorf("Toloka was asked %d times by the first two landings and %d by the refused one, want some and none", asked, n-asked)
	}

	// Landings that find their session spend nothing, however many.
	aid2 := env.StartAssignment(t, pool, "toloker-2")
	for i := range 5 {
		if _, err := other.Land(ctx, aid2); err != nil {
			t.Fatalf("landing %d with a session: %v", i+1, err)
		}
	}
}

func TestAnAnswerFromAnotherPoolIsForeign(t *testing.T) {
	// A Toloka that answers an assignment of pool 999 whatever is asked.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/assignments/")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "pool_id": "999", "user_id": "u", "status": "ACTIVE"})
	}))
	defer fake.Close()
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
		c.SandboxURL, c.ProductionURL = fake.URL+"/api/v1", fake.URL+"/api/v1"
	}})
	cat := env.Catalog
	if err := cat.CreateCredential(ctx, &crowdgatev1.Credential{CredentialId: "cred", TenantId: tenant.Default, Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX}, "ApiKey k"); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateProject(ctx, &crowdgatev1.Project{ProjectId: "prj", TenantId: tenant.Default, CredentialId: "cred", PlatformUrl: "https://p.example/"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreatePool(ctx, &crowdgatev1.Pool{PoolId: "pool", TenantId: tenant.Default, ProjectId: "prj", TolokaPoolId: "7", AssignmentMaxDurationSeconds: 60}, crowdgatev1.Environment_ENVIRONMENT_SANDBOX); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.Land(ctx, "0000000007--"+strings.Repeat("1", 24)); !isNotFound(err) {
		t.Errorf("Land = %v, want NotFound", err)
	}
}

func TestCodes(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) {
		prj.PlatformAudience = "urn:platform"
		prj.ReturnUrl = "https://toloka.example/back"
	})
	aid := env.StartAssignment(t, pool, "toloker-1")
	l := land(t, env, aid)

	resp := exchange(t, env, l.Code)
	keys := staticKeys(t, env)
	v := &token.Verifier{Keys: keys, Issuer: sessiontest.Issuer, Tenant: tenant.Default, Audience: "urn:platform"}
	claims, err := v.Verify(ctx, resp.GetToken())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	sess := resp.GetSession()
	got := map[string]string{"sub": claims.Subject, "assignment_id": claims.AssignmentID, "pool_id": claims.PoolID,
		"toloka_pool_id": claims.TolokaPoolID, "project_id": claims.ProjectID, "sid": claims.SessionID, "tenant_id": claims.TenantID}
	want := map[string]string{"sub": "toloker-1", "assignment_id": aid, "pool_id": pool.PoolId,
		"toloka_pool_id": pool.TolokaPoolId, "project_id": pool.ProjectId, "sid": sess.GetSessionId(), "tenant_id": tenant.Default}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if !claims.ExpiresAt.Time.Equal(resp.GetExpireTime().AsTime()) {
		t.Errorf("exp %v, expire_time %v", claims.ExpiresAt.Time, resp.GetExpireTime().AsTime())
	}
	if sess.GetReturnUrl() != "https://toloka.example/back" {
		t.Errorf("return_url %q", sess.GetReturnUrl())
	}

	// A code works once.
	if _, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code); !isNotFound(err) {
		t.Errorf("second exchange = %v, want NotFound", err)
	}
	// Another tenant cannot use a code, and its attempt changes nothing
	// for the code's own tenant: one tenant's call never decides
	// another's outcome (it used to burn the code).
	other := land(t, env, aid).Code
	if _, err := env.Sessions.Exchange(ctx, "other", other); !isNotFound(err) {
		t.Errorf("exchange by another tenant = %v, want NotFound", err)
	}
	if _, err := env.Sessions.Exchange(ctx, tenant.Default, other); err != nil {
		t.Errorf("the code's own tenant's exchange after another tenant's attempt = %v, want a token", err)
	}
	for _, bad := range []string{"", "abc", l.Code + "A", strings.Repeat("!", len(l.Code))} {
		if _, err := env.Sessions.Exchange(ctx, tenant.Default, bad); !isInvalid("code")(err) {
			t.Errorf("Exchange(%q) = %v, want InvalidArgument code", bad, err)
		}
	}
	// A well-formed code nobody issued.
	raw, err := base64.RawURLEncoding.DecodeString(l.Code)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-5] ^= 1 // a byte of the secret
	forged := base64.RawURLEncoding.EncodeToString(raw)
	if _, err := env.Sessions.Exchange(ctx, tenant.Default, forged); !isNotFound(err) {
		t.Errorf("forged code = %v, want NotFound", err)
	}

	// A code works until CodeTTL has passed, and landing writes nothing
	// to Redis: only the exchange marks a code used, until it expires.
	before := keysOf(t, env)
	l = land(t, env, aid)
	if diff := cmp.Diff(before, keysOf(t, env)); diff != "" {
		t.Errorf("a repeat landing changed Redis's keys (-before +after):\n%s", diff)
	}
	exchange(t, env, l.Code)
	n := 0
	iter := env.Redis.Client.Scan(ctx, 0, env.Redis.Prefix+"ses-used:*", 100).Iterator()
	for iter.Next(ctx) {
		n++
		if ttl := env.Redis.Client.PTTL(ctx, iter.Val()).Val(); ttl <= session.MaxClockSkew || ttl > defaults.CodeTTL+session.MaxClockSkew {
			t.Errorf("used-code marker TTL %v, want the code's life left plus %v", ttl, session.MaxClockSkew)
		}
	}
	if n != 3 {
		t.Errorf("%d used-code markers, want 3 (two codes exchanged, one burned by another tenant)", n)
	}
}

func TestCodeExpiresAfterCodeTTL(t *testing.T) {
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	late := land(t, env, aid).Code
	onTime := land(t, env, aid).Code
	clock.Advance(defaults.CodeTTL - time.Millisecond)
	exchange(t, env, onTime)
	clock.Advance(time.Millisecond)
	if _, err := env.Sessions.Exchange(ctx, tenant.Default, late); !isNotFound(err) {
		t.Errorf("exchange at CodeTTL = %v, want NotFound", err)
	}
}

// Replicas that share Redis share the code key; a code minted under
// another key does not work.
func TestCodesWorkAcrossReplicasWithTheSameKey(t *testing.T) {
	key := []byte("the key replicas share: 32 bytes")
	env := sessiontest.New(t, sessiontest.Options{Session: func(c *session.Config) { c.CodeKey = key }})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	code := land(t, env, aid).Code

	cfg := env.Config
	other := newService(t, env, cfg)
	if _, err := other.Exchange(ctx, tenant.Default, code); err != nil {
		t.Fatalf("exchange on a replica with the same key: %v", err)
	}
	// A replica whose clock runs ahead by more than MaxClockSkew mints
	// codes that live too long: they are refused.
	ahead := cfg
	ahead.Now = func() time.Time { return time.Now().Add(session.MaxClockSkew + time.Minute) }
	if l, err := newService(t, env, ahead).Land(ctx, aid); err != nil {
		t.Fatal(err)
	} else if _, err := other.Exchange(ctx, tenant.Default, l.Code); !isNotFound(err) {
		t.Errorf("exchange of a code from a clock %v ahead = %v, want NotFound", session.MaxClockSkew+time.Minute, err)
	}
	cfg.CodeKey = []byte("a different key, also 32 bytes..")
	stranger := newService(t, env, cfg)
	if _, err := stranger.Exchange(ctx, tenant.Default, land(t, env, aid).Code); !isNotFound(err) {
		t.Errorf("exchange on a replica with another key = %v, want NotFound", err)
	}
}

// keysOf lists the test's Redis keys.
func keysOf(t *testing.T, env *sessiontest.Env) []string {
	t.Helper()
	var keys []string
	iter := env.Redis.Client.Scan(ctx, 0, env.Redis.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func staticKeys(t *testing.T, env *sessiontest.Env) token.StaticKeySet {
	t.Helper()
	set, err := env.Signer.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(set)
	keys, err := token.ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSessionExpiryIsItsRedisTTL(t *testing.T) {
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, func(_ *crowdgatev1.Project, p *crowdgatev1.Pool) { p.AssignmentMaxDurationSeconds = 300 })
	aid := env.StartAssignment(t, pool, "toloker-1")
	l := land(t, env, aid)
	sess := exchange(t, env, l.Code).Session

	lifetime := 300*time.Second + defaults.ExpiryMargin
	key := env.Redis.Prefix + "ses:{" + aid + "}"
	checkTTL := func(when string) {
		t.Helper()
		ttl := env.Redis.Client.PTTL(ctx, key).Val()
		if ttl <= lifetime-2*time.Second || ttl > lifetime {
			t.Errorf("%s: session key TTL %v, want %v", when, ttl, lifetime)
		}
	}
	checkTTL("started")
	if want := clock.Now().Add(lifetime); !sess.GetExpireTime().AsTime().Equal(want) {
		t.Errorf("expire_time %v, want %v", sess.GetExpireTime().AsTime(), want)
	}
	live := env.Redis.Prefix + "ses-live:{" + tenant.Default + "/" + pool.PoolId + "}"
	if score := env.Redis.Client.ZScore(ctx, live, sess.GetSessionId()).Val(); int64(score) != clock.Now().Add(lifetime).UnixMilli() {
		t.Errorf("live index score %v, want the expiry", score)
	}
	if ttl := env.Redis.Client.PTTL(ctx, live).Val(); ttl <= lifetime-2*time.Second || ttl > lifetime {
		t.Errorf("live index TTL %v, want %v", ttl, lifetime)
	}
	// Changes keep the TTL.
	if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sess.GetSessionId(), "", money.MustParse("0.05")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.End(ctx, tenant.Default, sess.GetSessionId(), crowdgatev1.EndReason_END_REASON_CLOSE_SESSION); err != nil {
		t.Fatal(err)
	}
	checkTTL("after a submit and the end")

	// Past its expiry (by the service's clock) an active session reads as
	// EXPIRED and its codes no longer yield tokens.
	env2 := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool2 := env2.NewPool(t, tenant.Default, nil)
	aid2 := env2.StartAssignment(t, pool2, "toloker-2")
	land(t, env2, aid2)
	clock.Advance(600*time.Second + defaults.ExpiryMargin)
	// (Redis has not dropped the record: the test's clock ran ahead.)
	l2 := land(t, env2, aid2)
	if _, err := env2.Sessions.Exchange(ctx, tenant.Default, l2.Code); !endedWith(crowdgatev1.EndReason_END_REASON_EXPIRED)(err) {
		t.Errorf("exchange after expiry = %v", err)
	}
	if n, _ := env2.Sessions.LiveCount(ctx, tenant.Default, pool2.PoolId); n != 0 {
		t.Errorf("LiveCount after expiry = %d", n)
	}
}

func TestEndingASession(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	aids := map[crowdgatev1.EndReason]string{}
	reasons := []crowdgatev1.EndReason{
		crowdgatev1.EndReason_END_REASON_CLOSE_SESSION, crowdgatev1.EndReason_END_REASON_RESTRICTED,
		crowdgatev1.EndReason_END_REASON_FILTERED_OUT, crowdgatev1.EndReason_END_REASON_ENDED, crowdgatev1.EndReason_END_REASON_REVOKED,
	}
	for i, r := range reasons {
		aids[r] = env.StartAssignment(t, pool, "toloker-"+strconv.Itoa(i))
	}
	for _, reason := range reasons {
		t.Run(reason.String(), func(t *testing.T) {
			aid := aids[reason]
			sess := started(t, env, aid)
			pending := land(t, env, aid).Code // minted before the end
			before, _ := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId)

			ended, err := env.Sessions.End(ctx, tenant.Default, sess.GetSessionId(), reason)
			if err != nil {
				t.Fatal(err)
			}
			if ended.GetState() != crowdgatev1.SessionState_SESSION_STATE_ENDED || ended.GetEndReason() != reason || ended.GetEndTime() == nil {
				t.Errorf("ended session %v", ended)
			}
			again, err := env.Sessions.End(ctx, tenant.Default, sess.GetSessionId(), crowdgatev1.EndReason_END_REASON_REVOKED)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ended, again, protocmp.Transform()); diff != "" {
				t.Errorf("ending again changed it (-first +second):\n%s", diff)
			}
			if after, _ := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); after != before-1 {
				t.Errorf("LiveCount %d -> %d, want one less", before, after)
			}
			if _, err := env.Sessions.Exchange(ctx, tenant.Default, pending); !endedWith(reason)(err) {
				t.Errorf("exchange of a code minted before the end = %v", err)
			}
			_, err = env.Sessions.Land(ctx, aid)
			var e *session.EndedError
			if !errors.As(err, &e) || e.Session.GetReturnUrl() != defaults.DefaultReturnURL {
				t.Errorf("landing after the end = %v", err)
			}
			if got, _ := env.Sessions.Get(ctx, tenant.Default, sess.GetSessionId()); got.GetEndReason() != reason {
				t.Errorf("Get after the end: %v", got)
			}
		})
	}
	if n := env.AssignmentGets(aids[reasons[0]]); n != 1 {
		t.Errorf("Toloka asked %d times", n)
	}
}

func TestSessionRPCs(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	otherPool := env.NewPool(t, "other", nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	otherAID := env.StartAssignment(t, otherPool, "toloker-2")
	mine := tenant.WithID(ctx, tenant.Default)

	start, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil {
		t.Fatal(err)
	}
	sid := start.GetSession().GetSessionId()
	if start.GetCode() == "" || start.GetRedirectUrl() != "https://platform.example/start?code="+start.GetCode() || start.GetSession().GetUserId() != "toloker-1" {
		t.Errorf("StartSession = %v", start)
	}
	// The same session the landing gives.
	if s := started(t, env, aid); s.GetSessionId() != sid {
		t.Errorf("landing's session %s, StartSession's %s", s.GetSessionId(), sid)
	}
	again, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil || again.GetSession().GetSessionId() != sid || again.GetCode() == start.GetCode() {
		t.Errorf("second StartSession = %v, %v; want the same session with a fresh code", again, err)
	}
	ex, err := env.Sessions.ExchangeCode(mine, &crowdgatev1.ExchangeCodeRequest{Code: again.GetCode()})
	if err != nil || ex.GetSession().GetSessionId() != sid {
		t.Errorf("ExchangeCode = %v, %v", ex, err)
	}

	// Another tenant's assignment and session look like nothing.
	if _, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{AssignmentId: otherAID}); !isNotFound(err) {
		t.Errorf("StartSession of another tenant's assignment = %v, want NotFound", err)
	}
	if n := env.AssignmentGets(otherAID); n != 0 {
		t.Errorf("Toloka asked about another tenant's assignment %d times", n)
	}
	theirs := tenant.WithID(ctx, "other")
	if _, err := env.Sessions.GetSession(theirs, &crowdgatev1.GetSessionRequest{SessionId: sid}); !isNotFound(err) {
		t.Errorf("GetSession by another tenant = %v", err)
	}
	if _, err := env.Sessions.EndSession(theirs, &crowdgatev1.EndSessionRequest{SessionId: sid}); !isNotFound(err) {
		t.Errorf("EndSession by another tenant = %v", err)
	}
	if err := env.Sessions.RecordSubmit(ctx, "other", sid, "", money.MustParse("1")); !isNotFound(err) {
		t.Errorf("RecordSubmit by another tenant = %v", err)
	}
	// A platform of the other tenant can still start its own assignment.
	if _, err := env.Sessions.StartSession(theirs, &crowdgatev1.StartSessionRequest{AssignmentId: otherAID}); err != nil {
		t.Errorf("StartSession by its tenant: %v", err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"start without id", func() error {
			_, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{})
			return err
		}, isInvalid("assignment_id")},
		{"start malformed", func() error {
			_, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{AssignmentId: "x"})
			return err
		}, isInvalid("assignment_id")},
		{"get without id", func() error {
			_, err := env.Sessions.GetSession(mine, &crowdgatev1.GetSessionRequest{})
			return err
		}, isInvalid("session_id")},
		{"get unknown", func() error {
			_, err := env.Sessions.GetSession(mine, &crowdgatev1.GetSessionRequest{SessionId: "ses_nope"})
			return err
		}, isNotFound},
		{"end with a reason EndSession does not take", func() error {
			_, err := env.Sessions.EndSession(mine, &crowdgatev1.EndSessionRequest{SessionId: sid, Reason: crowdgatev1.EndReason_END_REASON_RESTRICTED})
			return err
		}, isInvalid("reason")},
		{"exchange without code", func() error {
			_, err := env.Sessions.ExchangeCode(mine, &crowdgatev1.ExchangeCodeRequest{})
			return err
		}, isInvalid("code")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !tc.want(err) {
				t.Errorf("got %v", err)
			}
		})
	}

	got, err := env.Sessions.GetSession(mine, &crowdgatev1.GetSessionRequest{SessionId: sid})
	if err != nil || got.GetSession().GetState() != crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
		t.Fatalf("GetSession = %v, %v", got, err)
	}
	end, err := env.Sessions.EndSession(mine, &crowdgatev1.EndSessionRequest{SessionId: sid})
	if err != nil || end.GetSession().GetEndReason() != crowdgatev1.EndReason_END_REASON_ENDED {
		t.Errorf("EndSession default reason = %v, %v", end, err)
	}
	if _, err := env.Sessions.StartSession(mine, &crowdgatev1.StartSessionRequest{AssignmentId: aid}); !endedWith(crowdgatev1.EndReason_END_REASON_ENDED)(err) {
		t.Errorf("StartSession of an ended session = %v", err)
	}
}

func TestRecordSubmitIsExact(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	sid := started(t, env, env.StartAssignment(t, pool, "toloker-1")).GetSessionId()

	// Each starts from the same read: all but one find the session
	// changed, and read it again.
	_, version, err := env.Sessions.Read(ctx, tenant.Default, sid)
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sid, version, money.MustParse("0.1")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sid, "", money.MustParse("0.00000001")); err != nil {
		t.Fatal(err)
	}
	got, err := env.Sessions.Get(ctx, tenant.Default, sid)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubmitsCount() != n+1 || got.GetRewardTotal() != "3.00000001" {
		t.Errorf("submits %d, reward %s; want %d, 3.00000001", got.GetSubmitsCount(), got.GetRewardTotal(), n+1)
	}
	if err := env.Sessions.RecordSubmit(ctx, tenant.Default, "ses_nope", "", money.MustParse("1")); !isNotFound(err) {
		t.Errorf("RecordSubmit of an unknown session = %v", err)
	}
}

// LiveCount counts a pool's active sessions, the archive check's part from
// sessions: every ended one drops out, and another tenant sees none.
func TestLiveCount(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	var sids []string
	for i := range 3 {
		sids = append(sids, started(t, env, env.StartAssignment(t, pool, "toloker-"+strconv.Itoa(i))).GetSessionId())
	}
	check := func(want int64) {
		t.Helper()
		got, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.GetPoolId())
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("LiveCount = %d, want %d", got, want)
		}
	}
	check(3)
	_, _ = env.Sessions.End(ctx, tenant.Default, sids[0], crowdgatev1.EndReason_END_REASON_CLOSE_SESSION)
	_, _ = env.Sessions.End(ctx, tenant.Default, sids[1], crowdgatev1.EndReason_END_REASON_REVOKED)
	check(1)
	_, _ = env.Sessions.End(ctx, tenant.Default, sids[2], crowdgatev1.EndReason_END_REASON_ENDED)
	check(0)
	if got, _ := env.Sessions.LiveCount(ctx, "other", pool.GetPoolId()); got != 0 {
		t.Errorf("another tenant's view: %d live sessions", got)
	}
}

func TestRedirectKeepsThePlatformURL(t *testing.T) {
	for _, tc := range []struct {
		platformURL string
		want        string // with CODE for the code
	}{
		{"https://p.example/start", "https://p.example/start?code=CODE"},
		{"https://p.example/app?x=1&y=a%20b", "https://p.example/app?x=1&y=a%20b&code=CODE"},
		{"https://p.example/app?code=old&x=1#/toloka", "https://p.example/app?x=1&code=CODE#/toloka"},
		{"http://127.0.0.1:8081/", "http://127.0.0.1:8081/?code=CODE"},
	} {
		t.Run(tc.platformURL, func(t *testing.T) {
			env := sessiontest.New(t, sessiontest.Options{PlatformURL: tc.platformURL})
			pool := env.NewPool(t, tenant.Default, nil)
			l := land(t, env, env.StartAssignment(t, pool, "u"))
			if want := strings.Replace(tc.want, "CODE", l.Code, 1); l.RedirectURL != want {
				t.Errorf("redirect %q, want %q", l.RedirectURL, want)
			}
		})
	}

	// A project whose platform URL cannot be redirected to is not
	// redirected to: the landing is unavailable and says so in the log.
	env := sessiontest.New(t, sessiontest.Options{PlatformURL: "javascript:alert(1)"})
	pool := env.NewPool(t, tenant.Default, nil)
	if _, err := env.Sessions.Land(ctx, env.StartAssignment(t, pool, "u")); !isUnavailable(err) {
		t.Errorf("Land with a bad platform_url = %v, want Unavailable", err)
	}
}

func TestAudienceDefaultsToThePlatformOrigin(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{PlatformURL: "https://label.example:8443/toloka/start?src=t"})
	pool := env.NewPool(t, tenant.Default, nil)
	resp := exchange(t, env, land(t, env, env.StartAssignment(t, pool, "u")).Code)
	v := &token.Verifier{Keys: staticKeys(t, env), Issuer: sessiontest.Issuer, Tenant: tenant.Default, Audience: "https://label.example:8443"}
	if _, err := v.Verify(ctx, resp.GetToken()); err != nil {
		t.Errorf("Verify with the platform's origin as audience: %v", err)
	}
}

func TestSessionRecordIsSmall(t *testing.T) {
	if !redistest.Real() {
		t.Skip("MEMORY USAGE needs a real Redis (REDIS_URL)")
	}
	env := sessiontest.New(t, sessiontest.Options{PlatformURL: "https://platform.example/toloka/start?source=crowdgate"})
	pool := env.NewPool(t, tenant.Default, func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) {
		prj.ReturnUrl = "https://toloka.ai/tasks?utm_source=platform"
	})
	const n = 200 // enough for the live index to take its large encoding
	var aid string
	for i := range n {
		aid = env.StartAssignment(t, pool, fmt.Sprintf("6f1c2a9b3d4e5f6071829%03d", i))
		land(t, env, aid)
	}
	rdb := env.Redis.Client
	usage := func(key string) int64 {
		v, err := rdb.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return v
	}
	perSession := usage(env.Redis.Prefix+"ses:{"+aid+"}") +
		usage(env.Redis.Prefix+"ses-live:{"+tenant.Default+"/"+pool.PoolId+"}")/n
	t.Logf("per live session: %d bytes (record and index share)", perSession)
	if perSession > 2048 {
		t.Errorf("a live session takes %d bytes of Redis, want at most 2048", perSession)
	}
}

// defaults are the sessions' built-in lifetimes.
var defaults = session.DefaultSettings()

// newService builds another replica of the service from cfg.
func newService(t *testing.T, env *sessiontest.Env, cfg session.Config) *session.Service {
	t.Helper()
	s, err := session.NewService(cfg, env.Tolokers)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Made-up assignment ids cost the requester's Toloka quota: each pool has a
// budget of ids Toloka does not know; once it is spent, first landings in
// the pool are refused (RESOURCE_EXHAUSTED, with when to retry) without a
// Toloka call, until the window ends. Other pools keep theirs.
func TestUnknownIdsSpendThePoolsBudget(t *testing.T) {
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now, Session: func(c *session.Config) {
		c.Settings.UnknownPerPool = ratelimit.Limit{Rate: 3, Per: time.Hour}
	}})
	pool := env.NewPool(t, tenant.Default, nil)
	other := env.NewPool(t, tenant.Default, nil)
	made := func(p *crowdgatev1.Pool, i int) string {
		return poolHex(p.GetTolokaPoolId()) + "--" + fmt.Sprintf("%024x", 0xbad000+i)
	}
	asked := func() int { return len(env.Sim.Requests("/api/v1/assignments/")) }
	for i := range 3 {
		if _, err := env.Sessions.Land(ctx, made(pool, i)); !isNotFound(err) {
			t.Fatalf("unknown id %d = %v, want NotFound", i, err)
		}
	}
	if n := asked(); n != 3 {
		t.Fatalf("Toloka was asked %d times for 3 unknown ids", n)
	}
	var budget *session.BudgetError
	var re *serviceerror.ResourceExhausted
	_, err := env.Sessions.Land(ctx, made(pool, 3))
	if !errors.As(err, &budget) || !errors.As(err, &re) || re.RetryAfter <= 0 || re.RetryAfter > time.Hour {
		t.Fatalf("a 4th unknown id = %v, want RESOURCE_EXHAUSTED with a retry time within the hour", err)
	}
	// While it is spent, no first landing in the pool reaches Toloka.
	_, err = env.Sessions.Land(ctx, env.StartAssignment(t, pool, "toloker-1"))
	if !errors.As(err, &budget) || asked() != 3 {
		t.Errorf("a real assignment while the budget is spent = %v with %d Toloka calls, want refused without one", err, asked())
	}
	if l, err := env.Sessions.Land(ctx, env.StartAssignment(t, other, "toloker-2")); err != nil || !l.Created {
		t.Errorf("another pool's landing = %v, %v; want a session", l, err)
	}
	clock.Advance(time.Hour)
	if l, err := env.Sessions.Land(ctx, env.StartAssignment(t, pool, "toloker-3")); err != nil || !l.Created {
		t.Errorf("after the window = %v, %v; want a session", l, err)
	}
}

// An assignment of an archived pool or project is closed: refused without
// asking Toloka, and remembered like Toloka's final answers.
func TestArchivedPoolOrProjectIsClosedWithoutAskingToloka(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	for _, tc := range []struct {
		what string
		edit func(*crowdgatev1.Project, *crowdgatev1.Pool)
	}{
		{"pool", func(_ *crowdgatev1.Project, p *crowdgatev1.Pool) {
			p.Status = crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED
		}},
		{"project", func(p *crowdgatev1.Project, _ *crowdgatev1.Pool) {
			p.Status = crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			pool := env.NewPool(t, tenant.Default, tc.edit)
			aid := env.StartAssignment(t, pool, "toloker-1")
			for range 2 {
				var closed *session.ClosedError
				var fp *serviceerror.FailedPrecondition
				if _, err := env.Sessions.Land(ctx, aid); !errors.As(err, &closed) || closed.What != tc.what || !errors.As(err, &fp) {
					t.Errorf("landing in an archived %s = %v, want ClosedError (FAILED_PRECONDITION)", tc.what, err)
				}
			}
			if n := env.AssignmentGets(aid); n != 0 {
				t.Errorf("Toloka was asked %d times about an assignment of an archived %s", n, tc.what)
			}
		})
	}
}

// A Toloker whose session in a pool was revoked or ended by Toloka's flags
// is barred from the pool (submits by pool and user are refused) until a
// fresh landing opens a new session; the earlier session's end seen again
// after that does not bar the new session.
func TestARevokedSessionBarsItsTolokerUntilTheyLandAgain(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	barred := func() crowdgatev1.EndReason {
		t.Helper()
		r, err := env.Sessions.Barred(ctx, tenant.Default, pool.GetPoolId(), "toloker-1")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sess := started(t, env, env.StartAssignment(t, pool, "toloker-1"))
	if r := barred(); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		t.Fatalf("barred before anything ended: %v", r)
	}
	if _, err := env.Sessions.End(ctx, tenant.Default, sess.GetSessionId(), crowdgatev1.EndReason_END_REASON_REVOKED); err != nil {
		t.Fatal(err)
	}
	if r := barred(); r != crowdgatev1.EndReason_END_REASON_REVOKED {
		t.Errorf("after a revocation: barred %v, want REVOKED", r)
	}
	if r, _ := env.Sessions.Barred(ctx, "other", pool.GetPoolId(), "toloker-1"); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		t.Errorf("another tenant sees the bar: %v", r)
	}
	revoked := sess
	env.Submit(t, pool, "toloker-1", true) // the revoked assignment ends in Toloka
	fresh := started(t, env, env.StartAssignment(t, pool, "toloker-1"))
	if r := barred(); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		t.Errorf("after a fresh landing: barred %v, want none", r)
	}
	// The revoked session's end seen again later (a late delivery of its
	// submit, a resent End) does not bar the new session; revoking the new
	// one does.
	if _, err := env.Sessions.End(ctx, tenant.Default, revoked.GetSessionId(), crowdgatev1.EndReason_END_REASON_REVOKED); err != nil {
		t.Fatal(err)
	}
	if r := barred(); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		t.Errorf("the earlier session's end seen again barred the new session: %v", r)
	}
	// The session that lifted the bar is barred by its own end whatever the
	// clocks say (here the lift looks an hour younger than the session).
	barKey := env.Redis.Prefix + "ses-block:{" + tenant.Default + "/" + pool.GetPoolId() + "}:toloker-1"
	lift := fmt.Sprintf("lifted:%d:%s", time.Now().Add(time.Hour).UnixMilli(), fresh.GetSessionId())
	if err := env.Redis.Client.Set(ctx, barKey, lift, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.End(ctx, tenant.Default, fresh.GetSessionId(), crowdgatev1.EndReason_END_REASON_REVOKED); err != nil {
		t.Fatal(err)
	}
	if r := barred(); r != crowdgatev1.EndReason_END_REASON_REVOKED {
		t.Errorf("after the new session's revocation: barred %v, want REVOKED", r)
	}
	// A session ended normally bars nothing.
	sess = started(t, env, env.StartAssignment(t, pool, "toloker-2"))
	if _, err := env.Sessions.End(ctx, tenant.Default, sess.GetSessionId(), crowdgatev1.EndReason_END_REASON_CLOSE_SESSION); err != nil {
		t.Fatal(err)
	}
	if r, _ := env.Sessions.Barred(ctx, tenant.Default, pool.GetPoolId(), "toloker-2"); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		t.Errorf("close_session barred the Toloker: %v", r)
	}
}
