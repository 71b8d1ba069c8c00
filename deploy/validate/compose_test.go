package validate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/yaml"

	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
)

// deployDir is deploy/, relative to this package.
const deployDir = ".."

// composeFile is the part of the Compose specification compose.yaml uses.
// Decoding is strict: a key that is not here fails the test, which catches
// typos that only `docker compose config` would otherwise see. Add fields
// when compose.yaml starts using more of the specification, but only fields
// Docker Compose 1.29 accepts (the minimum deploy/README.md states; CI runs
// its `docker-compose config` too): not the top-level `name`, not a
// healthcheck's `start_interval`.
type composeFile struct {
	Services map[string]*composeService `json:"services"`
	Volumes  map[string]*composeVolume  `json:"volumes"`
	Networks map[string]*composeNetwork `json:"networks"`
}

type composeNetwork struct {
	IPAM *struct {
		Config []struct {
			Subnet string `json:"subnet"`
		} `json:"config"`
	} `json:"ipam,omitempty"`
}

type composeServiceNetwork struct {
	IPv4Address string `json:"ipv4_address,omitempty"`
}

type composeVolume struct {
	Driver string `json:"driver,omitempty"`
}

type composeService struct {
	Image           string                            `json:"image,omitempty"`
	Build           *composeBuild                     `json:"build,omitempty"`
	Command         []string                          `json:"command,omitempty"`
	Entrypoint      []string                          `json:"entrypoint,omitempty"`
	Environment     map[string]string                 `json:"environment,omitempty"`
	Healthcheck     *composeHealthcheck               `json:"healthcheck,omitempty"`
	DependsOn       map[string]composeDependency      `json:"depends_on,omitempty"`
	Ports           []string                          `json:"ports,omitempty"`
	Expose          []string                          `json:"expose,omitempty"`
	Volumes         []string                          `json:"volumes,omitempty"`
	Restart         string                            `json:"restart,omitempty"`
	Hostname        string                            `json:"hostname,omitempty"`
	User            string                            `json:"user,omitempty"`
	ReadOnly        bool                              `json:"read_only,omitempty"`
	CapDrop         []string                          `json:"cap_drop,omitempty"`
	CapAdd          []string                          `json:"cap_add,omitempty"`
	SecurityOpt     []string                          `json:"security_opt,omitempty"`
	StopGracePeriod string                            `json:"stop_grace_period,omitempty"`
	MemLimit        string                            `json:"mem_limit,omitempty"`
	Tmpfs           []string                          `json:"tmpfs,omitempty"`
	Networks        map[string]*composeServiceNetwork `json:"networks,omitempty"`
}

type composeBuild struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile,omitempty"`
	Target     string            `json:"target,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
}

type composeHealthcheck struct {
	Test        []string `json:"test,omitempty"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod string   `json:"start_period,omitempty"`
	Disable     bool     `json:"disable,omitempty"`
}

type composeDependency struct {
	Condition string `json:"condition"`
	Restart   bool   `json:"restart,omitempty"`
	Required  *bool  `json:"required,omitempty"`
}

