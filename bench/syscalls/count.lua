-- wrk script of the syscall census (bench/syscalls/run.sh): like
-- bench/compare/wrk.lua it keeps the URL's host for SNI and Host but connects
-- to 127.0.0.1, and it stops each wrk thread after its share of a fixed number
-- of responses, so the traced interval holds a known number of units.
--
--   wrk -t T -c T -d 300s -s count.lua URL -- UNITS T PARK_PORT
--
-- One connection per thread. Thread i of T stops after floor(UNITS/T)
-- responses, plus one if i < UNITS % T. wrk.thread:stop() ends the thread's
-- event loop after the current iteration (wg/wrk src/script.c, src/wrk.c), so
-- no request is left in flight. With `Connection: close`, wrk reconnects right
-- after the response (response_complete -> reconnect_socket), before the loop
-- ends; so the last response also points the thread's address at PARK_PORT,
-- a listener census.py never accepts on, and that connection never reaches the
-- proxy. The proxy thus sees exactly UNITS complete units.
-- wrk's main thread still sleeps for -d, so each thread prints a line when it
-- stops and census.py sends wrk SIGINT (which ends that sleep) once all have.

wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end

local next_index = 0
function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
end

function init(args)
  local units, threads = tonumber(args[1]), tonumber(args[2])
  limit = math.floor(units / threads)
  if index < units % threads then limit = limit + 1 end
  seen = 0
  park = wrk.lookup("127.0.0.1", args[3])[1]
end

function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    io.write("bench_thread_stopped\n")
    io.flush()
    wrk.thread.addr = park
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"bench_wrk": 1, "requests": %d, "duration_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
