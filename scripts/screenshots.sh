#!/usr/bin/env bash
# The README's screenshots of the demo: runs the release binary under Xvfb
# at WIDTHxHEIGHT, asks a few relays their state from the keyboard (the
# Hall lights first, before the demo's first wall-button press 4 s in),
# waits, optionally hovers a point, and takes the screen.
# Needs: xvfb xdotool imagemagick; `cargo build --release` first.
# Usage: scripts/screenshots.sh WIDTH HEIGHT DISPLAY OUT.png [HOVER_X HOVER_Y]
#   e.g. scripts/screenshots.sh 1280 800 :91 assets/screenshot.png 67 249
#        scripts/screenshots.sh 800 600 :92 assets/screenshot-800x600.png
#        KS=0.2 WAIT=6 scripts/screenshots.sh 1920 1080 :93 assets/screenshot-1920x1080.png
# (KS: seconds between keys; a large software-rendered screen needs more.)
set -euo pipefail
W=$1; H=$2; D=$3; OUT=$(realpath -m "$4"); HX=${5:-}; HY=${6:-}
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/relay-panel}
work=$(mktemp -d)
export XDG_RUNTIME_DIR="$work" HOME="$work/home" XDG_DATA_HOME="$work/share" XDG_CONFIG_HOME="$work/config"
mkdir -p "$HOME"
Xvfb $D -screen 0 ${W}x${H}x24 >/dev/null 2>&1 &
xvfb=$!
sleep 1
DISPLAY=$D USER=alice "$BIN" --demo --data-dir "$work/data" > "$work/app.log" 2>&1 &
app=$!
trap 'kill $app 2>/dev/null; sleep 0.5; kill $xvfb 2>/dev/null' EXIT
for i in $(seq 50); do
  win=$(DISPLAY=$D xdotool search --name "Relay Panel" 2>/dev/null | head -1 || true)
  [ -n "$win" ] && break; sleep 0.1
done
DISPLAY=$D xdotool windowmove "$win" 0 0 windowsize "$win" "$W" "$H"
sleep 1.2
DISPLAY=$D xdotool windowfocus "$win" || true
sleep 0.3
k() { DISPLAY=$D xdotool key "$@"; sleep ${KS:-0.08}; }
refresh() { k Return; k Right; k Right; k Return; sleep 0.35; k Escape; }
# Hall lights first (the 4th relay), before the demo's wall button is
# pressed (4 s in), so its hover names a confirmation and the device's
# report; then a few more, quickly, so the change tops the activity log.
# The offline Tank heater is left alone.
k Down; k Down; k Down; k Down; refresh   # Hall lights
k Up; k Up; k Up; refresh                 # Sump pump
k Down; k Down; refresh                   # Warning beacon (broken device)
k Down; k Down; k Down; k Down; refresh   # Booster pump
k Home                                    # back to the top of the list
DISPLAY=$D xdotool mousemove $((W / 2)) 150 click 4 click 4 click 4 click 4
sleep 0.3
DISPLAY=$D xdotool mousemove $((W - 5)) $((H - 5))
sleep ${WAIT:-6}
if [ -n "$HX" ]; then
  DISPLAY=$D xdotool mousemove "$HX" "$HY"
  sleep 1.5
fi
DISPLAY=$D import -window root "$OUT"
echo "shot $OUT"
