#!/bin/sh
# Runs a Procfile process by name (`clientes-entrypoint worker-exports`), or any other command
# as given (`python -m shared.prestart`, `show-credentials`, `api_keys list`).
set -e
if [ "$#" -eq 1 ]; then
  command=$(sed -n "s/^$1:[[:space:]]*//p" /app/Procfile)
  [ -n "$command" ] && exec sh -c "exec $command"
fi
exec "$@"
