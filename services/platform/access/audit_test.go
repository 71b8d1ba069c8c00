package access

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// listAll pages through ListAuditEvents with small pages.
func listAll(t *testing.T, c crowdgatev1.AccessServiceClient, ctx context.Context) []*crowdgatev1.AuditEvent {
	t.Helper()
	var out []*crowdgatev1.AuditEvent
	token := ""
	for range 100 {
		resp, err := c.ListAuditEvents(ctx, &crowdgatev1.ListAuditEventsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetEvents()) > 2 {
			t.Fatalf("page of %d events, asked for 2", len(resp.GetEvents()))
		}
		out = append(out, resp.GetEvents()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
	t.Fatal("paging never ended")
	return nil
}

// brief is what a user checks of an event (its id and time vary).
type brief struct{ Tenant, Actor, Method, Resource, Result string }

func briefs(evs []*crowdgatev1.AuditEvent) []brief {
	out := make([]brief, len(evs))
	for i, e := range evs {
		out[i] = brief{e.GetTenantId(), e.GetActor(), e.GetMethod(), e.GetResource(), e.GetResult()}
	}
	return out
}

const (
	mCreateTenant = "/crowdgate.v1.AccessService/CreateTenant"
	mCreateKey    = "/crowdgate.v1.AccessService/CreateApiKey"
	mRevokeKey    = "/crowdgate.v1.AccessService/RevokeApiKey"
	mCreate       = "/crowdgate.v1.ProjectService/CreateProject"
	mArchive      = "/crowdgate.v1.ProjectService/ArchiveProject"
)

func TestAuditRecordsWritesNotReads(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.newTenant(t, "A"), f.newTenant(t, "B")
	readID, readKey := f.newKey(t, a, read)
	writeID, writeKey := f.newKey(t, a, write)
	bID, bKey := f.newKey(t, b, write)

	created, err := f.projects().CreateProject(bearer(writeKey), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{PublicName: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := created.GetProject().GetProjectId()
	// Reads are not recorded.
	for range 3 {
		if _, err := f.projects().GetProject(bearer(readKey), &crowdgatev1.GetProjectRequest{ProjectId: pid}); err != nil {
			t.Fatal(err)
		}
		listAll(t, f.access(), bearer(readKey))
	}
	// Refused and failed writes are.
	f.projects().ArchiveProject(bearer(readKey), &crowdgatev1.ArchiveProjectRequest{ProjectId: pid})
	f.projects().ArchiveProject(bearer(writeKey), &crowdgatev1.ArchiveProjectRequest{ProjectId: "prj_missing"})
	// B's archive of A's project: NOT_FOUND, in B's log.
	f.projects().ArchiveProject(bearer(bKey), &crowdgatev1.ArchiveProjectRequest{ProjectId: pid})
	if _, err := f.projects().ArchiveProject(bearer(testServiceToken, a), &crowdgatev1.ArchiveProjectRequest{ProjectId: pid}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.access().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: readID}); err != nil {
		t.Fatal(err)
	}

	wantA := []brief{
		{a, "admin", mRevokeKey, readID, "OK"},
		{a, "service:billing", mArchive, pid, "OK"},
		{a, writeID, mArchive, "prj_missing", "NOT_FOUND"},
		{a, readID, mArchive, pid, "PERMISSION_DENIED"},
		{a, writeID, mCreate, pid, "OK"},
		{a, "admin", mCreateKey, writeID, "OK"},
		{a, "admin", mCreateKey, readID, "OK"},
		{a, "admin", mCreateTenant, a, "OK"},
	}
	wantB := []brief{
		{b, bID, mArchive, pid, "NOT_FOUND"},
		{b, "admin", mCreateKey, bID, "OK"},
		{b, "admin", mCreateTenant, b, "OK"},
	}
	if diff := cmp.Diff(wantA, briefs(listAll(t, f.access(), bearer(writeKey)))); diff != "" {
		t.Errorf("A's audit log (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantB, briefs(listAll(t, f.access(), bearer(bKey)))); diff != "" {
		t.Errorf("B's audit log (-want +got):\n%s", diff)
	}
	// An administrator naming no tenant sees every tenant's, merged by time.
	all := briefs(listAll(t, f.access(), bearer(testAdminKey)))
	for _, w := range append(wantA, wantB...) {
		if !containsBrief(all, w) {
			t.Errorf("admin's view lacks %+v", w)
		}
	}
	if len(all) != len(wantA)+len(wantB) {
		t.Errorf("admin's view has %d events, want %d", len(all), len(wantA)+len(wantB))
	}
	// Naming a tenant narrows it to that tenant.
	if diff := cmp.Diff(wantB, briefs(listAll(t, f.access(), bearer(testAdminKey, b)))); diff != "" {
		t.Errorf("admin's view of B (-want +got):\n%s", diff)
	}

	// Every event carries an id and the time of the call.
	for _, e := range listAll(t, f.access(), bearer(testAdminKey)) {
		if e.GetEventId() == "" || !e.GetTime().AsTime().Equal(f.clock.Now()) {
			t.Errorf("event %v: want an id and time %v", e, f.clock.Now())
		}
	}
}

func containsBrief(bs []brief, b brief) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

func TestAuditRetentionTrimsByCountAndAge(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.AuditMaxEvents = 3
		c.AuditRetention = time.Hour
	})
	tid := f.newTenant(t, "Acme") // event 1 (CreateTenant)
	_, key := f.newKey(t, tid, write)
	var pids []string
	for range 4 {
		resp, err := f.projects().CreateProject(bearer(key), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, resp.GetProject().GetProjectId())
	}
	resources := func(ctx context.Context) []string {
		var out []string
		for _, e := range listAll(t, f.access(), ctx) {
			out = append(out, e.GetResource())
		}
		return out
	}
	// The tenant's log keeps the 3 newest of its 6 events.
	if diff := cmp.Diff([]string{pids[3], pids[2], pids[1]}, resources(bearer(key))); diff != "" {
		t.Errorf("after 6 events with a cap of 3 (-want +got):\n%s", diff)
	}
	if n := f.redis.Client.XLen(context.Background(), f.svc.auditKey(tid)).Val(); n != 3 {
		t.Errorf("tenant stream holds %d entries, want 3 (trimmed, not just hidden)", n)
	}
	// The administrators' view keeps ten times as many.
	if got := len(resources(bearer(testAdminKey))); got != 6 {
		t.Errorf("all-tenants view has %d events, want 6", got)
	}

	// An hour later nothing is shown, even before the next write trims.
	f.clock.Advance(time.Hour + time.Second)
	if got := resources(bearer(key)); len(got) != 0 {
		t.Errorf("events older than the retention are listed: %v", got)
	}
	resp, err := f.projects().CreateProject(bearer(key), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{resp.GetProject().GetProjectId()}, resources(bearer(key))); diff != "" {
		t.Errorf("after the retention (-want +got):\n%s", diff)
	}
	for _, k := range []string{f.svc.auditKey(tid), f.svc.auditAllKey()} {
		if n := f.redis.Client.XLen(context.Background(), k).Val(); n != 1 {
			t.Errorf("%s holds %d entries after the retention, want 1", k, n)
		}
		if ttl := f.redis.Client.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s expires in %v, want within the retention", k, ttl)
		}
	}
}

// A replica trims an audit stream to the retention and renews its TTL at
// most once a second, not with every entry: a stream written again within
// the second keeps its TTL; a second later it is renewed.
func TestAuditStreamsAreTrimmedAtMostEverySecond(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuditRetention = time.Hour })
	tid := f.newTenant(t, "Acme")
	_, key := f.newKey(t, tid, write)
	create := func() {
		t.Helper()
		if _, err := f.projects().CreateProject(bearer(key), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}}); err != nil {
			t.Fatal(err)
		}
	}
	ttl := func() time.Duration {
		return f.redis.Client.PTTL(context.Background(), f.svc.auditKey(tid)).Val()
	}
	create()
	if err := f.redis.Client.PExpire(context.Background(), f.svc.auditKey(tid), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(500 * time.Millisecond)
	create()
	if got := ttl(); got > time.Minute {
		t.Errorf("written again within the second, the stream's TTL is %v; want it left (at most a minute)", got)
	}
	f.clock.Advance(time.Second)
	create()
	if got := ttl(); got <= time.Minute || got > time.Hour {
		t.Errorf("written a second later, the stream's TTL is %v; want it renewed to the retention", got)
	}
}

