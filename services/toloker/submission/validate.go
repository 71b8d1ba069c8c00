package submission

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/bounds"
)

// Limits of a submit's fields.
const (
	// MaxRetryIDLength bounds retry_id (submission.proto).
	MaxRetryIDLength = 128
	// MaxIDLength bounds session_id, pool_id and user_id.
	MaxIDLength = 128
	// MaxCustomLogBytes bounds custom_log.
	MaxCustomLogBytes = 64 << 10
)

// Bounds in units of 1e-8.
var (
	oneUnits       = mustUnits(money.MustParse("1"))
	maxRewardUnits = mustUnits(MaxReward)
)

func mustUnits(d money.Decimal) int64 {
	u, err := toUnits(d)
	if err != nil {
		panic(err)
	}
	return u
}

// submitInput is a validated SubmitRequest.
type submitInput struct {
	req     *crowdgatev1.SubmitRequest
	reward  money.Decimal
	units   int64
	quality *money.Decimal
	// qualityUnits is quality in units of 1e-8.
	qualityUnits int64
	start, end   *time.Time
}

// validateSubmit checks every field of req that can be checked without
// looking anything up, naming the first bad field. Times are bounded from
// the wall clock (the gateway's bounds interceptor has checked the same
// rule on the gateway's clock before Submit runs).
func validateSubmit(req *crowdgatev1.SubmitRequest) (*submitInput, error) {
	return validateSubmitAt(req, time.Now())
}

