package gateway

import (
	"fmt"
	"strings"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/platform/token"
)

// wireSessions builds the Toloker's path: the landing, sessions and tokens.
func wireSessions(d *deps) error {
	signer, err := token.NewSigner(token.Config{
		Redis:  d.redis,
		Prefix: d.prefix + "token:",
		Box:    d.box,
		Issuer: strings.TrimRight(d.cfg.PublicURL, "/"),
		Log:    d.log,
	})
	if err != nil {
		return fmt.Errorf("token signer: %w", err)
	}
	// The landing's commands from concurrent Tolokers share pipelines.
	landingRedis := session.AutoPipelined(d.redis)
	d.sessions = session.NewService(session.Config{
		Redis:        d.redis,
		LandingRedis: landingRedis,
		Prefix:       d.prefix,
		Pools:        d.pools,
		Projects:     d.projects,
		Credentials:  d.credentials,
		Signer:       signer,
		// Every replica with the same encryption key checks the others' codes.
		CodeKey: d.box.DeriveKey("landing-code/v1"),
		Log:     d.log,
		Metrics: d.metrics,
	})
	// The landing's limits never wait: a Toloker over the limit gets a 429
	// page at once.
	limiter, err := ratelimit.New(ratelimit.Config{Client: landingRedis, Prefix: d.prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		return err
	}
	land, err := landing.New(landing.Config{
		Sessions: d.sessions, Limiter: limiter,
		PerIP: d.cfg.LandingLimitIP, PerAssignment: d.cfg.LandingLimitAssignment,
		Log: d.log, Metrics: d.metrics,
	})
	if err != nil {
		return fmt.Errorf("landing: %w", err)
	}
	d.http.Handle("GET "+LandingPath, land)
	d.http.Handle("GET "+token.JWKSPath, signer.JWKSHandler())
	d.workers = append(d.workers, signer.Run)
	crowdgatev1.RegisterSessionServiceServer(d.grpc, d.sessions)
	return nil
}
