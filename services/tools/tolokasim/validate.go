package tolokasim

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// decodeObject parses a request body that must be a JSON object. It returns
// a generic tree (numbers as json.Number) for validation and the raw
// top-level fields, byte for byte, for storage.
func decodeObject(body []byte) (map[string]any, map[string]json.RawMessage, *Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, singleFieldError("body", FieldNotNullBody, "request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, errBadRequest("request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errBadRequest("request body has data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, singleFieldError("body", FieldObjectExpected, "request body must be a JSON object")
	}
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, errBadRequest("request body is not valid JSON: %v", err)
	}
	return obj, raw, nil
}

// checker validates a generic JSON tree and collects field errors by
// dotted path ("mixer_config.real_tasks_count", "intervals[1].from").
type checker struct {
	fe fieldErrors
}

func newChecker() *checker { return &checker{fe: fieldErrors{}} }

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// get returns obj[key] and whether it is present and not null.
func get(obj map[string]any, key string) (any, bool) {
	v, ok := obj[key]
	return v, ok && v != nil
}

func (c *checker) missing(p string, required bool) {
	if required {
		c.fe.add(p, FieldValueRequired, "%s is required", p)
	}
}

// str checks an optional or required string; required strings must not be
// blank.
func (c *checker) str(obj map[string]any, key, prefix string, required bool) (string, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return "", false
	}
	return c.strValue(v, p, required)
}

func (c *checker) strValue(v any, p string, nonBlank bool) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.fe.add(p, FieldStringExpected, "%s must be a string", p)
		return "", false
	}
	if nonBlank && strings.TrimSpace(s) == "" {
		c.fe.add(p, FieldBlankString, "%s must not be blank", p)
		return "", false
	}
	return s, true
}

func (c *checker) boolean(obj map[string]any, key, prefix string, required bool) (bool, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		c.fe.add(p, FieldBooleanExpected, "%s must be a boolean", p)
		return false, false
	}
	return b, true
}

func (c *checker) object(obj map[string]any, key, prefix string, required bool) (map[string]any, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return nil, false
	}
	return c.objectValue(v, p)
}

func (c *checker) objectValue(v any, p string) (map[string]any, bool) {
	o, ok := v.(map[string]any)
	if !ok {
		c.fe.add(p, FieldObjectExpected, "%s must be an object", p)
		return nil, false
	}
	return o, true
}

func (c *checker) array(obj map[string]any, key, prefix string, required bool) ([]any, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		c.fe.add(p, FieldArrayExpected, "%s must be an array", p)
		return nil, false
	}
	return a, true
}

// bound is an optional inclusive integer limit.
type bound struct {
	v   int64
	set bool
}

func atLeast(v int64) bound { return bound{v, true} }
func atMost(v int64) bound  { return bound{v, true} }

var noBound bound

func (c *checker) integer(obj map[string]any, key, prefix string, required bool, lo, hi bound) (int64, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return 0, false
	}
	return c.intValue(v, p, lo, hi)
}

func (c *checker) intValue(v any, p string, lo, hi bound) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		c.fe.add(p, FieldIntegerExpected, "%s must be an integer", p)
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		c.fe.add(p, FieldIntegerExpected, "%s must be an integer, got %s", p, n)
		return 0, false
	}
	if lo.set && i < lo.v {
		c.fe.add(p, FieldValueLessThanMin, "%s must be at least %d, got %d", p, lo.v, i)
		return i, false
	}
	if hi.set && i > hi.v {
		c.fe.add(p, FieldValueGreaterThanMax, "%s must be at most %d, got %d", p, hi.v, i)
		return i, false
	}
	return i, true
}

// number checks a JSON number within optional inclusive limits given as
// decimal strings ("0", "1"). It returns the exact value.
func (c *checker) number(obj map[string]any, key, prefix string, required bool, lo, hi string) (*big.Rat, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return nil, false
	}
	return c.numberValue(v, p, lo, hi)
}

func (c *checker) numberValue(v any, p string, lo, hi string) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		c.fe.add(p, FieldFloatExpected, "%s must be a number", p)
		return nil, false
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		c.fe.add(p, FieldFloatExpected, "%s must be a number, got %s", p, n)
		return nil, false
	}
	if lo != "" && r.Cmp(mustRat(lo)) < 0 {
		c.fe.add(p, FieldValueLessThanMin, "%s must be at least %s, got %s", p, lo, n)
		return r, false
	}
	if hi != "" && r.Cmp(mustRat(hi)) > 0 {
		c.fe.add(p, FieldValueGreaterThanMax, "%s must be at most %s, got %s", p, hi, n)
		return r, false
	}
	return r, true
}

func mustRat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("tolokasim: bad constant " + s)
	}
	return r
}

// decimal checks a money amount: a JSON number (not a string) in plain
// decimal notation, at least min. Digits are kept exactly.
func (c *checker) decimal(obj map[string]any, key, prefix string, required bool, min string) (money.Decimal, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return money.Decimal{}, false
	}
	return c.decimalValue(v, p, min)
}

