package storetest_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/coroner-dev/coroner/internal/service/store/storetest"
)

func selectOne(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// TestServerLifecycle checks the states the server helper promises: a
// standby refuses connections with 57P03 until promoted, a stopped server
// refuses them, a restarted one keeps its data.
func TestServerLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	s := storetest.NewServer(t)
	s.StartStandby()
	// The standby listens and answers every connection with 57P03; wait for
	// it to listen (connection refused before).
	var pgErr *pgconn.PgError
	deadline := time.Now().Add(time.Minute)
	for {
		err := selectOne(s.DSN)
		if errors.As(err, &pgErr) {
			break
		}
		if err == nil {
			t.Fatal("standby answered a query")
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pgErr.Code != "57P03" {
		t.Fatalf("standby refused with %s (%s), want 57P03", pgErr.Code, pgErr.Message)
	}
	t.Logf("standby: %s %s", pgErr.Code, pgErr.Message)
	s.Promote()
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := selectOne(s.DSN); err == nil {
		t.Fatal("stopped server answered")
	}
	s.Start()
	s.WaitReady()
	var v int
	if err := db.QueryRow("SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: %d, %v", v, err)
	}
}
