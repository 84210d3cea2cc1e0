#!/usr/bin/env bash
# Measures the real window under Xvfb, each figure next to a bare eframe
# window (same renderer, same size) measured in the same run: resident
# memory, idle CPU over 10 s and the time from start to first frame, for
#   - 10,000 mqtt5 relays (8 a device, no availability),
#   - 10,000 relays of every kind with availability: 2,500 four-relay
#     devices (Shelly Pro 4PM, Tasmota 4CH, ESPHome-style state devices
#     and mqtt5 devices, each with its last will), some offline since
#     before the panel started, some going offline while it runs, some
#     switched at their wall button before and while it runs,
#   - the demo.
# Idle CPU is measured once every age on screen is over a minute old (its
# text then changes once a minute): younger ages repaint every second.
# Needs: xvfb mosquitto (apt-get install -y xvfb mosquitto mesa-vulkan-drivers).
# Usage: scripts/measure-gui.sh   (builds release binaries first; SKIP_BUILD=1 does not)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bins --example bare_window >/dev/null
bin=${CARGO_TARGET_DIR:-./target}/release
work=$(mktemp -d)
export XDG_RUNTIME_DIR="$work"
# eframe keeps window sizes under the data dir: none from earlier runs.
export XDG_DATA_HOME="$work/xdg-data"
# A free display (other runs may have theirs): Xvfb writes its number.
Xvfb -displayfd 4 -screen 0 1280x800x24 4> "$work/display" >/dev/null 2>&1 &
xvfb=$!
for _ in $(seq 50); do [ -s "$work/display" ] && break; sleep 0.1; done
display=:$(cat "$work/display")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# 2,500 devices with a connection each, and the panel's subscriptions.
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

# Devices take turns by kind, so every screen shows all four; 12 devices
# (48 relays) a cabinet.
python3 - "$port" > "$work/mixed.toml" <<'PY'
import sys
print(f'[broker]\nurl = "mqtt://127.0.0.1:{sys.argv[1]}"\n')
for device in range(2500):
    for switch in range(4):
        i = device * 4 + switch
        head = f'[[relay]]\nid = "relay-{i}"\nname = "Relay {i}"\ngroup = "Cabinet {device // 12}"\n'
        kind = device % 4
        if kind == 0:
            # An mqtt5 device; every other one also tells changes at the device.
            body = (f'request_topic = "plant/dev-{device}/relay-{switch}"\npayload_query = "?"\n'
                    f'availability_topic = "plant/dev-{device}/status"\n')
            if device % 8 == 0:
                body += f'state_topic = "plant/dev-{device}/relay-{switch}/state"\n'
        elif kind == 1:
            body = f'kind = "shelly"\ndevice = "shellypro4pm-{device:06x}"\nswitch = {switch}\n'
        elif kind == 2:
            body = f'kind = "tasmota"\ndevice = "tasmota_{device:06X}"\npower = {switch + 1}\n'
        else:
            body = (f'kind = "state"\ncommand_topic = "esphome/dev-{device}/switch/relay_{switch}/command"\n'
                    f'state_topic = "esphome/dev-{device}/switch/relay_{switch}/state"\n'
                    f'availability_topic = "esphome/dev-{device}/status"\n')
        print(head + body)
PY

sleep 0.5
"$bin/relay-sim" --config "$work/big.toml" >/dev/null 2>&1 &
# The mixed devices read what happens to them on standard input.
mkfifo "$work/at-the-devices"
"$bin/relay-sim" --config "$work/mixed.toml" < "$work/at-the-devices" > "$work/mixed-sim.log" 2>&1 &
exec 3> "$work/at-the-devices"
for _ in $(seq 60); do grep -q listening "$work/mixed-sim.log" && break; sleep 0.5; done
grep -q listening "$work/mixed-sim.log" || { echo "relay-sim did not start:"; cat "$work/mixed-sim.log"; exit 1; }

# What happens at the devices: `offline` takes a relay's whole device off
# the network (its last will fires); `press` is a wall button. The first
# relay of every 40th device (125 of 2,500 devices) and every 50th relay
# (200 presses), one half before the panel starts, the other while it
# runs, a few of each on the first screen.
at_the_devices() { # half (0 or 1)
    python3 - "$1" >&3 <<'PY'
import sys
half = int(sys.argv[1])
for device in range(half * 20 + 1, 2500, 40):
    print(f'offline relay-{device * 4}')
for relay in range(half * 25 + 3, 10000, 50):
    print(f'press relay-{relay}')
PY
}
at_the_devices 0
sleep 2

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_percent() { # ticks before, ticks after, seconds
    python3 -c "print(f'{($2-$1)/$(getconf CLK_TCK)/$3*100:.2f}')"
}
mb() { python3 -c "print(f'{$1/1024:.1f}')"; }

