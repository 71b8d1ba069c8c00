package validate

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
)

// environment is what one kustomization must build to.
type environment struct {
	name string
	// dir is the kustomization, relative to this package.
	dir string
	// namespace every object must be in ("" for the base).
	namespace string
	// redisMode is the REDIS_MODE the pods must get.
	redisMode string
	// minReplicas is the lowest acceptable HPA floor (at least 2 everywhere).
	minReplicas int32
	// pinnedImage requires a version tag (v1.2.3) or a digest: never latest
	// or a branch name.
	pinnedImage bool
	// sandboxOnly requires both Toloka URLs to be the sandbox: no real money.
	sandboxOnly bool
}

// environments are the overlays. The base is not deployable on its own (its
// image is a logical name); every overlay builds it.
var environments = []environment{
	{name: "staging", dir: "../k8s/overlays/staging", namespace: "crowdgate-staging", redisMode: "sentinel", minReplicas: 2, sandboxOnly: true},
	{name: "production", dir: "../k8s/overlays/production", namespace: "crowdgate", redisMode: "cluster", minReplicas: 3, pinnedImage: true},
}

// manifests is one kustomize build, every object decoded into its type.
type manifests struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
}

// decoders are the only kinds a build may contain, each with the API version
// the cluster serves it under. Anything else fails the build.
var decoders = map[string]func(m *manifests, doc []byte) error{
	"apps/v1 Deployment":                     func(m *manifests, d []byte) error { return decodeInto(d, &m.deployments) },
	"v1 Service":                             func(m *manifests, d []byte) error { return decodeInto(d, &m.services) },
	"v1 ConfigMap":                           func(m *manifests, d []byte) error { return decodeInto(d, &m.configMaps) },
	"v1 Secret":                              func(m *manifests, d []byte) error { return decodeInto(d, &m.secrets) },
	"v1 ServiceAccount":                      func(m *manifests, d []byte) error { return decodeInto(d, &m.serviceAccounts) },
	"policy/v1 PodDisruptionBudget":          func(m *manifests, d []byte) error { return decodeInto(d, &m.pdbs) },
	"autoscaling/v2 HorizontalPodAutoscaler": func(m *manifests, d []byte) error { return decodeInto(d, &m.hpas) },
}

// decodeInto decodes doc strictly (YAML to JSON, then JSON with unknown
// fields refused; duplicate keys refused) and appends it to list.
func decodeInto[T any](doc []byte, list *[]*T) error {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// add decodes one object of a build into m.
func (m *manifests) add(doc []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	gvk := head.APIVersion + " " + head.Kind
	decode, ok := decoders[gvk]
	if !ok {
		known := make([]string, 0, len(decoders))
		for k := range decoders {
			known = append(known, k)
		}
		slices.Sort(known)
		return fmt.Errorf("%s %q: unexpected kind (known: %s); add a typed decoder and checks for it", gvk, head.Metadata.Name, strings.Join(known, ", "))
	}
	if err := decode(m, doc); err != nil {
		return fmt.Errorf("%s %q: %w", gvk, head.Metadata.Name, err)
	}
	return nil
}

// build runs kustomize on dir in memory and decodes the result.
func build(dir string) (*manifests, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	m := new(manifests)
	for _, r := range res.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		if err := m.add(doc); err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
	}
	return m, nil
}

// clone deep-copies m, for tests that break a copy.
func (m *manifests) clone() *manifests {
	c := new(manifests)
	for _, o := range m.deployments {
		c.deployments = append(c.deployments, o.DeepCopy())
	}
	for _, o := range m.services {
		c.services = append(c.services, o.DeepCopy())
	}
	for _, o := range m.configMaps {
		c.configMaps = append(c.configMaps, o.DeepCopy())
	}
	for _, o := range m.secrets {
		c.secrets = append(c.secrets, o.DeepCopy())
	}
	for _, o := range m.serviceAccounts {
		c.serviceAccounts = append(c.serviceAccounts, o.DeepCopy())
	}
	for _, o := range m.pdbs {
		c.pdbs = append(c.pdbs, o.DeepCopy())
	}
	for _, o := range m.hpas {
		c.hpas = append(c.hpas, o.DeepCopy())
	}
	return c
}