// strictJSON decodes JSON into v, refusing unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// loadCompose reads a compose file: YAML (anchors and merge keys resolved,
// duplicate keys refused) to JSON, top-level x- extensions dropped, then a
// strict decode.
func loadCompose(path string) (*composeFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for k := range top {
		if strings.HasPrefix(k, "x-") {
			delete(top, k)
		}
	}
	js, _ = json.Marshal(top)
	cf := new(composeFile)
	if err := strictJSON(js, cf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cf, nil
}

// loadYAMLStrict reads a YAML file strictly into v.
func loadYAMLStrict(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// haproxySection is one section of haproxy.cfg (global, defaults, frontend,
// backend, resolvers) and its directives, split into words.
type haproxySection struct {
	kind, name string
	lines      [][]string
}

// parseHAProxy splits haproxy.cfg into sections: a section starts at an
// unindented line; comments and blank lines are skipped.
func parseHAProxy(path string) ([]haproxySection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []haproxySection
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		words := strings.Fields(trimmed)
		if !unicode.IsSpace(rune(line[0])) {
			s := haproxySection{kind: words[0]}
			if len(words) > 1 {
				s.name = words[1]
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: directive %q outside a section", path, trimmed)
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, words)
	}
	return out, sc.Err()
}

// prometheusConfig is the part of Prometheus's configuration prometheus.yml uses.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path,omitempty"`
		StaticConfigs []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels,omitempty"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// stack is everything the local stack is made of, parsed.
type stack struct {
	compose    *composeFile
	haproxy    []haproxySection
	prometheus *prometheusConfig
	alerts     *ruleFile
	// anchors are the heading anchors of deploy/README.md.
	anchors map[string]bool
	// metrics are what a running gateway exports (see metrics_test.go).
	metrics *exportedMetrics
	// grafana is the Grafana provisioning of the stack.
	grafana *grafanaProvisioning
}

func loadStack(t testing.TB) (*stack, error) {
	s := &stack{prometheus: new(prometheusConfig), alerts: new(ruleFile)}
	var err error
	if s.compose, err = loadCompose(filepath.Join(deployDir, "compose.yaml")); err != nil {
		return nil, err
	}
	if s.haproxy, err = parseHAProxy(filepath.Join(deployDir, "haproxy.cfg")); err != nil {
		return nil, err
	}
	if err := loadYAMLStrict(filepath.Join(deployDir, "prometheus.yml"), s.prometheus); err != nil {
		return nil, err
	}
	if err := loadYAMLStrict(filepath.Join(deployDir, "alerts.yml"), s.alerts); err != nil {
		return nil, err
	}
	readme, err := os.ReadFile(filepath.Join(deployDir, "README.md"))
	if err != nil {
		return nil, err
	}
	s.anchors = markdownAnchors(string(readme))
	if s.grafana, err = loadGrafana(); err != nil {
		return nil, err
	}
	s.metrics = gatewayMetrics(t)
	return s, nil
}

// markdownAnchors returns the anchors GitHub gives a document's headings.
func markdownAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		out[b.String()] = true
	}
	return out
}

// gatewayTarget and emulatorTarget are the deploy/Dockerfile targets.
const (
	gatewayTarget  = "crowdgate"
	emulatorTarget = "tolokasim"
)

// servicesBuilt returns the names of services built from deploy/Dockerfile's target, sorted.
func (cf *composeFile) servicesBuilt(target string) []string {
	var out []string
	for name, s := range cf.Services {
		if s.Build != nil && s.Build.Target == target {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// gatewayPorts are the HTTP and gRPC ports the compose gateways listen on.
func (cf *composeFile) gatewayPorts() (httpPort, grpcPort int32, err error) {
	gws := cf.servicesBuilt(gatewayTarget)
	if len(gws) == 0 {
		return 0, 0, errors.New("no gateway service")
	}
	env := cf.Services[gws[0]].Environment
	if httpPort, err = listenPort(env["CROWDGATE_HTTP_ADDR"]); err != nil {
		return 0, 0, fmt.Errorf("CROWDGATE_HTTP_ADDR: %w", err)
	}
	if grpcPort, err = listenPort(env["CROWDGATE_GRPC_ADDR"]); err != nil {
		return 0, 0, fmt.Errorf("CROWDGATE_GRPC_ADDR: %w", err)
	}
	return httpPort, grpcPort, nil
}

// mountedFrom returns the host path bind-mounted at target in service s.
func (s *composeService) mountedFrom(target string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0], true
		}
	}
	return "", false
}

// stackCheck is one property the local stack must have.
type stackCheck struct {
	name string
	run  func(s *stack) []error
}

var stackChecks = []stackCheck{
	{"healthchecks", checkHealthchecks},
	{"gateway replicas", checkGatewayReplicas},
	{"shared redis with AOF", checkComposeRedis},
	{"toloka emulator", checkComposeToloka},
	{"dependencies", checkDependencies},
	{"graceful shutdown", checkComposeShutdown},
	{"mounted files", checkMounts},
	{"published ports", checkPublishedPorts},
	{"load balancer", checkLoadBalancer},
	{"trusted proxies", checkTrustedProxies},
	{"prometheus", checkPrometheus},
	{"alerts", checkAlerts},
	{"grafana", checkGrafana},
}

