package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

func newKey() string { return base64.StdEncoding.EncodeToString(secretbox.NewRandomKey()) }

// tokenFor lands a Toloker on an assignment of pool through env's API and
// exchanges the one-time code for a token, returning the token's kid.
func tokenFor(t *testing.T, env *gatewaytest.Env, assignmentID string) string {
	t.Helper()
	sess, err := env.Sessions.StartSession(env.Ctx(), &crowdgatev1.StartSessionRequest{AssignmentId: assignmentID})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	ex, err := env.Sessions.ExchangeCode(env.Ctx(), &crowdgatev1.ExchangeCodeRequest{Code: sess.GetCode()})
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(ex.GetToken(), &token.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// resealLog runs gateway.Reseal with ring and returns its summary line.
func resealLog(t *testing.T, cfg gateway.Config, ring string) map[string]any {
	t.Helper()
	cfg.Secrets.Key = ring
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gateway.Reseal(ctx, cfg, slog.New(slog.NewJSONHandler(&out, nil))); err != nil {
		t.Fatalf("Reseal: %v\n%s", err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["credentials_resealed"] != nil {
			return l
		}
	}
	t.Fatalf("no summary line in the reseal's log:\n%s", out.String())
	return nil
}

// TestResealLetsTheOldEncryptionKeyGo stores a credential and a token
// signing key under K1, re-seals with the ring [K2, K1], and then serves
// with K2 alone: the credential's account still works against Toloka (a
// session starts, the pool closes) and tokens are signed by the same key
// as before, so nobody is logged out and no key was lost.
func TestResealLetsTheOldEncryptionKeyGo(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k1, k2 := newKey(), newKey()
	old := gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Config: func(c *gateway.Config) { c.Secrets.Key = k1 }})
	apiKey := old.NewAPIKey("acme")
	pool := old.OpenPool(old.Ctx(), apiKey)
	kid := tokenFor(t, old, old.StartAssignment(pool, "toloker-1"))
	credList, err := old.Credentials.ListCredentials(old.Ctx(), &crowdgatev1.ListCredentialsRequest{})
	if err != nil || len(credList.GetCredentials()) != 1 {
		t.Fatalf("ListCredentials = %v, %v", credList, err)
	}
	cred := credList.GetCredentials()[0]

	first := resealLog(t, old.Config, k2+","+k1)
	for field, want := range map[string]float64{"credentials_resealed": 1, "credentials_current": 0, "signing_keys_resealed": 1, "signing_keys_current": 0} {
		if first[field] != want {
			t.Errorf("first reseal: %s = %v, want %v (%v)", field, first[field], want, first)
		}
	}
	if again := resealLog(t, old.Config, k2+","+k1); again["credentials_resealed"] != 0.0 || again["signing_keys_resealed"] != 0.0 ||
		again["credentials_current"] != 1.0 || again["signing_keys_current"] != 1.0 {
		t.Errorf("second reseal %v, want nothing left to re-seal", again)
	}

	// A replica with K2 alone, against the same Redis and the same Toloka.
	simURL := old.SimURL + "/api/v1"
	fresh := gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Redis: old.Redis, Config: func(c *gateway.Config) {
		c.Secrets.Key = k2
		c.Toloka.ProductionURL, c.Toloka.SandboxURL = simURL, simURL
	}})
	t.Cleanup(func() { fresh.AssertNotLeaked(apiKey) })
	a2, err := old.Sim.CreateAssignment(pool.GetTolokaPoolId(), "toloker-2")
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenFor(t, fresh, a2.ID); got != kid {
		t.Errorf("with K2 alone tokens are signed by %s, want the re-sealed key %s", got, kid)
	}
	if _, err := fresh.Pools.ClosePool(fresh.Ctx(), &crowdgatev1.ClosePoolRequest{PoolId: pool.GetPoolId()}); err != nil {
		t.Errorf("ClosePool with K2 alone: %v", err)
	}
	// The fingerprint was recomputed under K2: it is what K2 gives the key.
	got, err := fresh.Credentials.GetCredential(fresh.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: cred.GetCredentialId()})
	if err != nil {
		t.Fatal(err)
	}
	again := fresh.MustCredential(fresh.Ctx(), apiKey)
	if other, _ := fresh.Credentials.GetCredential(fresh.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: again}); other.GetCredential().GetKeyFingerprint() != got.GetCredential().GetKeyFingerprint() ||
		got.GetCredential().GetKeyFingerprint() == cred.GetKeyFingerprint() {
		t.Errorf("fingerprint after the reseal %q (before %q), K2's for the same key %q", got.GetCredential().GetKeyFingerprint(), cred.GetKeyFingerprint(), other.GetCredential().GetKeyFingerprint())
	}
}

// Reseal refuses to run without a key ring or against an embedded Redis,
// and fails, naming the setting, when a stored credential opens with no
// key of the ring.
func TestResealRefuses(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) { c.Secrets.Key = newKey() }})
	env.MustCredential(env.Ctx(), env.NewAPIKey("acme"))
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	for name, tc := range map[string]struct {
		mutate func(*gateway.Config)
		want   []string
	}{
		"no key":          {func(c *gateway.Config) { c.Secrets.Key = "" }, []string{"CROWDGATE_ENCRYPTION_KEY"}},
		"a malformed key": {func(c *gateway.Config) { c.Secrets.Key = "not a key!" }, []string{"CROWDGATE_ENCRYPTION_KEY", "not base64"}},
		"embedded Redis":  {func(c *gateway.Config) { c.Redis.URL = "" }, []string{"REDIS_URL"}},
		"the wrong ring":  {func(c *gateway.Config) { c.Secrets.Key = newKey() }, []string{"CROWDGATE_ENCRYPTION_KEY", "1 stored Toloka API key"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := env.Config
			tc.mutate(&cfg)
			err := gateway.Reseal(ctx, cfg, log)
			if err == nil {
				t.Fatal("Reseal succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
