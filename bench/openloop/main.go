// openloop: an open-loop HTTP load generator for scripts/bench.sh (issue 12). Requests go out at
// a fixed rate whatever the server does, and each request's latency is measured from the time it
// was scheduled to be sent, not from when a connection was free to send it: a server that stalls
// is charged for every request that should have gone out meanwhile (no coordinated omission).
//
//	openloop -url http://127.0.0.1:PORT -requests FILE -rate 1000 -duration 20s
//
// FILE holds one request a line, PATH<TAB>BODY (bench/callback.lua writes it with BENCH_DUMP
// set, so the bodies are the ones wrk sends); the requests are POSTed in turn, cycling. A
// request counts as an error unless it is answered 200 with "ActionStatus":"OK" in the body.
// Up to -connections requests are in flight at once, over as many keep-alive connections; when
// all are busy, scheduled requests wait for one, and that wait is part of their latency. The
// first -warmup of the run is sent at the same rate but not measured.
//
// -client raw (the default) writes each request as prepared bytes on its keep-alive connection and
// reads the answer itself (status line, headers, a Content-Length or chunked body): about half the
// CPU per request of -client nethttp, Go's net/http client, which costs about 110 µs a request
// and at 5,000 req/s takes half of a 2-core machine.
//
// Prints one line, OPENLOOP_RESULT {json}, on stdout: latency percentiles in microseconds, the
// rate reached, errors, and how far the scheduler itself fell behind (sched_lag_*), which bounds
// what the tool adds to the latencies (Go's timers sleep at least a millisecond), and the same
// latencies counted from when the scheduler handed each request out (dispatch_*): the tool's
// timer lateness left out, any wait for a free connection still in. Only the standard library.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type request struct {
	path string
	body []byte
	wire []byte // the whole HTTP/1.1 request, for the raw client
}

type job struct {
	req *request
	at  time.Time // when it was scheduled to be sent
	// dispatched is when the scheduler handed it out: at plus the scheduler's own lateness
	// (Go's timers sleep at least a millisecond), before any wait for a free connection.
	dispatched time.Time
	// measured is false during the warm-up.
	measured bool
}

type worker struct {
	latencies []int64 // µs, from the scheduled time to the end of the answer
	// µs, from when the scheduler handed the request out to the end of the answer: the
	// latency without the load tool's own timer lateness, still with any wait for a connection
	fromDispatch []int64
	waits        []int64 // µs, from the scheduled time to the start of the send
	ok           int
	non200       int
	notOK        int
	failed       int // transport errors and timeouts
	sample       string
}

