# Crowdgate's everyday commands. Everything runs offline once the Go module
# cache is filled: buf and the protoc plugins are Go tools pinned in go.mod.

.PHONY: run build test generate lint check-generated ci bench-webhooks bench-submits

# The build's stamp (crowdgate -version, tolokasim -version, the
# crowdgate_build_info metric), from git unless given: make build VERSION=v1.2.3.
# deploy/Dockerfile sets the same variables from its build arguments.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/crowdgate/crowdgate/services/platform/buildinfo
LDFLAGS    := -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT) -X $(BUILDINFO).BuildTime=$(BUILD_TIME)

# Run the gateway: embedded Redis and Toloka emulator unless configured.
run:
	go run -ldflags "$(LDFLAGS)" ./cmd/crowdgate -toloka-emulator=embedded -log-format=text

# Stamped binaries in bin/ (the images build theirs static and stripped:
# deploy/Dockerfile). Plain go build flags, so the test builds' cache serves.
build:
	go build -ldflags "$(LDFLAGS)" -o bin/crowdgate ./cmd/crowdgate
	go build -ldflags "$(LDFLAGS)" -o bin/tolokasim ./cmd/tolokasim

# The test command (CI runs it with REDIS_URL set and -race). The Redis
# Cluster reshard test runs without -race: go-redis races inside its
# cluster pipelines while slots move (services/gateway/reshard_cluster_test.go).
test:
	go test -race -count=1 ./...
	go test -count=1 -run '^TestShardsGrowAndSlotsMoveUnderLoadOnRedisCluster$$' ./services/gateway

# Regenerate gen/ from proto/ (clears the old output first).
generate:
	rm -rf gen/crowdgate gen/openapi/crowdgate.swagger.json
	go tool buf lint
	go tool buf generate

lint:
	go tool buf lint
	go vet ./...

# Fails when gen/ is not what `make generate` produces.
check-generated: generate
	@git add -N gen >/dev/null 2>&1 || true
	@if ! git diff --quiet -- gen; then \
		echo "gen/ is stale: run 'make generate' and commit the result" >&2; \
		git diff --stat -- gen >&2; exit 1; \
	fi

ci:
	bash .ci/run

# Webhook fan-out into one local endpoint beside that endpoint's own ceiling
# (wrk), measured in the same run (README, Webhook fan-out).
bench-webhooks:
	go run ./cmd/crowdload webhooks

bench-submits:
	go run ./cmd/crowdload submits
