// Package buildinfo says which build of Crowdgate is running: its version,
// commit, build time and Go version. The Makefile and deploy/Dockerfile
// stamp the first three at link time:
//
//	go build -ldflags "-X github.com/crowdgate/crowdgate/services/platform/buildinfo.Version=v1.2.3 \
//	  -X github.com/crowdgate/crowdgate/services/platform/buildinfo.Commit=$(git rev-parse HEAD) \
//	  -X github.com/crowdgate/crowdgate/services/platform/buildinfo.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/crowdgate
//
// A build without them (`go run`, a plain `go build`) falls back to what Go
// records in the binary (runtime/debug.ReadBuildInfo: the module version and
// the vcs.revision, vcs.time and vcs.modified settings), and then to "dev"
// and "unknown". Both binaries print it with -version and log it at start;
// the gateway exports it as crowdgate_build_info.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker (-ldflags -X); empty in a build that does not set them.
var (
	// Version is the release, such as v1.2.3 (git describe in the Makefile).
	Version string
	// Commit is the full git commit id.
	Commit string
	// BuildTime is when the binary was built, RFC 3339 in UTC.
	BuildTime string
)

// Info describes a build.
type Info struct {
	Version   string
	Commit    string
	BuildTime string
	GoVersion string
}

// Get returns this binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return resolve(stamp{Version, Commit, BuildTime}, bi, ok)
}

// stamp is what the linker set.
type stamp struct{ version, commit, buildTime string }

// resolve prefers the stamped values, then Go's build information, then
// "dev" and "unknown".
func resolve(s stamp, bi *debug.BuildInfo, ok bool) Info {
	info := Info{Version: s.version, Commit: s.commit, BuildTime: s.buildTime, GoVersion: runtime.Version()}
	if ok && bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		settings := map[string]string{}
		for _, kv := range bi.Settings {
			settings[kv.Key] = kv.Value
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" && settings["vcs.revision"] != "" {
			info.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				info.Commit += "-dirty"
			}
		}
		if info.BuildTime == "" {
			// The commit's time: the closest Go records to a build time.
			info.BuildTime = settings["vcs.time"]
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.BuildTime == "" {
		info.BuildTime = "unknown"
	}
	return info
}

// String is the line -version prints after the program's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s)", i.Version, i.Commit, i.BuildTime, i.GoVersion)
}

// LogAttrs are the build's fields for a start-up log line.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "commit", i.Commit, "build_time", i.BuildTime, "go_version", i.GoVersion}
}

// Collector exports the build as crowdgate_build_info{version, commit,
// go_version} 1, the usual info-metric form (join on it to label other
// series with the version). The build time is left out: the commit names
// the build.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "crowdgate_build_info",
		Help:        "The running build: version, commit and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "go_version": i.GoVersion},
	})
	g.Set(1)
	return g
}