func main() {
	url := flag.String("url", "", "base URL, e.g. http://127.0.0.1:8080")
	file := flag.String("requests", "", "file of PATH<TAB>BODY lines")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 20*time.Second, "measured time")
	warmup := flag.Duration("warmup", 2*time.Second, "time sent at the rate before measuring")
	connections := flag.Int("connections", 128, "most requests in flight (and connections)")
	timeout := flag.Duration("timeout", 10*time.Second, "per request")
	clientKind := flag.String("client", "raw", "raw: HTTP/1.1 written and read on the connection "+
		"(light); nethttp: Go's net/http client (heavier: about 110 µs of CPU per request)")
	flag.Parse()
	if *url == "" || *file == "" || *rate <= 0 || *duration <= 0 || *connections < 1 ||
		(*clientKind != "raw" && *clientKind != "nethttp") {
		flag.Usage()
		os.Exit(2)
	}
	reqs, err := load(*file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openloop: %v\n", err)
		os.Exit(2)
	}

	var send func() sender
	switch *clientKind {
	case "nethttp":
		transport := &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        *connections,
			MaxIdleConnsPerHost: *connections,
			MaxConnsPerHost:     *connections,
			DisableCompression:  true,
			IdleConnTimeout:     90 * time.Second,
		}
		client := &http.Client{Transport: transport, Timeout: *timeout}
		send = func() sender { return &netHTTP{client: client, base: *url} }
	default:
		host, err := hostOf(*url)
		if err != nil {
			fmt.Fprintf(os.Stderr, "openloop: %v\n", err)
			os.Exit(2)
		}
		for i := range reqs {
			reqs[i].wire = wire(host, &reqs[i])
		}
		send = func() sender { return &raw{addr: host, timeout: *timeout} }
	}

	total := int(math.Ceil(*rate * (*warmup + *duration).Seconds()))
	warmupCount := int(math.Ceil(*rate * warmup.Seconds()))
	jobs := make(chan job, total)
	workers := make([]*worker, *connections)
	var inFlight, maxInFlight atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := send()
			defer conn.close()
			for j := range jobs {
				n := inFlight.Add(1)
				for {
					m := maxInFlight.Load()
					if n <= m || maxInFlight.CompareAndSwap(m, n) {
						break
					}
				}
				w.send(conn, j)
				inFlight.Add(-1)
			}
		}()
	}

	// The schedule: request i at start + i/rate. The scheduler sleeps until the next one is
	// due and then hands out every request that is due, so falling behind (a late wake-up)
	// delays requests but never drops or spaces them out; their latency still counts from
	// their own scheduled time.
	interval := float64(time.Second) / *rate
	start := time.Now().Add(20 * time.Millisecond)
	lags := make([]int64, 0, total)
	for i := 0; i < total; {
		at := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		for ; i < total; i++ {
			at := start.Add(time.Duration(float64(i) * interval))
			if at.After(now) {
				break
			}
			if i >= warmupCount {
				lags = append(lags, now.Sub(at).Microseconds())
			}
			jobs <- job{req: &reqs[i%len(reqs)], at: at, dispatched: now, measured: i >= warmupCount}
		}
	}
	scheduledEnd := time.Now()
	close(jobs)
	wg.Wait()
	finished := time.Now()

	var all, waits, dispatched []int64
	var ok, non200, notOK, failed int
	sample := ""
	for _, w := range workers {
		all = append(all, w.latencies...)
		waits = append(waits, w.waits...)
		dispatched = append(dispatched, w.fromDispatch...)
		ok, non200, notOK, failed = ok+w.ok, non200+w.non200, notOK+w.notOK, failed+w.failed
		if sample == "" {
			sample = w.sample
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	sort.Slice(waits, func(a, b int) bool { return waits[a] < waits[b] })
	sort.Slice(dispatched, func(a, b int) bool { return dispatched[a] < dispatched[b] })
	sort.Slice(lags, func(a, b int) bool { return lags[a] < lags[b] })
	measuredStart := start.Add(time.Duration(float64(warmupCount) * interval))
	var sum int64
	for _, l := range all {
		sum += l
	}
	mean := 0.0
	if len(all) > 0 {
		mean = float64(sum) / float64(len(all))
	}
	result := map[string]any{
		"rate":             *rate,
		"duration_s":       duration.Seconds(),
		"connections":      *connections,
		"requests":         len(all),
		"ok":               ok,
		"errors":           non200 + notOK + failed,
		"non200":           non200,
		"not_ok":           notOK,
		"failed":           failed,
		"sample_error":     sample,
		"sent_rps":         float64(len(all)) / scheduledEnd.Sub(measuredStart).Seconds(),
		"answered_rps":     float64(len(all)) / finished.Sub(measuredStart).Seconds(),
		"p50_us":           pct(all, 50),
		"p90_us":           pct(all, 90),
		"p99_us":           pct(all, 99),
		"p999_us":          pct(all, 99.9),
		"max_us":           pct(all, 100),
		"mean_us":          mean,
		"dispatch_p50_us":  pct(dispatched, 50),
		"dispatch_p99_us":  pct(dispatched, 99),
		"dispatch_p999_us": pct(dispatched, 99.9),
		"wait_p99_us":      pct(waits, 99),
		"wait_max_us":      pct(waits, 100),
		"sched_lag_p99_us": pct(lags, 99),
		"sched_lag_max_us": pct(lags, 100),
		"max_in_flight":    maxInFlight.Load(),
	}
	line, _ := json.Marshal(result)
	fmt.Printf("OPENLOOP_RESULT %s\n", line)
}

func (w *worker) send(conn sender, j job) {
	started := time.Now()
	status, body, err := conn.post(j.req)
	end := time.Now()
	if !j.measured {
		return
	}
	w.latencies = append(w.latencies, end.Sub(j.at).Microseconds())
	w.fromDispatch = append(w.fromDispatch, end.Sub(j.dispatched).Microseconds())
	w.waits = append(w.waits, started.Sub(j.at).Microseconds())
	switch {
	case err != nil:
		w.failed++
		w.note(err.Error())
	case status != http.StatusOK:
		w.non200++
		w.note(fmt.Sprintf("%d %s", status, body))
	case !bytes.Contains(body, []byte(`"ActionStatus":"OK"`)):
		w.notOK++
		w.note(fmt.Sprintf("%d %s", status, body))
	default:
		w.ok++
	}
}

func (w *worker) note(s string) {
	if w.sample == "" {
		if len(s) > 300 {
			s = s[:300]
		}
		w.sample = s
	}
}

// sender is one connection's client: it posts a request and returns the status and body.
type sender interface {
	post(req *request) (int, []byte, error)
	close()
}

// netHTTP posts through Go's net/http client (the connection pool is shared).
type netHTTP struct {
	client *http.Client
	base   string
	buf    bytes.Buffer
}

func (c *netHTTP) post(r *request) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	c.buf.Reset()
	// Read to the end, so that the connection is reused.
	if _, err := io.Copy(&c.buf, resp.Body); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, c.buf.Bytes(), nil
}

