package access

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

const (
	read  = crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ
	write = crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE
	admin = crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN
)

func TestRequired(t *testing.T) {
	for method, want := range map[string]Need{
		"/crowdgate.v1.PoolService/GetPool":                NeedRead,
		"/crowdgate.v1.PoolService/ListPools":              NeedRead,
		"/crowdgate.v1.SubmissionService/GetPoolTotals":    NeedRead,
		"/crowdgate.v1.AccessService/ListAuditEvents":      NeedRead,
		"/crowdgate.v1.PoolService/OpenPool":               NeedWrite,
		"/crowdgate.v1.SubmissionService/Submit":           NeedWrite,
		"/crowdgate.v1.SessionService/ExchangeCode":        NeedWrite,
		"/crowdgate.v1.SessionService/StartSession":        NeedWrite,
		"/crowdgate.v1.SessionService/GetSession":          NeedWrite,
		"/crowdgate.v1.SessionService/EndSession":          NeedWrite,
		"/crowdgate.v1.FutureService/DescribeSomething":    NeedWrite,
		"/crowdgate.v1.AccessService/CreateTenant":         NeedAdmin,
		"/crowdgate.v1.AccessService/ListTenants":          NeedAdmin,
		"/crowdgate.v1.AccessService/CreateApiKey":         NeedAdmin,
		"/crowdgate.v1.AccessService/ListApiKeys":          NeedAdmin,
		"/crowdgate.v1.AccessService/RevokeApiKey":         NeedAdmin,
		"/crowdgate.v1.CredentialService/DeleteCredential": NeedWrite,
		"/crowdgate.v1.ExportService/ExportSubmissions":    NeedRead,
		"/crowdgate.v1.ExportService/ExportTolokers":       NeedRead,
		"/crowdgate.v1.ExportService/ExportSessions":       NeedWrite,
	} {
		if got := Required(method); got != want {
			t.Errorf("Required(%s) = %v, want %v", method, got, want)
		}
	}
}

