package credential_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// start serves the gateway in front of the emulator on a fake clock, so
// waiting for Toloka's operations takes no real time.
func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
}

// unknownKey is a key shaped like a current Toloka API key (three
// dot-separated parts) that no account of the emulator has.
func unknownKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wrong." + hex.EncodeToString(b) + ".k3y"
}

// TestCredentialIsCheckedStoredEncryptedAndNeverReturned registers a key
// only once Toloka accepts it (one GET /projects?limit=1), answers with its
// fingerprint, never the key, over gRPC and REST, hides it from other
// tenants and deletes it.
func TestCredentialIsCheckedStoredEncryptedAndNeverReturned(t *testing.T) {
	env := start(t)
	key, wrongKey := env.NewAPIKey("acme"), unknownKey(t)
	t.Cleanup(func() { env.AssertNotLeaked(key, wrongKey) })

	// A key Toloka does not know is refused at registration.
	_, err := env.Credentials.CreateCredential(env.Ctx(), &crowdgatev1.CreateCredentialRequest{
		DisplayName: "typo", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: wrongKey,
	})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "refused the API key") {
		t.Errorf("message %q does not say Toloka refused the key", st.Message())
	}
	list, err := env.Credentials.ListCredentials(env.Ctx(), &crowdgatev1.ListCredentialsRequest{})
	if err != nil || len(list.GetCredentials()) != 0 {
		t.Fatalf("after a refused key: %v credentials, err %v; want none", len(list.GetCredentials()), err)
	}

	// The check was one authenticated list call with limit 1.
	calls := env.Requests(http.MethodGet, "/api/v1/projects")
	if len(calls) != 1 || calls[0].Query != "limit=1" || calls[0].Status != http.StatusUnauthorized {
		t.Fatalf("verification calls = %+v, want one GET /projects?limit=1 answered 401", calls)
	}

	resp, err := env.Credentials.CreateCredential(env.Ctx(), &crowdgatev1.CreateCredentialRequest{
		DisplayName: "  Acme sandbox ", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key,
	})
	if err != nil {
		t.Fatalf("CreateCredential with a good key: %v", err)
	}
	c := resp.GetCredential()
	sum := sha256.Sum256([]byte(key))
	if len(c.GetKeyFingerprint()) != 16 || c.GetKeyFingerprint() == hex.EncodeToString(sum[:])[:16] {
		t.Errorf("key_fingerprint = %q, want 16 hex digits that are not the key's plain SHA-256 prefix (a keyed HMAC)", c.GetKeyFingerprint())
	}
	if c.GetDisplayName() != "Acme sandbox" || c.GetEnvironment() != crowdgatev1.Environment_ENVIRONMENT_SANDBOX ||
		c.GetTenantId() != "default" || c.GetCreateTime() == nil || c.GetVerifyTime() == nil {
		t.Errorf("credential = %v", c)
	}
	got, err := env.Credentials.GetCredential(env.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	if err != nil || got.GetCredential().GetKeyFingerprint() != c.GetKeyFingerprint() {
		t.Fatalf("GetCredential = %v, %v", got, err)
	}
	if !strings.Contains(env.Logs.String(), c.GetKeyFingerprint()) {
		t.Error("the registration log line lacks the fingerprint: the log capture the no-leak check relies on sees nothing")
	}

	// Another tenant does not see it.
	_, err = env.Credentials.GetCredential(gatewaytest.As("globex"), &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	gatewaytest.WantCode(t, err, codes.NotFound)

	// Over REST, the key is neither echoed nor listed.
	code, body := env.REST(http.MethodPost, "/v1/credentials",
		`{"display_name": "Acme 2", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+key+`"}`)
	if code != http.StatusOK {
		t.Fatalf("REST create = %d %v", code, body)
	}
	code, body = env.REST(http.MethodGet, "/v1/credentials", "")
	if code != http.StatusOK || len(body["credentials"].([]any)) != 2 {
		t.Fatalf("REST list = %d %v, want 2 credentials", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/credentials",
		`{"display_name": "typo", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+wrongKey+`"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "refused") {
		t.Errorf("REST wrong key = %d %v, want 400 (FAILED_PRECONDITION) saying Toloka refused it", code, body)
	}

	// Delete, then it is gone.
	if _, err := env.Credentials.DeleteCredential(env.Ctx(), &crowdgatev1.DeleteCredentialRequest{CredentialId: c.GetCredentialId()}); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	_, err = env.Credentials.GetCredential(env.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Credentials.DeleteCredential(env.Ctx(), &crowdgatev1.DeleteCredentialRequest{CredentialId: c.GetCredentialId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// TestCreateCredentialValidation refuses each malformed request with
// INVALID_ARGUMENT naming the field, before asking Toloka anything.
func TestCreateCredentialValidation(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.CreateCredentialRequest
		field string
	}{
		{"no display name", &crowdgatev1.CreateCredentialRequest{Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key}, "display_name"},
		{"long display name", &crowdgatev1.CreateCredentialRequest{DisplayName: strings.Repeat("n", 201), Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key}, "display_name"},
		{"no environment", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", ApiKey: key}, "environment"},
		{"unknown environment", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: 7, ApiKey: key}, "environment"},
		{"no key", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION}, "api_key"},
		{"blank key", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION, ApiKey: "   "}, "api_key"},
		{"key with a space inside", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION, ApiKey: "ab cd"}, "api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Credentials.CreateCredential(env.Ctx(), tc.req)
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	if n := len(env.Sim.Requests("/api/v1/")); n != 0 {
		t.Errorf("invalid requests reached Toloka %d times", n)
	}
}

// TestDeleteCredentialRefusedWhileAProjectUsesIt keeps a credential that a
// project still uses, naming the project, and deletes it once the project
// is archived.
func TestDeleteCredentialRefusedWhileAProjectUsesIt(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	credID := env.MustCredential(env.Ctx(), key)
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(credID))

	_, err := env.Credentials.DeleteCredential(env.Ctx(), &crowdgatev1.DeleteCredentialRequest{CredentialId: credID})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), prj.GetProjectId()) {
		t.Errorf("refusal %q does not name project %s", st.Message(), prj.GetProjectId())
	}
	if _, err := env.Credentials.GetCredential(env.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: credID}); err != nil {
		t.Fatalf("the refused delete removed the credential: %v", err)
	}

	if _, err := env.Projects.ArchiveProject(env.Ctx(), &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()}); err != nil {
		t.Fatalf("ArchiveProject: %v", err)
	}
	if _, err := env.Credentials.DeleteCredential(env.Ctx(), &crowdgatev1.DeleteCredentialRequest{CredentialId: credID}); err != nil {
		t.Fatalf("DeleteCredential after the project was archived: %v", err)
	}
}

