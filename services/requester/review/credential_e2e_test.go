package review_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

func TestCredentialIsCheckedStoredEncryptedAndNeverReturned(t *testing.T) {
	h := newHarness(t)

	// A key Toloka does not know is refused at registration.
	_, err := h.creds.CreateCredential(bg, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "typo", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: h.wrongKey,
	})
	st := wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "refused the API key") {
		t.Errorf("message %q does not say Toloka refused the key", st.Message())
	}
	list, err := h.creds.ListCredentials(bg, &crowdgatev1.ListCredentialsRequest{})
	if err != nil || len(list.GetCredentials()) != 0 {
		t.Fatalf("after a refused key: %v credentials, err %v; want none", len(list.GetCredentials()), err)
	}

	// The check was one authenticated list call with limit 1.
	calls := h.requests(http.MethodGet, "/api/v1/projects")
	if len(calls) != 1 || calls[0].Query != "limit=1" || calls[0].Status != http.StatusUnauthorized {
		t.Fatalf("verification calls = %+v, want one GET /projects?limit=1 answered 401", calls)
	}

	resp, err := h.creds.CreateCredential(bg, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "  Acme sandbox ", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: h.key,
	})
	if err != nil {
		t.Fatalf("CreateCredential with a good key: %v", err)
	}
	c := resp.GetCredential()
	sum := sha256.Sum256([]byte(h.key))
	if c.GetKeyFingerprint() != hex.EncodeToString(sum[:])[:16] {
		t.Errorf("key_fingerprint = %q, want the first 16 hex digits of the key's SHA-256", c.GetKeyFingerprint())
	}
	if c.GetDisplayName() != "Acme sandbox" || c.GetEnvironment() != crowdgatev1.Environment_ENVIRONMENT_SANDBOX ||
		c.GetTenantId() != "default" || c.GetCreateTime() == nil || c.GetVerifyTime() == nil {
		t.Errorf("credential = %v", c)
	}
	got, err := h.creds.GetCredential(bg, &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	if err != nil || got.GetCredential().GetKeyFingerprint() != c.GetKeyFingerprint() {
		t.Fatalf("GetCredential = %v, %v", got, err)
	}
	if !strings.Contains(h.logs.String(), c.GetKeyFingerprint()) {
		t.Error("the registration log line lacks the fingerprint: the log capture the no-leak check relies on sees nothing")
	}

	// Another tenant does not see it.
	_, err = h.creds.GetCredential(as("globex"), &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	wantCode(t, err, codes.NotFound)

	// Over REST, the key is neither echoed nor listed.
	code, body := h.restCall(http.MethodPost, "/v1/credentials",
		`{"display_name": "Acme 2", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+h.key+`"}`)
	if code != http.StatusOK {
		t.Fatalf("REST create = %d %v", code, body)
	}
	code, body = h.restCall(http.MethodGet, "/v1/credentials", "")
	if code != http.StatusOK || len(body["credentials"].([]any)) != 2 {
		t.Fatalf("REST list = %d %v, want 2 credentials", code, body)
	}
	code, body = h.restCall(http.MethodPost, "/v1/credentials",
		`{"display_name": "typo", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+h.wrongKey+`"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "refused") {
		t.Errorf("REST wrong key = %d %v, want 400 (FAILED_PRECONDITION) saying Toloka refused it", code, body)
	}

	// Delete, then it is gone.
	if _, err := h.creds.DeleteCredential(bg, &crowdgatev1.DeleteCredentialRequest{CredentialId: c.GetCredentialId()}); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	_, err = h.creds.GetCredential(bg, &crowdgatev1.GetCredentialRequest{CredentialId: c.GetCredentialId()})
	wantCode(t, err, codes.NotFound)
	_, err = h.creds.DeleteCredential(bg, &crowdgatev1.DeleteCredentialRequest{CredentialId: c.GetCredentialId()})
	wantCode(t, err, codes.NotFound)
}

func TestCreateCredentialValidation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.CreateCredentialRequest
		field string
	}{
		{"no display name", &crowdgatev1.CreateCredentialRequest{Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: h.key}, "display_name"},
		{"long display name", &crowdgatev1.CreateCredentialRequest{DisplayName: strings.Repeat("n", 201), Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: h.key}, "display_name"},
		{"no environment", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", ApiKey: h.key}, "environment"},
		{"unknown environment", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: 7, ApiKey: h.key}, "environment"},
		{"no key", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION}, "api_key"},
		{"blank key", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION, ApiKey: "   "}, "api_key"},
		{"key with a space inside", &crowdgatev1.CreateCredentialRequest{DisplayName: "x", Environment: crowdgatev1.Environment_ENVIRONMENT_PRODUCTION, ApiKey: "ab cd"}, "api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.creds.CreateCredential(bg, tc.req)
			wantField(t, err, tc.field)
		})
	}
	if n := len(h.sim.Requests("/api/v1/")); n != 0 {
		t.Errorf("invalid requests reached Toloka %d times", n)
	}
}

func TestDeleteCredentialRefusedWhileAProjectUsesIt(t *testing.T) {
	h := newHarness(t)
	credID := h.mustCredential(bg, h.key)
	prj := h.mustProject(bg, minimalProject(credID))

	_, err := h.creds.DeleteCredential(bg, &crowdgatev1.DeleteCredentialRequest{CredentialId: credID})
	st := wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), prj.GetProjectId()) {
		t.Errorf("refusal %q does not name project %s", st.Message(), prj.GetProjectId())
	}
	if _, err := h.creds.GetCredential(bg, &crowdgatev1.GetCredentialRequest{CredentialId: credID}); err != nil {
		t.Fatalf("the refused delete removed the credential: %v", err)
	}

	if _, err := h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()}); err != nil {
		t.Fatalf("ArchiveProject: %v", err)
	}
	if _, err := h.creds.DeleteCredential(bg, &crowdgatev1.DeleteCredentialRequest{CredentialId: credID}); err != nil {
		t.Fatalf("DeleteCredential after the project was archived: %v", err)
	}
}