func TestParseServiceTokens(t *testing.T) {
	long := strings.Repeat("a", MinSecretLength)
	long2 := strings.Repeat("b", MinSecretLength)
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# internal callers\nbilling="+long+"\n\nreports = "+long2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		wantErr  string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "pairs", in: "billing=" + long + ", reports=" + long2, want: map[string]string{"billing": long, "reports": long2}},
		{name: "file", in: "@" + file, want: map[string]string{"billing": long, "reports": long2}},
		{name: "missing file", in: "@" + file + ".nope", wantErr: "read service tokens file"},
		{name: "no equals", in: "billing", wantErr: "want name=token"},
		{name: "short token", in: "billing=short", wantErr: "at least 32"},
		{name: "bad name", in: "bill ing=" + long, wantErr: "only letters"},
		{name: "duplicate name", in: "a=" + long + ",a=" + long2, wantErr: "its name is another entry's"},
		{name: "shared token", in: "a=" + long + ",b=" + long, wantErr: "also another service's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServiceTokens(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), long) || strings.Contains(err.Error(), "short") && tc.name != "short token" {
					t.Errorf("error %q shows a token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRefusesUnsafeConfiguration(t *testing.T) {
	r := redistest.New(t)
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"short admin key", Config{AdminKey: "short"}, "at least 32"},
		{"short service token", Config{ServiceTokens: map[string]string{"x": "short"}}, "at least 32"},
		{"admin key as service token", Config{AdminKey: testAdminKey, ServiceTokens: map[string]string{"x": testAdminKey}}, "admin key"},
		{"unknown mode", Config{Mode: "maybe"}, "want off or keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Redis = r.Client
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testAdminKey) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestCreateApiKeyShowsTheSecretOnceAndStoresOnlyItsHash(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	resp, err := f.access().CreateApiKey(bearer(testAdminKey), &crowdgatev1.CreateApiKeyRequest{TenantId: tid, DisplayName: "dashboard", Scope: read})
	if err != nil {
		t.Fatal(err)
	}
	key, secret := resp.GetApiKey(), resp.GetSecret()
	if !strings.HasPrefix(secret, key.GetApiKeyId()+"_") || !strings.HasPrefix(key.GetApiKeyId(), "cgk_") {
		t.Errorf("secret %q does not start with the key id %q and cgk_", secret[:8], key.GetApiKeyId())
	}
	if n := len(secret) - len(key.GetApiKeyId()) - 1; n < 43 { // 32 bytes of base32 = 52 characters
		t.Errorf("secret part has %d characters, want at least 43 (256 bits)", n)
	}
	want := &crowdgatev1.ApiKey{ApiKeyId: key.GetApiKeyId(), TenantId: tid, DisplayName: "dashboard", Scope: read, CreateTime: timestamp(f.clock.Now())}
	if diff := cmp.Diff(want, key, protocmp.Transform()); diff != "" {
		t.Errorf("api key (-want +got):\n%s", diff)
	}

	// The secret part appears nowhere in Redis.
	secretPart := secret[strings.LastIndexByte(secret, '_')+1:]
	ctx := context.Background()
	keys, err := f.redis.Client.Keys(ctx, f.redis.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(redisValue(t, f.redis.Client, k), secretPart) {
			t.Errorf("Redis key %s holds the key's secret", k)
		}
	}

	// Listing shows the key without any secret, and a second key of another
	// tenant stays out of it.
	other := f.newTenant(t, "Other")
	f.newKey(t, other, write)
	list, err := f.access().ListApiKeys(bearer(testAdminKey), &crowdgatev1.ListApiKeysRequest{TenantId: tid})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*crowdgatev1.ApiKey{want}, list.GetApiKeys(), protocmp.Transform()); diff != "" {
		t.Errorf("ListApiKeys (-want +got):\n%s", diff)
	}
}

func TestAccessRequestValidation(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	ctx := bearer(testAdminKey)
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"tenant without name", func() error {
			_, err := f.access().CreateTenant(ctx, &crowdgatev1.CreateTenantRequest{})
			return err
		}, codes.InvalidArgument},
		{"tenant name too long", func() error {
			_, err := f.access().CreateTenant(ctx, &crowdgatev1.CreateTenantRequest{DisplayName: strings.Repeat("x", 201)})
			return err
		}, codes.InvalidArgument},
		{"key without tenant", func() error {
			_, err := f.access().CreateApiKey(ctx, &crowdgatev1.CreateApiKeyRequest{DisplayName: "k", Scope: read})
			return err
		}, codes.InvalidArgument},
		{"key for unknown tenant", func() error {
			_, err := f.access().CreateApiKey(ctx, &crowdgatev1.CreateApiKeyRequest{TenantId: "tnt_nope", DisplayName: "k", Scope: read})
			return err
		}, codes.NotFound},
		{"key without scope", func() error {
			_, err := f.access().CreateApiKey(ctx, &crowdgatev1.CreateApiKeyRequest{TenantId: tid, DisplayName: "k"})
			return err
		}, codes.InvalidArgument},
		{"key with unknown scope", func() error {
			_, err := f.access().CreateApiKey(ctx, &crowdgatev1.CreateApiKeyRequest{TenantId: tid, DisplayName: "k", Scope: 9})
			return err
		}, codes.InvalidArgument},
		{"key without name", func() error {
			_, err := f.access().CreateApiKey(ctx, &crowdgatev1.CreateApiKeyRequest{TenantId: tid, Scope: read})
			return err
		}, codes.InvalidArgument},
		{"revoke unknown key", func() error {
			_, err := f.access().RevokeApiKey(ctx, &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: "cgk_0000000000000000000000000a"})
			return err
		}, codes.NotFound},
		{"revoke without id", func() error {
			_, err := f.access().RevokeApiKey(ctx, &crowdgatev1.RevokeApiKeyRequest{})
			return err
		}, codes.InvalidArgument},
		{"list keys of unknown tenant", func() error {
			_, err := f.access().ListApiKeys(ctx, &crowdgatev1.ListApiKeysRequest{TenantId: "tnt_nope"})
			return err
		}, codes.NotFound},
		{"bad page token", func() error {
			_, err := f.access().ListAuditEvents(ctx, &crowdgatev1.ListAuditEventsRequest{PageToken: "abc"})
			return err
		}, codes.InvalidArgument},
		{"page size too large", func() error {
			_, err := f.access().ListApiKeys(ctx, &crowdgatev1.ListApiKeysRequest{TenantId: tid, PageSize: 501})
			return err
		}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.call()); got != tc.want {
				t.Errorf("code %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCredentialsAndScopes(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	_, readKey := f.newKey(t, tid, read)
	_, writeKey := f.newKey(t, tid, write)
	_, adminKey := f.newKey(t, tid, admin)
	revokedID, revokedKey := f.newKey(t, tid, write)
	if _, err := f.access().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: revokedID}); err != nil {
		t.Fatal(err)
	}
	// A real project of the tenant, so reads can succeed.
	created, err := f.projects().CreateProject(bearer(writeKey), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{PublicName: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := created.GetProject().GetProjectId()

	getProject := func(ctx context.Context) error {
		_, err := f.projects().GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: pid})
		return err
	}
	archive := func(ctx context.Context) error {
		_, err := f.projects().ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: pid})
		return err
	}
	listTenants := func(ctx context.Context) error {
		_, err := f.access().ListTenants(ctx, &crowdgatev1.ListTenantsRequest{})
		return err
	}
	listAudit := func(ctx context.Context) error {
		_, err := f.access().ListAuditEvents(ctx, &crowdgatev1.ListAuditEventsRequest{})
		return err
	}
	listKeysOf := func(tenantID string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := f.access().ListApiKeys(ctx, &crowdgatev1.ListApiKeysRequest{TenantId: tenantID})
			return err
		}
	}
	wrongSecret := writeKey[:len(writeKey)-4] + "aaaa"
	if wrongSecret == writeKey {
		wrongSecret = writeKey[:len(writeKey)-4] + "bbbb"
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		call func(context.Context) error
		want codes.Code
	}{
		{"no credentials", bearer(""), getProject, codes.Unauthenticated},
		{"garbage bearer", bearer("hello"), getProject, codes.Unauthenticated},
		{"wrong secret of a real key id", bearer(wrongSecret), getProject, codes.Unauthenticated},
		{"revoked key", bearer(revokedKey), getProject, codes.Unauthenticated},
		{"basic scheme", contextWith("authorization", "Basic "+writeKey), getProject, codes.Unauthenticated},
		{"two authorization values", contextWith("authorization", "Bearer "+writeKey, "authorization", "Bearer "+readKey), getProject, codes.Unauthenticated},
		{"lower-case scheme", contextWith("authorization", "bearer "+readKey), getProject, codes.OK},

		{"read key reads", bearer(readKey), getProject, codes.OK},
		{"read key reads the audit log", bearer(readKey), listAudit, codes.OK},
		{"read key writes", bearer(readKey), archive, codes.PermissionDenied},
		{"read key manages tenants", bearer(readKey), listTenants, codes.PermissionDenied},
		{"write key reads", bearer(writeKey), getProject, codes.OK},
		{"write key writes", bearer(writeKey), archive, codes.OK},
		{"write key manages tenants", bearer(writeKey), listTenants, codes.PermissionDenied},
		{"admin api key manages tenants", bearer(adminKey), listTenants, codes.PermissionDenied},
		{"admin api key writes its tenant", bearer(adminKey), archive, codes.OK},
		{"admin api key manages its tenant's keys", bearer(adminKey), listKeysOf(tid), codes.OK},
		{"admin api key manages another tenant's keys", bearer(adminKey), listKeysOf(tenant.Default), codes.NotFound},
		{"admin api key names its own tenant", bearer(adminKey, tid), getProject, codes.OK},
		{"admin api key names another tenant", bearer(adminKey, tenant.Default), listKeysOf(tenant.Default), codes.PermissionDenied},
		{"bootstrap admin manages tenants", bearer(testAdminKey), listTenants, codes.OK},
		{"bootstrap admin manages a tenant's keys", bearer(testAdminKey), listKeysOf(tid), codes.OK},
		{"bootstrap admin acts for the named tenant", bearer(testAdminKey, tid), getProject, codes.OK},
		{"bootstrap admin acts for default without a header", bearer(testAdminKey), getProject, codes.NotFound},

		{"key names its own tenant", bearer(writeKey, tid), getProject, codes.OK},
		{"key names another tenant", bearer(writeKey, tenant.Default), getProject, codes.PermissionDenied},
		{"two tenant headers", contextWith("authorization", "Bearer "+writeKey, TenantHeader, tid, TenantHeader, tid), getProject, codes.InvalidArgument},
		{"misnamed tenant header", contextWith("authorization", "Bearer "+writeKey, MisnamedTenantHeader, tid), getProject, codes.InvalidArgument},

		{"service token with tenant", bearer(testServiceToken, tid), archive, codes.OK},
		{"service token without tenant", bearer(testServiceToken), getProject, codes.PermissionDenied},
		{"service token with unknown tenant", bearer(testServiceToken, "tnt_unknown"), getProject, codes.PermissionDenied},
		{"service token with malformed tenant", bearer(testServiceToken, "a:b{c}"), getProject, codes.PermissionDenied},
		{"service token manages keys", bearer(testServiceToken, tid), listTenants, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.call(tc.ctx)); got != tc.want {
				t.Errorf("code %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOnlyTheBootstrapAdminAndServicesActAcrossTenants pins the rule
// Principal.CrossTenant decides: a tenant's API key acts for its own tenant
// only, whatever its scope.
func TestOnlyTheBootstrapAdminAndServicesActAcrossTenants(t *testing.T) {
	for _, tc := range []struct {
		p    Principal
		want bool
	}{
		{Principal{Kind: KindAdmin, Scope: admin, Tenant: tenant.Default}, true},
		{Principal{Kind: KindService, Scope: write, Tenant: "tnt_a"}, true},
		{Principal{Kind: KindAnonymous, Scope: admin, Tenant: tenant.Default}, true},
		{Principal{Kind: KindAPIKey, Scope: admin, Tenant: "tnt_a"}, false},
		{Principal{Kind: KindAPIKey, Scope: write, Tenant: "tnt_a"}, false},
		{Principal{Kind: KindAPIKey, Scope: read, Tenant: "tnt_a"}, false},
		{Principal{Kind: "", Scope: admin, Tenant: "tnt_a"}, false},
	} {
		if got := tc.p.CrossTenant(); got != tc.want {
			t.Errorf("%s %s: CrossTenant() = %v, want %v", tc.p.Kind, tc.p.Scope, got, tc.want)
		}
		if got := tc.p.MayActFor("tnt_b"); got != tc.want {
			t.Errorf("%s %s: MayActFor(another tenant) = %v, want %v", tc.p.Kind, tc.p.Scope, got, tc.want)
		}
		if !tc.p.MayActFor(tc.p.Tenant) {
			t.Errorf("%s %s: may not act for its own tenant", tc.p.Kind, tc.p.Scope)
		}
	}
}

// TestTenantAdminKeyManagesOnlyItsOwnTenantsKeys: a tenant's ADMIN key
// creates, lists and revokes its own tenant's keys; another tenant's
// tenant_id or key is NOT_FOUND and changes nothing, tenants are the
// bootstrap admin's, and its refused attempts are audited in its own
// tenant's log, not the other's.
func TestTenantAdminKeyManagesOnlyItsOwnTenantsKeys(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.newTenant(t, "A"), f.newTenant(t, "B")
	keyA, _ := f.newKey(t, a, read)
	adminBID, adminB := f.newKey(t, b, admin)
	asB := bearer(adminB)

	created, err := f.access().CreateApiKey(asB, &crowdgatev1.CreateApiKeyRequest{TenantId: b, DisplayName: "ci", Scope: write})
	if err != nil {
		t.Fatalf("CreateApiKey for its own tenant: %v", err)
	}
	list, err := f.access().ListApiKeys(asB, &crowdgatev1.ListApiKeysRequest{TenantId: b})
	if err != nil || len(list.GetApiKeys()) != 2 {
		t.Fatalf("ListApiKeys of its own tenant: %v, %v; want 2 keys", list.GetApiKeys(), err)
	}
	if _, err := f.access().RevokeApiKey(asB, &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetApiKeyId()}); err != nil {
		t.Fatalf("RevokeApiKey of its own tenant's key: %v", err)
	}

	auditA := listAll(t, f.access(), bearer(testAdminKey, a))
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"create a key for another tenant", func() error {
			_, err := f.access().CreateApiKey(asB, &crowdgatev1.CreateApiKeyRequest{TenantId: a, DisplayName: "x", Scope: admin})
			return err
		}, codes.NotFound},
		{"list another tenant's keys", func() error {
			_, err := f.access().ListApiKeys(asB, &crowdgatev1.ListApiKeysRequest{TenantId: a})
			return err
		}, codes.NotFound},
		{"revoke another tenant's key", func() error {
			_, err := f.access().RevokeApiKey(asB, &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: keyA})
			return err
		}, codes.NotFound},
		{"create a tenant", func() error {
			_, err := f.access().CreateTenant(asB, &crowdgatev1.CreateTenantRequest{DisplayName: "x"})
			return err
		}, codes.PermissionDenied},
		{"list tenants", func() error {
			_, err := f.access().ListTenants(asB, &crowdgatev1.ListTenantsRequest{})
			return err
		}, codes.PermissionDenied},
	} {
		if got := code(tc.call()); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
		}
	}
	keys, err := f.access().ListApiKeys(bearer(testAdminKey), &crowdgatev1.ListApiKeysRequest{TenantId: a})
	if err != nil || len(keys.GetApiKeys()) != 1 || keys.GetApiKeys()[0].GetRevokeTime() != nil {
		t.Errorf("A's keys after B's attempts: %v, %v; want A's one key, valid", keys.GetApiKeys(), err)
	}
	if diff := cmp.Diff(briefs(auditA), briefs(listAll(t, f.access(), bearer(testAdminKey, a)))); diff != "" {
		t.Errorf("A's audit log changed (-before +after):\n%s", diff)
	}
	for _, e := range listAll(t, f.access(), asB) {
		if e.GetTenantId() != b {
			t.Errorf("B's ADMIN key sees an event of tenant %q", e.GetTenantId())
		}
		if e.GetActor() == adminBID && e.GetMethod() == mCreateKey && e.GetResource() == a && e.GetResult() != "NOT_FOUND" {
			t.Errorf("B's attempt on A's keys audited as %v", e)
		}
	}
}