func (c *netHTTP) close() {}

// raw keeps one keep-alive connection and speaks HTTP/1.1 on it directly: the request is
// written as prepared bytes in one write, the answer read with a Content-Length or chunked
// body. A connection that fails or says `Connection: close` is dialled again for the next
// request.
type raw struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	rd      *bufio.Reader
	body    []byte
}

func (c *raw) post(r *request) (int, []byte, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return 0, nil, err
		}
		c.conn, c.rd = conn, bufio.NewReaderSize(conn, 16*1024)
	}
	status, keep, err := c.exchange(r.wire)
	if err != nil || !keep {
		c.close()
	}
	return status, c.body, err
}

func (c *raw) exchange(wire []byte) (status int, keep bool, err error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := c.conn.Write(wire); err != nil {
		return 0, false, err
	}
	line, err := c.rd.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("not an HTTP status line: %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := c.rd.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return status, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			line, err := c.rd.ReadSlice('\n')
			if err != nil {
				return status, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
			if err != nil {
				return status, false, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				_, err = c.rd.ReadSlice('\n')
				return status, keep, err
			}
			if err := c.read(int(size) + 2); err != nil {
				return status, false, err
			}
			c.body = c.body[:len(c.body)-2]
		}
	case length >= 0:
		return status, keep, c.read(length)
	default:
		return status, false, fmt.Errorf("answer without Content-Length")
	}
}

// read appends n bytes of the answer to c.body.
func (c *raw) read(n int) error {
	at := len(c.body)
	c.body = append(c.body, make([]byte, n)...)
	_, err := io.ReadFull(c.rd, c.body[at:])
	return err
}

func (c *raw) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// hostOf is host:port of an http:// URL.
func hostOf(u string) (string, error) {
	parsed, err := neturl.Parse(u)
	if err != nil || parsed.Scheme != "http" || parsed.Host == "" {
		return "", fmt.Errorf("-url %q: want http://host:port", u)
	}
	if parsed.Port() == "" {
		return parsed.Host + ":80", nil
	}
	return parsed.Host, nil
}

// wire is the whole request as sent: POST, the same headers net/http sends, the body.
func wire(host string, r *request) []byte {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: openloop\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", r.path, host, len(r.body))
	return append([]byte(head), r.body...)
}

// pct is the nearest-rank percentile of sorted values; 0 when there are none.
func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func load(path string) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var reqs []request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		path, body, found := strings.Cut(sc.Text(), "\t")
		if !found || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%s: not a PATH<TAB>BODY line: %.80q", f.Name(), sc.Text())
		}
		reqs = append(reqs, request{path: path, body: []byte(body)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no requests", path)
	}
	return reqs, nil
}