func TestAuditSurvivesAClockBehindTheStream(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	_, key := f.newKey(t, tid, write)
	f.clock.Advance(-time.Minute) // another replica wrote with a clock a minute ahead
	resp, err := f.projects().CreateProject(bearer(key), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
	if err != nil {
		t.Fatal(err)
	}
	evs := listAll(t, f.access(), bearer(key))
	if len(evs) != 3 || evs[0].GetResource() != resp.GetProject().GetProjectId() {
		t.Errorf("events = %v, want the late write first of 3", briefs(evs))
	}
}

func TestAuditResourceIsTheMostSpecificIDOfRequestOrResponse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req, resp proto.Message
		want      string
	}{
		{"top-level id", &crowdgatev1.OpenPoolRequest{PoolId: "pol_1"}, nil, "pol_1"},
		{"nested id", &crowdgatev1.UpdatePoolRequest{Pool: &crowdgatev1.Pool{PoolId: "pol_2", ProjectId: "prj_1"}}, nil, "pol_2"},
		{"created id from the response", &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{ProjectId: "prj_1"}}, &crowdgatev1.CreatePoolResponse{Pool: &crowdgatev1.Pool{PoolId: "pol_3", ProjectId: "prj_1"}}, "pol_3"},
		{"parent when the call failed", &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{ProjectId: "prj_1"}}, (*crowdgatev1.CreatePoolResponse)(nil), "prj_1"},
		{"submission over session", &crowdgatev1.SubmitRequest{SessionId: "ses_1", PoolId: "pol_1"}, &crowdgatev1.SubmitResponse{Submission: &crowdgatev1.Submission{SubmissionId: "sub_1", SessionId: "ses_1"}}, "sub_1"},
		{"assignment", &crowdgatev1.AcceptAssignmentRequest{AssignmentId: "0000000001--abc"}, nil, "0000000001--abc"},
		{"none", &crowdgatev1.CreateCredentialRequest{DisplayName: "x"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := messages(tc.req, tc.resp)
			got := ""
			for _, f := range resourceFields {
				if got = findString(msgs, f); got != "" {
					break
				}
			}
			if got != tc.want {
				t.Errorf("resource = %q, want %q", got, tc.want)
			}
		})
	}
}