func checkHealthchecks(s *stack) []error {
	var errs []error
	for name, svc := range s.compose.Services {
		hc := svc.Healthcheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			errs = append(errs, fmt.Errorf("service %s has no healthcheck", name))
			continue
		}
		if hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL" {
			errs = append(errs, fmt.Errorf("service %s: healthcheck test must start with CMD or CMD-SHELL, got %q", name, hc.Test[0]))
		}
		for what, d := range map[string]string{"interval": hc.Interval, "timeout": hc.Timeout} {
			if _, err := time.ParseDuration(d); err != nil {
				errs = append(errs, fmt.Errorf("service %s: healthcheck %s %q: %v", name, what, d, err))
			}
		}
		// Images built from deploy/Dockerfile are distroless: no shell, no
		// curl. Only the image's own binary can check it.
		if svc.Build != nil && strings.HasSuffix(svc.Build.Dockerfile, "deploy/Dockerfile") {
			if want := []string{"CMD", "/" + svc.Build.Target}; hc.Test[0] != want[0] || hc.Test[1] != want[1] {
				errs = append(errs, fmt.Errorf("service %s: healthcheck %q: the distroless image has no shell or curl; run %s's own healthcheck", name, hc.Test, want[1]))
			}
		}
	}
	return errs
}

func checkGatewayReplicas(s *stack) []error {
	gws := s.compose.servicesBuilt(gatewayTarget)
	if len(gws) < 2 {
		return []error{fmt.Errorf("want at least two gateway replicas, got %v", gws)}
	}
	var errs []error
	first := s.compose.Services[gws[0]].Environment
	for _, name := range gws[1:] {
		env := s.compose.Services[name].Environment
		keys := map[string]bool{}
		for k := range first {
			keys[k] = true
		}
		for k := range env {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if v, ok := env[k]; !ok || first[k] != v {
				errs = append(errs, fmt.Errorf("gateway replicas %s and %s differ in %s: replicas must share Redis, the key prefix and the encryption key", gws[0], name, k))
			}
		}
	}
	errs = append(errs, configErrors(first)...)
	for _, key := range []string{"CROWDGATE_ENCRYPTION_KEY", "CROWDGATE_ADMIN_KEY"} {
		if !regexp.MustCompile(`^\$\{` + key + `:\?[^}]+\}$`).MatchString(first[key]) {
			errs = append(errs, fmt.Errorf("%s must be the required interpolation ${%s:?...} from deploy/.env (a key in git is a leaked key), got %q", key, key, first[key]))
		}
	}
	if mode, err := access.ParseMode(first["CROWDGATE_AUTH"]); err != nil || mode != access.ModeKeys {
		errs = append(errs, fmt.Errorf("CROWDGATE_AUTH %q: the stack runs as in production, every call authenticated (keys)", first["CROWDGATE_AUTH"]))
	}
	return errs
}

// commandHas reports whether args contain flag followed by value.
func commandHas(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func checkComposeRedis(s *stack) []error {
	gws := s.compose.servicesBuilt(gatewayTarget)
	if len(gws) == 0 {
		return []error{errors.New("no gateway service")}
	}
	env := s.compose.Services[gws[0]].Environment
	if env["REDIS_MODE"] != "standalone" {
		return []error{fmt.Errorf("REDIS_MODE %q: the compose stack runs one Redis", env["REDIS_MODE"])}
	}
	o, err := redis.ParseURL(env["REDIS_URL"])
	if err != nil {
		return []error{fmt.Errorf("REDIS_URL: %w", err)}
	}
	host, _, _ := net.SplitHostPort(o.Addr)
	r, ok := s.compose.Services[host]
	if !ok {
		return []error{fmt.Errorf("REDIS_URL host %q is not a service of the stack", host)}
	}
	var errs []error
	for _, kv := range [][2]string{{"--appendonly", "yes"}, {"--appendfsync", "everysec"}, {"--maxmemory-policy", "noeviction"}} {
		if !commandHas(r.Command, kv[0], kv[1]) {
			errs = append(errs, fmt.Errorf("service %s: command must include %s %s", host, kv[0], kv[1]))
		}
	}
	if !strings.HasPrefix(r.Image, "redis:7") {
		errs = append(errs, fmt.Errorf("service %s: image %q, want redis:7.x", host, r.Image))
	}
	if _, ok := r.mountedFrom("/data"); !ok {
		errs = append(errs, fmt.Errorf("service %s: no volume at /data: the AOF would not survive the container", host))
	}
	for _, gw := range gws {
		if d, ok := s.compose.Services[gw].DependsOn[host]; !ok || d.Condition != "service_healthy" {
			errs = append(errs, fmt.Errorf("service %s must depend on %s with condition service_healthy", gw, host))
		}
	}
	return errs
}

func checkComposeToloka(s *stack) []error {
	gws := s.compose.servicesBuilt(gatewayTarget)
	emus := s.compose.servicesBuilt(emulatorTarget)
	if len(gws) == 0 || len(emus) != 1 {
		return []error{fmt.Errorf("want gateways and one emulator, got %v and %v", gws, emus)}
	}
	emuPort, err := listenPort(s.compose.Services[emus[0]].Environment["TOLOKASIM_ADDR"])
	if err != nil {
		return []error{fmt.Errorf("service %s: TOLOKASIM_ADDR: %w", emus[0], err)}
	}
	var errs []error
	if addr := s.compose.Services[emus[0]].Environment["TOLOKASIM_ADDR"]; !strings.HasPrefix(addr, "0.0.0.0:") {
		errs = append(errs, fmt.Errorf("service %s: TOLOKASIM_ADDR %q: listen on 0.0.0.0 inside the container", emus[0], addr))
	}
	want := fmt.Sprintf("http://%s:%d/api/v1", emus[0], emuPort)
	for _, key := range []string{"TOLOKA_PRODUCTION_URL", "TOLOKA_SANDBOX_URL"} {
		if got := s.compose.Services[gws[0]].Environment[key]; got != want {
			errs = append(errs, fmt.Errorf("%s %q, want %q: the local stack never talks to the real Toloka", key, got, want))
		}
	}
	return errs
}

func checkDependencies(s *stack) []error {
	var errs []error
	for name, svc := range s.compose.Services {
		for dep, d := range svc.DependsOn {
			if _, ok := s.compose.Services[dep]; !ok {
				errs = append(errs, fmt.Errorf("service %s depends on unknown service %s", name, dep))
			}
			if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition) {
				errs = append(errs, fmt.Errorf("service %s: depends_on %s condition %q", name, dep, d.Condition))
			}
		}
	}
	return errs
}