// metas lists every object's kind and metadata.
func (m *manifests) metas() map[string]*metav1.ObjectMeta {
	out := map[string]*metav1.ObjectMeta{}
	for _, o := range m.deployments {
		out["Deployment/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.services {
		out["Service/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.configMaps {
		out["ConfigMap/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.secrets {
		out["Secret/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.serviceAccounts {
		out["ServiceAccount/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.pdbs {
		out["PodDisruptionBudget/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.hpas {
		out["HorizontalPodAutoscaler/"+o.Name] = &o.ObjectMeta
	}
	return out
}

// gatewayContainerName is the gateway's container in the Deployment.
const gatewayContainerName = "crowdgate"

// gateway returns the one Deployment and its gateway container.
func (m *manifests) gateway() (*appsv1.Deployment, *corev1.Container, error) {
	if len(m.deployments) != 1 {
		return nil, nil, fmt.Errorf("want exactly one Deployment, got %d", len(m.deployments))
	}
	d := m.deployments[0]
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == gatewayContainerName {
			return d, c, nil
		}
	}
	return nil, nil, fmt.Errorf("Deployment %s has no container named %q", d.Name, gatewayContainerName)
}

func (m *manifests) configMap(name string) *corev1.ConfigMap {
	for _, o := range m.configMaps {
		if o.Name == name {
			return o
		}
	}
	return nil
}

func (m *manifests) secret(name string) *corev1.Secret {
	for _, o := range m.secrets {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// secretValue is a Secret's value for key, from data or stringData.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// env resolves every variable of c to the value the pod gets: a literal, or
// the key of a ConfigMap or Secret in the build. Unresolvable references are
// errors.
func (m *manifests) env(c *corev1.Container) (map[string]string, []error) {
	vals := map[string]string{}
	var errs []error
	for _, e := range c.Env {
		if _, dup := vals[e.Name]; dup {
			errs = append(errs, fmt.Errorf("env %s is set twice", e.Name))
		}
		switch {
		case e.ValueFrom == nil:
			vals[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if ref.Optional != nil && *ref.Optional {
				errs = append(errs, fmt.Errorf("env %s: optional ConfigMap reference: a missing key must stop the pod, not fall back to a default", e.Name))
			}
			cm := m.configMap(ref.Name)
			if cm == nil {
				errs = append(errs, fmt.Errorf("env %s: ConfigMap %q is not in the build", e.Name, ref.Name))
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				errs = append(errs, fmt.Errorf("env %s: ConfigMap %q has no key %q", e.Name, ref.Name, ref.Key))
				continue
			}
			vals[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Optional != nil && *ref.Optional {
				errs = append(errs, fmt.Errorf("env %s: optional Secret reference: a missing key must stop the pod", e.Name))
			}
			s := m.secret(ref.Name)
			if s == nil {
				errs = append(errs, fmt.Errorf("env %s: Secret %q is not in the build", e.Name, ref.Name))
				continue
			}
			v, ok := secretValue(s, ref.Key)
			if !ok {
				errs = append(errs, fmt.Errorf("env %s: Secret %q has no key %q", e.Name, ref.Name, ref.Key))
				continue
			}
			vals[e.Name] = v
		default:
			// Downward API values are known only in the cluster.
			vals[e.Name] = ""
		}
	}
	for _, f := range c.EnvFrom {
		switch {
		case f.ConfigMapRef != nil:
			cm := m.configMap(f.ConfigMapRef.Name)
			if cm == nil {
				errs = append(errs, fmt.Errorf("envFrom: ConfigMap %q is not in the build", f.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				vals[f.Prefix+k] = v
			}
		case f.SecretRef != nil:
			s := m.secret(f.SecretRef.Name)
			if s == nil {
				errs = append(errs, fmt.Errorf("envFrom: Secret %q is not in the build", f.SecretRef.Name))
				continue
			}
			for k := range s.Data {
				vals[f.Prefix+k], _ = secretValue(s, k)
			}
			for k, v := range s.StringData {
				vals[f.Prefix+k] = v
			}
		}
	}
	return vals, errs
}

// listenPort is the port of a listen address such as ":8080".
func listenPort(addr string) (int32, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("listen address %q: want a fixed port", addr)
	}
	return int32(n), nil
}

// containerPort resolves a probe's or Service's target port (a name or a
// number) to one of c's declared ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && p.StrVal == cp.Name) || (p.Type == intstr.Int && p.IntVal == cp.ContainerPort) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// selects reports whether every key and value of selector is in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// check is one property every build must have. run returns what is wrong.
type check struct {
	name string
	run  func(m *manifests, env environment) []error
}

var checks = []check{
	{"objects", checkObjects},
	{"config references", checkConfigRefs},
	{"gateway accepts the configuration", checkConfigLoads},
	{"probes", checkProbes},
	{"services", checkServices},
	{"replicas and autoscaling", checkReplicas},
	{"disruption budget", checkDisruptionBudget},
	{"graceful shutdown", checkShutdown},
	{"security", checkSecurity},
	{"resources", checkResources},
	{"topology spread", checkSpread},
	{"metrics scraping", checkScrape},
	{"image", checkImage},
	{"redis", checkRedis},
	{"toloka", checkToloka},
	{"authentication", checkAuth},
	{"secret placeholders", checkPlaceholders},
}

func checkObjects(m *manifests, env environment) []error {
	var errs []error
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		errs = append(errs, fmt.Errorf("Deployment %s: want one container, got %d", d.Name, n))
	}
	if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || len(d.Spec.Selector.MatchExpressions) > 0 {
		errs = append(errs, fmt.Errorf("Deployment %s: selector must be matchLabels that the pod template carries", d.Name))
	}
	if len(m.hpas) != 1 || len(m.pdbs) != 1 {
		errs = append(errs, fmt.Errorf("want one HorizontalPodAutoscaler and one PodDisruptionBudget, got %d and %d", len(m.hpas), len(m.pdbs)))
	}
	for what, meta := range m.metas() {
		if meta.Namespace != env.namespace {
			errs = append(errs, fmt.Errorf("%s: namespace %q, want %q", what, meta.Namespace, env.namespace))
		}
		for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
			errs = append(errs, fmt.Errorf("%s: name: %s", what, msg))
		}
		for k, v := range meta.Labels {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				errs = append(errs, fmt.Errorf("%s: label %s=%s: %s", what, k, v, msg))
			}
		}
	}
	for _, s := range m.services {
		for _, msg := range validation.IsDNS1035Label(s.Name) {
			errs = append(errs, fmt.Errorf("Service %s: name: %s", s.Name, msg))
		}
	}
	for _, p := range c.Ports {
		for _, msg := range validation.IsValidPortName(p.Name) {
			errs = append(errs, fmt.Errorf("container port %d: name %q: %s", p.ContainerPort, p.Name, msg))
		}
	}
	if sa := d.Spec.Template.Spec.ServiceAccountName; sa != "" && !slices.ContainsFunc(m.serviceAccounts, func(o *corev1.ServiceAccount) bool { return o.Name == sa }) {
		errs = append(errs, fmt.Errorf("Deployment %s: ServiceAccount %q is not in the build", d.Name, sa))
	}
	return errs
}

func checkConfigRefs(m *manifests, _ environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	_, errs := m.env(c)
	// Every key of a ConfigMap or Secret the gateway uses is read: a key
	// nobody reads is a setting an operator believes in that does nothing.
	used := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			used["ConfigMap/"+e.ValueFrom.ConfigMapKeyRef.Name+"/"+e.ValueFrom.ConfigMapKeyRef.Key] = true
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			used["Secret/"+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key] = true
		}
	}
	for _, cm := range m.configMaps {
		for k := range cm.Data {
			if !used["ConfigMap/"+cm.Name+"/"+k] {
				errs = append(errs, fmt.Errorf("ConfigMap %s: key %s is not passed to the gateway", cm.Name, k))
			}
		}
	}
	for _, s := range m.secrets {
		for k := range s.Data {
			if !used["Secret/"+s.Name+"/"+k] {
				errs = append(errs, fmt.Errorf("Secret %s: key %s is not passed to the gateway", s.Name, k))
			}
		}
	}
	return errs
}

// runtimeEnv are variables the Go runtime reads.
var runtimeEnv = []string{"GOMEMLIMIT", "GOGC", "GODEBUG", "GOMAXPROCS"}

// envLiteral is a Go string literal that is exactly an environment variable
// name of Crowdgate's.
var envLiteral = regexp.MustCompile(`"((?:CROWDGATE|REDIS|TOLOKA)_[A-Z0-9_]+)"`)

// codeEnvDirs hold the code that reads settings outside gateway.Settings
// (the binary's own flags, the outbox tuning in wire_submissions.go).
var codeEnvDirs = []string{"../../cmd/crowdgate", "../../services/gateway"}

// knownEnv is every variable the gateway container may be given: the
// settings of gateway.Settings, the Go runtime's, and the names the
// gateway's code reads outside Settings (string literals in codeEnvDirs).
func knownEnv() map[string]bool {
	known := map[string]bool{}
	for _, s := range gateway.Settings() {
		known[s.Env] = true
	}
	for _, n := range runtimeEnv {
		known[n] = true
	}
	for _, dir := range codeEnvDirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, m := range envLiteral.FindAllStringSubmatch(string(src), -1) {
				known[m[1]] = true
			}
		}
	}
	return known
}

// checkConfigLoads passes the pods' environment through the gateway's own
// configuration loader: a value the binary would refuse fails here, not in
// a crash-looping rollout. Unknown variable names (typos) fail too.
func checkConfigLoads(m *manifests, _ environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, errs := m.env(c)
	if len(errs) > 0 {
		return errs
	}
	return configErrors(vals)
}

// configErrors reports unknown names in vals and what gateway.Load says of them.
func configErrors(vals map[string]string) []error {
	var errs []error
	known := knownEnv()
	for name := range vals {
		if !known[name] {
			errs = append(errs, fmt.Errorf("env %s is not a gateway setting (services/gateway/config.go), a Go runtime variable or a name the gateway's code reads", name))
		}
	}
	if _, err := gateway.Load(nil, func(k string) string { return vals[k] }, io.Discard); err != nil {
		errs = append(errs, fmt.Errorf("gateway.Load refuses the configuration: %w", err))
	}
	return errs
}

func checkProbes(m *manifests, _ environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	httpPort, err := listenPort(vals["CROWDGATE_HTTP_ADDR"])
	if err != nil {
		return []error{fmt.Errorf("CROWDGATE_HTTP_ADDR: %w", err)}
	}
	var errs []error
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		paths []string
	}{
		// Readiness includes Redis and turns off at SIGTERM.
		{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}},
		// Liveness must not include Redis: a Redis outage is no reason to
		// restart every replica at once.
		{"livenessProbe", c.LivenessProbe, []string{"/healthz"}},
		{"startupProbe", c.StartupProbe, []string{"/healthz", "/readyz"}},
	} {
		if p.probe == nil {
			errs = append(errs, fmt.Errorf("%s is missing", p.name))
			continue
		}
		get := p.probe.HTTPGet
		if get == nil {
			errs = append(errs, fmt.Errorf("%s: want an HTTP GET", p.name))
			continue
		}
		if !slices.Contains(p.paths, get.Path) {
			errs = append(errs, fmt.Errorf("%s: path %q, want %s", p.name, get.Path, strings.Join(p.paths, " or ")))
		}
		if get.Scheme != "" && get.Scheme != corev1.URISchemeHTTP {
			errs = append(errs, fmt.Errorf("%s: scheme %s, the gateway serves plain HTTP", p.name, get.Scheme))
		}
		cp, ok := containerPort(c, get.Port)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: port %s is not a declared containerPort", p.name, get.Port.String()))
		case cp.ContainerPort != httpPort:
			errs = append(errs, fmt.Errorf("%s: port %d, but the gateway serves HTTP on %d (CROWDGATE_HTTP_ADDR)", p.name, cp.ContainerPort, httpPort))
		}
	}
	return errs
}

