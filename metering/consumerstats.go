package metering

import "context"

// ConsumerStats is the JetStream consumer's view of the events it holds,
// for /metrics: events in the stream not yet delivered (Pending), delivered
// and not yet acknowledged (AckPending), and of those, delivered more than
// once (Redelivered) — a poison event shows there, delivery after delivery,
// until it is parked.
type ConsumerStats struct {
	Pending     uint64
	AckPending  int
	Redelivered int
}

// Stats asks the broker for the consumer's state.
func (c *Consumer) Stats(ctx context.Context) (ConsumerStats, error) {
	info, err := c.consumer().Info(ctx)
	if err != nil {
		return ConsumerStats{}, err
	}
	return ConsumerStats{Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered}, nil
}
