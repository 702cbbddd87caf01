#!/usr/bin/env bash
# Deploy yc-backup-runner to Yandex Cloud with the yc CLI (and the AWS CLI for Message Queue).
#
#   make package && deploy/yandex/deploy-yc.sh [dist/function.zip]
#
# Steps (docs/DEPLOY.md explains each one):
#   1. service accounts and folder roles      4. functions + a new version of each
#   2. static key + Lockbox secret            5. triggers: timer, request queue, follow-up queue
#   3. queues: dead-letter queues first       6. API gateway (POST /backup, POST /slack)
# Alerting: the functions write their metrics to Monitoring (role monitoring.editor, METRICS_* variables);
# alerts and notification channels are created in the console (no CLI command or public API is documented for
# them), so the script ends by listing those steps (docs/DEPLOY.md "Alerting on Yandex Cloud").
#
# Idempotent where the platform allows: existing service accounts, secret, queues, functions, triggers and
# gateway are reused (a second run only adds new function versions and updates the gateway spec). Existing
# triggers are not changed: delete one to change its schedule or batch settings.
#
# Every name and setting comes from the environment, with the defaults below.
set -euo pipefail
shopt -s inherit_errexit  # a failing command inside $(...) stops the script too

PACKAGE=${1:-${PACKAGE:-dist/function.zip}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

YC=${YC:-yc}
AWS=${AWS:-aws}
PY=${PY:-python3}

SA_NAME=${SA_NAME:-backup-runner}                        # runs the functions, reads queues, invokes functions
QUEUE_ADMIN_SA_NAME=${QUEUE_ADMIN_SA_NAME:-backup-runner-queue-admin}  # creates queues (ymq.admin), key deleted after
SECRET_NAME=${SECRET_NAME:-backup-runner-secrets}
TRIGGER_FUNCTION=${TRIGGER_FUNCTION:-backup-trigger}
FOLLOWUP_FUNCTION=${FOLLOWUP_FUNCTION:-backup-followup}
REQUEST_QUEUE=${REQUEST_QUEUE:-backup-requests}
FOLLOWUP_QUEUE=${FOLLOWUP_QUEUE:-backup-followups}
RESULT_QUEUE=${RESULT_QUEUE:-backup-results}
SCHEDULE_DLQ=${SCHEDULE_DLQ:-backup-schedule-dlq}
TIMER_NAME=${TIMER_NAME:-backup-schedule}
REQUEST_TRIGGER_NAME=${REQUEST_TRIGGER_NAME:-backup-requests}
FOLLOWUP_TRIGGER_NAME=${FOLLOWUP_TRIGGER_NAME:-backup-followups}
GATEWAY_NAME=${GATEWAY_NAME:-backup-runner}

RUNTIME=${RUNTIME:-python312}
MEMORY=${MEMORY:-}                                      # set: both functions get it
TRIGGER_MEMORY=${TRIGGER_MEMORY:-${MEMORY:-1024m}}      # CPU follows memory: the Slack ack's cold start
FOLLOWUP_MEMORY=${FOLLOWUP_MEMORY:-${MEMORY:-256m}}     # docs/DEPLOY.md, "Memory size and cost"
TRIGGER_TIMEOUT=${TRIGGER_TIMEOUT:-120s}
FOLLOWUP_TIMEOUT=${FOLLOWUP_TIMEOUT:-60s}
MIN_LOG_LEVEL=${MIN_LOG_LEVEL:-info}
default_cron='0 2 ? * * *'                              # UTC, 6 fields, no seconds; daily at 02:00
default_schedule_request='{"reason":"scheduled backup"}'
CRON_EXPRESSION=${CRON_EXPRESSION:-$default_cron}
SCHEDULE_REQUEST=${SCHEDULE_REQUEST:-$default_schedule_request}  # the timer's payload: a request JSON
ENABLE_TIMER=${ENABLE_TIMER:-1}
DEFAULT_REQUEST=${DEFAULT_REQUEST:-'{}'}
YC_API_ENDPOINT=${YC_API_ENDPOINT:-}
FOLLOWUP_BATCH_SIZE=${FOLLOWUP_BATCH_SIZE:-1}           # a Yandex batch fails as a whole: keep tickets apart
FOLLOWUP_BATCH_CUTOFF=${FOLLOWUP_BATCH_CUTOFF:-10s}
MAX_RECEIVE_COUNT=${MAX_RECEIVE_COUNT:-5}
YMQ_ENDPOINT=${YMQ_ENDPOINT:-https://message-queue.api.cloud.yandex.net}
YMQ_REGION=${YMQ_REGION:-ru-central1}
METRICS_ENABLED=${METRICS_ENABLED:-true}                 # the functions write metrics to Monitoring (custom)
METRICS_NAMESPACE=${METRICS_NAMESPACE:-yc-backup-runner} # the `app` label of every metric

FUNCTION_ROLES="backup.editor compute.viewer ymq.reader ymq.writer functions.functionInvoker"
case "$METRICS_ENABLED" in
  1|true|True|TRUE|yes|on) METRICS_ENABLED=true; FUNCTION_ROLES="$FUNCTION_ROLES monitoring.editor" ;;
  0|false|False|FALSE|no|off) METRICS_ENABLED=false ;;
  *) echo "deploy-yc: METRICS_ENABLED must be true or false, got '$METRICS_ENABLED'" >&2; exit 1 ;;
