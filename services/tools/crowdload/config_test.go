package crowdload

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlagsValues(t *testing.T) {
	// want lists the fields a case checks; the rest are the defaults.
	type want struct {
		Mode                           Mode
		Tolokers, Submits, Concurrency int
		Replicas, Kills, RedisRestarts int
		FaultRate                      float64
		Duration                       time.Duration
		API                            API
		Gateways                       []string
	}
	pick := func(c Config) want {
		return want{c.Mode, c.Tolokers, c.Submits, c.Concurrency, c.Replicas, c.Kills, c.RedisRestarts, c.FaultRate, c.Duration, c.API, c.Gateways}
	}
	tests := []struct {
		name string
		args []string
		want want
	}{
		{"defaults are a healthy throughput run on one replica", nil,
			want{ModeThroughput, 100, 5, 16, 1, 0, 0, 0, 10 * time.Minute, APIREST, nil}},
		{"chaos mode defaults: 2 replicas, 30% faults, 1 kill, 1 Redis restart", []string{"--mode=chaos"},
			want{ModeChaos, 100, 5, 16, 2, 1, 1, 0.3, 10 * time.Minute, APIREST, nil}},
		{"preset ci", []string{"--preset=ci"},
			want{ModeChaos, 200, 5, 32, 2, 1, 1, 0.3, 3 * time.Minute, APIREST, nil}},
		{"preset long is the recorded target", []string{"--preset=long"},
			want{ModeChaos, 10000, 10, 128, 2, 3, 1, 0.3, 90 * time.Minute, APIREST, nil}},
		{"explicit flags win over the preset, in any order", []string{"--tolokers=7", "--preset=ci", "--kills=2", "--api=grpc"},
			want{ModeChaos, 7, 5, 32, 2, 2, 1, 0.3, 3 * time.Minute, APIGRPC, nil}},
		{"explicit zero wins over the mode default", []string{"--mode=chaos", "--fault-rate=0", "--redis-restarts=0"},
			want{ModeChaos, 100, 5, 16, 2, 1, 0, 0, 10 * time.Minute, APIREST, nil}},
		{"a preset adapts to external replicas and Redis: nothing to kill", []string{"--preset=ci", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081", "--redis-url=redis://127.0.0.1:6379/0"},
			want{ModeChaos, 200, 5, 32, 1, 0, 0, 0.3, 3 * time.Minute, APIREST, []string{"http://127.0.0.1:8080"}}},
		{"replicas follow the --gateway list", []string{"--gateway=http://127.0.0.1:1, http://localhost:2", "--toloka-url=http://[::1]:3"},
			want{ModeThroughput, 100, 5, 16, 2, 0, 0, 0, 10 * time.Minute, APIREST, []string{"http://127.0.0.1:1", "http://localhost:2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("ParseFlags(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, pick(c)); diff != "" {
				t.Errorf("ParseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"faults in throughput mode", []string{"--fault-rate=0.1"}, "chaos-mode flags"},
		{"kills in throughput mode", []string{"--kills=1"}, "chaos-mode flags"},
		{"no Tolokers", []string{"--tolokers=0"}, "--tolokers must be at least 1"},
		{"no submits", []string{"--submits=0"}, "--submits must be at least 1"},
		{"no concurrency", []string{"--concurrency=0"}, "--concurrency"},
		{"negative duration", []string{"--duration=-1s"}, "--duration must be positive"},
		{"fault rate above 1", []string{"--mode=chaos", "--fault-rate=1.5"}, "--fault-rate must be within 0..1"},
		{"bad fault mix", []string{"--fault-mix=5xx=1,boom=2"}, "kinds 5xx, timeout, lost, drop, 429"},
		{"fault mix of zeros", []string{"--fault-mix=5xx=0"}, "at least one weight"},
		{"unknown mode", []string{"--mode=soak"}, "want one of"},
		{"unknown api", []string{"--api=soap"}, "want one of"},
		{"unknown preset", []string{"--preset=huge"}, `unknown preset "huge"`},
		{"kills need replicas started here", []string{"--mode=chaos", "--kills=1", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081"}, "external replicas cannot be killed"},
		{"Redis restarts need a Redis started here", []string{"--mode=chaos", "--redis-restarts=1", "--redis-url=redis://127.0.0.1:6379/0"}, "--redis-restarts needs a Redis started by crowdload"},
		{"a gateway elsewhere", []string{"--gateway=http://10.0.0.5:8080", "--toloka-url=http://127.0.0.1:8081"}, "not a loopback address"},
		{"a Redis elsewhere", []string{"--redis-url=redis://redis.internal:6379/0"}, "not a loopback address"},
		{"an emulator elsewhere", []string{"--toloka-url=https://toloka.dev"}, "not a loopback address"},
		{"external gateways need the emulator they use", []string{"--gateway=http://127.0.0.1:8080"}, "--gateway needs --toloka-url"},
		{"grpc with external gateways needs their gRPC addresses", []string{"--api=grpc", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081"}, "one --gateway-grpc address per --gateway URL"},
		{"gRPC addresses without gateways", []string{"--gateway-grpc=127.0.0.1:9090"}, "--gateway-grpc needs --gateway"},
		{"replicas disagree with the gateway list", []string{"--replicas=3", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081"}, "--replicas=3 but 1 --gateway"},
		{"both a binary and an external emulator", []string{"--tolokasim-bin=/bin/true", "--toloka-url=http://127.0.0.1:8081"}, "exclude each other"},
		{"too short an assignment", []string{"--assignment-duration=1s"}, "at least 5s"},
		{"stray arguments", []string{"chaos"}, "unexpected arguments"},
		{"unknown flag", []string{"--tolokerz=5"}, "flag provided but not defined"},
		{"gateway env that is not KEY=VALUE", []string{"--gateway-env=verbose"}, "want KEY=VALUE"},
		{"gateway env overriding the harness", []string{"--gateway-env=REDIS_URL=redis://127.0.0.1:1"}, "cannot set REDIS_URL"},
		{"gateway env for external replicas", []string{"--gateway-env=A=1", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081"}, "not to --gateway ones"},
		{"a webhook that never answers 2xx", []string{"--webhook", "--webhook-fail-rate=1"}, "--webhook-fail-rate must be within 0..1"},
		{"a negative webhook fail rate", []string{"--webhook", "--webhook-fail-rate=-0.1"}, "--webhook-fail-rate must be within 0..1"},
		{"printing events without a receiver", []string{"--webhook-print"}, "--webhook-print needs --webhook"},
		{"no wait for webhook delivery", []string{"--webhook", "--webhook-wait=0s"}, "--webhook-wait must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// Chaos mode reconciles events through a webhook receiver that fails 30%
// of deliveries, unless told otherwise; throughput mode has no receiver
// unless asked.
func TestParseFlagsWebhook(t *testing.T) {
	type want struct {
		Webhook, Print bool
		FailRate       float64
	}
	tests := []struct {
		name string
		args []string
		want want
	}{
		{"throughput: no receiver", nil, want{false, false, 0}},
		{"throughput with --webhook: every delivery answered 2xx", []string{"--webhook", "--webhook-print"}, want{true, true, 0}},
		{"chaos: a receiver failing 30%", []string{"--mode=chaos"}, want{true, false, 0.3}},
		{"preset ci: the same", []string{"--preset=ci"}, want{true, false, 0.3}},
		{"chaos without a receiver", []string{"--mode=chaos", "--webhook=false"}, want{false, false, 0.3}},
		{"chaos with another fail rate", []string{"--mode=chaos", "--webhook-fail-rate=0"}, want{true, false, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("ParseFlags(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, want{c.Webhook, c.WebhookPrint, c.WebhookFailRate}); diff != "" {
				t.Errorf("ParseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestGatewayEnv(t *testing.T) {
	c, err := ParseFlags([]string{"--gateway-env=A=1,B_2=x=y", "--gateway-env", "C=3", "--gateway-env=L=10/s,burst=60,M=1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=1", "B_2=x=y", "C=3", "L=10/s,burst=60", "M=1"}, c.GatewayEnv); diff != "" {
		t.Errorf("GatewayEnv (-want +got):\n%s", diff)
	}
	c, err = ParseFlags([]string{"--preset=ci"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT=5s", "CROWDGATE_SUBMIT_MAX_BACKOFF=10s"}, c.GatewayEnv); diff != "" {
		t.Errorf("preset ci GatewayEnv (-want +got):\n%s", diff)
	}
	c, err = ParseFlags([]string{"--preset=ci", "--gateway=http://127.0.0.1:8080", "--toloka-url=http://127.0.0.1:8081"}, io.Discard)
	if err != nil || len(c.GatewayEnv) != 0 {
		t.Errorf("preset ci with external replicas: %v, env %q; want no env for replicas crowdload does not start", err, c.GatewayEnv)
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseFlags([]string{"--help"}, &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("ParseFlags(--help) = %v, want ErrHelp", err)
	}
	help := out.String()
	var c Config
	fs := newFlagSet(&c, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Usage) < 20 {
			t.Errorf("flag --%s has no real explanation: %q", f.Name, f.Usage)
		}
		if !strings.Contains(help, "-"+f.Name+" ") && !strings.Contains(help, "-"+f.Name+"\n") {
			t.Errorf("--help does not list --%s", f.Name)
		}
	})
	for _, want := range []string{"Presets", "--preset=ci", "Exit status", "paid twice"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestParseFaultMix(t *testing.T) {
	got, err := ParseFaultMix(" 5xx=1.5, 429=0.5,lost=2 ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(FaultMix{ServerError: 1.5, Throttle: 0.5, LostResponse: 2}, got); diff != "" {
		t.Errorf("ParseFaultMix (-want +got):\n%s", diff)
	}
	back, err := ParseFaultMix(got.String())
	if err != nil || back != got {
		t.Errorf("ParseFaultMix(%q) = %+v, %v; want the mix back", got.String(), back, err)
	}
	for _, bad := range []string{"5xx", "5xx=-1", "5xx=1,5xx=2", "timeout=x", "=1", "5xx=NaN"} {
		if _, err := ParseFaultMix(bad); err == nil {
			t.Errorf("ParseFaultMix(%q) accepted", bad)
		}
	}
}

func TestFaultsForSplitsTheRate(t *testing.T) {
	f := FaultsFor(0.3, FaultMix{ServerError: 4, Timeout: 2, LostResponse: 2, Throttle: 2}, 1500*time.Millisecond, 9)
	near := func(got, want float64) bool { return got-want < 1e-12 && want-got < 1e-12 }
	if !near(f.Rate(), 0.3) {
		t.Errorf("total rate %v, want 0.3", f.Rate())
	}
	for _, code := range []int{500, 502, 503, 504} {
		if !near(f.ErrorRates[code], 0.03) {
			t.Errorf("error rate of %d = %v, want 0.03 (a quarter of the 5xx share 0.12)", code, f.ErrorRates[code])
		}
	}
	if !near(f.TimeoutRate, 0.06) || !near(f.LostResponseRate, 0.06) || !near(f.ThrottleRate, 0.06) || f.DropRate != 0 {
		t.Errorf("timeout %v, lost %v, 429 %v, drop %v; want 0.06, 0.06, 0.06, 0", f.TimeoutRate, f.LostResponseRate, f.ThrottleRate, f.DropRate)
	}
	if f.HangMS != 1500 || f.Seed != 9 || f.PathPrefix != "/api/v1/" {
		t.Errorf("hang %d ms, seed %d, prefix %q; want 1500, 9, /api/v1/", f.HangMS, f.Seed, f.PathPrefix)
	}
	if z := FaultsFor(0, DefaultFaultMix, time.Second, 1); z.Rate() != 0 {
		t.Errorf("rate 0 gives faults %+v", z)
	}
}
