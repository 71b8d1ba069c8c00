package credential

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestSealedKeyIsBoundToItsCredential: a sealed key copied onto another
// credential's record does not open, and an account opens only with the
// right key.
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
	s := NewService(Config{Redis: r.Client, Prefix: r.Prefix, Box: box, Toloka: client, Log: slog.New(slog.DiscardHandler), CacheTTL: -1})
	ctx := context.Background()
	create := func(key string) string {
		resp, err := s.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{DisplayName: key, Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetCredential().GetCredentialId()
	}
	one, two := create("k1.a.b"), create("k2.a.b")
	acct, err := s.Account(ctx, tenant.Default, one)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
		t.Fatalf("the opened account does not authenticate: %v", err)
	}

	sealed, err := r.Client.Get(ctx, s.secretKey(tenant.Default, one)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, s.secretKey(tenant.Default, two), sealed, 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Account(ctx, tenant.Default, two)
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) {
		t.Errorf("a sealed key moved to another credential: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := s.Account(ctx, "other-tenant", one); err == nil {
		t.Error("another tenant opened the credential")
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
	if got := Fingerprint("abc"); got != "ba7816bf8f01cfea" {
		t.Errorf("Fingerprint(abc) = %q", got)
	}
}
