#!/usr/bin/env bash
# CPU of the real window under Xvfb in the minute after "Refresh all" on
# 10,000 relays (every third has a query payload: 3,334 answers), sampled
# from /proc every 10 s, with the window's own frame rate
# (RELAY_PANEL_TIMING). Needs: xvfb xdotool mosquitto.
# Usage: [RELAY_SIM=BIN] scripts/measure-refresh-cpu.sh [PANEL_BINARY] [SECONDS]
#   (default ./target/release/relay-panel, 60 s; builds nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-./target}
panel=${1:-$target/release/relay-panel}
seconds=${2:-60}
work=$(mktemp -d)
export XDG_RUNTIME_DIR="$work"
display=:96
Xvfb $display -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb=$!
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
cleanup() { kill $xvfb $broker 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; }
trap cleanup EXIT
python3 - "$port" > "$work/big.toml" <<'PY'
import sys
print(f'[broker]\nurl = "mqtt://127.0.0.1:{sys.argv[1]}"\n')
for i in range(10000):
    query = 'payload_query = "?"\n' if i % 3 == 0 else ''
    print(f'[[relay]]\nid = "relay-{i}"\nname = "Relay {i}"\ngroup = "Cabinet {i // 50}"\nrequest_topic = "plant/device-{i // 8}/relay-{i % 8}"\n{query}')
PY
sleep 0.5
"${RELAY_SIM:-$target/release/relay-sim}" --config "$work/big.toml" 2>/dev/null &
sleep 2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

DISPLAY=$display RELAY_PANEL_TIMING=1 RELAY_PANEL_DATA_DIR="$work/data" "$panel" --config "$work/big.toml" > "$work/panel.log" 2>&1 &
pid=$!
sleep 6
kill -0 $pid 2>/dev/null || { echo "the panel exited:"; tail -20 "$work/panel.log"; exit 1; }
c0=$(cpu_ticks $pid); sleep 10; c1=$(cpu_ticks $pid)
echo "idle before Refresh all: $(python3 -c "print(f'{($c1-$c0)/$hz/10*100:.1f}')") % of a core"
# "Refresh all" sits at the same place in both layouts: (302, 50).
DISPLAY=$display xdotool mousemove 302 50 click 1 mousemove 1270 790
t=0
total0=$(cpu_ticks $pid)
while [ $t -lt "$seconds" ]; do
    a=$(cpu_ticks $pid); sleep 10; b=$(cpu_ticks $pid); t=$((t + 10))
    echo "after Refresh all, ${t} s: $(python3 -c "print(f'{($b-$a)/$hz/10*100:.1f}')") % of a core"
done
total1=$(cpu_ticks $pid)
echo "mean over ${seconds} s after Refresh all: $(python3 -c "print(f'{($total1-$total0)/$hz/$seconds*100:.1f}')") % of a core"
DISPLAY=$display import -window root "$work/after.png" 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
grep -E 'frames/s|first frame' "$work/panel.log" | sed 's/^/panel: /'
echo "screenshot: $work/after.png"