func checkComposeShutdown(s *stack) []error {
	var errs []error
	for _, name := range s.compose.servicesBuilt(gatewayTarget) {
		svc := s.compose.Services[name]
		drain, err1 := time.ParseDuration(svc.Environment["CROWDGATE_SHUTDOWN_DRAIN"])
		timeout, err2 := time.ParseDuration(svc.Environment["CROWDGATE_SHUTDOWN_TIMEOUT"])
		grace, err3 := time.ParseDuration(svc.StopGracePeriod)
		if err := errors.Join(err1, err2, err3); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			continue
		}
		if grace < drain+timeout+workerMargin {
			errs = append(errs, fmt.Errorf("service %s: stop_grace_period %v, want at least drain %v + timeout %v + %v", name, grace, drain, timeout, workerMargin))
		}
	}
	return errs
}

func checkMounts(s *stack) []error {
	var errs []error
	for name, svc := range s.compose.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
					errs = append(errs, fmt.Errorf("service %s mounts %s: %v", name, src, err))
				}
				continue
			}
			if _, ok := s.compose.Volumes[src]; !ok {
				errs = append(errs, fmt.Errorf("service %s mounts volume %q that the file does not declare", name, src))
			}
		}
	}
	return errs
}

func checkPublishedPorts(s *stack) []error {
	var errs []error
	seen := map[string]string{}
	for name, svc := range s.compose.Services {
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				errs = append(errs, fmt.Errorf("service %s publishes %q: publish on 127.0.0.1 only (ip:host:container)", name, p))
				continue
			}
			if other, dup := seen[parts[1]]; dup {
				errs = append(errs, fmt.Errorf("host port %s is published by both %s and %s", parts[1], other, name))
			}
			seen[parts[1]] = name
		}
	}
	return errs
}

// haproxyServer is a server line of a backend.
type haproxyServer struct {
	name, host, port string
	options          []string
}

func haproxyServers(sec haproxySection) []haproxyServer {
	var out []haproxyServer
	for _, l := range sec.lines {
		if l[0] != "server" || len(l) < 3 {
			continue
		}
		host, port, _ := net.SplitHostPort(l[2])
		out = append(out, haproxyServer{name: l[1], host: host, port: port, options: l[3:]})
	}
	return out
}

// option returns the word after key in opts.
func option(opts []string, key string) string {
	for i := 0; i+1 < len(opts); i++ {
		if opts[i] == key {
			return opts[i+1]
		}
	}
	return ""
}

// checksReadyz reports whether a backend health-checks GET /readyz.
func checksReadyz(sec haproxySection) bool {
	httpchk := false
	for _, l := range sec.lines {
		if slices.Equal(l, []string{"option", "httpchk"}) {
			httpchk = true
		}
		if len(l) >= 2 && l[0] == "http-check" && l[1] == "send" && option(l, "uri") == "/readyz" && option(l, "meth") == "GET" {
			return httpchk
		}
	}
	return false
}

