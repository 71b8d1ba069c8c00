package events

import (
	"errors"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func asInvalid(err error, ia **serviceerror.InvalidArgument) bool { return errors.As(err, ia) }