func contextWith(kv ...string) context.Context {
	ctx := context.Background()
	for i := 0; i < len(kv); i += 2 {
		ctx = appendMD(ctx, kv[i], kv[i+1])
	}
	return ctx
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.newTenant(t, "A"), f.newTenant(t, "B")
	_, keyA := f.newKey(t, a, write)
	_, keyB := f.newKey(t, b, write)
	_, adminB := f.newKey(t, b, admin)

	created, err := f.projects().CreateProject(bearer(keyA), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{PublicName: "A's"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := created.GetProject().GetProjectId()
	if created.GetProject().GetTenantId() != a {
		t.Fatalf("project created in tenant %q, want the key's tenant %q", created.GetProject().GetTenantId(), a)
	}

	for _, ctx := range []context.Context{bearer(keyB), bearer(adminB), bearer(testServiceToken, b)} {
		if _, err := f.projects().GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: pid}); code(err) != codes.NotFound {
			t.Errorf("GetProject of A's project as B: %v, want NOT_FOUND", err)
		}
		if _, err := f.projects().ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: pid}); code(err) != codes.NotFound {
			t.Errorf("ArchiveProject of A's project as B: %v, want NOT_FOUND", err)
		}
	}
	got, err := f.projects().GetProject(bearer(keyA), &crowdgatev1.GetProjectRequest{ProjectId: pid})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetProject().GetPublicName() != "A's" {
		t.Errorf("A's project was changed by B: %q", got.GetProject().GetPublicName())
	}
}

