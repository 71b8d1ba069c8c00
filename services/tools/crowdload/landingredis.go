package crowdload

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisCommandStat is one command's line of Redis's INFO commandstats, or
// the difference of two.
type RedisCommandStat struct {
	// Calls counts the command's calls, Usec the microseconds Redis spent
	// executing them (not reading, parsing or writing to the AOF).
	Calls, Usec int64
}

// RedisCommandStats is INFO commandstats by command name ("evalsha",
// "hgetall", "client|setname"). Commands a Lua script calls are counted
// under their own names as well as the script's EVALSHA or FCALL, whose
// time includes theirs.
type RedisCommandStats map[string]RedisCommandStat

// parseCommandStats reads INFO commandstats's
// "cmdstat_get:calls=5,usec=12,usec_per_call=2.40,..." lines.
func parseCommandStats(info string) (RedisCommandStats, error) {
	out := RedisCommandStats{}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("INFO commandstats line %q", line)
		}
		var s RedisCommandStat
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "calls":
				s.Calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				s.Usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("INFO commandstats line %q: %v", line, err)
			}
		}
		out[name] = s
	}
	return out, nil
}

// redisCommandStats reads INFO commandstats.
func redisCommandStats(ctx context.Context, rdb *redis.Client) (RedisCommandStats, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return parseCommandStats(info)
}

// Sub is s minus before, commands that were not called left out.
func (s RedisCommandStats) Sub(before RedisCommandStats) RedisCommandStats {
	out := RedisCommandStats{}
	for name, v := range s {
		b := before[name]
		if d := (RedisCommandStat{Calls: v.Calls - b.Calls, Usec: v.Usec - b.Usec}); d.Calls > 0 {
			out[name] = d
		}
	}
	return out
}

// Calls counts every call, script calls and the commands they ran alike.
func (s RedisCommandStats) Calls() int64 {
	var n int64
	for _, v := range s {
		n += v.Calls
	}
	return n
}

// scriptCommands call Lua scripts or functions: their calls are round
// trips of their own; the commands they run are not.
var scriptCommands = []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}

// PerOp writes the commands per operation, most time first:
// "evalsha 3.00 (310.2us), hgetall 1.00 (2.1us), ...".
func (s RedisCommandStats) PerOp(ops int64) string {
	if ops <= 0 || len(s) == 0 {
		return "none"
	}
	names := slices.SortedFunc(mapKeys(s), func(a, b string) int {
		return cmp.Or(cmp.Compare(s[b].Usec, s[a].Usec), cmp.Compare(a, b))
	})
	parts := make([]string, len(names))
	for i, name := range names {
		v := s[name]
		parts[i] = fmt.Sprintf("%s %.2f (%.1fus)", name, float64(v.Calls)/float64(ops), float64(v.Usec)/float64(ops))
	}
	return strings.Join(parts, ", ")
}

// Summary is what Redis ran per operation: script calls, commands and the
// time executing them, by command.
func (s RedisCommandStats) Summary(ops int64) string {
	n := float64(max(ops, 1))
	return fmt.Sprintf("%.2f script calls, %.2f commands (a script's commands counted too); time executing, by command (a script's includes its commands'): %s",
		float64(s.Scripts())/n, float64(s.Calls())/n, s.PerOp(ops))
}

// Scripts counts the calls of scripts and functions.
func (s RedisCommandStats) Scripts() int64 {
	var n int64
	for _, name := range scriptCommands {
		n += s[name].Calls
	}
	return n
}
