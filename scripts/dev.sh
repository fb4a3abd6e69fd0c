#!/usr/bin/env bash
# `make dev`: the Worker on 127.0.0.1:$PORT with local R2 persisted in $PERSIST_DIR.
# First run: makes a dev signing key (.dev.key.json, private) and puts its public half in
# .dev.vars as AUTH_JWKS. An existing .dev.vars is used as it is. Both files are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8787}
PERSIST_DIR=${PERSIST_DIR:-.wrangler/state}
CLI=target/release/r2mpu

if [ ! -f .dev.vars ]; then
  jwks=$("$CLI" keygen --out .dev.key.json --force)
  printf "AUTH_JWKS='%s'\n" "$jwks" > .dev.vars
  echo "dev: wrote a new dev key to .dev.key.json and its public half to .dev.vars"
fi
# The key S3 credentials are derived with (POST /credentials), once per checkout.
if ! grep -q '^S3_CREDENTIALS_KEY=' .dev.vars; then
  printf "S3_CREDENTIALS_KEY='%s'\n" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> .dev.vars
  echo "dev: added a new S3_CREDENTIALS_KEY to .dev.vars"
fi

echo
if [ -f .dev.key.json ]; then
  token=$("$CLI" token --key .dev.key.json --sub dev --ttl 12h)
  cat <<MSG
r2mpu dev Worker: http://127.0.0.1:$PORT   (local R2 in $PERSIST_DIR)

Upload from the browser: open this link (the token after # stays in the browser):

  http://127.0.0.1:$PORT/#token=$token

Dev token (sub=dev, all scopes, valid 12h; another: $CLI token --ttl 12h):

  export R2MPU_ENDPOINT=http://127.0.0.1:$PORT
  export R2MPU_TOKEN=$token

Then, in that shell:
  $CLI upload ./some-file            # resumable: rerun the same command after an interruption
  $CLI download some-file ./copy
  curl -H "Authorization: Bearer \$R2MPU_TOKEN" http://127.0.0.1:$PORT/objects/some-file -o copy
MSG
else
  echo "dev: .dev.vars exists but .dev.key.json does not; use a token signed by a key in your AUTH_JWKS."
fi
echo
# Direct parts: local R2 over S3 on this very port, with wrangler.toml's local_dev credentials
# (local only, not secrets). A .dev.vars that sets R2_S3_* itself (another endpoint) wins.
direct=()
if ! grep -q '^R2_S3_ENDPOINT=' .dev.vars; then
  direct=(--var "R2_S3_ENDPOINT:http://127.0.0.1:$PORT/cdn-cgi/local/r2/s3" --var R2_S3_BUCKET:r2mpu
    --var R2_S3_ACCESS_KEY_ID:r2mpu-local --var R2_S3_SECRET_ACCESS_KEY:r2mpu-local-secret)
fi
exec npx wrangler dev --ip 127.0.0.1 --port "$PORT" --persist-to "$PERSIST_DIR" --show-interactive-dev-session=false "${direct[@]}"
