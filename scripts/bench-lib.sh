# Shared by scripts/bench and scripts/bench-jobs (source it; not executable on its own).
#
# Every measurement gets a freshly made filesystem (a new loop-mounted ext4 image, or a new
# tmpfs), because ext4 small-file timings depend heavily on the allocator's state after earlier
# runs (rm -rf leaves it fragmented). Everything made here is removed by bench_cleanup, which the
# scripts run on exit.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_cache=${BENCH_CACHE:-/var/tmp/lifeboat-bench}
bench_cpus=$(nproc)
# BIN=DIR measures other binaries (e.g. an earlier build, for before/after figures).
bench_bin=${BIN:-$bench_root/.build/release}
lifeboat=$bench_bin/lifeboat
lifeboatd=$bench_bin/lifeboatd
ticks=$(getconf CLK_TCK)

bench_tmp=""
bench_mnt=""
bench_loop=""
bench_daemon_pid=""

bench_require() {
    [[ $EUID -eq 0 ]] || { echo "$(basename "$0"): run as root (it mounts loop devices and tmpfs)" >&2; exit 2; }
    local tool
    for tool in mkfs.ext4 losetup mount tar gzip python3 /usr/bin/time; do
        command -v "$tool" > /dev/null || { echo "$(basename "$0"): $tool is missing" >&2; exit 2; }
    done
    if [[ ${SKIP_BUILD:-0} != 1 && -z ${BIN:-} ]]; then
        echo "building release binaries (scripts/build-release)..." >&2
        (cd "$bench_root" && scripts/build-release > /dev/null) || { echo "release build failed" >&2; exit 2; }
    fi
    [[ -x $lifeboat && -x $lifeboatd ]] || { echo "no lifeboat and lifeboatd binaries in $bench_bin" >&2; exit 2; }
    bench_tmp=$(mktemp -d /var/tmp/lifeboat-bench-run.XXXXXX)
    bench_mnt=$bench_tmp/mnt
    mkdir -p "$bench_mnt"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    bench_stop_daemon
    bench_unmount
    [[ -n $bench_tmp && -d $bench_tmp ]] && rm -rf "$bench_tmp"
    return 0
}

# bench_mount ext4|tmpfs: a fresh, empty filesystem at $bench_mnt.
bench_mount() {
    bench_unmount
    case $1 in
        ext4)
            rm -f "$bench_tmp/ext4.img"
            truncate -s "${EXT4_SIZE:-8G}" "$bench_tmp/ext4.img"
            # No lazy initialisation: ext4lazyinit would write inode tables during the measurement.
            mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$bench_tmp/ext4.img"
            # Direct I/O on the backing file: writes reach the disk once, as on a real device.
            bench_loop=$(losetup --find --show --direct-io=on "$bench_tmp/ext4.img")
            mount "$bench_loop" "$bench_mnt"
            ;;
        tmpfs)
            mount -t tmpfs -o "size=${TMPFS_SIZE:-6G},mode=0755" lifeboat-bench "$bench_mnt"
            ;;
        *) echo "unknown filesystem $1" >&2; exit 2 ;;
    esac
    sync
}

bench_unmount() {
    if [[ -n $bench_mnt ]] && mountpoint -q "$bench_mnt"; then umount "$bench_mnt"; fi
    if [[ -n $bench_loop ]]; then losetup -d "$bench_loop" 2> /dev/null || true; bench_loop=""; fi
    rm -f "${bench_tmp:+$bench_tmp/ext4.img}"
}

# bench_time OUT COMMAND...: runs COMMAND under /usr/bin/time; writes "wall user sys maxrss_kib"
# to OUT (user, sys and peak RSS include waited-for children; peak RSS is the largest process).
bench_time() {
    local out=$1; shift
    /usr/bin/time -f '%e %U %S %M' -o "$out" "$@"
}

# bench_start_daemon PLAN_DIR: starts lifeboatd with a config of its own in $bench_tmp/daemon and
# waits until `lifeboat status` answers.
bench_start_daemon() {
    local plans=$1 dir=$bench_tmp/daemon
    rm -rf "$dir"
    mkdir -p "$dir/state"
    cat > "$dir/lifeboatd.yaml" << EOF
plans_dir: $plans
state_dir: $dir/state
socket: { path: $dir/lifeboatd.sock, mode: "0600" }
log: { level: ${DAEMON_LOG_LEVEL:-info} }
max_concurrent_runs: 1
EOF
    export LIFEBOAT_SOCKET=$dir/lifeboatd.sock
    "$lifeboatd" --config "$dir/lifeboatd.yaml" >> "$bench_tmp/daemon.log" 2>&1 &
    bench_daemon_pid=$!
    local i
    for ((i = 0; i < 200; i++)); do
        "$lifeboat" status > "$bench_tmp/status.out" 2>&1 && return 0
        kill -0 "$bench_daemon_pid" 2> /dev/null || break
        sleep 0.05
    done
    echo "lifeboatd did not start; status said: $(cat "$bench_tmp/status.out"); its log:" >&2
    tail -20 "$bench_tmp/daemon.log" >&2
    exit 1
}

bench_stop_daemon() {
    if [[ -n $bench_daemon_pid ]]; then
        kill -TERM "$bench_daemon_pid" 2> /dev/null || true
        wait "$bench_daemon_pid" 2> /dev/null || true
        bench_daemon_pid=""
    fi
}

# The daemon's CPU seconds so far (user+sys) and its peak resident set in KiB.
bench_daemon_cpu() {
    awk -v t="$ticks" '{ printf "%.2f %.2f\n", $14 / t, $15 / t }' "/proc/$bench_daemon_pid/stat"
}
bench_daemon_hwm() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$bench_daemon_pid/status"
}

# bench_warm DIR...: reads files into the page cache so every contender starts with them cached.
bench_warm() {
    find "$@" -type f -print0 | xargs -0 cat > /dev/null
}
