#!/usr/bin/env bash
# WebSocket conformance: Autobahn|Testsuite's fuzzing client against the engine.
#
# What runs: core/examples/autobahn.rs, one engine with four WebSocket endpoints.
# - echo: an echo built from the engine's WebSocket parts (tungstenite's read half, the
#   engine's frame writer, mounted like the Yjs endpoint). The suite's cases expect an echo, so
#   this is where the WebSocket layer is judged: sections 1-7 and 9 must be OK, NON-STRICT or
#   INFORMATIONAL (summarize.py fails the run otherwise), and 10 is recorded.
# - socketio (/socket.io/?EIO=4&transport=websocket) and yjs (/yjs/<doc>?token=): the real
#   endpoints. They send their own first frame (the Engine.IO open packet, the Yjs sync step 1)
#   and do not echo, so the suite marks their cases FAILED; what matters is recorded in the
#   golden file: the close codes they answer with (1002 for frames that are no Engine.IO
#   packet, 1007 for invalid UTF-8, their answer to the client's close) and that closes are
#   clean. Echo-only sections that would each wait out the suite's timeout are left out for
#   them (9 everywhere; 1.1, 6.2, 6.22, 6.23 and 10 for Yjs, which ignores text frames).
# - ws (/ws?token=): the plain-WebSocket endpoint, authenticated by the token in the URL (the
#   suite cannot send an auth frame). It answers `ready` first and takes the suite's text
#   frames as malformed JSON frames (an `error` frame, close 1008), binary frames with 1003;
#   recorded like socketio's (9 left out), but for the OK/FAILED verdict: whether `ready`
#   reaches the suite before its own frames varies between runs (summarize.py writes `*`).
# - 12 and 13 (permessage-deflate) are left out: the engine offers no compression.
#
# The results, without durations, are compared with bindings-tests/autobahn/golden.txt; any
# difference fails. Regenerate it with `make autobahn-golden` (AUTOBAHN_GOLDEN=update) and
# review the diff. Without Python 2.7 (the suite runs on nothing else) the run is skipped and
# says so. PYTHON2 names the interpreter; the suite is installed into target/autobahn-py2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SITE="$TARGET/autobahn-py2"
WORK="$TARGET/autobahn"
GOLDEN="$HERE/golden.txt"
CARGO="${CARGO:-cargo}"

find_python2() {
  local c
  for c in "${PYTHON2:-}" "$(pyenv root 2>/dev/null)"/versions/2.7*/bin/python2.7 \
      "$HOME"/.pyenv/versions/2.7*/bin/python2.7 "$(command -v python2.7 || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if ! PY="$(find_python2)"; then
  echo "autobahn: SKIPPED: no Python 2.7 found (set PYTHON2, or install one with pyenv); Autobahn|Testsuite runs on Python 2.7 only"
  exit 0
fi

# The suite, installed once per requirements.txt.
STAMP="$SITE/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "autobahn: installing Autobahn|Testsuite into $SITE"
  rm -rf "$SITE"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$SITE" -r "$HERE/requirements.txt"
  echo "$WANT" > "$STAMP"
fi

"$CARGO" build --quiet -p switchboard --example autobahn --bin switchboard
rm -rf "$WORK"
mkdir -p "$WORK"

PORT=0 "$TARGET/debug/examples/autobahn" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  grep -q 'switchboard listening on' "$WORK/server.out" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.err"; echo "autobahn: the server exited"; exit 1; }
  sleep 0.1
done
PORT="$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$WORK/server.out")"
[ -n "$PORT" ] || { echo "autobahn: the server did not start"; exit 1; }
TOKEN="$("$TARGET/debug/switchboard" token --secret autobahn-test-secret --sub autobahn --ttl 1h)"
sed -e "s|@OUTDIR@|$WORK/reports|" -e "s|@PORT@|$PORT|g" -e "s|@TOKEN@|$TOKEN|" \
  "$HERE/spec.json.in" > "$WORK/spec.json"

echo "autobahn: running the fuzzing client against 127.0.0.1:$PORT (log: $WORK/wstest.log)"
(cd "$WORK" && "$PY" -c "import site, sys; site.addsitedir(sys.argv[1]); sys.argv = ['wstest', '-m', 'fuzzingclient', '-s', sys.argv[2]]; from autobahntestsuite.wstest import run; run()" \
  "$SITE" "$WORK/spec.json") > "$WORK/wstest.log" 2>&1 \
  || { tail -20 "$WORK/wstest.log"; echo "autobahn: the fuzzing client failed"; exit 1; }

status=0
"$PY" "$HERE/summarize.py" "$WORK/reports/index.json" "$WORK/results.txt" || status=1
if [ "${AUTOBAHN_GOLDEN:-}" = update ]; then
  cp "$WORK/results.txt" "$GOLDEN"
  echo "autobahn: wrote $GOLDEN (review the diff)"
elif ! diff -u "$GOLDEN" "$WORK/results.txt"; then
  echo "autobahn: results differ from $GOLDEN (reports: $WORK/reports/index.html)"
  status=1
fi
[ "$status" = 0 ] && [ "${AUTOBAHN_GOLDEN:-}" != update ] && echo "autobahn: results match the golden file"
exit "$status"