func checkServices(m *manifests, _ environment) []error {
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	var errs []error
	want := map[string]int32{}
	for proto, key := range map[string]string{"http": "CROWDGATE_HTTP_ADDR", "grpc": "CROWDGATE_GRPC_ADDR"} {
		p, err := listenPort(vals[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		want[proto] = p
	}
	exposed := map[string]bool{}
	for _, s := range m.services {
		if !selects(s.Spec.Selector, d.Spec.Template.Labels) {
			errs = append(errs, fmt.Errorf("Service %s: selector %v does not select the gateway pods (labels %v)", s.Name, s.Spec.Selector, d.Spec.Template.Labels))
		}
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			cp, ok := containerPort(c, target)
			if !ok {
				errs = append(errs, fmt.Errorf("Service %s port %s: targetPort %s is not a declared containerPort", s.Name, sp.Name, target.String()))
				continue
			}
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				errs = append(errs, fmt.Errorf("Service %s port %s: protocol %s, want TCP", s.Name, sp.Name, sp.Protocol))
			}
			if sp.AppProtocol == nil {
				errs = append(errs, fmt.Errorf("Service %s port %s: no appProtocol", s.Name, sp.Name))
				continue
			}
			if p, ok := want[*sp.AppProtocol]; ok && p == cp.ContainerPort {
				exposed[*sp.AppProtocol] = true
			} else {
				errs = append(errs, fmt.Errorf("Service %s port %s: appProtocol %s targets container port %d, where the gateway serves %v", s.Name, sp.Name, *sp.AppProtocol, cp.ContainerPort, want))
			}
		}
	}
	for _, proto := range []string{"http", "grpc"} {
		if !exposed[proto] {
			errs = append(errs, fmt.Errorf("no Service exposes the gateway's %s port with appProtocol %s", proto, proto))
		}
	}
	return errs
}

