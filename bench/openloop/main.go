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
// Prints one line, OPENLOOP_RESULT {json}, on stdout: latency percentiles in microseconds, the
// rate reached, errors, and how far the scheduler itself fell behind (sched_lag_*), which bounds
// what the tool adds to the latencies. Only the standard library.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type request struct {
	path string
	body []byte
}

type job struct {
	req *request
	at  time.Time // when it was scheduled to be sent
	// measured is false during the warm-up.
	measured bool
}

type worker struct {
	latencies []int64 // µs, from the scheduled time to the end of the answer
	waits     []int64 // µs, from the scheduled time to the start of the send
	ok        int
	non200    int
	notOK     int
	failed    int // transport errors and timeouts
	sample    string
}

func main() {
	url := flag.String("url", "", "base URL, e.g. http://127.0.0.1:8080")
	file := flag.String("requests", "", "file of PATH<TAB>BODY lines")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 20*time.Second, "measured time")
	warmup := flag.Duration("warmup", 2*time.Second, "time sent at the rate before measuring")
	connections := flag.Int("connections", 128, "most requests in flight (and connections)")
	timeout := flag.Duration("timeout", 10*time.Second, "per request")
	flag.Parse()
	if *url == "" || *file == "" || *rate <= 0 || *duration <= 0 || *connections < 1 {
		flag.Usage()
		os.Exit(2)
	}
	reqs, err := load(*file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openloop: %v\n", err)
		os.Exit(2)
	}

	transport := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        *connections,
		MaxIdleConnsPerHost: *connections,
		MaxConnsPerHost:     *connections,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}

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
			var buf bytes.Buffer
			for j := range jobs {
				n := inFlight.Add(1)
				for {
					m := maxInFlight.Load()
					if n <= m || maxInFlight.CompareAndSwap(m, n) {
						break
					}
				}
				w.send(client, *url, j, &buf)
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
			jobs <- job{req: &reqs[i%len(reqs)], at: at, measured: i >= warmupCount}
		}
	}
	scheduledEnd := time.Now()
	close(jobs)
	wg.Wait()
	finished := time.Now()

	var all, waits []int64
	var ok, non200, notOK, failed int
	sample := ""
	for _, w := range workers {
		all = append(all, w.latencies...)
		waits = append(waits, w.waits...)
		ok, non200, notOK, failed = ok+w.ok, non200+w.non200, notOK+w.notOK, failed+w.failed
		if sample == "" {
			sample = w.sample
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	sort.Slice(waits, func(a, b int) bool { return waits[a] < waits[b] })
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
		"wait_p99_us":      pct(waits, 99),
		"wait_max_us":      pct(waits, 100),
		"sched_lag_p99_us": pct(lags, 99),
		"sched_lag_max_us": pct(lags, 100),
		"max_in_flight":    maxInFlight.Load(),
	}
	line, _ := json.Marshal(result)
	fmt.Printf("OPENLOOP_RESULT %s\n", line)
}

func (w *worker) send(client *http.Client, url string, j job, buf *bytes.Buffer) {
	started := time.Now()
	status, body, err := post(client, url+j.req.path, j.req.body, buf)
	end := time.Now()
	if !j.measured {
		return
	}
	w.latencies = append(w.latencies, end.Sub(j.at).Microseconds())
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

func post(client *http.Client, url string, body []byte, buf *bytes.Buffer) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	// Read to the end, so that the connection is reused.
	if _, err := io.Copy(buf, resp.Body); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, buf.Bytes(), nil
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
