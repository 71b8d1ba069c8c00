package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
	"github.com/google/go-cmp/cmp"
)

// settings is the comparable part of a Config.
type settings struct {
	Addr            string
	APIKeys         map[string]string
	OperationDelay  time.Duration
	RateLimits      tolokasim.RateLimits
	Faults          tolokasim.Faults
	RequestLogSize  int
	HonorAutoAccept bool
}

func settingsOf(c tolokasim.Config) settings {
	return settings{c.Addr, c.APIKeys, c.OperationDelay, c.RateLimits, c.Faults, c.RequestLogSize, c.HonorAutoAccept}
}

func defaults() settings {
	return settings{
		Addr:           tolokasim.DefaultAddr,
		APIKeys:        map[string]string{},
		OperationDelay: tolokasim.DefaultOperationDelay,
		RateLimits: tolokasim.RateLimits{
			RequestsPerSecond: 300, CreateProjectPerMinute: 20, CreateProjectPerDay: 100,
			CreatePoolPerMinute: 20, CreatePoolPerDay: 100, UserSkillsPerDay: 100000,
		},
		Faults:         tolokasim.Faults{RetryAfterSeconds: 1, ThrottleInterval: "MIN", Seed: 42},
		RequestLogSize: tolokasim.DefaultRequestLogSize,
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want func(*settings)
	}{
		{"defaults", nil, nil, func(*settings) {}},
		{"flags", []string{
			"--addr=127.0.0.1:9999", "--api-keys=k1=acme, k2=rival", "--operation-delay=0", "--honor-auto-accept",
			"--request-log-size=5", "--rate-limit-rps=-1", "--rate-limit-pool-per-day=7",
		}, nil, func(s *settings) {
			s.Addr = "127.0.0.1:9999"
			s.APIKeys = map[string]string{"k1": "acme", "k2": "rival"}
			s.OperationDelay = 0
			s.HonorAutoAccept = true
			s.RequestLogSize = 5
			s.RateLimits.RequestsPerSecond = -1
			s.RateLimits.CreatePoolPerDay = 7
		}},
		{"environment", nil, map[string]string{
			"TOLOKASIM_ADDR": "0.0.0.0:8081", "TOLOKASIM_API_KEYS": "k=acme", "TOLOKASIM_OPERATION_DELAY": "2s",
			"TOLOKASIM_FAULT_FAIL_NEXT": "3",
		}, func(s *settings) {
			s.Addr = "0.0.0.0:8081"
			s.APIKeys = map[string]string{"k": "acme"}
			s.OperationDelay = 2 * time.Second
			s.Faults.FailNext = 3
		}},
		{"flag beats environment", []string{"--addr=127.0.0.1:1"}, map[string]string{"TOLOKASIM_ADDR": "127.0.0.1:2"},
			func(s *settings) { s.Addr = "127.0.0.1:1" }},
		{"faults", []string{
			"--fault-path-prefix=/api/v1/tasks/external/submit", "--fault-error-rate=500:0.1,503:0.05",
			"--fault-latency=250ms", "--fault-lost-response-rate=0.2", "--fault-drop-rate=0.1", "--fault-timeout-rate=0.05",
			"--fault-hang=2s", "--fault-throttle-rate=0.1", "--fault-throttle-next=2", "--fault-retry-after=3",
			"--fault-throttle-interval=DAY", "--fault-seed=7",
		}, nil, func(s *settings) {
			s.Faults = tolokasim.Faults{
				PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{500: 0.1, 503: 0.05},
				LatencyMS: 250, LostResponseRate: 0.2, DropRate: 0.1, TimeoutRate: 0.05, HangMS: 2000,
				ThrottleRate: 0.1, ThrottleNext: 2, RetryAfterSeconds: 3, ThrottleInterval: "DAY", Seed: 7,
			}
		}},
		{"no rate limits", []string{"--no-rate-limits"}, nil, func(s *settings) { s.RateLimits = tolokasim.UnlimitedRateLimits() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(&want)
			if diff := cmp.Diff(want, settingsOf(cfg)); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"api key without account", []string{"--api-keys=secret-key"}, nil},
		{"bad error rate", []string{"--fault-error-rate=500"}, nil},
		{"rates above 1", []string{"--fault-drop-rate=0.7", "--fault-lost-response-rate=0.7"}, nil},
		{"bad duration in env", nil, map[string]string{"TOLOKASIM_OPERATION_DELAY": "soon"}},
		{"unknown flag", []string{"--nope"}, nil},
		{"stray argument", []string{"serve"}, nil},
		{"bad log level", []string{"--log-level=loud"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "secret-key") {
				t.Errorf("error %q echoes an API key", err)
			}
		})
	}
}

func TestRunLogsAddressAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr=127.0.0.1:0", "--api-keys=k=acme"}, func(string) string { return "" }, pw)
		pw.Close()
	}()
	addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "k=acme") {
				t.Errorf("log line %q holds the API key", sc.Text())
			}
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no addr= log line")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/projects", nil)
	req.Header.Set("Authorization", "ApiKey k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	env := func(k string) string {
		if k == "TOLOKASIM_ADDR" {
			return addr
		}
		return ""
	}
	if err := run(context.Background(), []string{"-healthcheck"}, env, io.Discard); err != nil {
		t.Errorf("-healthcheck on a running emulator: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if err := run(context.Background(), []string{"-healthcheck"}, env, io.Discard); err == nil {
		t.Error("-healthcheck succeeded after the emulator stopped")
	}
}