func (c *checker) decimalValue(v any, p string, min string) (money.Decimal, bool) {
	n, ok := v.(json.Number)
	if !ok {
		c.fe.add(p, FieldFloatExpected, "%s must be a JSON number", p)
		return money.Decimal{}, false
	}
	d, err := money.Parse(string(n))
	if err != nil {
		c.fe.add(p, FieldInvalidValue, "%s: %v", p, err)
		return money.Decimal{}, false
	}
	if min != "" && d.Cmp(money.MustParse(min)) < 0 {
		c.fe.add(p, FieldValueLessThanMin, "%s must be at least %s, got %s", p, min, n)
		return d, false
	}
	return d, true
}

func (c *checker) enum(obj map[string]any, key, prefix string, required bool, allowed ...string) (string, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		c.fe.add(p, FieldStringExpected, "%s must be a string", p)
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	c.fe.add(p, FieldUnknownEnumValue, "%s must be one of %s, got %q", p, strings.Join(allowed, ", "), s)
	return "", false
}

func (c *checker) datetime(obj map[string]any, key, prefix string, required bool) (time.Time, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return time.Time{}, false
	}
	s, ok := v.(string)
	if !ok {
		c.fe.add(p, FieldStringExpected, "%s must be a date string", p)
		return time.Time{}, false
	}
	t, err := ParseTime(s)
	if err != nil {
		c.fe.add(p, FieldInvalidDateTime, "%s: %v, got %q", p, err, s)
		return time.Time{}, false
	}
	return t, true
}

// idRef checks a reference to a numeric id sent as a string of digits or a
// JSON integer. ok is false when it is missing or of the wrong type; a
// value that is not a positive integer yields id 0 (names nothing).
func (c *checker) idRef(obj map[string]any, key, prefix string, required bool) (uint64, bool) {
	p := join(prefix, key)
	v, ok := get(obj, key)
	if !ok {
		c.missing(p, required)
		return 0, false
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = string(x)
	default:
		c.fe.add(p, FieldStringExpected, "%s must be a string id", p)
		return 0, false
	}
	id, _ := parseID(s)
	return id, true
}

// httpURL reports whether s is an absolute http(s) URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return true
	}
	return false
}

// Field spec types of task_spec.input_spec/output_spec (case-insensitive:
// the API reference uses upper case, seed 002's example lower case).
var fieldSpecTypes = map[string]bool{
	"URL": true, "BOOLEAN": true, "INTEGER": true, "STRING": true, "FLOAT": true,
	"JSON": true, "FILE": true, "COORDINATES": true,
	"ARRAY_URL": true, "ARRAY_BOOLEAN": true, "ARRAY_INTEGER": true, "ARRAY_STRING": true,
	"ARRAY_FLOAT": true, "ARRAY_JSON": true, "ARRAY_FILE": true, "ARRAY_COORDINATES": true,
}

func (c *checker) fieldSpecs(spec map[string]any, prefix string, output bool) {
	for name, v := range spec {
		p := join(prefix, name)
		f, ok := c.objectValue(v, p)
		if !ok {
			continue
		}
		t, ok := c.str(f, "type", p, true)
		if !ok {
			continue
		}
		up := strings.ToUpper(t)
		switch {
		case !fieldSpecTypes[up]:
			c.fe.add(join(p, "type"), FieldUnknownEnumValue, "%s.type %q is not a known field type", p, t)
		case !output && (up == "FILE" || up == "ARRAY_FILE"):
			c.fe.add(join(p, "type"), FieldValueNotAllowed, "%s.type %q is allowed in output_spec only", p, t)
		}
		c.boolean(f, "required", p, false)
		c.boolean(f, "hidden", p, false)
	}
}

// Quality control enums (seed 004 and toloka-kit).
var (
	qcCollectorTypes = []string{"CAPTCHA", "GOLDEN_SET", "MAJORITY_VOTE", "INCOME", "SKIPPED_IN_ROW_ASSIGNMENTS",
		"ANSWER_COUNT", "ASSIGNMENT_SUBMIT_TIME", "ACCEPTANCE_RATE", "ASSIGNMENTS_ASSESSMENT", "USERS_ASSESSMENT", "TRAINING"}
	qcOperators   = []string{"EQ", "NE", "GT", "LT", "GTE", "LTE"}
	qcActionTypes = []string{"RESTRICTION", "RESTRICTION_V2", "SET_SKILL_FROM_OUTPUT_FIELD", "SET_SKILL",
		"CHANGE_OVERLAP", "REJECT_ALL_ASSIGNMENTS", "APPROVE_ALL_ASSIGNMENTS"}
	restrictionScopes = []string{"POOL", "PROJECT", "ALL_PROJECTS"}
	durationUnits     = []string{"MINUTES", "HOURS", "DAYS", "PERMANENT"}
)

