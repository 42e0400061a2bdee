// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// binaries of the Debian postgresql package (/usr/lib/postgresql/*/bin):
// initdb into a temporary directory, trust authentication, listening on
// 127.0.0.1 only, run as the postgres user when the tests run as root (the
// server refuses root).
//
// A test binary shares one server: declare a Cluster, call CreateDatabase
// for a fresh database per test, and Stop it from TestMain:
//
//	var pg pgtest.Cluster
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		db, err := sql.Open("pgx", pg.CreateDatabase(t))
//		...
//	}
//
// Logical replication tests set Cluster.Logical (wal_level=logical, slots,
// WAL senders, a 64 kB logical_decoding_work_mem so that transactions of a
// few hundred rows stream in progress).
//
// Without the binaries a test is skipped, except under CI (CI=true), where
// it fails: CI installs PostgreSQL, so its absence there is a broken setup,
// not a reason to pass. A watchdog process removes the server should the
// test binary die before TestMain stops it (a timeout, SIGKILL), so killed
// runs leave no server behind on a shared machine.
package pgtest
