// Package balancebus carries the ids of changed wallets between ledgerd
// processes sharing a database, over NATS core: the wallet.Broadcaster of
// the balance cache. One message per committed batch (split only beyond
// maxPerMessage wallets): the sender's 16-byte origin, its 8-byte sequence
// number, then 16 bytes per wallet id. A process ignores its own messages.
// Core NATS may lose a message (a slow consumer, a reconnect): the
// receiver sees the gap in the sender's sequence at its next message and
// empties its cache, and the cache's maximum age bounds the rest (a sender
// cut off from NATS that still commits).
package balancebus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// DefaultSubject is where ledgerd publishes changed wallets. It lies
// outside the usage events' subjects (<LEDGER_NATS_SUBJECT_PREFIX>.>), so
// the events stream never captures it.
const DefaultSubject = "_ledgerd.balances"

// maxPerMessage keeps a message well under NATS's default 1 MB payload.
const maxPerMessage = 4096

// Bus is a wallet.Broadcaster over one NATS connection.
type Bus struct {
	nc      *nats.Conn
	subject string
	origin  [16]byte
	log     *slog.Logger

	mu  sync.Mutex
	sub *nats.Subscription
	seq uint64 // the last sequence number sent; under mu, so messages leave in its order

	heard map[[16]byte]uint64 // the last sequence number heard from each origin (the handler's own)
}

// header is the origin and the sequence number before the ids.
const header = 24

// New returns a bus on nc publishing and listening on subject.
func New(nc *nats.Conn, subject string, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{nc: nc, subject: subject, origin: uuid.New(), log: log, heard: map[[16]byte]uint64{}}
}

// Publish sends ids in one message (more only beyond maxPerMessage). It
// does not block: nats.go buffers, also while reconnecting.
func (b *Bus) Publish(ids []uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), maxPerMessage)
		body := make([]byte, header, header+16*n)
		copy(body, b.origin[:])
		b.seq++
		binary.BigEndian.PutUint64(body[16:header], b.seq)
		for _, id := range ids[:n] {
			body = append(body, id[:]...)
		}
		if err := b.nc.Publish(b.subject, body); err != nil {
			// The others see the gap at the next message and start over.
			b.log.Debug("balance invalidation not published", "err", err)
			return
		}
		ids = ids[n:]
	}
}

// Listen subscribes, hands other processes' ids to invalidate, and tells
// connected when the connection goes down (the cache stops serving at
// once) and once it is back with the subscription in force (a round trip
// to the server after the resubscription). It chains the connection's
// own handlers, which keep running.
func (b *Bus) Listen(invalidate func([]uuid.UUID), connected func(bool)) {
	sub, err := b.nc.Subscribe(b.subject, func(m *nats.Msg) {
		if len(m.Data) < header || (len(m.Data)-header)%16 != 0 || bytes.Equal(m.Data[:16], b.origin[:]) {
			return
		}
		ids := make([]uuid.UUID, 0, (len(m.Data)-header)/16)
		for p := header; p < len(m.Data); p += 16 {
			ids = append(ids, uuid.UUID(m.Data[p:p+16]))
		}
		invalidate(ids)
		// A sequence number that does not follow the last one heard from
		// its sender means messages were lost: what they invalidated may
		// be cached here. A sender heard for the first time past its first
		// message may have sent those before this process listened, or
		// been lost: start over either way (once per sender).
		origin := [16]byte(m.Data[:16])
		seq := binary.BigEndian.Uint64(m.Data[16:header])
		if last, ok := b.heard[origin]; ok && seq != last+1 || !ok && seq != 1 {
			b.log.Debug("balance invalidations lost; the cache starts over", "last", last, "seq", seq)
			connected(true)
		}
		b.heard[origin] = seq
	})
	if err != nil {
		// Without the subscription, invalidations never arrive: stay off.
		b.log.Warn("balance cache off: cannot subscribe to invalidations", "subject", b.subject, "err", err)
		connected(false)
		return
	}
	b.mu.Lock()
	b.sub = sub
	b.mu.Unlock()
	prevDisc, prevRecon, prevClosed, prevErr := b.nc.Opts.DisconnectedErrCB, b.nc.Opts.ReconnectedCB, b.nc.Opts.ClosedCB, b.nc.Opts.AsyncErrorCB
	b.nc.SetErrorHandler(func(nc *nats.Conn, s *nats.Subscription, err error) {
		// Messages dropped for a slow handler are invalidations missed:
		// start again from empty (online stays as it is).
		if s == sub && errors.Is(err, nats.ErrSlowConsumer) && nc.IsConnected() {
			connected(true)
		}
		if prevErr != nil {
			prevErr(nc, s, err)
		}
	})
	b.nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		connected(false)
		if prevDisc != nil {
			prevDisc(nc, err)
		}
	})
	b.nc.SetClosedHandler(func(nc *nats.Conn) {
		connected(false)
		if prevClosed != nil {
			prevClosed(nc)
		}
	})
	b.nc.SetReconnectHandler(func(nc *nats.Conn) {
		if prevRecon != nil {
			prevRecon(nc)
		}
		// nats.go resent the subscription before this callback; a flush
		// makes sure the server has it before the cache serves again.
		for range 5 {
			if !nc.IsConnected() {
				return // down again: its handler said so
			}
			if err := nc.FlushTimeout(2 * time.Second); err == nil {
				connected(true)
				return
			}
		}
		b.log.Warn("balance cache stays off: the NATS server does not answer after reconnecting")
	})
	if err := b.nc.FlushTimeout(2 * time.Second); err == nil && b.nc.IsConnected() {
		connected(true)
	} else {
		connected(false)
	}
}

// Close unsubscribes.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sub == nil {
		return nil
	}
	err := b.sub.Unsubscribe()
	b.sub = nil
	return err
}
