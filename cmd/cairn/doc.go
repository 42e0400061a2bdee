// Command cairn is the single Cairn binary: `cairn serve` runs the broker,
// and `topic`, `produce` and `consume` are a command-line client, built on
// franz-go, for any cluster that speaks the Kafka protocol. `cluster`
// (status, move, rebalance-leaders, add-node, remove-node) speaks to a Cairn
// cluster over the Kafka admin API, with the Cairn meanings of
// ElectLeaders and UnregisterBroker (docs/kafka-compat.md). `acl` and
// `quota` (set, list, remove) manage ACLs and client quotas over the Kafka
// admin APIs. `user` manages SASL users through AlterUserScramCredentials,
// or stages the first one in a stopped node's data directory (--data-dir). Every client command
// authenticates with --sasl-mechanism and --sasl-user and --sasl-password,
// or --sasl-token (OAUTHBEARER). `transactions` (list, describe, abort) are
// kafka-transactions.sh's commands, through kadm.
//
// Each subcommand lives in its own file and only parses flags and calls
// library code; the pure helpers (environment binding, --from parsing,
// output formats) are in internal/cli. The root command binds CAIRN_*
// environment variables to every flag not given on the command line, except
// those marked cli.CommandLineOnly (user create's --data-dir).
// serve's listener and TLS flags are in serve_security.go; the client
// commands' TLS flags (--tls, --tls-ca-file, --tls-cert-file,
// --tls-key-file) are registered with their connection flags (client.go,
// stream.go), as are their SASL flags (the stream commands send
// --sasl-user/--sasl-password as HTTP Basic, --sasl-token as Bearer).
//
// No client command outlives Ctrl-C (SIGINT), SIGTERM or its --timeout,
// whatever the cluster does: context.go gives each one a context ended by
// them and names the cause in the error ("interrupted (...)", "timed out
// after ..."), and a client stuck on a silent broker is closed when it ends.
package main
