# shellcheck shell=bash
# bench/run --cluster N: sourced by bench/run after its references, with its
# helpers (step, free_port, healthz_ok, start_cairn, field, ratio ...) and
# variables (work, seconds, quick, fsync_mbps, dd_mbps ...) in scope.
#
# A replicated cluster on one machine is measured against a single node in
# the same run, since both share the disk and the two cores: N cairn serve
# processes on 127.0.0.1, each with its own data directory under the run's
# directory, topics with replication factor 3. The workloads are cairn
# bench produce's (1 KiB acks=all, unpaced and paced at half the maximum),
# then kills_per_age SIGKILLs of a partition's leader, each measured by
# bench/failover from the kill to the first acknowledgement by another node,
# the killed node restarted and the cluster healthy again before the next.
# Idle cost: fresh processes, one topic of idle_partitions partitions, CPU
# over idle_seconds and RSS. Writes bench/results/<YYYY-MM-DD>-cluster.md.

cluster_runs="1k:all:1 1k:all:16"
kills_per_age=20
# The first is franz-go's default MetadataMinAge, which cairn bench and any
# client left at its defaults use; the second the same for a producer that
# has run 6 s (past MetadataMinAge, as a long-lived one has: AGE+STEADY is
# bench/failover's --steady); the last a client tuned for failover.
kill_ages="5s 5s+6s 250ms"
idle_partitions=100
idle_settle=5
idle_seconds=10
replication_factor=3
results=$results_dir/$day-cluster.md
clk_tck=$(getconf CLK_TCK)
# Per node, indexed by node id from 1.
declare -a node_pid node_kafka node_http node_raft

# proc_cpu PID...: user plus system CPU seconds the processes have used.
proc_cpu() {
	local pid total=0 ticks
	for pid in "$@"; do
		# Fields 14 and 15 after the ")" that ends the command name.
		ticks=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		total=$((total + ${ticks:-0}))
	done
	awk -v t="$total" -v h="$clk_tck" 'BEGIN { printf "%.2f", t / h }'
}

# proc_rss_mb PID: resident memory in MB (2^20 bytes) from /proc.
proc_rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

# node_start I: start node I on its ports and data directory (a restart
# reuses both); sets node_pid[I].
node_start() {
	local i=$1
	"$work/cairn" serve --node-id "$i" --data-dir "$work/node$i" \
		--kafka-addr "127.0.0.1:${node_kafka[i]}" --http-addr "127.0.0.1:${node_http[i]}" \
		--raft-addr "127.0.0.1:${node_raft[i]}" --peers "$cluster_peers" >>"$work/node$i.log" 2>&1 &
	node_pid[i]=$!
	cluster_pids="${node_pid[*]}"
}

# node_stop I [SIGNAL]: stop node I (SIGTERM unless told) and reap it.
node_stop() {
	local i=$1 signal=${2:-TERM}
	[ -n "${node_pid[i]:-}" ] || return 0
	kill "-$signal" "${node_pid[i]}" 2>/dev/null || true
	wait "${node_pid[i]}" 2>/dev/null || true
	node_pid[i]=""
	cluster_pids="${node_pid[*]}"
}

# cluster_healthy: wait up to 5 minutes (a new node's own wait for its
# peers) until every node's /healthz answers 200.
cluster_healthy() {
	local i ok
	for _ in $(seq 1 3000); do
		ok=1
		for i in $(seq 1 "$cluster"); do
			if ! kill -0 "${node_pid[i]}" 2>/dev/null; then
				echo "node $i exited:" >&2
				tail -n 5 "$work/node$i.log" >&2
				return 1
			fi
			healthz_ok "${node_http[i]}" || { ok=0; break; }
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	echo "the cluster was not healthy after 5 minutes" >&2
	return 1
}

