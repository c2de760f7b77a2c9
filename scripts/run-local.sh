#!/usr/bin/env bash
# Runs the relay for real. Without KAFKA_BOOTSTRAP_SERVERS it starts a local single-node Kafka
# first (scripts/kafka.sh; stop it with `bash scripts/kafka.sh stop`). Without TIM_SDK_APP_ID it
# uses the demo app ID 1400000000. Every other setting comes from the environment as documented.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
  bash scripts/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092}
fi
export TIM_SDK_APP_ID=${TIM_SDK_APP_ID:-1400000000}
export RELAY_LISTEN=${RELAY_LISTEN:-127.0.0.1:8080}
export RELAY_ADMIN_LISTEN=${RELAY_ADMIN_LISTEN:-127.0.0.1:9090}
export KAFKA_TOPIC=${KAFKA_TOPIC:-tim.group-changes}
export KAFKA_MESSAGES_TOPIC=${KAFKA_MESSAGES_TOPIC-tim.group-messages}
export KAFKA_OTHER_TOPIC=${KAFKA_OTHER_TOPIC-tim.webhooks}
export RELAY_SPOOL_DIR=${RELAY_SPOOL_DIR:-target/relay-spool}
cargo build --locked --release --bin tim-relay

port=${RELAY_LISTEN##*:}
admin_port=${RELAY_ADMIN_LISTEN##*:}
cat >&2 <<MSG

tim-relay is starting on $RELAY_LISTEN for app $TIM_SDK_APP_ID, publishing group state events to $KAFKA_TOPIC,
group messages to $KAFKA_MESSAGES_TOPIC and every other callback to $KAFKA_OTHER_TOPIC at $KAFKA_BOOTSTRAP_SERVERS.
Send a sample callback (another terminal):

  curl -s -X POST 'http://127.0.0.1:$port/callback?SdkAppid=$TIM_SDK_APP_ID&CallbackCommand=Group.CallbackAfterGroupInfoChanged&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI' \\
       -d '{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public","Operator_Account":"leckie","Name":"NewGroupName"}'

Watch the topic:

  bash scripts/kafka.sh console-consumer --bootstrap-server $KAFKA_BOOTSTRAP_SERVERS --topic $KAFKA_TOPIC --from-beginning \\
       --property print.key=true --property print.headers=true

Health: curl http://127.0.0.1:$admin_port/readyz    Metrics: curl http://127.0.0.1:$admin_port/metrics    Stop: Ctrl-C
MSG
exec target/release/tim-relay
