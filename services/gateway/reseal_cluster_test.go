package gateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestResealOnRedisCluster re-seals credentials spread over the masters of
// a Redis Cluster: every master's keys are found (SCAN sees one node's
// keys), and every credential opens with the newest key alone afterwards.
func TestResealOnRedisCluster(t *testing.T) {
	clusterURL, _ := startRedisCluster(t)
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	_, simSrv := tolokasim.NewTestServer(tolokasim.Config{APIKeys: map[string]string{"acme.k.k3y": "acme"}, Logger: log})
	t.Cleanup(simSrv.Close)
	client, err := toloka.New(toloka.Config{SandboxURL: simSrv.URL + "/api/v1", ProductionURL: simSrv.URL + "/api/v1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]string{"-redis-mode=cluster", "-redis-url=" + clusterURL}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := storage.Open(ctx, cfg.Redis, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	k1, k2 := secretbox.NewRandomKey(), secretbox.NewRandomKey()
	box := func(keys ...[]byte) *secretbox.Box {
		b, err := secretbox.NewRing(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const n = 12 // enough that every master holds some
	underK1 := catalog.New(conn.Client, cfg.Redis.Prefix, box(k1), client, nil, log)
	for i := range n {
		c := &crowdgatev1.Credential{CredentialId: fmt.Sprintf("cred_%d", i), TenantId: "default", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX}
		if err := underK1.CreateCredential(ctx, c, "acme.k.k3y"); err != nil {
			t.Fatal(err)
		}
	}
	var masters atomic.Int32 // ForEachMaster calls in parallel
	_ = conn.Client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		if keys, _ := node.Keys(ctx, cfg.Redis.Prefix+"credential-secret:*").Result(); len(keys) > 0 {
			masters.Add(1)
		}
		return nil
	})
	if masters := masters.Load(); masters < 2 {
		t.Fatalf("the credentials landed on %d master(s): the test proves nothing", masters)
	}

	cfg.Secrets.Key = base64.StdEncoding.EncodeToString(k2) + "," + base64.StdEncoding.EncodeToString(k1)
	if err := Reseal(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	onlyK2 := catalog.New(conn.Client, cfg.Redis.Prefix, box(k2), client, nil, log)
	for i := range n {
		if _, err := onlyK2.Account(ctx, "default", fmt.Sprintf("cred_%d", i)); err != nil {
			t.Errorf("cred_%d does not open with K2 alone after the reseal: %v", i, err)
		}
	}
}
