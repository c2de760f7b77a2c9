// A Go relay of tim-relay's contract for Group.CallbackAfterGroupInfoChanged, written for the
// benchmark (scripts/bench.sh, issue 12) to run beside the Rust relay on the same load: net/http
// and franz-go (github.com/twmb/franz-go), nothing else.
//
// POST /callback?SdkAppid=...&CallbackCommand=...&Sign=...&RequestTime=...: the app id must be
// this relay's; with a token, Sign must be hex SHA-256(token + RequestTime) and RequestTime within
// 60 s of the clock, as the Rust relay checks. The JSON body's GroupId keys a change event shaped
// like the Rust relay's (src/ingress/event.rs, src/ingress/commands/group_info_changed.rs: the same members, the
// same UUIDv5 id when the body has EventTime, the same CloudEvents headers), produced to the topic
// with ProduceSync. The OK answer is written only after the broker acknowledged the record; a
// failed produce answers HTTP 500 with ActionStatus FAIL. There is no spool: this is the
// comparison, not a second relay.
//
// The client keeps franz-go's defaults: acks=all and idempotence are already the defaults, and so
// is the 10 ms linger, which ProduceSync skips for the partitions it produced to (franz-go
// v1.20+), so each callback's record is sent without waiting for more.
//
// Configuration, by the Rust relay's variable names so that bench/run.py starts both alike:
// TIM_SDK_APP_ID (required), TIM_CALLBACK_TOKEN (empty: no Sign check), RELAY_LISTEN
// (127.0.0.1:8080), KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092, comma-separated), KAFKA_TOPIC
// (tim.group.events). GET /readyz answers 200 once a broker answers, /healthz always.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	okBody     = `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`
	eventType  = "tim.group.info_changed"
	maxBody    = 1 << 20
	maxSkewSec = 60
)

// The Rust relay's namespace for name-based (v5) event ids (src/ingress/event.rs, ID_NAMESPACE).
var idNamespace = [16]byte{0x6f, 0x1c, 0x2a, 0x8e, 0x5b, 0x7d, 0x4c, 0x3e, 0x9a, 0x10, 0x4e, 0x2b, 0x7d, 0x5f, 0x0c, 0x11}

type relay struct {
	appID  string
	token  string
	topic  string
	client *kgo.Client
}

// The callback body: the fields this command reads; the rest is ignored.
type body struct {
	GroupID             string          `json:"GroupId"`
	Type                *string         `json:"Type"`
	Operator            *string         `json:"Operator_Account"`
	EventTime           json.RawMessage `json:"EventTime"`
	Name                *string         `json:"Name"`
	Introduction        *string         `json:"Introduction"`
	Notification        *string         `json:"Notification"`
	FaceURL             *string         `json:"FaceUrl"`
	UserDefinedDataList []struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	} `json:"UserDefinedDataList"`
}

// The event: the Rust relay's members, in its order; absent ones are left out.
type event struct {
	ID            string  `json:"id"`
	Type          string  `json:"type"`
	SchemaVersion int     `json:"schema_version"`
	SdkAppID      string  `json:"sdk_app_id"`
	GroupID       string  `json:"group_id"`
	GroupType     *string `json:"group_type,omitempty"`
	Operator      *string `json:"operator,omitempty"`
	EventTimeMs   *uint64 `json:"event_time_ms,omitempty"`
	ReceivedAt    string  `json:"received_at"`
	ClientIP      *string `json:"client_ip,omitempty"`
	Platform      *string `json:"platform,omitempty"`
	Changes       changes `json:"changes"`
}

type changes struct {
	Name         *string `json:"name,omitempty"`
	Introduction *string `json:"introduction,omitempty"`
	Notification *string `json:"notification,omitempty"`
	FaceURL      *string `json:"face_url,omitempty"`
	Custom       custom  `json:"custom,omitempty"`
}

// Custom fields in the order the body gave them (a Go map would sort them); a later entry with
// the same key replaces the earlier one's value in its place, as in the Rust relay.
type custom []struct{ Key, Value string }

func (c custom) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.Key)
		v, _ := json.Marshal(kv.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (c custom) set(key, value string) custom {
	for i := range c {
		if c[i].Key == key {
			c[i].Value = value
			return c
		}
	}
	return append(c, struct{ Key, Value string }{key, value})
}

func fail(w http.ResponseWriter, status int, info string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	msg, _ := json.Marshal(info)
	fmt.Fprintf(w, `{"ActionStatus":"FAIL","ErrorInfo":%s,"ErrorCode":1}`, msg)
}

func (rl *relay) checkSign(sign, requestTime string, now time.Time) error {
	if rl.token == "" {
		return nil
	}
	if sign == "" || requestTime == "" {
		return errors.New("Sign or RequestTime is missing")
	}
	secs, err := strconv.ParseInt(requestTime, 10, 64)
	if err != nil || secs < 0 {
		return errors.New("RequestTime is not a Unix time in seconds")
	}
	if d := now.Unix() - secs; d > maxSkewSec || d < -maxSkewSec {
		return errors.New("RequestTime is too far from the relay's clock")
	}
	sum := sha256.Sum256([]byte(rl.token + requestTime))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(sign))) != 1 {
		return errors.New("Sign does not match")
	}
	return nil
}

