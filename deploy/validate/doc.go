// Package validate checks Crowdgate's deployment files offline, as part of
// `go test ./...`: it builds every kustomize overlay under deploy/k8s in
// memory, decodes each resulting object strictly into its typed Kubernetes
// API struct (unknown fields and unknown kinds fail), and checks what a
// schema cannot (probes on the health endpoints and on declared ports, every
// referenced ConfigMap and Secret key present, Service selectors matching
// the pods, a disruption budget below the replica floor, a grace period
// longer than the shutdown sequence, pinned production images, non-root and
// read-only containers, Redis topology per environment). It checks the
// compose stack (as Docker Compose 1.29 accepts it), its load balancer,
// Prometheus configuration, alert rules, Grafana provisioning and the
// image build's version stamping the same way, and checks every metric the
// alert rules and the Grafana dashboard query against the /metrics of a
// gateway it starts and exercises (metrics_test.go).
//
// The package has no code of its own outside its tests.
package validate