// validateSubmitAt is validateSubmit at time now.
func validateSubmitAt(req *crowdgatev1.SubmitRequest, now time.Time) (*submitInput, error) {
	in := &submitInput{req: req}
	for _, f := range []struct{ name, v string }{
		{"session_id", req.GetSessionId()}, {"pool_id", req.GetPoolId()}, {"user_id", req.GetUserId()},
	} {
		if err := checkID(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if req.GetSessionId() == "" {
		switch {
		case req.GetPoolId() == "" && req.GetUserId() == "":
			return nil, serviceerror.NewInvalidArgument("session_id", "is required (or give pool_id and user_id)")
		case req.GetPoolId() == "":
			return nil, serviceerror.NewInvalidArgument("pool_id", "is required with user_id when session_id is not given")
		case req.GetUserId() == "":
			return nil, serviceerror.NewInvalidArgument("user_id", "is required with pool_id when session_id is not given")
		}
	}
	if r := req.GetRetryId(); r != "" {
		if len(r) > MaxRetryIDLength {
			return nil, serviceerror.NewInvalidArgument("retry_id", "must be at most %d characters, got %d", MaxRetryIDLength, len(r))
		}
		for i := 0; i < len(r); i++ {
			if r[i] < 0x21 || r[i] > 0x7e {
				return nil, serviceerror.NewInvalidArgument("retry_id", "must be printable ASCII without spaces")
			}
		}
	}

	if req.GetReward() == "" {
		return nil, serviceerror.NewInvalidArgument("reward", "is required (a decimal in U.S. dollars such as \"10.52\")")
	}
	// Amounts are compared as exact integers of 1e-8 (money.Parse allows
	// no more digits than that), without math/big on the hot path.
	reward, err := money.Parse(req.GetReward())
	if err != nil {
		return nil, serviceerror.NewInvalidArgument("reward", "%q is not a decimal amount: %v", req.GetReward(), err)
	}
	if strings.HasPrefix(reward.String(), "-") {
		return nil, serviceerror.NewInvalidArgument("reward", "must not be negative, got %s", reward)
	}
	if in.units, err = toUnits(reward); err != nil || in.units > maxRewardUnits {
		return nil, serviceerror.NewInvalidArgument("reward", "must be at most %s, got %s", MaxReward, reward)
	}
	in.reward = reward

	if q := req.GetQuality(); q != "" {
		d, err := money.Parse(q)
		if err != nil {
			return nil, serviceerror.NewInvalidArgument("quality", "%q is not a decimal: %v", q, err)
		}
		u, uerr := toUnits(d)
		if strings.HasPrefix(d.String(), "-") || uerr != nil || u > oneUnits {
			return nil, serviceerror.NewInvalidArgument("quality", "must be between 0 and 1, got %s", d)
		}
		in.quality, in.qualityUnits = &d, u
	}

	if l := req.GetCustomLog(); l != "" {
		if len(l) > MaxCustomLogBytes {
			return nil, serviceerror.NewInvalidArgument("custom_log", "must be at most %d bytes, got %d", MaxCustomLogBytes, len(l))
		}
		if !json.Valid([]byte(l)) {
			return nil, serviceerror.NewInvalidArgument("custom_log", "must be a JSON document")
		}
	}

	if in.start, err = submitTime("start_time", req.GetStartTime(), now); err != nil {
		return nil, err
	}
	if in.end, err = submitTime("end_time", req.GetEndTime(), now); err != nil {
		return nil, err
	}
	if in.start != nil && in.end != nil && in.end.Before(*in.start) {
		return nil, serviceerror.NewInvalidArgument("end_time", "must not be before start_time")
	}

	for _, c := range []struct {
		name string
		n    int32
	}{
		{"golden_tasks_count", req.GetGoldenTasksCount()},
		{"training_tasks_count", req.GetTrainingTasksCount()},
		{"real_tasks_count", req.GetRealTasksCount()},
	} {
		if c.n < 0 {
			return nil, serviceerror.NewInvalidArgument(c.name, "must not be negative, got %d", c.n)
		}
	}
	return in, nil
}

// submitTime reads a submit's start_time or end_time (nil when not given):
// a valid time, not before Toloka existed and not further in the future
// than the bound of the field in services/platform/bounds (a submit reports
// work already done).
func submitTime(field string, ts *timestamppb.Timestamp, now time.Time) (*time.Time, error) {
	if ts == nil {
		return nil, nil
	}
	if err := ts.CheckValid(); err != nil {
		return nil, serviceerror.NewInvalidArgument(field, "%v", err)
	}
	t := ts.AsTime()
	fd := submitRequestFields.ByName(protoreflect.Name(field))
	if err := bounds.CheckTime(field, t, now, bounds.For(fd).Horizon); err != nil {
		return nil, err
	}
	return &t, nil
}

var submitRequestFields = (&crowdgatev1.SubmitRequest{}).ProtoReflect().Descriptor().Fields()

// checkID refuses ids that are too long or hold characters no Crowdgate or
// Toloka id has (whitespace, control characters, and the key separators
// ':', '{' and '}').
func checkID(field, v string) error {
	if len(v) > MaxIDLength {
		return serviceerror.NewInvalidArgument(field, "must be at most %d characters", MaxIDLength)
	}
	if strings.ContainsAny(v, ":{}") || strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}) >= 0 {
		return serviceerror.NewInvalidArgument(field, "%q is not a valid id", v)
	}
	return nil
}

// fingerprint identifies what a submit asks for, so that a retry_id reused
// for different work is refused instead of answered as a replay. Amounts are
// compared by value ("10.5" and "10.50" are the same submit).
func (in *submitInput) fingerprint(poolID, userID string) string {
	r := in.req
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	field(poolID)
	field(userID)
	field(strconv.FormatInt(in.units, 10))
	if in.quality != nil {
		field(strconv.FormatInt(in.qualityUnits, 10))
	} else {
		field("")
	}
	field(strconv.FormatBool(r.GetCloseSession()))
	field(r.GetCustomLog())
	for _, t := range []*time.Time{in.start, in.end} {
		if t == nil {
			field("")
		} else {
			field(strconv.FormatInt(t.UnixNano(), 10))
		}
	}
	field(strconv.FormatBool(r.GetSkipped()))
	for _, n := range []int32{r.GetGoldenTasksCount(), r.GetTrainingTasksCount(), r.GetRealTasksCount()} {
		field(strconv.Itoa(int(n)))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}
