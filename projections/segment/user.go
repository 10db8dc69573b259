package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const sqlLoadUser = `SELECT u.phone, u.country, u.consent, u.locale, u.timezone, u.created_at, u.last_inbound_at, u.attributes,
    coalesce((SELECT array_agg(s.topic ORDER BY s.topic) FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed), '{}')
FROM users u WHERE u.phone = $1`

// LoadUser reads what Eval needs about one user from the users and subscriptions read models;
// found is false when there is no such user.
func LoadUser(ctx context.Context, q Querier, phone string) (u User, found bool, err error) {
	var last *time.Time
	var attrs []byte
	err = q.QueryRow(ctx, sqlLoadUser, phone).Scan(&u.Phone, &u.Country, &u.Consent, &u.Locale, &u.Timezone,
		&u.CreatedAt, &last, &attrs, &u.Topics)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("segment: load user: %w", err)
	}
	if last != nil {
		u.LastInboundAt = *last
	}
	if err := json.Unmarshal(attrs, &u.Attributes); err != nil {
		return User{}, false, fmt.Errorf("segment: load user: attributes: %w", err)
	}
	return u, true, nil
}
