-- wrk script for the cross-check in docs/BENCHMARKS.md: POST the JSON body in $WRK_BODY
-- (keep-alive) and print p50/p90/p99 latency in milliseconds at the end.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-0123456789abcdef"

function done(summary, latency, requests)
  io.write(string.format("wrk: %d requests, %d errors, p50=%.3f p90=%.3f p99=%.3f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