func (rl *relay) callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, "callbacks are POST requests")
		return
	}
	receivedAt := time.Now()
	q := r.URL.Query()
	if q.Get("SdkAppid") != rl.appID {
		fail(w, http.StatusForbidden, "SdkAppid does not match this relay's app")
		return
	}
	if err := rl.checkSign(q.Get("Sign"), q.Get("RequestTime"), receivedAt); err != nil {
		fail(w, http.StatusForbidden, err.Error())
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, http.StatusBadRequest, "body unreadable: "+err.Error())
		return
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		fail(w, http.StatusBadRequest, "body is not the expected JSON: "+err.Error())
		return
	}
	if b.GroupID == "" {
		fail(w, http.StatusBadRequest, "GroupId is missing")
		return
	}
	ev := event{
		Type:          eventType,
		SchemaVersion: 1,
		SdkAppID:      rl.appID,
		GroupID:       b.GroupID,
		GroupType:     b.Type,
		Operator:      b.Operator,
		ReceivedAt:    rfc3339(receivedAt),
		ClientIP:      optional(q, "ClientIP"),
		Platform:      optional(q, "OptPlatform"),
		Changes: changes{
			Name:         b.Name,
			Introduction: b.Introduction,
			Notification: b.Notification,
			FaceURL:      b.FaceURL,
		},
	}
	for _, kv := range b.UserDefinedDataList {
		ev.Changes.Custom = ev.Changes.Custom.set(kv.Key, kv.Value)
	}
	if ms, ok := eventTime(b.EventTime); ok {
		ev.EventTimeMs = &ms
		ev.ID = stableID(rl.appID, raw)
	} else {
		ev.ID = randomID()
	}
	value, err := json.Marshal(&ev)
	if err != nil {
		fail(w, http.StatusInternalServerError, "event: "+err.Error())
		return
	}
	ceTime := ev.ReceivedAt
	if ev.EventTimeMs != nil {
		ceTime = rfc3339(time.UnixMilli(int64(*ev.EventTimeMs)))
	}
	rec := &kgo.Record{
		Topic: rl.topic,
		Key:   []byte(b.GroupID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte(ev.ID)},
			{Key: "ce_type", Value: []byte(eventType)},
			{Key: "ce_source", Value: []byte("/tencent-im/" + rl.appID)},
			{Key: "ce_subject", Value: []byte(b.GroupID)},
			{Key: "ce_time", Value: []byte(ceTime)},
			{Key: "content-type", Value: []byte("application/json")},
		},
	}
	if err := rl.client.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
		fail(w, http.StatusInternalServerError, "Kafka: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, okBody)
}

func optional(q map[string][]string, name string) *string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return &v[0]
	}
	return nil
}

// EventTime in milliseconds, as a JSON number or a string of digits (both occur).
func eventTime(raw json.RawMessage) (uint64, bool) {
	s := strings.Trim(string(raw), `"`)
	if s == "" || s == "null" {
		return 0, false
	}
	ms, err := strconv.ParseUint(s, 10, 64)
	return ms, err == nil
}

// UUIDv5 of the app id and the raw body after a newline, as the Rust relay names an event.
func stableID(appID string, raw []byte) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	io.WriteString(h, appID)
	h.Write([]byte{'\n'})
	h.Write(raw)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return uuidString(u)
}

func randomID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return uuidString(u)
}

func uuidString(u [16]byte) string {
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// RFC 3339 in UTC with milliseconds, as the Rust relay writes times.
func rfc3339(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	log.SetPrefix("go-relay: ")
	appID := os.Getenv("TIM_SDK_APP_ID")
	if appID == "" {
		log.Fatal("TIM_SDK_APP_ID is not set")
	}
	listen := env("RELAY_LISTEN", "127.0.0.1:8080")
	brokers := strings.Split(env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), ",")
	topic := env("KAFKA_TOPIC", "tim.group.events")

	// franz-go's defaults: acks=all, idempotent, 10 ms linger (skipped by ProduceSync).
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		log.Fatalf("Kafka client: %v", err)
	}
	rl := &relay{appID: appID, token: os.Getenv("TIM_CALLBACK_TOKEN"), topic: topic, client: client}

	mux := http.NewServeMux()
	mux.HandleFunc("/callback", rl.callback)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := client.Ping(ctx); err != nil {
			http.Error(w, "Kafka: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	server := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		server.Shutdown(ctx)
		client.Close()
		close(done)
	}()
	log.Printf("listening on %s, topic %s, brokers %s", listen, topic, strings.Join(brokers, ","))
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-done
}