func TestRevokedKeyIsRefusedAtOnceOnEveryReplica(t *testing.T) {
	f := newFixture(t, nil)
	// A second replica: another Service on the same Redis.
	other, err := New(Config{Redis: f.redis.Client, Prefix: f.redis.Prefix, Mode: ModeKeys, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	otherConn := serve(t, other, nil)

	tid := f.newTenant(t, "Acme")
	id, secret := f.newKey(t, tid, write)
	list := func(c crowdgatev1.AccessServiceClient) error {
		_, err := c.ListAuditEvents(bearer(secret), &crowdgatev1.ListAuditEventsRequest{})
		return err
	}
	for _, c := range []crowdgatev1.AccessServiceClient{f.access(), crowdgatev1.NewAccessServiceClient(otherConn)} {
		if err := list(c); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}
	revoked, err := f.access().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if !revoked.GetApiKey().GetRevokeTime().AsTime().Equal(f.clock.Now().Truncate(time.Millisecond)) {
		t.Errorf("revoke_time = %v, want %v", revoked.GetApiKey().GetRevokeTime().AsTime(), f.clock.Now())
	}
	for _, c := range []crowdgatev1.AccessServiceClient{f.access(), crowdgatev1.NewAccessServiceClient(otherConn)} {
		if err := list(c); code(err) != codes.Unauthenticated {
			t.Errorf("after revocation: %v, want UNAUTHENTICATED", err)
		}
	}
	// Revoking again keeps the first time.
	f.clock.Advance(time.Hour)
	again, err := f.access().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revoked.GetApiKey().GetRevokeTime(), again.GetApiKey().GetRevokeTime(), protocmp.Transform()); diff != "" {
		t.Errorf("second revoke moved revoke_time (-first +second):\n%s", diff)
	}
}

func TestLastUsedIsWrittenAtMostOncePerMinute(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	id, secret := f.newKey(t, tid, read)
	lastUsed := func() time.Time {
		t.Helper()
		resp, err := f.access().ListApiKeys(bearer(testAdminKey), &crowdgatev1.ListApiKeysRequest{TenantId: tid})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range resp.GetApiKeys() {
			if k.GetApiKeyId() == id {
				if k.GetLastUsedTime() == nil {
					return time.Time{}
				}
				return k.GetLastUsedTime().AsTime()
			}
		}
		t.Fatalf("key %s not listed", id)
		return time.Time{}
	}
	use := func() {
		t.Helper()
		if _, err := f.access().ListAuditEvents(bearer(secret), &crowdgatev1.ListAuditEventsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("unused key has last_used_time %v", got)
	}
	first := f.clock.Now().Truncate(time.Millisecond)
	use()
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("after first use: last_used_time %v, want %v", got, first)
	}
	f.clock.Advance(30 * time.Second)
	use()
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("30s later: last_used_time %v, want it unchanged at %v", got, first)
	}
	f.clock.Advance(31 * time.Second)
	use()
	if want := f.clock.Now().Truncate(time.Millisecond); !lastUsed().Equal(want) {
		t.Errorf("61s later: last_used_time %v, want %v", lastUsed(), want)
	}
}