# cluster_start: pick 3 × N distinct free ports, start every node, wait
# until all are healthy.
cluster_start() {
	local i used=" " port
	cluster_peers=""
	cluster_brokers=""
	for i in $(seq 1 "$cluster"); do
		for role in kafka http raft; do
			port=$(free_port)
			while [[ $used == *" $port "* ]]; do port=$(free_port); done
			used="$used$port "
			case $role in
			kafka) node_kafka[i]=$port ;;
			http) node_http[i]=$port ;;
			raft) node_raft[i]=$port ;;
			esac
		done
		cluster_peers="${cluster_peers:+$cluster_peers,}$i=127.0.0.1:${node_raft[i]}"
		cluster_brokers="${cluster_brokers:+$cluster_brokers,}127.0.0.1:${node_kafka[i]}"
	done
	for i in $(seq 1 "$cluster"); do node_start "$i"; done
	cluster_healthy
}

cluster_stop() {
	local i
	for i in $(seq 1 "$cluster"); do node_stop "$i"; done
}

# pid_list: "1=PID,2=PID,..." for bench/failover.
pid_list() {
	local i out=""
	for i in $(seq 1 "$cluster"); do out="${out:+$out,}$i=${node_pid[i]}"; done
	echo "$out"
}

# topic_ready BROKERS TOPIC REPLICAS: wait up to 60 s until every partition
# of TOPIC has a leader and REPLICAS in-sync replicas, so a workload does
# not time the elections of its own topic.
topic_ready() {
	local brokers=$1 topic=$2 replicas=$3
	for _ in $(seq 1 600); do
		if "$work/cairn" topic describe "$topic" --brokers "$brokers" 2>/dev/null | awk -v r="$replicas" '
			/^partitions:/ { want = $2 }
			/^PARTITION/ { table = 1; next }
			table && $1 ~ /^[0-9]+$/ { rows++; if ($2 >= 0 && $6 != "-" && split($5, a, ",") == r) ready++ }
			END { exit !(want > 0 && rows == want && ready == want) }'; then
			return 0
		fi
		sleep 0.1
	done
	echo "topic $topic was not ready after 60 s" >&2
	return 1
}

# make_topic BROKERS TOPIC PARTITIONS REPLICAS: create TOPIC and wait for it.
make_topic() {
	"$work/cairn" topic create "$2" --partitions "$3" --replication-factor "$4" --brokers "$1" \
		>/dev/null 2>"$work/create.err" || { echo "could not create $2: $(tail -n 1 "$work/create.err")" >&2; return 1; }
	topic_ready "$1" "$2" "$4"
}

drop() {
	"$work/cairn" topic delete "$2" --brokers "$1" >/dev/null 2>"$work/delete.err" ||
		echo "could not delete topic $2: $(tail -n 1 "$work/delete.err")" >&2
}

# cbench NAME BROKERS PIDS ARGS...: one cairn bench workload; its summary
# goes to NAME.json and the CPU seconds PIDS used during it to NAME.cpu
# (every node's, so the broker column of both setups means the same).
cbench() {
	local name=$1 brokers=$2 pids=$3 before
	shift 3
	step "cairn bench $* ($name)"
	# shellcheck disable=SC2086 # PIDS is a list
	before=$(proc_cpu $pids)
	if ! "$work/cairn" bench "$@" --brokers "$brokers" --metrics-url "" --timeout "$drain_timeout" --json \
		>"$work/$name.json" 2>"$work/$name.err"; then
		echo "cairn bench $name failed:" >&2
		tail -n 5 "$work/$name.err" >&2
		echo "failed" >"$work/$name.failed"
	fi
	# shellcheck disable=SC2086
	awk -v a="$before" -v b="$(proc_cpu $pids)" 'BEGIN { printf "%.2f", b - a }' >"$work/$name.cpu"
}