// TestReplaceApiKeyKeepsTheCredentialsProjects replaces a credential's key
// with another key of the same Toloka account: the credential keeps its id,
// its project and pool work with the new key at once, the fingerprint and
// verify time follow, and the key never leaks. A key of another account is
// refused while projects use the credential; validation, unknown and
// foreign credentials are refused before Toloka is asked anything.
func TestReplaceApiKeyKeepsTheCredentialsProjects(t *testing.T) {
	env := start(t)
	k1, k2, k3 := env.NewAPIKey("acme"), env.NewAPIKey("acme"), env.NewAPIKey("acme")
	foreign, wrong := env.NewAPIKey("globex"), unknownKey(t)
	t.Cleanup(func() { env.AssertNotLeaked(k1, k2, k3, foreign, wrong) })
	ctx := env.Ctx()

	credID := env.MustCredential(ctx, k1)
	before, err := env.Credentials.GetCredential(ctx, &crowdgatev1.GetCredentialRequest{CredentialId: credID})
	if err != nil {
		t.Fatal(err)
	}
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(credID))
	pool := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))

	// Refused before Toloka is asked: bad requests, unknown and foreign
	// credentials.
	env.Sim.ClearRequests()
	replace := func(ctx context.Context, id, key string) (*crowdgatev1.ReplaceApiKeyResponse, error) {
		return env.Credentials.ReplaceApiKey(ctx, &crowdgatev1.ReplaceApiKeyRequest{CredentialId: id, ApiKey: key})
	}
	_, err = replace(ctx, "", k2)
	gatewaytest.WantField(t, err, "credential_id")
	for _, key := range []string{"", "   ", "ab cd"} {
		_, err = replace(ctx, credID, key)
		gatewaytest.WantField(t, err, "api_key")
	}
	_, err = replace(ctx, "cred_unknown", k2)
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = replace(gatewaytest.As("globex"), credID, k2)
	gatewaytest.WantCode(t, err, codes.NotFound)
	if n := len(env.Sim.Requests("/api/v1/")); n != 0 {
		t.Errorf("refused requests reached Toloka %d times", n)
	}

	// A key Toloka does not know, and a key of another account while a
	// project uses the credential, are refused; the old key stays.
	_, err = replace(ctx, credID, wrong)
	if st := gatewaytest.WantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "refused the API key") {
		t.Errorf("unknown key: %q does not say Toloka refused it", st.Message())
	}
	_, err = replace(ctx, credID, foreign)
	if st := gatewaytest.WantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "the new key does not reach this credential's projects") {
		t.Errorf("another account's key: %q", st.Message())
	}
	if got := env.Requests(http.MethodGet, "/api/v1/projects/"+prj.GetTolokaProjectId()); len(got) != 1 || got[0].Account != "globex" || got[0].Status != http.StatusNotFound {
		t.Errorf("the reach check = %+v, want one GET of the project with the new key, refused", got)
	}
	if still, _ := env.Credentials.GetCredential(ctx, &crowdgatev1.GetCredentialRequest{CredentialId: credID}); still.GetCredential().GetKeyFingerprint() != before.GetCredential().GetKeyFingerprint() {
		t.Error("a refused replacement changed the fingerprint")
	}

	// The replacement.
	env.Clock.Advance(time.Hour)
	resp, err := replace(ctx, credID, "  "+k2+"\n")
	if err != nil {
		t.Fatalf("ReplaceApiKey: %v", err)
	}
	c := resp.GetCredential()
	if c.GetCredentialId() != credID || c.GetDisplayName() != before.GetCredential().GetDisplayName() ||
		!c.GetCreateTime().AsTime().Equal(before.GetCredential().GetCreateTime().AsTime()) {
		t.Errorf("replaced credential %v, want the same credential", c)
	}
	if c.GetKeyFingerprint() == before.GetCredential().GetKeyFingerprint() || len(c.GetKeyFingerprint()) != 16 {
		t.Errorf("key_fingerprint %q, want the new key's", c.GetKeyFingerprint())
	}
	if !c.GetVerifyTime().AsTime().Equal(env.Now()) {
		t.Errorf("verify_time %v, want now (%v)", c.GetVerifyTime().AsTime(), env.Now())
	}
	// The fingerprint is the one the new key gets anywhere.
	if other := env.MustCredential(ctx, k2); other != "" {
		got, _ := env.Credentials.GetCredential(ctx, &crowdgatev1.GetCredentialRequest{CredentialId: other})
		if got.GetCredential().GetKeyFingerprint() != c.GetKeyFingerprint() {
			t.Errorf("k2 registered again has fingerprint %q, the replaced credential %q", got.GetCredential().GetKeyFingerprint(), c.GetKeyFingerprint())
		}
	}

	// k1 now belongs to another account, as if it were revoked: only k2
	// reaches the project, and the pool opens with it at once.
	if err := env.Sim.AddAPIKey(k1, "retired"); err != nil {
		t.Fatal(err)
	}
	env.Sim.ClearRequests()
	if _, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: pool.GetPoolId()}); err != nil {
		t.Fatalf("OpenPool after the replacement: %v", err)
	}
	calls := env.Sim.Requests("/api/v1/")
	if len(calls) == 0 {
		t.Fatal("OpenPool asked Toloka nothing")
	}
	for _, r := range calls {
		if r.Account != "acme" {
			t.Errorf("%s %s called Toloka as %q, want the new key's account", r.Method, r.Path, r.Account)
		}
	}

	// Over REST, with a third key; the answer holds no key.
	code, body := env.REST(http.MethodPost, "/v1/credentials/"+credID+":replaceApiKey", `{"api_key": "`+k3+`"}`)
	if code != http.StatusOK {
		t.Fatalf("REST replaceApiKey = %d %v", code, body)
	}
	if cred, _ := body["credential"].(map[string]any); cred["credential_id"] != credID || cred["key_fingerprint"] == c.GetKeyFingerprint() {
		t.Errorf("REST answer %v, want the credential with k3's fingerprint", body)
	}
	code, body = env.REST(http.MethodPost, "/v1/credentials/"+credID+":replaceApiKey", `{"api_key": "`+foreign+`"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "does not reach") {
		t.Errorf("REST with another account's key = %d %v, want 400 (FAILED_PRECONDITION)", code, body)
	}

	// Without projects, any key Toloka accepts will do.
	spare := env.MustCredential(ctx, k1) // k1 is "retired"'s now
	if _, err := replace(ctx, spare, foreign); err != nil {
		t.Errorf("a credential no project uses, given another account's key: %v", err)
	}

	// The replacement is audited, by credential.
	events, err := env.Access.ListAuditEvents(ctx, &crowdgatev1.ListAuditEventsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range events.GetEvents() {
		if e.GetMethod() == crowdgatev1.CredentialService_ReplaceApiKey_FullMethodName && e.GetResource() == credID && e.GetResult() == "OK" {
			audited = true
		}
	}
	if !audited {
		t.Error("no audit event for the replacement")
	}
}
