package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps the dependencies pointing down the layers the folders
// show: kernel imports nothing of Crowdgate's, platform imports only
// platform and kernel, notify (events and webhooks) only those and itself,
// the flow's two sides never import each other or the gateway, and only
// cmd/crowdgate imports the gateway (tests excepted).
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/crowdgate/crowdgate/"
	layer := func(path string) string {
		rest, ok := strings.CutPrefix(path, mod)
		if !ok {
			return "" // not Crowdgate's
		}
		for _, l := range []string{"services/kernel/", "services/platform/", "services/notify/", "services/requester/", "services/toloker/", "services/tools/", "services/testsupport/", "services/gateway", "gen/", "cmd/", "deploy/"} {
			if strings.HasPrefix(rest, l) {
				return strings.TrimSuffix(l, "/")
			}
		}
		return rest
	}
	allowed := map[string][]string{
		"services/kernel":    {"services/kernel", "gen"},
		"services/platform":  {"services/kernel", "services/platform", "gen"},
		"services/notify":    {"services/kernel", "services/platform", "services/notify", "gen"},
		"services/requester": {"services/kernel", "services/platform", "services/notify", "services/requester", "gen"},
		"services/toloker":   {"services/kernel", "services/platform", "services/notify", "services/toloker", "gen"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := layer(fields[0])
		ok, checked := allowed[from]
		for _, imp := range fields[1:] {
			to := layer(imp)
			if to == "" {
				continue
			}
			if to == "services/gateway" && !strings.HasPrefix(fields[0], mod+"cmd/crowdgate") && !strings.HasPrefix(fields[0], mod+"services/gateway") {
				t.Errorf("%s imports the gateway: only cmd/crowdgate may", fields[0])
			}
			if !checked {
				continue
			}
			found := false
			for _, a := range ok {
				found = found || a == to
			}
			if !found {
				t.Errorf("%s (%s) imports %s (%s)", fields[0], from, imp, to)
			}
		}
	}
}
