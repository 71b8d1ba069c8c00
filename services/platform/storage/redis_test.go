package storage

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()

	t.Run("embedded when no URL, with a loud warning", func(t *testing.T) {
		var logs bytes.Buffer
		c, err := Open(ctx, Settings{}, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Embedded || c.Client.Set(ctx, "k", "v", 0).Err() != nil {
			t.Fatalf("embedded=%v, want a working embedded Redis", c.Embedded)
		}
		if !strings.Contains(logs.String(), "WILL NOT SURVIVE A RESTART") {
			t.Errorf("no warning in logs: %s", logs.String())
		}
	})

	t.Run("standalone URL", func(t *testing.T) {
		r := redistest.New(t)
		c, err := Open(ctx, Settings{URL: r.URL}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Embedded {
			t.Error("Embedded = true for a configured URL")
		}
		if _, ok := c.Client.(*redis.Client); !ok {
			t.Errorf("client is %T, want *redis.Client", c.Client)
		}
	})

	for _, tc := range []struct {
		name    string
		cfg     Settings
		wantErr string
	}{
		{"unreachable", Settings{URL: "redis://127.0.0.1:1"}, "did not answer PING"},
		{"bad URL", Settings{URL: "http://x"}, "REDIS_URL"},
		{"sentinel without master", Settings{URL: "redis://127.0.0.1:26379", Mode: ModeSentinel}, "master_name"},
		{"unknown mode", Settings{URL: "redis://127.0.0.1:6379", Mode: "ring"}, "REDIS_MODE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewClientModes(t *testing.T) {
	c, err := newClient(Settings{URL: "redis://127.0.0.1:7000?addr=127.0.0.1:7001", Mode: ModeCluster})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Errorf("cluster mode gave %T", c)
	}
	s, err := newClient(Settings{URL: "redis://127.0.0.1:26379/0?master_name=m", Mode: ModeSentinel})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*redis.Client); !ok { // a failover client is a *redis.Client
		t.Errorf("sentinel mode gave %T", s)
	}
}
