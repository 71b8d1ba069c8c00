package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// DemoAPIKey is the Toloka API key the embedded emulator accepts (account
// "demo"); register it with CreateCredential to try the flow.
const DemoAPIKey = "demo-toloka-api-key"

// startEmbeddedEmulator starts the Toloka API emulator in this process on
// addr and returns its API base URL. The gateway only ever sees that URL,
// exactly as it would see Toloka's.
func startEmbeddedEmulator(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("embedded Toloka emulator: listen on %s: %w", addr, err)
	}
	sim := tolokasim.New(tolokasim.Config{
		APIKeys:        map[string]string{DemoAPIKey: "demo"},
		OperationDelay: 200 * time.Millisecond,
		Logger:         log.With("component", "tolokasim"),
	})
	go func() {
		if err := sim.Serve(ctx, ln); err != nil {
			log.Error("embedded Toloka emulator stopped", "err", err)
		}
	}()
	url := "http://" + ln.Addr().String() + "/api/v1"
	log.Warn("using the EMBEDDED TOLOKA EMULATOR, not Toloka: nobody is paid. Admin API at http://"+ln.Addr().String()+"/_admin/",
		"api_url", url, "demo_api_key", DemoAPIKey)
	return url, nil
}