// qualityControl validates a quality_control object (projects and pools).
// It returns training_requirement.training_pool_id (0 when absent), which
// the caller checks names a training of the account.
func (c *checker) qualityControl(qc map[string]any, prefix string, pool bool) (trainingID uint64) {
	if pool {
		if tr, ok := c.object(qc, "training_requirement", prefix, false); ok {
			trp := join(prefix, "training_requirement")
			trainingID, _ = c.idRef(tr, "training_pool_id", trp, false)
			c.integer(tr, "training_passing_skill_value", trp, false, atLeast(0), atMost(100))
		}
		c.enum(qc, "captcha_frequency", prefix, false, "LOW", "MEDIUM", "HIGH")
		if cp, ok := c.object(qc, "checkpoints_config", prefix, false); ok {
			cpp := join(prefix, "checkpoints_config")
			for _, k := range []string{"real_settings", "golden_settings", "training_settings"} {
				if st, ok := c.object(cp, k, cpp, false); ok {
					sp := join(cpp, k)
					c.integer(st, "target_overlap", sp, true, atLeast(1), noBound)
					if df, ok := c.object(st, "task_distribution_function", sp, true); ok {
						c.distribution(df, join(sp, "task_distribution_function"))
					}
				}
			}
		}
	}
	configs, ok := c.array(qc, "configs", prefix, false)
	if !ok {
		return
	}
	cfgPath := join(prefix, "configs")
	for i, v := range configs {
		p := index(cfgPath, i)
		cfg, ok := c.objectValue(v, p)
		if !ok {
			continue
		}
		if cc, ok := c.object(cfg, "collector_config", p, true); ok {
			c.enum(cc, "type", join(p, "collector_config"), true, qcCollectorTypes...)
			c.object(cc, "parameters", join(p, "collector_config"), false)
		}
		rules, ok := c.array(cfg, "rules", p, true)
		if !ok {
			continue
		}
		for j, rv := range rules {
			rp := index(join(p, "rules"), j)
			rule, ok := c.objectValue(rv, rp)
			if !ok {
				continue
			}
			if conds, ok := c.array(rule, "conditions", rp, true); ok {
				for k, cv := range conds {
					cp := index(join(rp, "conditions"), k)
					cond, ok := c.objectValue(cv, cp)
					if !ok {
						continue
					}
					c.str(cond, "key", cp, true)
					c.enum(cond, "operator", cp, true, qcOperators...)
					if _, ok := get(cond, "value"); !ok {
						c.missing(join(cp, "value"), true)
					}
				}
			}
			if action, ok := c.object(rule, "action", rp, true); ok {
				c.qcAction(action, join(rp, "action"))
			}
		}
	}
	return trainingID
}

func (c *checker) qcAction(action map[string]any, p string) {
	typ, ok := c.enum(action, "type", p, true, qcActionTypes...)
	if !ok {
		return
	}
	needsParams := typ != "APPROVE_ALL_ASSIGNMENTS"
	params, ok := c.object(action, "parameters", p, needsParams)
	if !ok {
		return
	}
	pp := join(p, "parameters")
	switch typ {
	case "RESTRICTION_V2":
		c.enum(params, "scope", pp, true, restrictionScopes...)
		unit, _ := c.enum(params, "duration_unit", pp, false, durationUnits...)
		if unit != "PERMANENT" {
			c.integer(params, "duration", pp, false, atLeast(1), noBound)
		}
		c.str(params, "private_comment", pp, false)
	case "RESTRICTION":
		c.enum(params, "scope", pp, true, restrictionScopes...)
		c.integer(params, "duration_days", pp, false, atLeast(1), noBound)
		c.str(params, "private_comment", pp, false)
	case "SET_SKILL":
		c.idRef(params, "skill_id", pp, true)
		c.integer(params, "skill_value", pp, true, atLeast(0), atMost(100))
	case "SET_SKILL_FROM_OUTPUT_FIELD":
		c.idRef(params, "skill_id", pp, true)
		c.str(params, "from_field", pp, true)
	case "CHANGE_OVERLAP":
		c.integer(params, "delta", pp, true, noBound, noBound)
		c.boolean(params, "open_pool", pp, false)
	case "REJECT_ALL_ASSIGNMENTS":
		c.str(params, "public_comment", pp, true)
	}
}

// distribution validates a *_distribution_function object.
func (c *checker) distribution(df map[string]any, p string) {
	c.enum(df, "scope", p, true, "POOL", "PROJECT")
	c.enum(df, "distribution", p, true, "UNIFORM")
	c.integer(df, "window_days", p, true, atLeast(1), noBound)
	intervals, ok := c.array(df, "intervals", p, true)
	if !ok {
		return
	}
	for i, v := range intervals {
		ip := index(join(p, "intervals"), i)
		iv, ok := c.objectValue(v, ip)
		if !ok {
			continue
		}
		from, okf := c.integer(iv, "from", ip, true, atLeast(0), noBound)
		to, okt := c.integer(iv, "to", ip, true, atLeast(0), noBound)
		if okf && okt && to < from {
			c.fe.add(join(ip, "to"), FieldInvalidValue, "%s.to (%d) must not be less than from (%d)", ip, to, from)
		}
		c.integer(iv, "frequency", ip, true, atLeast(1), noBound)
	}
}
