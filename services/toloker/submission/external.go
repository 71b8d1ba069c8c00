package submission

import (
	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// externalSubmit is the body Toloka gets for sub. Optional fields are sent
// only when set: false flags and zero counts are left out.
func externalSubmit(sub *crowdgatev1.Submission, tolokaPoolID string) (*toloka.ExternalSubmit, error) {
	reward, err := money.Parse(sub.GetReward())
	if err != nil {
		return nil, err
	}
	es := &toloka.ExternalSubmit{
		PoolID:    tolokaPoolID,
		UserID:    sub.GetUserId(),
		RetryID:   sub.GetRetryId(),
		Reward:    reward,
		CustomLog: sub.GetCustomLog(),
	}
	if q := sub.GetQuality(); q != "" {
		d, err := money.Parse(q)
		if err != nil {
			return nil, err
		}
		es.Quality = &d
	}
	if sub.GetCloseSession() {
		es.CloseSession = toloka.Ptr(true)
	}
	if sub.GetSkipped() {
		es.Skipped = toloka.Ptr(true)
	}
	if t := sub.GetStartTime(); t != nil {
		es.StartTime = toloka.Ptr(t.AsTime())
	}
	if t := sub.GetEndTime(); t != nil {
		es.EndTime = toloka.Ptr(t.AsTime())
	}
	for _, c := range []struct {
		n   int32
		dst **int
	}{
		{sub.GetGoldenTasksCount(), &es.GoldenTasksCount},
		{sub.GetTrainingTasksCount(), &es.TrainingTasksCount},
		{sub.GetRealTasksCount(), &es.RealTasksCount},
	} {
		if c.n > 0 {
			*c.dst = toloka.Ptr(int(c.n))
		}
	}
	return es, nil
}
