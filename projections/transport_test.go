package projections

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"herald/events/transport"
)

func transportNewPublisher(h *harness) (message.Publisher, error) {
	return transport.NewPublisher(h.rds.Opts, h.rds.Transport, transport.NewLoggerAdapter(quietLog()))
}
