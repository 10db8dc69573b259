// Package transport connects Herald to Redis Streams through Watermill: topic and key naming
// under one prefix, publisher and subscriber construction with Herald's knobs, and a zerolog
// adapter for Watermill's logger.
package transport

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Metadata keys every relayed message carries.
const (
	MetaEventType      = "event_type"
	MetaStreamID       = "stream_id"
	MetaStreamVersion  = "stream_version"
	MetaGlobalPosition = "global_position"
	MetaTransactionID  = "transaction_id"
	MetaSchemaVersion  = "schema_version"
	MetaCorrelationID  = "correlation_id"
	MetaCausationID    = "causation_id"
	MetaRecordedAt     = "recorded_at"
)

// Config names Herald's Redis keys and tunes delivery.
type Config struct {
	// Prefix is put before every key and stream, so several installations (or tests) can share
	// one Redis. It should end with ':'.
	Prefix string
	// MaxLen caps each stream (approximate trimming). Redis is a transport, never the record:
	// history lives in Postgres, so streams can be short.
	MaxLen int64
	// MaxIdleTime is how long a delivered, unacked entry waits before another consumer in the
	// group may claim it. Handlers must finish far inside it.
	MaxIdleTime time.Duration
	// ClaimInterval is how often a subscriber looks for entries to claim.
	ClaimInterval time.Duration
	// BlockTime is how long one XREADGROUP blocks.
	BlockTime time.Duration
	// NackResendSleep delays the redelivery of a nacked message.
	NackResendSleep time.Duration
}

// Defaults for Config.
const (
	DefaultPrefix          = "herald:"
	DefaultMaxLen          = 100_000
	DefaultMaxIdleTime     = 30 * time.Second
	DefaultClaimInterval   = 5 * time.Second
	DefaultBlockTime       = 100 * time.Millisecond
	DefaultNackResendSleep = 200 * time.Millisecond
)

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
	}
	if c.MaxIdleTime == 0 {
		c.MaxIdleTime = DefaultMaxIdleTime
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = DefaultClaimInterval
	}
	if c.BlockTime == 0 {
		c.BlockTime = DefaultBlockTime
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = DefaultNackResendSleep
	}
	return c
}

// Validate lists every problem.
func (c Config) Validate() error {
	var errs []error
	if strings.ContainsAny(c.Prefix, " \t\n") {
		errs = append(errs, fmt.Errorf("transport: Prefix %q has white space", c.Prefix))
	}
	if c.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("transport: MaxLen must be ≥ 0, got %d", c.MaxLen))
	}
	if c.MaxIdleTime < time.Second {
		errs = append(errs, fmt.Errorf("transport: MaxIdleTime must be ≥ 1s, got %s", c.MaxIdleTime))
	}
	if c.BlockTime <= 0 || c.BlockTime >= c.MaxIdleTime {
		errs = append(errs, fmt.Errorf("transport: BlockTime must be in (0, MaxIdleTime), got %s", c.BlockTime))
	}
	return errors.Join(errs...)
}

// EventsTopic is the per-event stream of one category (the part of a stream id before '-').
func (c Config) EventsTopic(category string) string { return c.Prefix + "events:" + category }

// CommittedTopic carries "the log is committed up to P" doorbells for projections.
func (c Config) CommittedTopic() string { return c.Prefix + "committed" }

// EpochKey holds the relay's epoch; its absence means Redis lost its data.
func (c Config) EpochKey() string { return c.Prefix + "epoch" }

// Group names a consumer group.
func (c Config) Group(name string) string { return c.Prefix + name }

// Category returns the category of a stream id ("user-+5199…" → "user").
func Category(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i > 0 {
		return streamID[:i]
	}
	return streamID
}

// NewPublisher returns a Watermill publisher on its own Redis client (Watermill closes the
// client it is given when it closes).
func NewPublisher(opts *redis.Options, cfg Config, log watermill.LoggerAdapter) (*redisstream.Publisher, error) {
	return redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:        redis.NewClient(opts),
		DefaultMaxlen: cfg.MaxLen,
	}, log)
}

// NewSubscriber returns a consumer-group subscriber on its own Redis client. It stops (closing
// its channel) when the group has vanished — Redis lost its data — so the caller can
// subscribe again, which re-creates the group.
func NewSubscriber(opts *redis.Options, cfg Config, group, consumer string, log watermill.LoggerAdapter) (*redisstream.Subscriber, error) {
	return redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        redis.NewClient(opts),
		ConsumerGroup:                 cfg.Group(group),
		Consumer:                      consumer,
		MaxIdleTime:                   cfg.MaxIdleTime,
		ClaimInterval:                 cfg.ClaimInterval,
		BlockTime:                     cfg.BlockTime,
		NackResendSleep:               cfg.NackResendSleep,
		OldestId:                      "0",
		DisableIndefiniteInitialBlock: true,
		ShouldStopOnReadErrors:        IsGroupLost,
	}, log)
}

// IsGroupLost reports Redis's answer for a stream or group that no longer exists.
func IsGroupLost(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

// LoggerAdapter adapts zerolog to Watermill.
type LoggerAdapter struct {
	log zerolog.Logger
}

// NewLoggerAdapter wraps log. Watermill's Info is logged at debug level: it is chatty.
func NewLoggerAdapter(log zerolog.Logger) *LoggerAdapter { return &LoggerAdapter{log: log} }

func (l *LoggerAdapter) Error(msg string, err error, fields watermill.LogFields) {
	l.log.Error().Err(err).Fields(map[string]any(fields)).Msg(msg)
}

func (l *LoggerAdapter) Info(msg string, fields watermill.LogFields) {
	l.log.Debug().Fields(map[string]any(fields)).Msg(msg)
}

func (l *LoggerAdapter) Debug(msg string, fields watermill.LogFields) {
	l.log.Trace().Fields(map[string]any(fields)).Msg(msg)
}

func (l *LoggerAdapter) Trace(msg string, fields watermill.LogFields) {
	l.log.Trace().Fields(map[string]any(fields)).Msg(msg)
}

func (l *LoggerAdapter) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &LoggerAdapter{log: l.log.With().Fields(map[string]any(fields)).Logger()}
}
