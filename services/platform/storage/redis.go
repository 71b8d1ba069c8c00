package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/redis/go-redis/v9"
)

// Mode selects how REDIS_URL is read.
type Mode string

// Modes of connection.
const (
	// ModeStandalone: REDIS_URL is one server, redis://[user:pass@]host:port/db.
	ModeStandalone Mode = "standalone"
	// ModeSentinel: REDIS_URL names a sentinel and the master,
	// redis://sentinel:26379/0?master_name=mymaster&addr=sentinel2:26379.
	ModeSentinel Mode = "sentinel"
	// ModeCluster: REDIS_URL names cluster nodes,
	// redis://node1:6379?addr=node2:6379&addr=node3:6379.
	ModeCluster Mode = "cluster"
)

// Settings say where Redis is and which keys are Crowdgate's.
type Settings struct {
	// URL is the connection URL; empty means an embedded in-process Redis.
	URL string
	// Mode says how URL is read (standalone, sentinel or cluster).
	Mode Mode
	// Prefix starts every key Crowdgate writes.
	Prefix string
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://); empty runs an embedded in-process Redis that keeps nothing across restarts", settings.Secret(&s.URL)),
		settings.New("redis-mode", "REDIS_MODE", "standalone", "how REDIS_URL is read: standalone, sentinel (?master_name=) or cluster (&addr= for more nodes)",
			settings.Func(&s.Mode, ParseMode, func(m Mode) string { return string(m) })),
		settings.New("redis-prefix", "CROWDGATE_REDIS_PREFIX", "crowdgate:", "prefix of every Redis key Crowdgate writes", settings.String(&s.Prefix)),
	}
}

// ParseMode reads a Mode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeStandalone, ModeSentinel, ModeCluster:
		return m, nil
	}
	return "", fmt.Errorf("want standalone, sentinel or cluster, got %q", s)
}

// Conn is an open Redis connection.
type Conn struct {
	// Client is safe for concurrent use.
	Client redis.UniversalClient
	// Embedded is true when Client talks to the in-process server.
	Embedded bool
	// KeepOpen makes Close leave Client open (a client the caller owns).
	KeepOpen bool

	mini *miniredis.Miniredis
}

// Open connects to Redis as cfg says and checks the connection with PING.
// go-redis's own messages (a pool that cannot dial) go to log.
func Open(ctx context.Context, cfg Settings, log *slog.Logger) (*Conn, error) {
	redis.SetLogger(redisLogger{log})
	if cfg.URL == "" {
		mini := miniredis.NewMiniRedis()
		if err := mini.Start(); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		log.Warn("REDIS_URL is not set: using an EMBEDDED IN-PROCESS REDIS. Sessions, submissions and queued payments " +
			"live only in this process's memory and WILL NOT SURVIVE A RESTART. Set REDIS_URL for anything but a demo.")
		return &Conn{Client: redis.NewClient(&redis.Options{Addr: mini.Addr()}), Embedded: true, mini: mini}, nil
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("REDIS_URL: redis (%s mode) did not answer PING: %w", modeOrDefault(cfg.Mode), err)
	}
	for _, w := range CheckServer(pingCtx, client) {
		log.Warn(w)
	}
	return &Conn{Client: client}, nil
}

func modeOrDefault(m Mode) Mode {
	if m == "" {
		return ModeStandalone
	}
	return m
}

// urlError is REDIS_URL's parse error without its user info: the parser
// quotes the whole URL, and the URL may hold a password (REDIS_URL is a
// secret setting; the error is logged at startup).
func urlError(raw string, err error) error {
	msg := err.Error()
	if i := strings.Index(raw, "://"); i >= 0 {
		if at := strings.LastIndex(raw, "@"); at > i+3 {
			// The user info, as given and as the parser quotes it (%q
			// escapes a '"' or '\\' in a password).
			info := raw[i+3 : at]
			quoted := strconv.Quote(info)
			for _, s := range []string{info, quoted[1 : len(quoted)-1]} {
				msg = strings.ReplaceAll(msg, s, "xxxxx")
			}
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && p != "" {
					msg = strings.ReplaceAll(msg, p, "xxxxx")
				}
			}
		}
	}
	return errors.New("REDIS_URL: " + msg)
}

func newClient(cfg Settings) (redis.UniversalClient, error) {
	switch modeOrDefault(cfg.Mode) {
	case ModeStandalone:
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, urlError(cfg.URL, err)
		}
		return redis.NewClient(o), nil
	case ModeSentinel:
		o, err := redis.ParseFailoverURL(cfg.URL)
		if err != nil {
			return nil, urlError(cfg.URL, err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("REDIS_URL: sentinel mode needs ?master_name=")
		}
		return redis.NewFailoverClient(o), nil
	case ModeCluster:
		o, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, urlError(cfg.URL, err)
		}
		return redis.NewClusterClient(o), nil
	default:
		return nil, fmt.Errorf("REDIS_MODE: unknown mode %q (want standalone, sentinel or cluster)", cfg.Mode)
	}
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() error {
	if c.KeepOpen {
		return nil
	}
	err := c.Client.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	return err
}

// redisLogger sends go-redis's internal messages to the gateway's log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
