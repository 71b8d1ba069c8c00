package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImagesStampTheBuild: both images' binaries are linked with the build's
// version, commit and time (crowdgate -version, tolokasim -version,
// crowdgate_build_info), from build arguments each build stage declares:
// an ARG is not inherited from the stage a stage is built FROM, so a stage
// that forgot one would stamp an empty value.
func TestImagesStampTheBuild(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Stages, with continuation lines joined.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)[1:]
	const pkg = "github.com/crowdgate/crowdgate/services/platform/buildinfo"
	if !strings.Contains(text, "BUILDINFO="+pkg) {
		t.Errorf("the Dockerfile does not name %s", pkg)
	}
	built := map[string]bool{}
	for _, st := range stages {
		m := regexp.MustCompile(`go build .*?\./cmd/(\w+)`).FindStringSubmatch(st)
		if m == nil {
			continue
		}
		built[m[1]] = true
		for _, v := range []string{"Version=${VERSION}", "Commit=${COMMIT}", "BuildTime=${BUILD_TIME}"} {
			if !strings.Contains(m[0], "-X ${BUILDINFO}."+v) {
				t.Errorf("the build of %s does not link -X ${BUILDINFO}.%s", m[1], v)
			}
		}
		for _, arg := range []string{"VERSION", "COMMIT", "BUILD_TIME"} {
			if !regexp.MustCompile(`(?m)^ARG ` + arg + `(=|\s|$)`).MatchString(st) {
				t.Errorf("the stage that builds %s does not declare ARG %s", m[1], arg)
			}
		}
	}
	for _, cmd := range []string{"crowdgate", "tolokasim"} {
		if !built[cmd] {
			t.Errorf("no stage builds ./cmd/%s", cmd)
		}
	}
}
