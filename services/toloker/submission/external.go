package submission

import (
	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// externalSubmit is the body Toloka gets for sub. Every optional field of
// seed 001 is sent exactly when the platform gave it, with its value:
// close_session and skipped false, and counts of 0, are sent as false and 0;
// a field the platform did not give is left out.
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
	if sub.CloseSession != nil {
		es.CloseSession = toloka.Ptr(sub.GetCloseSession())
	}
	if sub.Skipped != nil {
		es.Skipped = toloka.Ptr(sub.GetSkipped())
	}
	if t := sub.GetStartTime(); t != nil {
		es.StartTime = toloka.Ptr(t.AsTime())
	}
	if t := sub.GetEndTime(); t != nil {
		es.EndTime = toloka.Ptr(t.AsTime())
	}
	for _, c := range []struct {
		n   *int32
		dst **int
	}{
		{sub.GoldenTasksCount, &es.GoldenTasksCount},
		{sub.TrainingTasksCount, &es.TrainingTasksCount},
		{sub.RealTasksCount, &es.RealTasksCount},
	} {
		if c.n != nil {
			*c.dst = toloka.Ptr(int(*c.n))
		}
	}
	return es, nil
}