func TestAuthOffActsAsAnonymousAdminOfTheDefaultTenant(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Mode = ModeOff })
	var seen []string
	probe := func(ctx context.Context, _ any) (any, error) {
		p, _ := PrincipalFromContext(ctx)
		seen = append(seen, p.Actor+"@"+tenant.FromContext(ctx))
		return nil, nil
	}
	info := func(m string) *grpcInfo { return &grpcInfo{FullMethod: m} }
	if _, err := f.svc.Unary(context.Background(), nil, info("/crowdgate.v1.AccessService/CreateTenant"), probe); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Unary(incoming(TenantHeader, "tnt_x"), nil, info("/crowdgate.v1.PoolService/OpenPool"), probe); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"anonymous@default", "anonymous@tnt_x"}, seen); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// grpc-gateway's Grpc-Metadata-X-Crowdgate-Tenant is refused, naming the
	// header that works.
	_, err := f.svc.Unary(incoming(MisnamedTenantHeader, "tnt_x"), nil, info("/crowdgate.v1.PoolService/OpenPool"), probe)
	if serviceerror.ToStatus(err).Code() != codes.InvalidArgument || !strings.Contains(err.Error(), RESTTenantHeader) {
		t.Errorf("misnamed tenant header: %v, want INVALID_ARGUMENT naming %s", err, RESTTenantHeader)
	}
	if len(seen) != 2 {
		t.Errorf("the handler ran for a refused call: %v", seen)
	}
	// Even with authentication off the audit log records writes.
	evs, _, err := f.svc.listAudit(context.Background(), "", true, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].GetActor() != "anonymous" {
		t.Errorf("audit events = %v, want 2 by anonymous", evs)
	}
}

func TestDamagedKeyRecordNeverActsForTheDefaultTenant(t *testing.T) {
	f := newFixture(t, nil)
	tid := f.newTenant(t, "Acme")
	id, secret := f.newKey(t, tid, write)
	if err := f.redis.Client.HSet(context.Background(), f.svc.keyKey(id), "tenant", "").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := f.projects().CreateProject(bearer(secret), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
	if code(err) != codes.Internal {
		t.Errorf("damaged key record: %v, want INTERNAL", err)
	}
}
