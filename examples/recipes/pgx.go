// Go pgx v5: a pool whose connections log in with tokens from the broker (BeforeConnect).
package orders

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type issued struct {
	Token  string `json:"token"`
	Host   string `json:"host"`
	Port   uint16 `json:"port"`
	DBUser string `json:"db_user"`
}

func callerJWT() (string, error) {
	if jwt := os.Getenv("RDS_TOKEN_BROKER_JWT"); jwt != "" {
		return strings.TrimSpace(jwt), nil
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/token")
	return strings.TrimSpace(string(b)), err
}

func fetchToken(ctx context.Context, target string) (*issued, error) {
	jwt, err := callerJWT()
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"target": target})
	url := strings.TrimSuffix(os.Getenv("RDS_TOKEN_BROKER_URL"), "/") + "/v1/tokens"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rds-token-broker: %s", res.Status)
	}
	var t issued
	return &t, json.NewDecoder(res.Body).Decode(&t)
}

// OrdersPool connects to the database the broker names, with a fresh token per connection.
func OrdersPool(ctx context.Context) (*pgxpool.Pool, error) {
	first, err := fetchToken(ctx, "orders-db")
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf(
		"host=%s port=%d user=%s dbname=orders sslmode=verify-full", first.Host, first.Port, first.DBUser))
	if err != nil {
		return nil, err
	}
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		t, err := fetchToken(ctx, "orders-db")
		if err != nil {
			return err
		}
		cc.Password = t.Token
		return nil
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