func checkLoadBalancer(s *stack) []error {
	httpPort, grpcPort, err := s.compose.gatewayPorts()
	if err != nil {
		return []error{err}
	}
	lb, ok := s.compose.Services["lb"]
	if !ok {
		return []error{errors.New("no service named lb")}
	}
	var errs []error
	if src, ok := lb.mountedFrom("/usr/local/etc/haproxy/haproxy.cfg"); !ok || src != "./haproxy.cfg" {
		errs = append(errs, errors.New("service lb must mount ./haproxy.cfg at /usr/local/etc/haproxy/haproxy.cfg"))
	}
	gws := s.compose.servicesBuilt(gatewayTarget)
	found := map[string]bool{}
	for _, sec := range s.haproxy {
		switch sec.kind {
		case "frontend":
			for _, l := range sec.lines {
				if l[0] != "bind" || len(l) < 2 {
					continue
				}
				_, port, _ := net.SplitHostPort(l[1])
				if !slices.ContainsFunc(lb.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
					errs = append(errs, fmt.Errorf("haproxy frontend %s binds %s, which service lb does not publish", sec.name, l[1]))
				}
			}
		case "backend":
			servers := haproxyServers(sec)
			var hosts []string
			for _, srv := range servers {
				hosts = append(hosts, srv.host)
			}
			slices.Sort(hosts)
			if !slices.Equal(hosts, gws) {
				errs = append(errs, fmt.Errorf("haproxy backend %s balances %v, want every gateway replica %v", sec.name, hosts, gws))
			}
			if !checksReadyz(sec) {
				errs = append(errs, fmt.Errorf("haproxy backend %s does not health-check GET /readyz: a draining replica would keep getting traffic", sec.name))
			}
			for _, srv := range servers {
				switch srv.port {
				case fmt.Sprint(httpPort):
					found["http"] = true
				case fmt.Sprint(grpcPort):
					found["grpc"] = true
					if option(srv.options, "proto") != "h2" {
						errs = append(errs, fmt.Errorf("haproxy backend %s server %s: gRPC needs proto h2", sec.name, srv.name))
					}
					if option(srv.options, "port") != fmt.Sprint(httpPort) || option(srv.options, "check-proto") != "h1" {
						errs = append(errs, fmt.Errorf("haproxy backend %s server %s: check /readyz on the HTTP port %d over h1 (port %d check-proto h1)", sec.name, srv.name, httpPort, httpPort))
					}
				default:
					errs = append(errs, fmt.Errorf("haproxy backend %s server %s: port %s is neither the gateway's HTTP (%d) nor gRPC (%d) port", sec.name, srv.name, srv.port, httpPort, grpcPort))
				}
			}
		}
	}
	for _, proto := range []string{"http", "grpc"} {
		if !found[proto] {
			errs = append(errs, fmt.Errorf("no haproxy backend sends %s to the gateways", proto))
		}
	}
	return errs
}

// checkTrustedProxies: the gateways believe X-Forwarded-For from the load
// balancer, and from nothing else of the stack, so the landing's per-address
// limit sees Tolokers and a client cannot choose its address.
func checkTrustedProxies(s *stack) []error {
	gws := s.compose.servicesBuilt(gatewayTarget)
	if len(gws) == 0 {
		return []error{errors.New("no gateway replicas")}
	}
	lb, ok := s.compose.Services["lb"]
	if !ok {
		return []error{errors.New("no service named lb")}
	}
	var lbAddr string
	if n := lb.Networks["default"]; n != nil {
		lbAddr = n.IPv4Address
	}
	if lbAddr == "" {
		return []error{errors.New("service lb has no fixed ipv4_address on the default network: the gateways cannot trust it alone")}
	}
	trusted, err := landing.ParsePrefixes(s.compose.Services[gws[0]].Environment["CROWDGATE_TRUSTED_PROXIES"])
	if err != nil {
		return []error{fmt.Errorf("CROWDGATE_TRUSTED_PROXIES: %w", err)}
	}
	addr, err := netip.ParseAddr(lbAddr)
	if err != nil {
		return []error{fmt.Errorf("service lb ipv4_address %q: %w", lbAddr, err)}
	}
	var errs []error
	if !slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		errs = append(errs, fmt.Errorf("CROWDGATE_TRUSTED_PROXIES %v does not hold the load balancer's address %s: every landing would count as the balancer's", trusted, addr))
	}
	for _, p := range trusted {
		if p.Bits() < 32 {
			errs = append(errs, fmt.Errorf("CROWDGATE_TRUSTED_PROXIES trusts %s, more than the load balancer: other containers could choose their address", p))
		}
	}
	return errs
}

