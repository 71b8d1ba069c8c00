package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/crowdgate/crowdgate/services/requester/credential"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// deps is what every capability is built from, and what the capabilities
// built earlier offer to those built later. wire fills it in order: the
// requester flow (credentials, projects, pools, review), then sessions and
// the landing, then submissions.
type deps struct {
	cfg     Config
	log     *slog.Logger
	redis   redis.UniversalClient
	prefix  string
	box     *secretbox.Box
	toloka  *toloka.Client
	metrics prometheus.Registerer
	grpc    *grpc.Server
	// http takes the plain-HTTP routes (the landing, the JWKS) beside REST.
	http *http.ServeMux
	// workers are background loops (outbox delivery, ...). Serve starts
	// them, and stops them only after the servers have drained, so work
	// accepted before shutdown is still delivered.
	workers []func(ctx context.Context)

	// auth, when wireAccess sets it, authenticates every RPC (REST included)
	// and puts the caller's tenant in the context. It runs after metrics and
	// panic recovery, before the handler.
	auth grpc.UnaryServerInterceptor

	// Built by wireRequester.
	credentials *credential.Service
	projects    *project.Service
	pools       *pool.Service
	// Built by wireSessions.
	sessions *session.Service
	// Built by wireSubmissions: the outbox, whose UnfinishedWork the
	// requester flow's archive check consults.
	submissions *submission.Service
}

// wire builds every capability and registers it on the servers.
func wire(d *deps) error {
	limiter, err := ratelimit.New(ratelimit.Config{Client: d.redis, Prefix: d.prefix + "ratelimit:"})
	if err != nil {
		return err
	}
	d.toloka, err = toloka.New(toloka.Config{
		ProductionURL: d.cfg.TolokaProductionURL,
		SandboxURL:    d.cfg.TolokaSandboxURL,
		Limiter:       limiter,
		Logger:        d.log,
		Registerer:    d.metrics,
	})
	if err != nil {
		return fmt.Errorf("toloka client: %w", err)
	}
	for _, step := range []func(*deps) error{wireRequester, wireSessions, wireSubmissions, wireAccess} {
		if err := step(d); err != nil {
			return err
		}
	}
	return nil
}