// hpa returns the one HorizontalPodAutoscaler.
func (m *manifests) hpa() (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if len(m.hpas) != 1 {
		return nil, fmt.Errorf("want one HorizontalPodAutoscaler, got %d", len(m.hpas))
	}
	return m.hpas[0], nil
}

// minReplicas is the replica floor: the HPA's minReplicas (default 1).
func minReplicas(h *autoscalingv2.HorizontalPodAutoscaler) int32 {
	if h.Spec.MinReplicas == nil {
		return 1
	}
	return *h.Spec.MinReplicas
}

func checkReplicas(m *manifests, env environment) []error {
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	h, err := m.hpa()
	if err != nil {
		return []error{err}
	}
	var errs []error
	if d.Spec.Replicas != nil {
		errs = append(errs, fmt.Errorf("Deployment %s sets spec.replicas: leave it to the HorizontalPodAutoscaler, or every apply resets the scale", d.Name))
	}
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s scales %s %s %s, not Deployment %s", h.Name, ref.APIVersion, ref.Kind, ref.Name, d.Name))
	}
	if lo := minReplicas(h); lo < max(env.minReplicas, 2) {
		errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: minReplicas %d, want at least %d", h.Name, lo, max(env.minReplicas, 2)))
	} else if h.Spec.MaxReplicas < lo {
		errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: maxReplicas %d below minReplicas %d", h.Name, h.Spec.MaxReplicas, lo))
	}
	cpu := false
	for _, mt := range h.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
			mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil {
			cpu = true
			if u := *mt.Resource.Target.AverageUtilization; u < 30 || u > 90 {
				errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: CPU target %d%% is outside 30..90%%", h.Name, u))
			}
		}
	}
	if !cpu {
		errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: no CPU utilization target", h.Name))
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		errs = append(errs, fmt.Errorf("container %s has no CPU request: CPU utilization is relative to it", c.Name))
	}
	return errs
}

func checkDisruptionBudget(m *manifests, _ environment) []error {
	d, _, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	h, err := m.hpa()
	if err != nil {
		return []error{err}
	}
	if len(m.pdbs) != 1 {
		return []error{fmt.Errorf("want one PodDisruptionBudget, got %d", len(m.pdbs))}
	}
	p := m.pdbs[0]
	var errs []error
	if p.Spec.Selector == nil || !selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		errs = append(errs, fmt.Errorf("PodDisruptionBudget %s does not select the gateway pods", p.Name))
	}
	floor := minReplicas(h)
	switch {
	case p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil:
		errs = append(errs, fmt.Errorf("PodDisruptionBudget %s sets both minAvailable and maxUnavailable", p.Name))
	case p.Spec.MinAvailable != nil:
		// Percentages round up, as the disruption controller does.
		n, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, int(floor), true)
		if err != nil {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: minAvailable: %w", p.Name, err))
		} else if n < 1 || int32(n) >= floor {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: minAvailable %s is %d of %d replicas: want at least 1 and fewer than the replica floor, or no drain can proceed", p.Name, p.Spec.MinAvailable.String(), n, floor))
		}
	case p.Spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, int(floor), false)
		if err != nil || n < 1 || int32(n) >= floor {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: maxUnavailable %s must allow 1 and keep one of %d", p.Name, p.Spec.MaxUnavailable.String(), floor))
		}
	default:
		errs = append(errs, fmt.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", p.Name))
	}
	return errs
}

// workerMargin is what the grace period keeps beyond drain + timeout: after
// the servers stop, the outbox workers finish their current delivery.
const workerMargin = 5 * time.Second