# idle NAME BROKERS REPLICAS PIDS...: one topic of idle_partitions
# partitions, idle_settle seconds, then the CPU the processes use over
# idle_seconds (NAME.idle-cpu, in % of one core, summed) and each one's RSS
# (NAME.idle-rss, MB, space-separated). The topic is deleted afterwards.
idle() {
	local name=$1 brokers=$2 replicas=$3 before pid
	shift 3
	step "idle: one topic of $idle_partitions partitions × $replicas replicas, ${idle_settle}s, then ${idle_seconds}s measured"
	make_topic "$brokers" bench-idle "$idle_partitions" "$replicas" || return 0
	sleep "$idle_settle"
	before=$(proc_cpu "$@")
	sleep "$idle_seconds"
	awk -v a="$before" -v b="$(proc_cpu "$@")" -v s="$idle_seconds" 'BEGIN { printf "%.1f", (b - a) / s * 100 }' \
		>"$work/$name.idle-cpu"
	for pid in "$@"; do printf '%s ' "$(proc_rss_mb "$pid")"; done >"$work/$name.idle-rss"
	drop "$brokers" bench-idle
}

# produce_runs PREFIX BROKERS REPLICAS PIDS: the produce workloads, then
# the paced one at half the one-partition maximum.
produce_runs() {
	local prefix=$1 brokers=$2 replicas=$3 pids=$4 spec size acks parts topic max rate
	for spec in $cluster_runs; do
		IFS=: read -r size acks parts <<<"$spec"
		topic=bench-$size-$acks-p$parts
		make_topic "$brokers" "$topic" "$parts" "$replicas" || continue
		cbench "$prefix-produce-$size-$acks-p$parts" "$brokers" "$pids" produce --topic "$topic" \
			--partitions "$parts" --record-bytes "$(size_bytes "$size")" --acks all \
			--duration "${seconds}s" --records "$records_max"
		drop "$brokers" "$topic"
	done
	max=$(field "$prefix-produce-1k-all-p1" records_per_second)
	[ -n "$max" ] || return 0
	rate=$(awk -v r="$max" 'BEGIN { printf "%d", r / 2 }')
	printf '%s' "$rate" >"$work/$prefix-paced-50.rate"
	make_topic "$brokers" bench-paced-50 1 "$replicas" || return 0
	cbench "$prefix-paced-50" "$brokers" "$pids" produce --topic bench-paced-50 --record-bytes 1024 --acks all \
		--rate "$rate" --duration "${seconds}s" --records "$records_max"
	drop "$brokers" bench-paced-50
}

# kill_loop AGE: kills_per_age leader failovers with the client's
# MetadataMinAge at AGE; one JSON line per kill in failover-AGE.jsonl.
# After each, every dead node is started again and the next kill waits
# (in bench/failover) until all replicas are back in sync. A failed kill
# ends the loop for AGE, once the cluster is whole again.
kill_loop() {
	local age=${1%%+*} steady=0s k i failed out="$work/failover-$1.jsonl"
	[[ $1 == *+* ]] && steady=${1#*+}
	: >"$out"
	for k in $(seq 1 "$kills_per_age"); do
		step "failover $k/$kills_per_age, MetadataMinAge $age"
		failed=0
		"$work/failover" --brokers "$cluster_brokers" --topic bench-failover --pids "$(pid_list)" \
			--metadata-min-age "$age" --steady "$steady" --timeout 60s --json >>"$out" 2>"$work/failover.err" || failed=1
		if [ "$failed" = 1 ]; then
			echo "failover $k failed: $(tail -n 1 "$work/failover.err")" >&2
			echo "MetadataMinAge $age, kill $k: $(tail -n 1 "$work/failover.err")" >>"$work/failover-errors.txt"
		fi
		for i in $(seq 1 "$cluster"); do
			if ! kill -0 "${node_pid[i]}" 2>/dev/null; then
				wait "${node_pid[i]}" 2>/dev/null || true
				node_start "$i"
			fi
		done
		cluster_healthy || return 1
		[ "$failed" = 0 ] || return 0
	done
}

# percentile P FILE KEY: nearest-rank percentile P (0-100) of KEY over the
# JSON lines of FILE; with 20 values p99 is the largest.
percentile() {
	sed -n "s/.*\"$3\":\([0-9.]*\).*/\1/p" "$2" 2>/dev/null | sort -n |
		awk -v p="$1" '{ v[NR] = $1 } END { if (NR > 0) { i = int(p / 100 * NR); if (i < p / 100 * NR) i++; if (i < 1) i = 1; printf "%.0f", v[i] } }'
}

# Single node, the reference for every ratio.
step "single node: cairn serve, data in $work/single"
start_cairn "$work/single" "$work/single.log" || exit 1
single_brokers=127.0.0.1:$kafka_port
idle single "$single_brokers" 1 "$server_pid"
produce_runs single "$single_brokers" 1 "$server_pid"
stop_cairn
rm -rf "$work/single"

step "cluster: $cluster × cairn serve, data in $work/node1..$cluster"
cluster_start || exit 1
step "cluster brokers $cluster_brokers, peers $cluster_peers"
idle cluster "$cluster_brokers" "$replication_factor" "${node_pid[@]}"
produce_runs cluster "$cluster_brokers" "$replication_factor" "${node_pid[*]}"
if make_topic "$cluster_brokers" bench-failover 1 "$replication_factor"; then
	for age in $kill_ages; do kill_loop "$age" || break; done
fi
cluster_stop

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain -- . ':!bench/results' 2>/dev/null)" ]; then
	commit="$commit (with uncommitted changes)"
