package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func vcs(revision, time, modified string) *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.7",
		Main:      debug.Module{Path: "github.com/crowdgate/crowdgate", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: revision},
			{Key: "vcs.time", Value: time},
			{Key: "vcs.modified", Value: modified},
		},
	}
}

func TestStampedValuesWin(t *testing.T) {
	got := resolve(stamp{"v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-11-23T10:00:00Z"},
		vcs("ffffffffffffffffffffffffffffffffffffffff", "2020-01-01T00:00:00Z", "true"), true)
	want := Info{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", BuildTime: "2026-11-23T10:00:00Z", GoVersion: "go1.26.7"}
	if got != want {
		t.Errorf("resolve = %+v, want %+v", got, want)
	}
}

func TestFallsBackToGoBuildInformation(t *testing.T) {
	bi := vcs("0123456789abcdef0123456789abcdef01234567", "2026-11-20T08:30:00Z", "true")
	bi.Main.Version = "v0.0.0-20261120083000-0123456789ab+dirty"
	got := resolve(stamp{}, bi, true)
	want := Info{Version: "v0.0.0-20261120083000-0123456789ab+dirty", Commit: "0123456789abcdef0123456789abcdef01234567-dirty",
		BuildTime: "2026-11-20T08:30:00Z", GoVersion: "go1.26.7"}
	if got != want {
		t.Errorf("resolve = %+v, want %+v", got, want)
	}
	// `go run` of a local tree: "(devel)" is no version.
	got = resolve(stamp{}, vcs("0123456789abcdef0123456789abcdef01234567", "2026-11-20T08:30:00Z", "false"), true)
	if got.Version != "dev" || got.Commit != "0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("resolve of a (devel) build = %+v, want version dev and the VCS commit", got)
	}
}

func TestDefaultsWithoutAnyInformation(t *testing.T) {
	got := resolve(stamp{}, nil, false)
	if got.Version != "dev" || got.Commit != "unknown" || got.BuildTime != "unknown" || !strings.HasPrefix(got.GoVersion, "go") {
		t.Errorf("resolve without information = %+v, want dev, unknown, unknown and the runtime's Go version", got)
	}
}

func TestStringNamesEverything(t *testing.T) {
	s := Info{Version: "v1.2.3", Commit: "abc", BuildTime: "2026-11-23T10:00:00Z", GoVersion: "go1.26.7"}.String()
	for _, want := range []string{"v1.2.3", "commit abc", "built 2026-11-23T10:00:00Z", "go1.26.7"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
}

func TestCollectorExportsBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Info{Version: "v1.2.3", Commit: "abc", BuildTime: "2026-11-23T10:00:00Z", GoVersion: "go1.26.7"}.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "crowdgate_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one crowdgate_build_info series", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.2.3", "commit": "abc", "go_version": "go1.26.7"}
	if len(labels) != len(want) || labels["version"] != want["version"] || labels["commit"] != want["commit"] || labels["go_version"] != want["go_version"] {
		t.Errorf("labels = %v, want %v", labels, want)
	}
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("value = %v, want 1", m.GetGauge().GetValue())
	}
}
