-- wrk script for bench/ack.py: replays pre-signed Meta webhooks, each a unique message.
-- ACK_REQUESTS names a file of "<X-Hub-Signature-256>\t<json body>" lines; thread i of n sends
-- lines i, i+n, i+2n, ... so no message is sent twice. done() prints one JSON line of results.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("ACK_REQUESTS")
  local stride = tonumber(os.getenv("ACK_THREADS"))
  requests = {}
  local n = 0
  for line in io.lines(path) do
    if n % stride == index then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", wrk.path, headers, line:sub(tab + 1))
    end
    n = n + 1
  end
  position = 0
end

function request()
  position = position + 1
  if position > #requests then
    -- Out of unique messages: ack.py sizes the file for the run, this only guards against wrap-around.
    position = 1
    wrapped = (wrapped or 0) + 1
  end
  return requests[position]
end

function done(summary, latency, _)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"wrapped": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, wraps))
end
