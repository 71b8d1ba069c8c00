package gateway

import (
	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/requester/credential"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/requester/review"
)

// wireRequester builds the requester flow: credentials, projects, pools and review.
func wireRequester(d *deps) error {
	d.credentials = credential.NewService(credential.Config{Redis: d.redis, Prefix: d.prefix, Box: d.box, Toloka: d.toloka, Log: d.log})
	d.projects = project.NewService(project.Config{Redis: d.redis, Prefix: d.prefix, Credentials: d.credentials, LandingURL: d.cfg.LandingURL(), Log: d.log})
	d.pools = pool.NewService(pool.Config{Redis: d.redis, Prefix: d.prefix, Projects: d.projects, Credentials: d.credentials, Log: d.log})
	// Archiving a project closes and archives its pools, and waits for the
	// assignments awaiting review in Toloka. Sessions and submissions add
	// their own work checkers when they are wired.
	d.projects.SetPoolManager(d.pools)
	d.projects.AddWorkChecker(d.pools)
	crowdgatev1.RegisterCredentialServiceServer(d.grpc, d.credentials)
	crowdgatev1.RegisterProjectServiceServer(d.grpc, d.projects)
	crowdgatev1.RegisterPoolServiceServer(d.grpc, d.pools)
	crowdgatev1.RegisterReviewServiceServer(d.grpc, review.NewService(review.Config{Pools: d.pools, Projects: d.projects, Log: d.log}))
	return nil
}
