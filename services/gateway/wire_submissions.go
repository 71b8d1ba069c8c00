package gateway

import (
	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
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

		SyncTimeout:       d.cfg.SubmitSyncTimeout,
		AttemptTimeout:    d.cfg.SubmitAttemptTimeout,
		LeaseTTL:          d.cfg.SubmitLeaseTTL,
		VisibilityTimeout: d.cfg.SubmitVisibilityTimeout,
		BaseBackoff:       d.cfg.SubmitBaseBackoff,
		MaxBackoff:        d.cfg.SubmitMaxBackoff,
		Concurrency:       d.cfg.SubmitConcurrency,
		MinReplicas:       d.cfg.SubmitMinReplicas,
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
