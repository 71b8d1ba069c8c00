package webhook

import (
	"context"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Reseal re-seals every endpoint's secrets (current and previous) under
// the newest key of the box, for `crowdgate -reseal`. It is idempotent and
// safe while replicas serve; a secret no key of the ring opens is left as
// it is and counted Unreadable (its endpoint id is logged).
func (s *Service) Reseal(ctx context.Context) (secretbox.ResealCounts, error) {
	var counts secretbox.ResealCounts
	base := s.st.prefix + "whe:"
	keys, err := storage.ScanKeys(ctx, s.st.rdb, storage.GlobEscape(base)+"*")
	if err != nil {
		return counts, err
	}
	for _, key := range keys {
		rest := strings.TrimPrefix(key, base)
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 || !validEndpointID(rest[i+1:]) {
			continue
		}
		tenantID, id := rest[:i], rest[i+1:]
		var resealed, current, unreadable int
		_, err := s.st.changeEndpoint(ctx, tenantID, id, func(r *endpointRecord) ([]any, []string, error) {
			resealed, current, unreadable = 0, 0, 0
			var set []any
			sc := sealContext(tenantID, id)
			now := s.now()
			for _, f := range []struct {
				field  string
				sealed []byte
				until  time.Time // zero: signs for as long as it is current
			}{{"sec", r.sealed, time.Time{}}, {"osec", r.sealedPrevious, r.previousUntil}, {"osec2", r.sealedOlder, r.olderUntil}} {
				if len(f.sealed) == 0 {
					continue
				}
				if !f.until.IsZero() && !now.Before(f.until) {
					// Rotated out and past its overlap: it never signs
					// again, so it neither needs a new seal nor keeps
					// -reseal failing after the operator rotated an
					// unreadable secret as told.
					continue
				}
				out, changed, err := s.st.box.Reseal(f.sealed, sc)
				switch {
				case err != nil:
					unreadable++
				case changed:
					resealed++
					set = append(set, f.field, out)
				default:
					current++
				}
			}
			return set, nil, nil
		})
		if err != nil && !isNotFound(err) {
			return counts, err
		}
		counts.Resealed += resealed
		counts.Current += current
		counts.Unreadable += unreadable
		if unreadable > 0 {
			s.log.ErrorContext(ctx, "reseal: a webhook endpoint's secret opens with no key of CROWDGATE_ENCRYPTION_KEY; left as it is (rotate it with RotateWebhookSecret)",
				"tenant_id", tenantID, "endpoint_id", id)
		}
	}
	return counts, nil
}