func checkPrometheus(s *stack) []error {
	httpPort, _, err := s.compose.gatewayPorts()
	if err != nil {
		return []error{err}
	}
	p, ok := s.compose.Services["prometheus"]
	if !ok {
		return []error{errors.New("no service named prometheus")}
	}
	var errs []error
	if src, ok := p.mountedFrom("/etc/prometheus/prometheus.yml"); !ok || src != "./prometheus.yml" {
		errs = append(errs, errors.New("service prometheus must mount ./prometheus.yml at /etc/prometheus/prometheus.yml"))
	}
	for _, rf := range s.prometheus.RuleFiles {
		if src, ok := p.mountedFrom(rf); !ok || src != "./alerts.yml" {
			errs = append(errs, fmt.Errorf("prometheus.yml loads rule file %s, which is not ./alerts.yml mounted there", rf))
		}
	}
	if len(s.prometheus.RuleFiles) == 0 {
		errs = append(errs, errors.New("prometheus.yml loads no rule files"))
	}
	var want, got []string
	for _, gw := range s.compose.servicesBuilt(gatewayTarget) {
		want = append(want, fmt.Sprintf("%s:%d", gw, httpPort))
	}
	for _, sc := range s.prometheus.ScrapeConfigs {
		if sc.JobName != "crowdgate" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			errs = append(errs, fmt.Errorf("job crowdgate scrapes %s, want /metrics", sc.MetricsPath))
		}
		for _, st := range sc.StaticConfigs {
			got = append(got, st.Targets...)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("job crowdgate scrapes %v, want each replica directly: %v", got, want))
	}
	return errs
}

func checkAlerts(s *stack) []error {
	var errs []error
	seen := map[string]bool{}
	n := 0
	for _, g := range s.alerts.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || seen[r.Alert] {
				errs = append(errs, fmt.Errorf("group %s: alert name %q is empty or repeated", g.Name, r.Alert))
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				errs = append(errs, fmt.Errorf("alert %s has no expr", r.Alert))
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					errs = append(errs, fmt.Errorf("alert %s: for %q: %v", r.Alert, r.For, err))
				}
			}
			if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
				errs = append(errs, fmt.Errorf("alert %s: severity %q, want page or ticket", r.Alert, sev))
			}
			if r.Annotations["summary"] == "" {
				errs = append(errs, fmt.Errorf("alert %s has no summary", r.Alert))
			}
			for _, err := range s.metrics.check(r.Expr) {
				errs = append(errs, fmt.Errorf("alert %s: %w: the alert could never fire", r.Alert, err))
			}
			doc, anchor, _ := strings.Cut(r.Annotations["runbook"], "#")
			if doc != "deploy/README.md" || !s.anchors[anchor] {
				errs = append(errs, fmt.Errorf("alert %s: runbook %q is not a heading of deploy/README.md", r.Alert, r.Annotations["runbook"]))
			}
		}
	}
	if n == 0 {
		errs = append(errs, errors.New("alerts.yml has no rules"))
	}
	return errs
}

// TestComposeStack checks compose.yaml with haproxy.cfg, prometheus.yml and alerts.yml.
func TestComposeStack(t *testing.T) {
	s, err := loadStack(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range stackChecks {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range c.run(s) {
				t.Error(err)
			}
		})
	}
}

