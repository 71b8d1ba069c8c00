# Crowdgate's everyday commands. Everything runs offline once the Go module
# cache is filled: buf and the protoc plugins are Go tools pinned in go.mod.

.PHONY: run test generate lint check-generated ci

# Run the gateway: embedded Redis and Toloka emulator unless configured.
run:
	go run ./cmd/crowdgate -toloka-emulator=embedded -log-format=text

# The test command (CI runs it with REDIS_URL set and -race).
test:
	go test -race -count=1 ./...

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