# The baseline: the same renderer and window size as the panel.
DISPLAY=$display "$bin/examples/bare_window" >/dev/null 2>&1 &
bare=$!
sleep 4
bare_rss=$(rss_kb $bare)
t0=$(cpu_ticks $bare); sleep 10; t1=$(cpu_ticks $bare)
bare_cpu=$(cpu_percent "$t0" "$t1" 10)
kill $bare; wait $bare 2>/dev/null || true

rows=()
# One row per figure: what, Relay Panel, the baseline, the difference.
row() { rows+=("| $1 | $2 | $3 | $4 |"); }

start_panel() { # name, args...
    local name=$1; shift
    DISPLAY=$display RELAY_PANEL_TIMING=1 RELAY_PANEL_DATA_DIR="${DATA:-$work/data-$name}" \
        "$bin/relay-panel" "$@" > "$work/$name.log" 2>&1 &
    panel=$!
    logged=$work/$name.log
}
first_frame() { grep -o 'first frame after [0-9.]* ms' "$logged" | head -1 | grep -o '[0-9.]* ms' || echo "?"; }
# Resident memory now, and CPU over the next 10 s.
sample() {
    kill -0 $panel 2>/dev/null || { echo "the panel exited:"; tail -20 "$logged"; exit 1; }
    rss=$(rss_kb $panel)
    local c0 c1; c0=$(cpu_ticks $panel); sleep 10; c1=$(cpu_ticks $panel)
    cpu=$(cpu_percent "$c0" "$c1" 10)
}
stop_panel() { # screenshot name
    DISPLAY=$display import -window root "$work/$1.png" 2>/dev/null || true
    kill $panel; wait $panel 2>/dev/null || true
}
memory_row() { # what, target
    row "GUI resident memory, $1" "$(mb "$rss") MB" "bare window $(mb "$bare_rss") MB" \
        "+$(mb $((rss - bare_rss))) MB (target <= $2 MB)"
}
cpu_row() { # what
    row "idle CPU over 10 s, $1" "$cpu % of a core" "bare window $bare_cpu %" "(target 0.0 %)"
}

# 10,000 mqtt5 relays, three with confirmed states, so there are ages to tick.
for r in relay-0 relay-1 relay-2; do
    RELAY_PANEL_DATA_DIR="$work/data-big" "$bin/relayctl" --config "$work/big.toml" set $r on >/dev/null
done
DATA="$work/data-big" start_panel big --config "$work/big.toml"
sleep 5; sample
memory_row "10,000 relays" 20
row "start to first frame, 10,000 relays" "$(first_frame)" "" "(target < 300 ms)"
row "CPU over 10 s, 10,000 relays, ages under a minute (a repaint each second)" "$cpu % of a core" "bare window $bare_cpu %" ""
stop_panel big
sleep 50   # now every age is over a minute: the text changes once a minute
DATA="$work/data-big" start_panel big-idle --config "$work/big.toml"
sleep 5; sample
cpu_row "10,000 relays, ages over a minute"
stop_panel big-idle

# 10,000 relays of every kind with availability; the other half of the
# devices go offline and the other half of the presses happen while it runs.
start_panel mixed --config "$work/mixed.toml"
sleep 3
at_the_devices 1
sleep 2; sample
row "start to first frame, 10,000 relays of every kind with availability" "$(first_frame)" "" "(target < 300 ms)"
row "CPU over 10 s, every kind, offline devices, changes at the device under a minute old" "$cpu % of a core" "bare window $bare_cpu %" ""
sleep 50   # the presses while it ran are over a minute old
sample
memory_row "10,000 relays of every kind, 125 devices offline, 200 changes at the device" 25
cpu_row "every kind, availability subscriptions, offline devices, ages over a minute"
stop_panel mixed

start_panel demo --demo
sleep 5; sample
memory_row "demo (9 relays)" 25
row "start to first frame, demo" "$(first_frame)" "" ""
stop_panel demo

echo "| benchmark | Relay Panel | baseline (same run) | difference |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "screenshots: $work/*.png"
