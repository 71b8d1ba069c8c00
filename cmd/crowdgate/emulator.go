package main

import (
	"context"
	"log/slog"
)

// startEmbeddedEmulator starts the Toloka API emulator in this process and
// returns its API base URL. The gateway only ever sees that URL.
func startEmbeddedEmulator(ctx context.Context, log *slog.Logger) (string, error) {
	_ = ctx
	log.Warn("the embedded Toloka emulator is not built into this binary yet; using the configured Toloka URLs")
	return "", nil
}
