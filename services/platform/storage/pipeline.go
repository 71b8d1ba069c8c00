package storage

import "github.com/redis/go-redis/v9"

// AutoPipelined returns a client that batches the commands of concurrent
// callers into pipelines over rdb (go-redis's blocking AutoPipeline: each
// call still waits for its own answer), or rdb itself when it cannot. One
// autopipeliner serves every caller of the same rdb.
//
// It is for hot paths with many concurrent callers: the landing (in
// BenchmarkLanding/warm it cuts the CPU a landing costs by about 30%), the
// session changes and registry writes a landing or a Submit makes, and
// the webhook workers' claims and settlements (under `appendfsync always`
// a caller otherwise waits for a connection of the pool and then for a
// write of its own; batched, many wait for one). A batch that fails on
// the network may be resent whole, so give it only commands that are safe
// to repeat: reads are; the landing's scripts and rate limits are (a
// repeat re-reads a session, or spends a slot twice); a session change is
// (its swap finds its own random revision among the record's last few and
// answers that it was applied); the registry's started, confirmed and
// abandoned scripts count and record a session once however often they
// run; an outbox lease taken again with the same token and a settlement
// recorded again are too (it answers "skip"). The code exchange is not,
// and does not use it.
func AutoPipelined(rdb redis.UniversalClient) redis.UniversalClient {
	c, ok := rdb.(interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	})
	if !ok {
		return rdb
	}
	ap, err := c.AutoPipeline()
	if err != nil {
		return rdb
	}
	return ap
}