// TestStackChecksCatchBreakage breaks one thing at a time in the parsed
// stack and expects the responsible check to say so.
func TestStackChecksCatchBreakage(t *testing.T) {
	svc := func(s *stack, name string) *composeService { return s.compose.Services[name] }
	for _, tc := range []struct {
		name   string
		check  string
		break_ func(s *stack)
		want   string
	}{
		{"service without healthcheck", "healthchecks",
			func(s *stack) { svc(s, "prometheus").Healthcheck = nil }, "service prometheus has no healthcheck"},
		{"shell healthcheck in a distroless image", "healthchecks",
			func(s *stack) {
				svc(s, "gateway-2").Healthcheck.Test = []string{"CMD-SHELL", "curl -f http://127.0.0.1:8080/readyz"}
			}, "has no shell or curl"},
		{"gateways that trust anyone's X-Forwarded-For", "trusted proxies",
			func(s *stack) {
				for _, name := range s.compose.servicesBuilt(gatewayTarget) {
					svc(s, name).Environment["CROWDGATE_TRUSTED_PROXIES"] = "0.0.0.0/0"
				}
			}, "more than the load balancer"},
		{"gateways that do not trust the balancer", "trusted proxies",
			func(s *stack) {
				for _, name := range s.compose.servicesBuilt(gatewayTarget) {
					delete(svc(s, name).Environment, "CROWDGATE_TRUSTED_PROXIES")
				}
			}, "does not hold the load balancer's address"},
		{"one gateway", "gateway replicas",
			func(s *stack) { delete(s.compose.Services, "gateway-2") }, "at least two gateway replicas"},
		{"replicas on different Redis databases", "gateway replicas",
			func(s *stack) {
				g := *svc(s, "gateway-2")
				g.Environment = map[string]string{}
				for k, v := range svc(s, "gateway-1").Environment {
					g.Environment[k] = v
				}
				g.Environment["REDIS_URL"] = "redis://redis:6379/1"
				s.compose.Services["gateway-2"] = &g
			}, "differ in REDIS_URL"},
		{"literal encryption key", "gateway replicas",
			func(s *stack) {
				for _, n := range []string{"gateway-1", "gateway-2"} {
					svc(s, n).Environment["CROWDGATE_ENCRYPTION_KEY"] = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
				}
			}, "CROWDGATE_ENCRYPTION_KEY must be the required interpolation"},
		{"no authentication", "gateway replicas",
			func(s *stack) {
				for _, n := range []string{"gateway-1", "gateway-2"} {
					delete(svc(s, n).Environment, "CROWDGATE_AUTH")
				}
			}, "every call authenticated"},
		{"misspelled setting", "gateway replicas",
			func(s *stack) {
				for _, n := range []string{"gateway-1", "gateway-2"} {
					svc(s, n).Environment["REDIS_MDOE"] = "standalone"
				}
			}, "REDIS_MDOE is not a gateway setting"},
		{"Redis without AOF", "shared redis with AOF",
			func(s *stack) { svc(s, "redis").Command = []string{"redis-server", "--appendfsync", "everysec"} }, "--appendonly yes"},
		{"Redis that may evict", "shared redis with AOF",
			func(s *stack) {
				svc(s, "redis").Command = []string{"redis-server", "--appendonly", "yes", "--appendfsync", "everysec"}
			}, "noeviction"},
		{"gateway starts before Redis answers", "shared redis with AOF",
			func(s *stack) {
				svc(s, "gateway-1").DependsOn["redis"] = composeDependency{Condition: "service_started"}
			}, "service_healthy"},
		{"real Toloka from the local stack", "toloka emulator",
			func(s *stack) {
				for _, n := range []string{"gateway-1", "gateway-2"} {
					svc(s, n).Environment["TOLOKA_SANDBOX_URL"] = "https://sandbox.toloka.dev/api/v1"
				}
			}, "never talks to the real Toloka"},
		{"emulator on loopback", "toloka emulator",
			func(s *stack) { svc(s, "tolokasim").Environment["TOLOKASIM_ADDR"] = "127.0.0.1:8081" }, "listen on 0.0.0.0"},
		{"dependency on a missing service", "dependencies",
			func(s *stack) { svc(s, "lb").DependsOn["gateway-3"] = composeDependency{Condition: "service_started"} }, "unknown service gateway-3"},
		{"grace shorter than the shutdown", "graceful shutdown",
			func(s *stack) { svc(s, "gateway-1").StopGracePeriod = "10s" }, "stop_grace_period 10s"},
		{"mount of a missing file", "mounted files",
			func(s *stack) { svc(s, "lb").Volumes = []string{"./nope.cfg:/x:ro"} }, "mounts ./nope.cfg"},
		{"port published on every interface", "published ports",
			func(s *stack) { svc(s, "tolokasim").Ports = []string{"8081:8081"} }, "publish on 127.0.0.1 only"},
		{"load balancer misses a replica", "load balancer",
			func(s *stack) {
				for i := range s.haproxy {
					if s.haproxy[i].name == "gateway_http" {
						s.haproxy[i].lines = slices.DeleteFunc(s.haproxy[i].lines, func(l []string) bool { return l[0] == "server" && l[1] == "gateway-2" })
					}
				}
			}, "want every gateway replica"},
		{"load balancer without readiness checks", "load balancer",
			func(s *stack) {
				for i := range s.haproxy {
					if s.haproxy[i].name == "gateway_grpc" {
						s.haproxy[i].lines = slices.DeleteFunc(s.haproxy[i].lines, func(l []string) bool { return l[0] == "http-check" })
					}
				}
			}, "does not health-check GET /readyz"},
		{"gRPC over HTTP/1", "load balancer",
			func(s *stack) {
				for i := range s.haproxy {
					for j, l := range s.haproxy[i].lines {
						if l[0] == "server" && strings.HasSuffix(l[2], ":9090") {
							s.haproxy[i].lines[j] = []string{"server", l[1], l[2], "check"}
						}
					}
				}
			}, "gRPC needs proto h2"},
		{"Prometheus scrapes through the load balancer", "prometheus",
			func(s *stack) { s.prometheus.ScrapeConfigs[0].StaticConfigs[0].Targets = []string{"lb:8080"} }, "want each replica directly"},
		{"alert on a metric nobody exports", "alerts",
			func(s *stack) {
				s.alerts.Groups[0].Rules[2].Expr = strings.ReplaceAll(s.alerts.Groups[0].Rules[2].Expr, "grpc_server_handled_total", "crowdgate_grpc_handled_total")
			}, "metric crowdgate_grpc_handled_total is not exported"},
		{"alert on a label the metric lacks", "alerts",
			func(s *stack) {
				s.alerts.Groups[0].Rules[2].Expr = strings.ReplaceAll(s.alerts.Groups[0].Rules[2].Expr, "grpc_method=", "method=")
			}, "has no label method"},
		{"Grafana without its provisioning", "grafana",
			func(s *stack) { svc(s, "grafana").Volumes = svc(s, "grafana").Volumes[1:] }, "must mount ./grafana/provisioning"},
		{"Grafana data source that is not the stack's Prometheus", "grafana",
			func(s *stack) { s.grafana.datasources.Datasources[0].URL = "http://lb:8080" }, "is not the stack's Prometheus service"},
		{"dashboards provider reads an unmounted directory", "grafana",
			func(s *stack) { s.grafana.dashboards.Providers[0].Options.Path = "/var/lib/grafana/dashboards" }, "which service grafana does not mount"},
		{"alert with a dead runbook link", "alerts",
			func(s *stack) { s.alerts.Groups[0].Rules[0].Annotations["runbook"] = "deploy/README.md#nowhere" }, "is not a heading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var run func(*stack) []error
			for _, c := range stackChecks {
				if c.name == tc.check {
					run = c.run
				}
			}
			if run == nil {
				t.Fatalf("no check named %q", tc.check)
			}
			s, err := loadStack(t)
			if err != nil {
				t.Fatal(err)
			}
			if errs := run(s); len(errs) > 0 {
				t.Fatalf("check %q fails before the change: %v", tc.check, errs)
			}
			tc.break_(s)
			errs := run(s)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.want) }) {
				t.Errorf("check %q after the change = %v, want an error containing %q", tc.check, errs, tc.want)
			}
		})
	}
}

// TestComposeDecodingIsStrict shows that a misspelled compose key fails.
func TestComposeDecodingIsStrict(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, doc, wantErr string
	}{
		{"anchors and merge keys", "x-a: &a\n  image: redis:7\nservices:\n  r:\n    <<: *a\n", ""},
		{"misspelled key", "services:\n  r:\n    image: redis:7\n    heathcheck: {test: [CMD, x]}\n", `unknown field "heathcheck"`},
		{"duplicate key", "services:\n  r:\n    image: a\n    image: b\n", "already set"},
		// Compose 1.29 (the stated minimum) refuses both.
		{"top-level name", "name: crowdgate\nservices:\n  r:\n    image: redis:7\n", `unknown field "name"`},
		{"healthcheck start_interval", "services:\n  r:\n    image: redis:7\n    healthcheck: {test: [CMD, x], start_interval: 1s}\n", `unknown field "start_interval"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			cf, err := loadCompose(path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("loadCompose = %v, want no error", err)
			case tc.wantErr == "" && cf.Services["r"].Image != "redis:7":
				t.Errorf("merged image = %q, want redis:7", cf.Services["r"].Image)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("loadCompose = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