func checkShutdown(m *manifests, _ environment) []error {
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	var errs []error
	dur := func(key string) time.Duration {
		v, err := time.ParseDuration(vals[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: %w", key, vals[key], err))
		}
		return v
	}
	drain, timeout := dur("CROWDGATE_SHUTDOWN_DRAIN"), dur("CROWDGATE_SHUTDOWN_TIMEOUT")
	if len(errs) > 0 {
		return errs
	}
	if drain <= 0 {
		errs = append(errs, errors.New("CROWDGATE_SHUTDOWN_DRAIN is zero: the pod would stop taking connections before load balancers stop sending them"))
	}
	g := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if g == nil {
		errs = append(errs, errors.New("terminationGracePeriodSeconds is not set (the default 30 s is not derived from the shutdown settings)"))
	} else if grace := time.Duration(*g) * time.Second; grace < drain+timeout+workerMargin {
		errs = append(errs, fmt.Errorf("terminationGracePeriodSeconds %v, want at least drain %v + timeout %v + %v for the workers: SIGKILL would cut the shutdown short", grace, drain, timeout, workerMargin))
	}
	if r := c.ReadinessProbe; r != nil {
		detect := time.Duration(max(r.PeriodSeconds, 1)*max(r.FailureThreshold, 1)) * time.Second
		if detect >= drain {
			errs = append(errs, fmt.Errorf("readiness takes up to %v to see NOT_SERVING, not less than the %v drain: traffic would still arrive when the servers stop", detect, drain))
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		errs = append(errs, errors.New("preStop hook: the gateway drains itself on SIGTERM; a hook adds unaccounted time to the grace period"))
	}
	return errs
}

func checkSecurity(m *manifests, _ environment) []error {
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	spec := d.Spec.Template.Spec
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		bad("pod securityContext.runAsNonRoot must be true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		bad("pod securityContext.runAsUser must be a non-zero UID")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("pod securityContext.seccompProfile must be RuntimeDefault")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad("automountServiceAccountToken must be false: the gateway calls no Kubernetes API")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		bad("the pod must not share the host's network, PID or IPC namespace")
	}
	sc := c.SecurityContext
	if sc == nil {
		return append(errs, fmt.Errorf("container %s has no securityContext", c.Name))
	}
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		bad("container %s: runAsNonRoot false", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		bad("container %s: privileged", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		bad("container %s: capabilities must drop ALL and add none", c.Name)
	}
	return errs
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: bytes with an optional B, KiB,
// MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q: want a size like 460MiB", s)
	}
	return n * mult, nil
}

func checkResources(m *manifests, _ environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[name]
		lim, okLim := c.Resources.Limits[name]
		if !okReq || !okLim {
			errs = append(errs, fmt.Errorf("container %s: %s needs both a request and a limit", c.Name, name))
			continue
		}
		if req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("container %s: %s request %s above limit %s", c.Name, name, req.String(), lim.String()))
		}
	}
	vals, _ := m.env(c)
	if v, ok := vals["GOMEMLIMIT"]; ok {
		limit := c.Resources.Limits[corev1.ResourceMemory]
		soft, err := parseGoMemLimit(v)
		switch {
		case err != nil:
			errs = append(errs, err)
		case soft >= limit.Value():
			errs = append(errs, fmt.Errorf("GOMEMLIMIT %s is not below the memory limit %s: the GC would not act before the OOM killer", v, limit.String()))
		case soft < limit.Value()*7/10:
			errs = append(errs, fmt.Errorf("GOMEMLIMIT %s wastes more than 30%% of the memory limit %s", v, limit.String()))
		}
	}
	return errs
}

func checkSpread(m *manifests, _ environment) []error {
	d, _, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	var errs []error
	zone := false
	for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
			errs = append(errs, fmt.Errorf("topologySpreadConstraint on %s does not select the gateway pods", tsc.TopologyKey))
		}
		if tsc.TopologyKey == corev1.LabelTopologyZone {
			zone = true
		}
	}
	if !zone {
		errs = append(errs, fmt.Errorf("no topologySpreadConstraint on %s: one zone's outage could take every replica", corev1.LabelTopologyZone))
	}
	return errs
}

func checkScrape(m *manifests, _ environment) []error {
	d, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	a := d.Spec.Template.Annotations
	var errs []error
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
		errs = append(errs, fmt.Errorf("pod annotations: want prometheus.io/scrape \"true\" and prometheus.io/path /metrics, got %q and %q", a["prometheus.io/scrape"], a["prometheus.io/path"]))
	}
	port, err := strconv.ParseInt(a["prometheus.io/port"], 10, 32)
	if err != nil {
		return append(errs, fmt.Errorf("prometheus.io/port %q is not a number", a["prometheus.io/port"]))
	}
	vals, _ := m.env(c)
	httpPort, _ := listenPort(vals["CROWDGATE_HTTP_ADDR"])
	if _, ok := containerPort(c, intstr.FromInt32(int32(port))); !ok || int32(port) != httpPort {
		errs = append(errs, fmt.Errorf("prometheus.io/port %d is not the declared HTTP port %d that serves /metrics", port, httpPort))
	}
	return errs
}

