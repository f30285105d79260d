-- wrk script of the comparison benchmark (bench/compare/run.sh).
-- Keeps the URL's host (the SNI and Host header, e.g. bench.mesh.test) but
-- connects to 127.0.0.1, so no /etc/hosts entry is needed; and prints one
-- JSON line with the counts and latency percentiles for bench.py to parse.

wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"bench_wrk": 1, "requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
