package credential_test

import (
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
	if c.GetKeyFingerprint() != hex.EncodeToString(sum[:])[:16] {
		t.Errorf("key_fingerprint = %q, want the first 16 hex digits of the key's SHA-256", c.GetKeyFingerprint())
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
