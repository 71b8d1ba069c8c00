package token_test

import (
	"context"
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crowdgate/crowdgate/services/platform/token"
)

// A tenant chooses its platform's URL, and so the token's platform
// audience: tenant B can point its project at A's platform. A verifier
// pinned to tenant A (and, if it likes, to one project) refuses B's tokens
// even then.
func TestVerifierPinsTheTenant(t *testing.T) {
	f := newFixture(t)
	s := f.signer()
	sign := func(tenantID, projectID string) string {
		t.Helper()
		c := claims("toloker-1")
		c.TenantID, c.ProjectID = tenantID, projectID
		raw, _, err := s.Sign(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	v := f.verifierFor(s)
	v.Tenant = "tenant-a"
	if _, err := v.Verify(context.Background(), sign("tenant-a", "prj_a")); err != nil {
		t.Fatalf("tenant A's token: %v", err)
	}
	for name, raw := range map[string]string{
		"another tenant's token for the same platform": sign("tenant-b", "prj_b"),
	} {
		if _, err := v.Verify(context.Background(), raw); !errors.Is(err, token.ErrInvalidToken) {
			t.Errorf("%s: %v, want it refused", name, err)
		}
	}
	// Sign pins every token to its own tenant: another tenant's audience
	// in the claims is dropped, so a verifier for that tenant refuses it.
	c := claims("toloker-1")
	c.TenantID = "tenant-b"
	c.Audience = jwt.ClaimStrings{token.TenantAudience("tenant-a"), audience}
	raw, _, err := s.Sign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
		t.Errorf("tenant B's token claiming A's audience: %v, want an audience error", err)
	}

	pinned := *v
	pinned.Project = "prj_a2"
	if _, err := pinned.Verify(context.Background(), sign("tenant-a", "prj_a")); !errors.Is(err, token.ErrInvalidToken) {
		t.Errorf("a verifier pinned to another project accepted the token: %v", err)
	}
	other := *v
	other.Audience = "https://another-platform.example"
	if _, err := other.Verify(context.Background(), sign("tenant-a", "prj_a")); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
		t.Errorf("a token for another platform audience: %v", err)
	}
	unpinned := *v
	unpinned.Tenant = ""
	if _, err := unpinned.Verify(context.Background(), sign("tenant-a", "prj_a")); err == nil {
		t.Error("a verifier without a tenant accepted a token")
	}
}
