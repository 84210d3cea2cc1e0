#!/usr/bin/env bash
# Measures the real window under Xvfb: resident memory with a 10,000-relay
# configuration next to a bare eframe window (same renderer), idle CPU over
# 10 s, and time from start to first frame. Needs: xvfb mosquitto
# (apt-get install -y xvfb mosquitto mesa-vulkan-drivers).
# Usage: scripts/measure-gui.sh   (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bins --example bare_window >/dev/null
work=$(mktemp -d)
export XDG_RUNTIME_DIR="$work"
display=:97
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
    print(f'[[relay]]\nid = "relay-{i}"\nname = "Relay {i}"\ngroup = "Cabinet {i // 50}"\nrequest_topic = "plant/device-{i // 8}/relay-{i % 8}"\npayload_query = "?"\n')
PY
sleep 0.5
./target/release/relay-sim --config "$work/big.toml" 2>/dev/null &
sleep 2

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

DISPLAY=$display ./target/release/examples/bare_window >/dev/null 2>&1 &
bare=$!
sleep 4
bare_rss=$(rss_kb $bare)
t0=$(cpu_ticks $bare); sleep 10; t1=$(cpu_ticks $bare)
bare_cpu=$(python3 -c "print(f'{($t1-$t0)/$(getconf CLK_TCK)/10*100:.2f}')")
kill $bare

measure() { # name, args...
    local name=$1; shift
    DISPLAY=$display RELAY_PANEL_TIMING=1 RELAY_PANEL_DATA_DIR="${DATA:-$work/data-$name}" ./target/release/relay-panel "$@" > "$work/$name.log" 2>&1 &
    local pid=$!
    sleep 5
    local rss; rss=$(rss_kb $pid)
    local c0 c1; c0=$(cpu_ticks $pid); sleep 10; c1=$(cpu_ticks $pid)
    local cpu; cpu=$(python3 -c "print(f'{($c1-$c0)/$(getconf CLK_TCK)/10*100:.2f}')")
    local first; first=$(grep -o 'first frame after [0-9.]* ms' "$work/$name.log" | head -1 | grep -o '[0-9.]* ms' || echo "?")
    DISPLAY=$display import -window root "$work/$name.png" 2>/dev/null || true
    kill $pid; wait $pid 2>/dev/null || true
    echo "| GUI under Xvfb, $name | RSS $((rss / 1024)) MB, idle CPU $cpu% of a core, first frame $first | bare eframe window RSS $((bare_rss / 1024)) MB, idle CPU $bare_cpu% | +$(((rss - bare_rss) / 1024)) MB (target <= 25 MB) |"
}
echo "| benchmark | Relay Panel | baseline (same run) | difference |"
echo "|---|---|---|---|"
# Some confirmed states, so the panel has ages to tick ("12 s ago", once a second).
for r in relay-0 relay-1 relay-2; do
    RELAY_PANEL_DATA_DIR="$work/data-big" ./target/release/relayctl --config "$work/big.toml" set $r on >/dev/null
done
DATA="$work/data-big" measure "10000 relays, ages under a minute (tick each second)" --config "$work/big.toml"
sleep 50   # now every age is over a minute: the text changes once a minute
DATA="$work/data-big" measure "10000 relays, idle" --config "$work/big.toml"
measure "demo" --demo
echo "screenshots: $work/*.png"
