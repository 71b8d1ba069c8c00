package gateway

import (
	"fmt"
	"os"
	"strconv"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/submission"
)

// wireSubmissions builds the submission outbox and its delivery workers.
func wireSubmissions(d *deps) error {
	cfg := submission.Config{
		Redis:    d.redis,
		Prefix:   d.prefix,
		Sessions: d.sessions,
		Pools:    d.pools,
		Projects: d.projects,
		Toloka:   submission.ViaAccounts(d.credentials),
		Log:      d.log,
		Metrics:  d.metrics,
	}
	if err := submissionEnv(&cfg, os.Getenv); err != nil {
		return err
	}
	svc, err := submission.New(cfg)
	if err != nil {
		return err
	}
	d.submissions = svc
	// Archiving a project waits until its pools' submits are delivered.
	d.projects.AddWorkChecker(svc)
	crowdgatev1.RegisterSubmissionServiceServer(d.grpc, svc)
	d.workers = append(d.workers, svc.Run)
	return nil
}

// submissionEnv reads the outbox's tuning from the environment (unset
// variables keep submission's defaults):
//
//	CROWDGATE_SUBMIT_SYNC_TIMEOUT        how long Submit waits for Toloka (2s; negative: never)
//	CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT     bound of one delivery attempt (10s)
//	CROWDGATE_SUBMIT_LEASE_TTL           per-submission delivery lease (attempt timeout + 5s)
//	CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT  idle time after which another replica reclaims an entry (30s)
//	CROWDGATE_SUBMIT_BASE_BACKOFF        first retry backoff (1s)
//	CROWDGATE_SUBMIT_MAX_BACKOFF         longest retry backoff (5m)
//	CROWDGATE_SUBMIT_CONCURRENCY         deliveries in flight per replica (32)
//	CROWDGATE_SUBMIT_MIN_REPLICAS        Redis replicas that must have a submit before Submit answers (0)
func submissionEnv(cfg *submission.Config, getenv func(string) string) error {
	durations := []struct {
		env string
		dst *time.Duration
	}{
		{"CROWDGATE_SUBMIT_SYNC_TIMEOUT", &cfg.SyncTimeout},
		{"CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT", &cfg.AttemptTimeout},
		{"CROWDGATE_SUBMIT_LEASE_TTL", &cfg.LeaseTTL},
		{"CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT", &cfg.VisibilityTimeout},
		{"CROWDGATE_SUBMIT_BASE_BACKOFF", &cfg.BaseBackoff},
		{"CROWDGATE_SUBMIT_MAX_BACKOFF", &cfg.MaxBackoff},
	}
	for _, e := range durations {
		if v := getenv(e.env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: want a duration like 2s, got %q", e.env, v)
			}
			*e.dst = d
		}
	}
	ints := []struct {
		env string
		dst *int
	}{
		{"CROWDGATE_SUBMIT_CONCURRENCY", &cfg.Concurrency},
		{"CROWDGATE_SUBMIT_MIN_REPLICAS", &cfg.MinReplicas},
	}
	for _, e := range ints {
		if v := getenv(e.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%s: want a non-negative integer, got %q", e.env, v)
			}
			*e.dst = n
		}
	}
	return nil
}