esac

die() { echo "deploy-yc: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }
warn() { echo "deploy-yc: warning: $*" >&2; }

# ----------------------------------------------------------------------------- preconditions
command -v "$YC" >/dev/null 2>&1 || die "the yc CLI is not installed or not on PATH.
  Install it (https://yandex.cloud/en/docs/cli/quickstart), run 'yc init', then re-run this script.
  Nothing was changed."
command -v "$AWS" >/dev/null 2>&1 || die "the AWS CLI is needed for Message Queue (yc has no queue commands).
  Install it (pip install awscli) and re-run. Nothing was changed."
command -v "$PY" >/dev/null 2>&1 || die "python3 is needed to read yc's JSON output"
py() { "$PY" -IS "$@"; }  # standard library only: isolated, no site-packages (faster, unaffected by venvs)
[[ -f "$PACKAGE" ]] || die "package $PACKAGE not found: run 'make package' first"
[[ -f "$HERE/api-gateway.yaml" ]] || die "$HERE/api-gateway.yaml not found"
(( ${#SCHEDULE_REQUEST} <= 4096 )) || die "SCHEDULE_REQUEST is longer than the timer payload limit (4096)"

FOLDER_ID=${FOLDER_ID:-$("$YC" config get folder-id 2>/dev/null || true)}
[[ -n "$FOLDER_ID" ]] || die "FOLDER_ID is not set and 'yc config get folder-id' is empty"

# json <dotted.path>: one value of the JSON document on stdin, e.g. json access_key.key_id
json() {
  py -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[key]
print(value)' "$1"
}
ycf() { "$YC" "$@" --folder-id "$FOLDER_ID" --format json; }
# get_or_create <group...> -- <name> [create flags...]: prints the resource's JSON.
get_or_create() {
  local group=() name
  while [[ $1 != -- ]]; do group+=("$1"); shift; done
  shift; name=$1; shift
  if ycf "${group[@]}" get --name "$name" 2>/dev/null; then
    echo "    reusing ${group[*]} $name" >&2
  else
    echo "    creating ${group[*]} $name" >&2
    ycf "${group[@]}" create --name "$name" "$@"
  fi
}
# env_flag KEY VALUE: one --environment flag. A value with '=' is CSV-quoted, as yc's key=value parser expects.
env_flag() {
  local value=$2
  if [[ $value == *=* ]]; then
    printf -- '--environment\n"%s=%s"\n' "$1" "${value//\"/\"\"}"
  else
    printf -- '--environment\n%s=%s\n' "$1" "$value"
  fi
}

# ----------------------------------------------------------------------------- 1. service accounts and roles
step "1/6 service accounts and roles (folder $FOLDER_ID)"
SA_ID=$(get_or_create iam service-account -- "$SA_NAME" --description "yc-backup-runner functions and triggers" | json id)
for role in $FUNCTION_ROLES; do
  "$YC" resource-manager folder add-access-binding "$FOLDER_ID" --role "$role" --subject "serviceAccount:$SA_ID" >/dev/null \
    || warn "could not bind $role to $SA_NAME (already bound, or you lack the right to grant it)"
done
QUEUE_ADMIN_ID=$(get_or_create iam service-account -- "$QUEUE_ADMIN_SA_NAME" --description "creates yc-backup-runner queues" | json id)
"$YC" resource-manager folder add-access-binding "$FOLDER_ID" --role ymq.admin --subject "serviceAccount:$QUEUE_ADMIN_ID" >/dev/null \
  || warn "could not bind ymq.admin to $QUEUE_ADMIN_SA_NAME"

# ----------------------------------------------------------------------------- 2. static key + Lockbox secret
step "2/6 Lockbox secret $SECRET_NAME (static key for Message Queue, webhook, Slack and handoff secrets)"
# HANDOFF_SECRET signs the messages the functions write for themselves (fan-out messages, follow-up tickets, request
# redeliveries): only the function knows it, so it is always generated here, never taken from the environment.
new_handoff_secret() { py -c 'import secrets; print(secrets.token_hex(32))'; }
if SECRET_JSON=$(ycf lockbox secret get --name "$SECRET_NAME" 2>/dev/null); then
  echo "    reusing lockbox secret $SECRET_NAME (add a version to rotate: yc lockbox secret add-version)" >&2
  # A secret from an earlier deploy may predate HANDOFF_SECRET: add it once, in a version based on the current one
  # (its other entries are kept). The key list is in the version's metadata; the values are not read.
  if ! py -c '
import json, sys
version = json.load(sys.stdin).get("current_version") or {}
sys.exit("HANDOFF_SECRET" not in (version.get("payload_entry_keys") or []))' <<<"$SECRET_JSON"; then
    echo "    adding HANDOFF_SECRET to lockbox secret $SECRET_NAME" >&2
    HANDOFF_SECRET=$(new_handoff_secret) py -c '
import json, os
print(json.dumps([{"key": "HANDOFF_SECRET", "text_value": os.environ["HANDOFF_SECRET"]}]))' \
      | ycf lockbox secret add-version --name "$SECRET_NAME" --description "yc-backup-runner: HANDOFF_SECRET" \
          --payload - >/dev/null
    SECRET_JSON=$(ycf lockbox secret get --name "$SECRET_NAME")
  fi
else
  echo "    creating a static access key for $SA_NAME and lockbox secret $SECRET_NAME" >&2
  KEY_JSON=$(ycf iam access-key create --service-account-id "$SA_ID" --description "yc-backup-runner: Message Queue")
  if [[ -z "${WEBHOOK_SECRET:-}" ]]; then
    WEBHOOK_SECRET=$(py -c 'import secrets; print(secrets.token_urlsafe(48))')
    echo "    generated WEBHOOK_SECRET (read it: yc lockbox payload get --name $SECRET_NAME)" >&2
  fi
  if [[ -z "${SLACK_SIGNING_SECRET:-}" ]]; then
    SLACK_SIGNING_SECRET=$(py -c 'import secrets; print(secrets.token_urlsafe(32))')
    warn "SLACK_SIGNING_SECRET not set: stored a random placeholder, so /slack rejects every request until you add
  a version with the Slack app's signing secret"
  fi
  HANDOFF_SECRET=$(new_handoff_secret)
  # The payload goes through stdin, never the command line (where other users could see it).
  SECRET_JSON=$(KEY_JSON=$KEY_JSON WEBHOOK_SECRET=$WEBHOOK_SECRET SLACK_SIGNING_SECRET=$SLACK_SIGNING_SECRET \
    HANDOFF_SECRET=$HANDOFF_SECRET py -c '
import json, os
key = json.loads(os.environ["KEY_JSON"])
entries = {
    "AWS_ACCESS_KEY_ID": key["access_key"]["key_id"],
    "AWS_SECRET_ACCESS_KEY": key["secret"],
    "WEBHOOK_SECRET": os.environ["WEBHOOK_SECRET"],
    "SLACK_SIGNING_SECRET": os.environ["SLACK_SIGNING_SECRET"],
    "HANDOFF_SECRET": os.environ["HANDOFF_SECRET"],
}
print(json.dumps([{"key": k, "text_value": v} for k, v in entries.items()]))' \
    | ycf lockbox secret create --name "$SECRET_NAME" --description "yc-backup-runner" --payload -)
fi
SECRET_ID=$(json id <<<"$SECRET_JSON")
SECRET_VERSION=$(json current_version.id <<<"$SECRET_JSON")
"$YC" lockbox secret add-access-binding --id "$SECRET_ID" --service-account-id "$SA_ID" --role lockbox.payloadViewer >/dev/null \
  || warn "could not grant lockbox.payloadViewer on $SECRET_NAME to $SA_NAME"

# ----------------------------------------------------------------------------- 3. queues
step "3/6 Message Queue: dead-letter queues first, then the work queues with a redrive policy"
ADMIN_KEY_JSON=$(ycf iam access-key create --service-account-id "$QUEUE_ADMIN_ID" --description "deploy-yc.sh (temporary)")
ADMIN_KEY_ID=$(json access_key.id <<<"$ADMIN_KEY_JSON")
delete_admin_key() {
  "$YC" iam access-key delete "$ADMIN_KEY_ID" >/dev/null 2>&1 \
    || warn "could not delete the temporary access key $ADMIN_KEY_ID of $QUEUE_ADMIN_SA_NAME: delete it by hand"
}
trap delete_admin_key EXIT
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
AWS_ACCESS_KEY_ID=$(json access_key.key_id <<<"$ADMIN_KEY_JSON")
AWS_SECRET_ACCESS_KEY=$(json secret <<<"$ADMIN_KEY_JSON")
sqs() { "$AWS" sqs "$@" --endpoint-url "$YMQ_ENDPOINT" --region "$YMQ_REGION" --output json; }
# create_queue NAME VISIBILITY_TIMEOUT RETENTION [DLQ_ARN]: prints the queue URL (CreateQueue is idempotent
# when the attributes match; a queue created with other attributes fails loudly, by design).
create_queue() {
  local attributes
  attributes=$(py -c '
import json, sys
name, visibility, retention, dlq, receives = sys.argv[1:6]
attrs = {"VisibilityTimeout": visibility, "MessageRetentionPeriod": retention}
if dlq:
    attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq, "maxReceiveCount": receives})
print(json.dumps(attrs))' "$1" "$2" "$3" "${4:-}" "$MAX_RECEIVE_COUNT")
  sqs create-queue --queue-name "$1" --attributes "$attributes" | json QueueUrl
}
queue_arn() { sqs get-queue-attributes --queue-url "$1" --attribute-names QueueArn | json Attributes.QueueArn; }

RETAIN_DLQ=1209600  # 14 days: a DLQ keeps the original enqueue time, so it must outlive the source queue
# dead_letter_queue NAME: creates it, prints its URL; queue_arn gives its ARN (yrn:yc:ymq:ru-central1:<folder>:<name>)
dead_letter_queue() { create_queue "$1" 30 "$RETAIN_DLQ"; }
# The functions send to the request and follow-up DLQs themselves (REQUEST_DLQ_URL, FOLLOWUP_DLQ_URL): a message
# that keeps failing, or a poison one, is copied there at once instead of waiting out the redrive policy.
# Sending needs ymq.writer, which the functions' service account holds on the folder (step 1).
REQUEST_DLQ_URL=$(dead_letter_queue "$REQUEST_QUEUE-dlq")
REQUEST_DLQ_ARN=$(queue_arn "$REQUEST_DLQ_URL")
FOLLOWUP_DLQ_URL=$(dead_letter_queue "$FOLLOWUP_QUEUE-dlq")
FOLLOWUP_DLQ_ARN=$(queue_arn "$FOLLOWUP_DLQ_URL")
RESULT_DLQ_ARN=$(queue_arn "$(dead_letter_queue "$RESULT_QUEUE-dlq")")
SCHEDULE_DLQ_ARN=$(queue_arn "$(dead_letter_queue "$SCHEDULE_DLQ")")
# visibility >= 6 x the consuming function's timeout (+ batch cutoff), as on AWS (template.yaml)
REQUEST_QUEUE_URL=$(create_queue "$REQUEST_QUEUE" 900 345600 "$REQUEST_DLQ_ARN")
FOLLOWUP_QUEUE_URL=$(create_queue "$FOLLOWUP_QUEUE" 420 345600 "$FOLLOWUP_DLQ_ARN")
RESULT_QUEUE_URL=$(create_queue "$RESULT_QUEUE" 60 1209600 "$RESULT_DLQ_ARN")
REQUEST_QUEUE_ARN=$(queue_arn "$REQUEST_QUEUE_URL")
FOLLOWUP_QUEUE_ARN=$(queue_arn "$FOLLOWUP_QUEUE_URL")

# ----------------------------------------------------------------------------- 4. functions and versions
step "4/6 functions and versions ($RUNTIME, $PACKAGE)"
TRIGGER_ID=$(get_or_create serverless function -- "$TRIGGER_FUNCTION" --description "yc-backup-runner: starts backups" | json id)
FOLLOWUP_ID=$(get_or_create serverless function -- "$FOLLOWUP_FUNCTION" --description "yc-backup-runner: follows operations" | json id)

common_flags=()
while IFS= read -r line; do common_flags+=("$line"); done < <(
  env_flag FOLDER_ID "$FOLDER_ID"
  env_flag DEFAULT_REQUEST "$DEFAULT_REQUEST"
  env_flag REQUEST_QUEUE_URL "$REQUEST_QUEUE_URL"
  env_flag FOLLOWUP_QUEUE_URL "$FOLLOWUP_QUEUE_URL"
  env_flag RESULT_QUEUE_URL "$RESULT_QUEUE_URL"
  env_flag AWS_ENDPOINT_URL_SQS "$YMQ_ENDPOINT"
  env_flag AWS_DEFAULT_REGION "$YMQ_REGION"
  env_flag METRICS_ENABLED "$METRICS_ENABLED"
  env_flag METRICS_NAMESPACE "$METRICS_NAMESPACE"
  if [[ -n "$YC_API_ENDPOINT" ]]; then env_flag YC_API_ENDPOINT "$YC_API_ENDPOINT"; fi
)
secret_flag() { printf 'environment-variable=%s,id=%s,version-id=%s,key=%s' "$1" "$SECRET_ID" "$SECRET_VERSION" "$1"; }
common_flags+=(
  --secret "$(secret_flag AWS_ACCESS_KEY_ID)"
  --secret "$(secret_flag AWS_SECRET_ACCESS_KEY)"
  --runtime "$RUNTIME" --source-path "$PACKAGE"
  --service-account-id "$SA_ID" --min-log-level "$MIN_LOG_LEVEL"
  --metadata-options aws-v1-http-endpoint=disabled
)
# Each function's own dead-letter queue, which it copies a message to after REDELIVERY_MAX_ATTEMPTS (or at once).
trigger_flags=("${common_flags[@]}")
while IFS= read -r line; do trigger_flags+=("$line"); done < <(env_flag REQUEST_DLQ_URL "$REQUEST_DLQ_URL")
followup_flags=("${common_flags[@]}")
while IFS= read -r line; do followup_flags+=("$line"); done < <(env_flag FOLLOWUP_DLQ_URL "$FOLLOWUP_DLQ_URL")
ycf serverless function version create --function-name "$TRIGGER_FUNCTION" \
  --entrypoint app.trigger_handler --execution-timeout "$TRIGGER_TIMEOUT" --memory "$TRIGGER_MEMORY" \
  "${trigger_flags[@]}" \
  --secret "$(secret_flag WEBHOOK_SECRET)" --secret "$(secret_flag SLACK_SIGNING_SECRET)" \
  --secret "$(secret_flag HANDOFF_SECRET)" >/dev/null
ycf serverless function version create --function-name "$FOLLOWUP_FUNCTION" \
  --entrypoint app.followup_handler --execution-timeout "$FOLLOWUP_TIMEOUT" --memory "$FOLLOWUP_MEMORY" \
  "${followup_flags[@]}" \
  --secret "$(secret_flag HANDOFF_SECRET)" >/dev/null

# ----------------------------------------------------------------------------- 5. triggers
step "5/6 triggers"
trigger() {  # trigger <kind> <name> [create flags...]
  local kind=$1 name=$2; shift 2
  if ycf serverless trigger get --name "$name" >/dev/null 2>&1; then
    echo "    reusing trigger $name (delete it to change its settings)" >&2
  else
    echo "    creating $kind trigger $name" >&2
    ycf serverless trigger create "$kind" --name "$name" "$@" >/dev/null
  fi
}
if [[ "$ENABLE_TIMER" == 1 ]]; then
  trigger timer "$TIMER_NAME" --cron-expression "$CRON_EXPRESSION" --payload "$SCHEDULE_REQUEST" \
    --invoke-function-id "$TRIGGER_ID" --invoke-function-tag '$latest' --invoke-function-service-account-id "$SA_ID" \
    --retry-attempts 2 --retry-interval 30s --dlq-queue-id "$SCHEDULE_DLQ_ARN" --dlq-service-account-id "$SA_ID"
fi
trigger message-queue "$REQUEST_TRIGGER_NAME" --queue "$REQUEST_QUEUE_ARN" --queue-service-account-id "$SA_ID" \
  --invoke-function-id "$TRIGGER_ID" --invoke-function-tag '$latest' --invoke-function-service-account-id "$SA_ID" \
  --batch-size 1 --batch-cutoff 10s
trigger message-queue "$FOLLOWUP_TRIGGER_NAME" --queue "$FOLLOWUP_QUEUE_ARN" --queue-service-account-id "$SA_ID" \
  --invoke-function-id "$FOLLOWUP_ID" --invoke-function-tag '$latest' --invoke-function-service-account-id "$SA_ID" \
  --batch-size "$FOLLOWUP_BATCH_SIZE" --batch-cutoff "$FOLLOWUP_BATCH_CUTOFF"

# ----------------------------------------------------------------------------- 6. API gateway
step "6/6 API gateway $GATEWAY_NAME"
variables="trigger_function_id=$TRIGGER_ID,service_account_id=$SA_ID"
if ycf serverless api-gateway get --name "$GATEWAY_NAME" >/dev/null 2>&1; then
  echo "    updating api-gateway $GATEWAY_NAME" >&2
  GATEWAY_JSON=$(ycf serverless api-gateway update --name "$GATEWAY_NAME" --spec "$HERE/api-gateway.yaml" --variables "$variables")
else
  echo "    creating api-gateway $GATEWAY_NAME" >&2
  GATEWAY_JSON=$(ycf serverless api-gateway create --name "$GATEWAY_NAME" --spec "$HERE/api-gateway.yaml" --variables "$variables")
fi
DOMAIN=$(json domain <<<"$GATEWAY_JSON")

cat <<EOF
Deployed.
  webhook:        POST https://$DOMAIN/backup
  Slack command:  POST https://$DOMAIN/slack
  request queue:  $REQUEST_QUEUE_URL
  follow-up:      $FOLLOWUP_QUEUE_URL
  results:        $RESULT_QUEUE_URL
  logs:           $YC serverless function logs $TRIGGER_FUNCTION --since 1h
                  $YC serverless function logs $FOLLOWUP_FUNCTION --since 1h
EOF
if [[ "$METRICS_ENABLED" == true ]]; then
  cat <<EOF
Alerting is left to the console (docs/DEPLOY.md "Alerting on Yandex Cloud"):
  1. Monitoring > Notification channels: create one (e-mail, SMS, Telegram ...).
  2. Monitoring > Alerts, each "> 0" over 5 minutes, notifying that channel:
     - messages in each dead-letter queue: $REQUEST_QUEUE-dlq, $FOLLOWUP_QUEUE-dlq, $RESULT_QUEUE-dlq, $SCHEDULE_DLQ
     - backups.failed and backups.timed_out (service=custom, app=$METRICS_NAMESPACE), summed
     - sink.failures (service=custom, app=$METRICS_NAMESPACE), summed, in 2 of 3 windows
     - errors of the functions $TRIGGER_FUNCTION and $FOLLOWUP_FUNCTION
EOF
fi
