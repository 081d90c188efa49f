#!/usr/bin/env bash
# Start every process of the Procfile in the foreground (as docker compose does); Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p var/log
# The first start generates the secret key, admin password and API key into var/credentials.json.
python -m shared.prestart
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT INT TERM

while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  name=${line%%:*}
  cmd=${line#*: }
  echo "starting $name: $cmd (log: var/log/$name.log)"
  bash -c "exec $cmd" >"var/log/$name.log" 2>&1 &
  pids+=($!)
done < Procfile

port=${PORT:-8000}
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.2
done
cat <<MSG

Clientes is running: http://127.0.0.1:$port/  (docs: http://127.0.0.1:$port/docs)
$(show-credentials)
Try:  curl -H "Authorization: Bearer \$KEY" "http://127.0.0.1:$port/api/tipos-documento/"
Press Ctrl-C to stop.
MSG
wait -n
echo "a process exited; stopping the others (see var/log/)" >&2
exit 1
