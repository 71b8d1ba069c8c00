package gateway

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/notify/webhook"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

func TestLoad(t *testing.T) {
	defaults := Config{
		HTTPAddr: ":8080", GRPCAddr: ":9090", PublicURL: "http://localhost:8080",
		Redis:    storage.Settings{Mode: "standalone", Prefix: "crowdgate:"},
		Toloka:   toloka.DefaultSettings(),
		LogLevel: "info", LogFormat: "json", ShutdownTimeout: 30 * time.Second,
		Submission: submission.Settings{
			SyncTimeout: 2 * time.Second, AttemptTimeout: 10 * time.Second,
			VisibilityTimeout: 30 * time.Second, PollInterval: 200 * time.Millisecond,
			BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute, Concurrency: 32, ReplicaTimeout: 100 * time.Millisecond,
			Retention: 720 * time.Hour, Shards: 16,
		},
		Access: access.Settings{AuditRetention: 90 * 24 * time.Hour},
		// The packages' defaults, in the configuration's words.
		Landing:   landing.DefaultSettings(),
		Session:   session.DefaultSettings(),
		Tolokers:  registry.DefaultSettings(),
		Events:    events.DefaultSettings(),
		PoolWatch: pool.DefaultWatchSettings(),
		Webhooks:  webhook.DefaultSettings(),
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*Config)
		wantErr string
	}{
		{name: "defaults", want: func(*Config) {}},
		{
			name: "the Toloker registry's retention",
			env:  map[string]string{"CROWDGATE_TOLOKER_RETENTION": "720h"},
			want: func(c *Config) { c.Tolokers.Retention = 720 * time.Hour },
		},
		{
			name: "environment",
			env: map[string]string{
				"REDIS_URL": "redis://127.0.0.1:6379/2", "TOLOKA_SANDBOX_URL": "http://127.0.0.1:8081/api/v1",
				"CROWDGATE_PUBLIC_URL": "https://gate.example.com", "CROWDGATE_SHUTDOWN_DRAIN": "5s",
			},
			want: func(c *Config) {
				c.Redis.URL = "redis://127.0.0.1:6379/2"
				c.Toloka.SandboxURL = "http://127.0.0.1:8081/api/v1"
				c.PublicURL = "https://gate.example.com"
				c.ShutdownDrain = 5 * time.Second
			},
		},
		{
			name: "flags win over environment",
			args: []string{"-http-addr=127.0.0.1:1", "-log-level=debug"},
			env:  map[string]string{"CROWDGATE_HTTP_ADDR": ":7000"},
			want: func(c *Config) { c.HTTPAddr = "127.0.0.1:1"; c.LogLevel = "debug" },
		},
		{name: "bad duration in env", env: map[string]string{"CROWDGATE_SHUTDOWN_TIMEOUT": "soon"}, wantErr: "CROWDGATE_SHUTDOWN_TIMEOUT"},
		{name: "negative duration flag", args: []string{"-shutdown-drain=-1s"}, wantErr: "non-negative"},
		{name: "relative public URL", env: map[string]string{"CROWDGATE_PUBLIC_URL": "/gate"}, wantErr: "CROWDGATE_PUBLIC_URL"},
		// The landing URL given to Toloka is <public URL>/start: a query or
		// fragment made it https://gate.example.com/?x=1/start.
		{name: "public URL with a query", env: map[string]string{"CROWDGATE_PUBLIC_URL": "https://gate.example.com/?x=1"}, wantErr: "CROWDGATE_PUBLIC_URL"},
		{name: "public URL with a fragment", env: map[string]string{"CROWDGATE_PUBLIC_URL": "https://gate.example.com/#top"}, wantErr: "CROWDGATE_PUBLIC_URL"},
		{name: "public URL with user info", env: map[string]string{"CROWDGATE_PUBLIC_URL": "https://me:pw@gate.example.com"}, wantErr: "CROWDGATE_PUBLIC_URL"},
		{name: "bad toloka URL", args: []string{"-toloka-production-url=ftp://x"}, wantErr: "TOLOKA_PRODUCTION_URL"},
		{name: "bad redis mode", env: map[string]string{"REDIS_MODE": "replicated"}, wantErr: "REDIS_MODE"},
		{name: "bad log level", args: []string{"-log-level=loud"}, wantErr: "CROWDGATE_LOG_LEVEL"},
		{name: "bad log format", args: []string{"-log-format=xml"}, wantErr: "CROWDGATE_LOG_FORMAT"},
		{name: "bad submit concurrency", env: map[string]string{"CROWDGATE_SUBMIT_CONCURRENCY": "-3"}, wantErr: "CROWDGATE_SUBMIT_CONCURRENCY"},
		{
			name: "landing limits",
			env:  map[string]string{"CROWDGATE_LANDING_LIMIT_IP": "200/s,burst=400"},
			args: []string{"-landing-limit-assignment=5/m"},
			want: func(c *Config) {
				c.Landing.PerIP = ratelimit.Limit{Rate: 200, Per: time.Second, Burst: 400}
				c.Landing.PerAssignment = ratelimit.Limit{Rate: 5, Per: time.Minute, Burst: 5}
			},
		},
		{name: "bad landing limit", env: map[string]string{"CROWDGATE_LANDING_LIMIT_ASSIGNMENT": "30 a minute"}, wantErr: "CROWDGATE_LANDING_LIMIT_ASSIGNMENT"},
		{
			name: "session lifetimes and Toloka's limits",
			env:  map[string]string{"CROWDGATE_SESSION_EXPIRY_MARGIN": "5m", "CROWDGATE_TOLOKA_REQUEST_LIMIT": "100/s,burst=10", "CROWDGATE_TOLOKA_CREATE_POOL_LIMIT": "5/m"},
			want: func(c *Config) {
				c.Session.ExpiryMargin = 5 * time.Minute
				c.Toloka.Limits.Requests = ratelimit.Limit{Name: "toloka-requests", Rate: 100, Per: time.Second, Burst: 10}
				c.Toloka.Limits.CreatePool = []ratelimit.Limit{{Name: "toloka-create-pool-minute", Rate: 5, Per: time.Minute}}
			},
		},
		{name: "bad create limit", env: map[string]string{"CROWDGATE_TOLOKA_CREATE_PROJECT_LIMIT": "20/m,burst=5"}, wantErr: "CROWDGATE_TOLOKA_CREATE_PROJECT_LIMIT"},
		{
			name: "submit tuning",
			env:  map[string]string{"CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT": "5s", "CROWDGATE_SUBMIT_MIN_REPLICAS": "1"},
			want: func(c *Config) { c.Submission.VisibilityTimeout = 5 * time.Second; c.Submission.MinReplicas = 1 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load error = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLandingURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://gate.example.com":       "https://gate.example.com/start",
		"https://gate.example.com/":      "https://gate.example.com/start",
		"https://example.com/crowdgate/": "https://example.com/crowdgate/start",
	} {
		c := Config{PublicURL: in}
		if got := c.LandingURL(); got != want {
			t.Errorf("LandingURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// An operator who sets a number to 0 gets what 0 means, said in the
// setting's usage ("(0: ...)"), or a refusal naming the variable: never
// the default put back in silence.
func TestAZeroSettingIsRefusedUnlessItsUsageSaysWhatZeroMeans(t *testing.T) {
	for _, s := range Settings() {
		if s.Value.Set("-1") == nil || s.Value.Set("true") == nil {
			continue // a text or a switch, not a number
		}
		_, err := Load(nil, func(k string) string {
			if k == s.Env {
				return "0"
			}
			return ""
		}, io.Discard)
		switch {
		case err != nil && !strings.Contains(err.Error(), s.Env):
			t.Errorf("%s=0: refused without naming the variable: %v", s.Env, err)
		case err == nil && !strings.Contains(s.Usage, "(0: "):
			t.Errorf("%s=0 is accepted, but its usage does not say what 0 means: %q", s.Env, s.Usage)
		}
	}
}