// versionTag is a release tag: v1.2.3, optionally with a suffix.
var versionTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+.][0-9A-Za-z.-]+)?$`)

// imageTag splits an image reference into its tag and digest.
func imageTag(image string) (tag, digest string) {
	image, digest, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		tag = image[i+1:]
	}
	return tag, digest
}

func checkImage(m *manifests, env environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	var errs []error
	if !strings.Contains(c.Image, "/") {
		errs = append(errs, fmt.Errorf("image %q has no registry: the kustomization's images entry did not apply", c.Image))
	}
	tag, digest := imageTag(c.Image)
	switch {
	case tag == "" && digest == "":
		errs = append(errs, fmt.Errorf("image %q has no tag, which means latest: set one in the overlay's images entry", c.Image))
	case env.pinnedImage && digest == "" && !versionTag.MatchString(tag):
		errs = append(errs, fmt.Errorf("image %q: %s needs a version tag (v1.2.3) or a digest, never latest or a branch", c.Image, env.name))
	}
	return errs
}

func checkRedis(m *manifests, env environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	mode, raw := vals["REDIS_MODE"], vals["REDIS_URL"]
	if mode != env.redisMode {
		return []error{fmt.Errorf("REDIS_MODE %q, want %q in %s", mode, env.redisMode, env.name)}
	}
	if raw == "" {
		return []error{errors.New("REDIS_URL is empty: the gateway would run an embedded Redis that forgets everything at restart")}
	}
	if vals["CROWDGATE_REDIS_PREFIX"] == "" {
		return []error{errors.New("CROWDGATE_REDIS_PREFIX is empty")}
	}
	// Submit WAITs for this many Redis replicas. Without replicas (standalone)
	// every Submit would wait out the replica timeout; with them, 0 lets a
	// failover lose submits Crowdgate already acknowledged.
	minReplicas, err := strconv.Atoi(cmp.Or(vals["CROWDGATE_SUBMIT_MIN_REPLICAS"], "0"))
	switch {
	case err != nil:
		return []error{fmt.Errorf("CROWDGATE_SUBMIT_MIN_REPLICAS %q is not a number", vals["CROWDGATE_SUBMIT_MIN_REPLICAS"])}
	case mode == "standalone" && minReplicas > 0:
		return []error{fmt.Errorf("CROWDGATE_SUBMIT_MIN_REPLICAS %d with standalone Redis: no replica will ever answer WAIT, so every Submit waits out the timeout", minReplicas)}
	case mode != "standalone" && minReplicas < 1:
		return []error{fmt.Errorf("CROWDGATE_SUBMIT_MIN_REPLICAS %d with %s Redis: a failover would lose submits already acknowledged; want at least 1", minReplicas, mode)}
	}
	switch mode {
	case "standalone":
		if _, err := redis.ParseURL(raw); err != nil {
			return []error{fmt.Errorf("REDIS_URL: %w", err)}
		}
	case "sentinel":
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return []error{fmt.Errorf("REDIS_URL: %w", err)}
		}
		if o.MasterName == "" {
			return []error{errors.New("REDIS_URL: sentinel mode needs ?master_name=")}
		}
		if len(o.SentinelAddrs) < 3 {
			return []error{fmt.Errorf("REDIS_URL names %d Sentinels; a failover quorum needs at least 3", len(o.SentinelAddrs))}
		}
	case "cluster":
		o, err := redis.ParseClusterURL(raw)
		if err != nil {
			return []error{fmt.Errorf("REDIS_URL: %w", err)}
		}
		if len(o.Addrs) < 3 {
			return []error{fmt.Errorf("REDIS_URL names %d seed nodes; give at least 3 so one node down does not stop the client from starting", len(o.Addrs))}
		}
	}
	return nil
}

// tolokaSandboxHost is the host of Toloka's sandbox API.
const tolokaSandboxHost = "sandbox.toloka.dev"

func checkToloka(m *manifests, env environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	var errs []error
	for _, key := range []string{"TOLOKA_PRODUCTION_URL", "TOLOKA_SANDBOX_URL"} {
		u, err := url.Parse(vals[key])
		if err != nil || u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("%s %q: Toloka is reached over https only", key, vals[key]))
			continue
		}
		if env.sandboxOnly && u.Host != tolokaSandboxHost {
			errs = append(errs, fmt.Errorf("%s %q: %s must reach only Toloka's sandbox (%s): no real money", key, vals[key], env.name, tolokaSandboxHost))
		}
	}
	return errs
}

// checkAuth requires authentication on every deployed environment.
func checkAuth(m *manifests, _ environment) []error {
	_, c, err := m.gateway()
	if err != nil {
		return []error{err}
	}
	vals, _ := m.env(c)
	mode, err := access.ParseMode(vals["CROWDGATE_AUTH"])
	if err != nil {
		return []error{fmt.Errorf("CROWDGATE_AUTH: %w", err)}
	}
	if mode != access.ModeKeys {
		return []error{fmt.Errorf("CROWDGATE_AUTH %q: a deployed gateway must authenticate every call (keys)", mode)}
	}
	return nil
}

// checkPlaceholders keeps real secrets out of git: every Secret value in the
// manifests is a visible placeholder, and the encryption key placeholder is
// one the gateway refuses, so a pod never runs with it.
func checkPlaceholders(m *manifests, _ environment) []error {
	var errs []error
	for _, s := range m.secrets {
		for k, v := range s.Data {
			if !strings.Contains(strings.ToUpper(string(v)), "CHANGE") {
				errs = append(errs, fmt.Errorf("Secret %s key %s does not look like a placeholder (no CHANGE in it): never commit real secrets", s.Name, k))
			}
		}
		for k := range s.StringData {
			errs = append(errs, fmt.Errorf("Secret %s key %s: use the secretGenerator, not stringData", s.Name, k))
		}
		if v, ok := secretValue(s, "CROWDGATE_ENCRYPTION_KEY"); ok {
			if _, err := secretbox.ParseKey(v); err == nil {
				errs = append(errs, fmt.Errorf("Secret %s: CROWDGATE_ENCRYPTION_KEY is a usable key: a real key must never be in git", s.Name))
			}
		}
		if v, ok := secretValue(s, "CROWDGATE_ADMIN_KEY"); ok && len(v) >= access.MinSecretLength {
			errs = append(errs, fmt.Errorf("Secret %s: the CROWDGATE_ADMIN_KEY placeholder has %d characters, so the gateway would accept it as a working admin key: keep it under %d", s.Name, len(v), access.MinSecretLength))
		}
	}
	return errs
}

// TestKustomizeOverlays builds every environment and runs every check on it.
func TestKustomizeOverlays(t *testing.T) {
	for _, env := range environments {
		// Not parallel: kustomize (kyaml) loads its OpenAPI schema into
		// package globals without a lock, and two builds at once race on it.
		t.Run(env.name, func(t *testing.T) {
			m, err := build(env.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					for _, err := range c.run(m, env) {
						t.Error(err)
					}
				})
			}
		})
	}
}

// TestChecksCatchBreakage breaks one thing at a time in a copy of a real
// build and expects the responsible check to say so: the checks above can
// fail.
func TestChecksCatchBreakage(t *testing.T) {
	builds := map[string]*manifests{}
	envs := map[string]environment{}
	for _, env := range environments {
		m, err := build(env.dir)
		if err != nil {
			t.Fatal(err)
		}
		builds[env.name], envs[env.name] = m, env
	}
	container := func(m *manifests) *corev1.Container { _, c, _ := m.gateway(); return c }
	podSpec := func(m *manifests) *corev1.PodSpec { return &m.deployments[0].Spec.Template.Spec }
	setConfig := func(m *manifests, key, value string) {
		for _, cm := range m.configMaps {
			cm.Data[key] = value
		}
	}
	setSecret := func(m *manifests, key, value string) {
		for _, s := range m.secrets {
			s.Data[key] = []byte(value)
		}
	}
	for _, tc := range []struct {
		name   string
		env    string
		check  string
		break_ func(m *manifests)
		want   string
	}{
		{"readiness on the liveness path", "staging", "probes",
			func(m *manifests) { container(m).ReadinessProbe.HTTPGet.Path = "/healthz" }, `path "/healthz", want /readyz`},
		{"liveness depends on Redis", "production", "probes",
			func(m *manifests) { container(m).LivenessProbe.HTTPGet.Path = "/readyz" }, "want /healthz"},
		{"probe on an undeclared port", "staging", "probes",
			func(m *manifests) { container(m).LivenessProbe.HTTPGet.Port = intstr.FromString("admin") }, "not a declared containerPort"},
		{"probe on the gRPC port", "staging", "probes",
			func(m *manifests) { container(m).ReadinessProbe.HTTPGet.Port = intstr.FromString("grpc") }, "serves HTTP on 8080"},
		{"no startup probe", "staging", "probes",
			func(m *manifests) { container(m).StartupProbe = nil }, "startupProbe is missing"},
		{"env from a missing ConfigMap key", "staging", "config references",
			func(m *manifests) { container(m).Env[0].ValueFrom.ConfigMapKeyRef.Key = "NOPE" }, `has no key "NOPE"`},
		{"env from a missing Secret", "production", "config references",
			func(m *manifests) {
				for i := range container(m).Env {
					if r := container(m).Env[i].ValueFrom; r != nil && r.SecretKeyRef != nil {
						r.SecretKeyRef.Name = "other"
					}
				}
			}, `Secret "other" is not in the build`},
		{"ConfigMap key nobody reads", "staging", "config references",
			func(m *manifests) { setConfig(m, "CROWDGATE_UNUSED", "x") }, "key CROWDGATE_UNUSED is not passed"},
		{"misspelled setting", "staging", "gateway accepts the configuration",
			func(m *manifests) {
				container(m).Env = append(container(m).Env, corev1.EnvVar{Name: "CROWDGATE_SHUTDOWN_DRIAN", Value: "10s"})
			}, "CROWDGATE_SHUTDOWN_DRIAN is not a gateway setting"},
		{"value the gateway refuses", "production", "gateway accepts the configuration",
			func(m *manifests) { setConfig(m, "CROWDGATE_LOG_FORMAT", "xml") }, "CROWDGATE_LOG_FORMAT"},
		{"Service selects other pods", "staging", "services",
			func(m *manifests) { m.services[0].Spec.Selector = map[string]string{"app.kubernetes.io/name": "other"} }, "does not select the gateway pods"},
		{"gRPC Service without appProtocol", "production", "services",
			func(m *manifests) {
				for _, s := range m.services {
					for i := range s.Spec.Ports {
						if *s.Spec.Ports[i].AppProtocol == "grpc" {
							s.Spec.Ports[i].AppProtocol = nil
						}
					}
				}
			}, "no Service exposes the gateway's grpc port"},
		{"gateway listens elsewhere than the Service targets", "staging", "services",
			func(m *manifests) { setConfig(m, "CROWDGATE_GRPC_ADDR", ":9999") }, "appProtocol grpc targets container port 9090"},
		{"one replica", "staging", "replicas and autoscaling",
			func(m *manifests) { one := int32(1); m.hpas[0].Spec.MinReplicas = &one }, "minReplicas 1, want at least 2"},
		{"replicas in the Deployment", "production", "replicas and autoscaling",
			func(m *manifests) { three := int32(3); m.deployments[0].Spec.Replicas = &three }, "sets spec.replicas"},
		{"HPA scales something else", "staging", "replicas and autoscaling",
			func(m *manifests) { m.hpas[0].Spec.ScaleTargetRef.Name = "other" }, "not Deployment crowdgate"},
		{"no CPU request", "staging", "replicas and autoscaling",
			func(m *manifests) { delete(container(m).Resources.Requests, corev1.ResourceCPU) }, "no CPU request"},
		{"PDB as large as the floor", "staging", "disruption budget",
			func(m *manifests) { two := intstr.FromInt32(2); m.pdbs[0].Spec.MinAvailable = &two }, "fewer than the replica floor"},
		{"PDB of 100%", "production", "disruption budget",
			func(m *manifests) { all := intstr.FromString("100%"); m.pdbs[0].Spec.MinAvailable = &all }, "is 3 of 3 replicas"},
		{"grace shorter than drain + timeout", "production", "graceful shutdown",
			func(m *manifests) { g := int64(30); podSpec(m).TerminationGracePeriodSeconds = &g }, "SIGKILL would cut the shutdown short"},
		{"drain shorter than readiness detection", "staging", "graceful shutdown",
			func(m *manifests) { setConfig(m, "CROWDGATE_SHUTDOWN_DRAIN", "3s") }, "not less than the 3s drain"},
		{"preStop hook", "staging", "graceful shutdown",
			func(m *manifests) {
				container(m).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
			}, "preStop hook"},
		{"runs as root", "production", "security",
			func(m *manifests) { f := false; podSpec(m).SecurityContext.RunAsNonRoot = &f }, "runAsNonRoot must be true"},
		{"writable root filesystem", "staging", "security",
			func(m *manifests) { container(m).SecurityContext.ReadOnlyRootFilesystem = nil }, "readOnlyRootFilesystem must be true"},
		{"capability added", "staging", "security",
			func(m *manifests) { container(m).SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"} }, "drop ALL and add none"},
		{"no memory limit", "staging", "resources",
			func(m *manifests) { delete(container(m).Resources.Limits, corev1.ResourceMemory) }, "memory needs both"},
		{"GOMEMLIMIT above the limit", "production", "resources",
			func(m *manifests) { setConfig(m, "GOMEMLIMIT", "2GiB") }, "not below the memory limit"},
		{"request above limit", "staging", "resources",
			func(m *manifests) { container(m).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("4") }, "request 4 above limit"},
		{"no zone spread", "production", "topology spread",
			func(m *manifests) { podSpec(m).TopologySpreadConstraints = nil }, "no topologySpreadConstraint"},
		{"scrape port is gRPC", "staging", "metrics scraping",
			func(m *manifests) { m.deployments[0].Spec.Template.Annotations["prometheus.io/port"] = "9090" }, "not the declared HTTP port"},
		{"latest in production", "production", "image",
			func(m *manifests) { container(m).Image = "ghcr.io/crowdgate/crowdgate:latest" }, "never latest"},
		{"branch tag in production", "production", "image",
			func(m *manifests) { container(m).Image = "ghcr.io/crowdgate/crowdgate:main" }, "never latest or a branch"},
		{"untagged in staging", "staging", "image",
			func(m *manifests) { container(m).Image = "ghcr.io/crowdgate/crowdgate" }, "no tag, which means latest"},
		{"images entry not applied", "staging", "image",
			func(m *manifests) { container(m).Image = "crowdgate" }, "has no registry"},
		{"sentinel without master name", "staging", "redis",
			func(m *manifests) {
				setSecret(m, "REDIS_URL", "redis://:CHANGE-ME@s1:26379/0?addr=s2:26379&addr=s3:26379")
			}, "master_name"},
		{"one cluster seed", "production", "redis",
			func(m *manifests) { setSecret(m, "REDIS_URL", "redis://:CHANGE-ME@n1:6379") }, "1 seed nodes"},
		{"production on standalone Redis", "production", "redis",
			func(m *manifests) { setConfig(m, "REDIS_MODE", "standalone") }, `want "cluster"`},
		{"acknowledged before a replica has it", "production", "redis",
			func(m *manifests) { setConfig(m, "CROWDGATE_SUBMIT_MIN_REPLICAS", "0") }, "a failover would lose submits"},
		{"staging pays real money", "staging", "toloka",
			func(m *manifests) { setConfig(m, "TOLOKA_PRODUCTION_URL", "https://toloka.dev/api/v1") }, "no real money"},
		{"Toloka over plain HTTP", "production", "toloka",
			func(m *manifests) { setConfig(m, "TOLOKA_SANDBOX_URL", "http://sandbox.toloka.dev/api/v1") }, "https only"},
		{"real encryption key committed", "production", "secret placeholders",
			func(m *manifests) {
				setSecret(m, "CROWDGATE_ENCRYPTION_KEY", "CHANGEMECHANGEMECHANGEMECHANGEMECHANGEMECHA=")
			}, "usable key"},
		{"real password committed", "staging", "secret placeholders",
			func(m *manifests) { setSecret(m, "CROWDGATE_ADMIN_KEY", "s3cr3t") }, "does not look like a placeholder"},
		{"placeholder admin key the gateway accepts", "production", "secret placeholders",
			func(m *manifests) { setSecret(m, "CROWDGATE_ADMIN_KEY", "CHANGE-ME-CHANGE-ME-CHANGE-ME-CHANGE-ME") }, "working admin key"},
		{"authentication off", "production", "authentication",
			func(m *manifests) { setConfig(m, "CROWDGATE_AUTH", "off") }, "must authenticate every call"},
		{"authentication misspelled", "staging", "authentication",
			func(m *manifests) { setConfig(m, "CROWDGATE_AUTH", "apikeys") }, "want off or keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var run func(*manifests, environment) []error
			for _, c := range checks {
				if c.name == tc.check {
					run = c.run
				}
			}
			if run == nil {
				t.Fatalf("no check named %q", tc.check)
			}
			m := builds[tc.env].clone()
			if errs := run(m, envs[tc.env]); len(errs) > 0 {
				t.Fatalf("check %q fails before the change: %v", tc.check, errs)
			}
			tc.break_(m)
			errs := run(m, envs[tc.env])
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.want) }) {
				t.Errorf("check %q after the change = %v, want an error containing %q", tc.check, errs, tc.want)
			}
		})
	}
}

// TestStrictDecoding shows what the decoder refuses: fields and kinds the
// cluster does not know, and malformed values.
func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		doc     string
		wantErr string // empty: decodes
	}{
		{"known kind", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n", ""},
		{"misspelled field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replica: 2}\n", `unknown field "replica"`},
		{"field in the wrong place", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\nselector: {a: b}\n", `unknown field "selector"`},
		{"unknown kind", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n", "unexpected kind"},
		{"removed API version", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: p}\n", "unexpected kind"},
		{"wrong type", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {minReplicas: two}\n", "cannot unmarshal"},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  A: x\n  A: y\n", "already set"},
		{"bad quantity", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: c, resources: {limits: {cpu: lots}}}]\n", "quantities must match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := new(manifests).add([]byte(tc.doc))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("add = %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("add = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
