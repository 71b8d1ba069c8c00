package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

func TestExitStatusOfFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{"help", []string{"--help"}, 0, "Exit status"},
		{"bad flag value", []string{"--tolokers=0"}, exitUsage, "--tolokers must be at least 1"},
		{"unknown flag", []string{"--tolokerz=3"}, exitUsage, "flag provided but not defined"},
		{"faults in throughput mode", []string{"--mode=throughput", "--fault-rate=0.3"}, exitUsage, "chaos-mode flags"},
		{"landing help", []string{"landing", "--help"}, 0, "ceiling of warm landings"},
		{"landing bad flag", []string{"landing", "--connections=0"}, exitUsage, "--connections must be within"},
		{"landing without wrk", []string{"landing", "--wrk=/nonexistent/wrk"}, exitCannot, "apt-get install wrk"},
		{"webhook receiver that fails everything", []string{"--webhook", "--webhook-fail-rate=1"}, exitUsage, "--webhook-fail-rate must be within 0..1"},
		{"webhooks help", []string{"webhooks", "--help"}, 0, "webhook fan-out into one local endpoint"},
		{"webhooks bad flag", []string{"webhooks", "--tolokers=0"}, exitUsage, "--tolokers must be within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(context.Background(), tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// A gateway that answers UNIMPLEMENTED for everything (as services did
// while being written): crowdload names what is missing and exits 3,
// without sending any load.
func TestExitStatusWhenTheGatewayIsUnimplemented(t *testing.T) {
	var requests []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.Method+" "+r.URL.Path)
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotImplemented)
		_, _ = io.WriteString(w, `{"code":12,"message":"method not implemented","details":[]}`)
	}))
	defer gw.Close()
	_, emu := tolokasim.NewTestServer(tolokasim.Config{})
	defer emu.Close()
	rd := redistest.New(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	got := run(ctx, []string{
		"--gateway=" + gw.URL, "--toloka-url=" + emu.URL, "--redis-url=" + rd.URL,
		"--tolokers=3", "--submits=2", "--progress=0", "--work-dir=" + t.TempDir(),
	}, &stdout, &stderr)
	if got != exitCannot {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", got, exitCannot, stderr.String())
	}
	for _, want := range []string{"UNIMPLEMENTED", "SubmissionService.Submit", "SessionService.ExchangeCode", "the landing (GET /start)"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	submits := 0
	for _, r := range requests {
		if r == "POST /v1/submissions" {
			submits++
		}
	}
	if submits != 1 {
		t.Errorf("%d submits reached the gateway, want only the one empty probe: %q", submits, requests)
	}
	if stdout.Len() != 0 {
		t.Errorf("a summary was printed for a run that never started:\n%s", stdout.String())
	}
}