fi
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
fs_type=$(df -PT "$work" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)
run_minutes=$(awk -v s="$SECONDS" 'BEGIN { printf "%.1f", s / 60 }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)

# crow LABEL NAME: one produce row, cluster against single node.
crow() {
	local label=$1 name=$2 c s
	c=cluster-$name s=single-$name
	printf '| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s / %s |\n' "$label" \
		"$(group "$(field "$c" records_per_second)")" "$(fmt '%.1f' "$(field "$c" megabytes_per_second)")" \
		"$(fmt '%.1f' "$(field "$s" megabytes_per_second)")" \
		"$(ratio "$(field "$c" megabytes_per_second)" "$(field "$s" megabytes_per_second)")" \
		"$(fmt '%.1f' "$(field "$c" p50_ms)")" "$(fmt '%.1f' "$(field "$s" p50_ms)")" \
		"$(fmt '%.1f' "$(field "$c" p99_ms)")" "$(fmt '%.1f' "$(field "$s" p99_ms)")" \
		"$(ratio "$(field "$c" megabytes_per_second)" "$fsync_mbps")" \
		"$(cat "$work/$c.cpu" 2>/dev/null || printf '—')" "$(cat "$work/$s.cpu" 2>/dev/null || printf '—')"
}

c1=$(field cluster-produce-1k-all-p1 megabytes_per_second)
s1=$(field single-produce-1k-all-p1 megabytes_per_second)
c16=$(field cluster-produce-1k-all-p16 megabytes_per_second)
s16=$(field single-produce-1k-all-p16 megabytes_per_second)
{
	echo "# Cairn cluster benchmark, $day"
	echo
	echo "\`bench/run --cluster $cluster$([ "$quick" = 1 ] && echo ' --quick')\` ($mode run: ${seconds} s per workload, $run_minutes minutes in all) at commit $commit;"
	echo "$(go version | cut -d' ' -f3), $(uname -sr), $(nproc) CPUs${cpu_model:+ ($cpu_model)},"
	echo "data directories on ${fs_type:-an unknown filesystem} under $base_dir. The $cluster nodes, the single node"
	echo "they are compared with (run first, alone), and the clients share the machine; its load"
	echo "average (1, 5, 15 min) was ${load_before:-unknown} before the run and ${load_after:-unknown} after."
	echo
	echo "## Summary"
	echo
	echo "| figure | cluster ($cluster nodes, RF $replication_factor) | single node | cluster ÷ single | target |"
	echo "| --- | ---: | ---: | ---: | --- |"
	echo "| produce 1 KiB acks=all, 1 partition | $(fmt '%.1f' "$c1") MB/s | $(fmt '%.1f' "$s1") MB/s | $(ratio "$c1" "$s1") | ≥ 0.5 |"
	echo "| produce 1 KiB acks=all, 16 partitions | $(fmt '%.1f' "$c16") MB/s | $(fmt '%.1f' "$s16") MB/s | $(ratio "$c16" "$s16") | ≥ 0.5 |"
	echo "| produce 1 KiB acks=all at 50% of its own max: p50 / p99 | $(fmt '%.1f' "$(field cluster-paced-50 p50_ms)") / $(fmt '%.1f' "$(field cluster-paced-50 p99_ms)") ms | $(fmt '%.1f' "$(field single-paced-50 p50_ms)") / $(fmt '%.1f' "$(field single-paced-50 p99_ms)") ms | $(ratio "$(field cluster-paced-50 p99_ms)" "$(field single-paced-50 p99_ms)") (p99) | ≤ 3 (p99) |"
	for age in $kill_ages; do
		n=$(wc -l <"$work/failover-$age.jsonl" 2>/dev/null || echo 0)
		echo "| SIGKILL of the leader → first acknowledgement by another node, p50 / p99 over $n kills, MetadataMinAge $age | $(group "$(percentile 50 "$work/failover-$age.jsonl" first_ack_ms)") / $(group "$(percentile 99 "$work/failover-$age.jsonl" first_ack_ms)") ms | — | — | < 2,000 ms |"
	done
	echo "| idle CPU, one topic of $idle_partitions partitions, all nodes | $(cat "$work/cluster.idle-cpu" 2>/dev/null || printf '—') % of a core | $(cat "$work/single.idle-cpu" 2>/dev/null || printf '—') % | $(ratio "$(cat "$work/cluster.idle-cpu" 2>/dev/null)" "$(cat "$work/single.idle-cpu" 2>/dev/null)") | — |"
	echo "| idle RSS per node, same | $(cat "$work/cluster.idle-rss" 2>/dev/null || printf '—')MB | $(cat "$work/single.idle-rss" 2>/dev/null || printf '—')MB | — | — |"
	echo
	echo "## References, measured in the same run"
	echo
	echo "| reference | figure |"
	echo "| --- | --- |"
	echo "| bench/fsyncref: 1 MiB append + fdatasync, best of $fsync_rounds × $fsync_round_time | $(fmt '%.1f' "$fsync_mbps") MB/s |"
	echo "| bench/fsyncref: 4 KiB append + fdatasync | $(fmt '%.0f' "$fsync_small_rate")/s; p50 $(fmt '%.3f' "$fsync_small_p50") ms, p99 $(fmt '%.3f' "$fsync_small_p99") ms |"
	echo "| dd bs=1M count=$dd_count conv=fdatasync | $(fmt '%.1f' "$dd_mbps") MB/s |"
	echo
	echo "## Produce"
	echo
	echo "| workload | cluster records/s | cluster MB/s | single MB/s | cluster ÷ single | p50 ms cluster / single | p99 ms cluster / single | cluster ÷ fsyncref 1 MiB | node CPU s cluster / single |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	crow "1 KiB, acks=all, 1 partition" produce-1k-all-p1
	crow "1 KiB, acks=all, 16 partitions" produce-1k-all-p16
	crow "1 KiB, acks=all, paced at 50% of its own 1-partition max: cluster $(cat "$work/cluster-paced-50.rate" 2>/dev/null), single $(cat "$work/single-paced-50.rate" 2>/dev/null) records/s" paced-50
	echo
	echo "The cluster's topics have $replication_factor replicas; the single node's one. Unpaced"
	echo "latency is mostly queueing in the client (up to 50,000 buffered records); the"
	echo "paced rows measure from each record's due time to its acknowledgement. Node CPU"
	echo "is user plus system time of every node process from /proc during the run."
	echo
	echo "## Failover"
	echo
	echo "bench/failover produces one 100 B record every 5 ms (acks=all) to a one-partition topic"
	echo "with $replication_factor replicas, waits until the leader has acknowledged one, sends the leader's"
	echo "process SIGKILL and times the first batch another node acknowledges (franz-go's"
	echo "produce hook names the broker). The killed node is then started again on its data"
	echo "directory, every node's /healthz must answer 200, and the next kill waits until all"
	echo "replicas are in sync. MetadataMinAge is the least time between the client's"
	echo "metadata refreshes: 5 s is franz-go's default, the setting of \`cairn bench\` and of"
	echo "any franz-go client left at its defaults; the client learns of the new leader only"
	echo "at a refresh, and refreshes at once only when its last refresh is older than"
	echo "MetadataMinAge. A new client is made for each kill; AGE+S: it produces for S"
	echo "before the kill (a long-lived producer)."
	echo
	echo "| MetadataMinAge | kills | p50 ms | p99 ms | min ms | max ms | new leaders |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for age in $kill_ages; do
		f=$work/failover-$age.jsonl
		echo "| $age | $(wc -l <"$f" 2>/dev/null || echo 0) | $(group "$(percentile 50 "$f" first_ack_ms)") | $(group "$(percentile 99 "$f" first_ack_ms)") | $(group "$(percentile 0 "$f" first_ack_ms)") | $(group "$(percentile 100 "$f" first_ack_ms)") | $(sed -n 's/.*"killed_node":\([0-9]*\),"new_leader":\([0-9]*\).*/\1→\2/p' "$f" 2>/dev/null | tr '\n' ' ') |"
	done
	if [ -s "$work/failover-errors.txt" ]; then
		echo
		echo "Kills that did not complete:"
		echo
		sed 's/^/- /' "$work/failover-errors.txt"
	fi
	echo
	echo "## Idle"
	echo
	echo "Fresh processes, before any workload: one topic of $idle_partitions partitions ($replication_factor replicas"
	echo "on the cluster, so $((idle_partitions * replication_factor)) replicas over $cluster nodes), ${idle_settle} s to settle, then CPU"
	echo "over ${idle_seconds} s from /proc (user + system, in % of one core, all nodes summed) and VmRSS"
	echo "of each process."
	echo
	echo "## Commands"
	echo
	echo '```sh'
	echo "bench/run --cluster $cluster$([ "$quick" = 1 ] && echo ' --quick')"
	echo "# each node (ports picked free on 127.0.0.1):"
	echo "cairn serve --node-id I --data-dir DIR/nodeI --kafka-addr 127.0.0.1:K --http-addr 127.0.0.1:H \\"
	echo "  --raft-addr 127.0.0.1:R --peers 1=127.0.0.1:R1,2=127.0.0.1:R2,3=127.0.0.1:R3"
	echo "cairn topic create T --partitions P --replication-factor $replication_factor   # 1 on the single node"
	echo "cairn bench produce --topic T --partitions P --record-bytes 1024 --acks all --duration ${seconds}s [--rate R]"
	echo "failover --brokers B --topic bench-failover --pids 1=PID,2=PID,3=PID --metadata-min-age 5s|250ms [--steady 6s] --json"
	echo '```'
	echo
	echo "<details><summary>Raw summaries (cairn bench --json, bench/fsyncref --json, bench/failover --json)</summary>"
	echo
	echo '```text'
	for file in "$work"/fsyncref.json "$work"/single-*.json "$work"/cluster-*.json; do
		[ -s "$file" ] && echo "$(basename "$file" .json): $(cat "$file")"
	done
	for age in $kill_ages; do
		[ -s "$work/failover-$age.jsonl" ] && sed "s/^/failover-$age: /" "$work/failover-$age.jsonl"
	done
	echo '```'
	echo
	echo '</details>'
} >"$results"

step "wrote $results"
awk '/^## Summary/, /^## References/' "$results" >&2
