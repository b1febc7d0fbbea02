-- wrk script for sluice's load tests: POSTs the request bodies of one corpus file (one JSON
-- body per line, written by gen.py), cycling through them.
--   LT_BODIES  the corpus file
--   LT_PATH    the request path (default /)
--   LT_RUN     a token unique to this run; every @@N@@ in a body becomes LT_RUN.<request number>,
--              so the storm scenarios send new alerts on every request however long the run
-- done() prints one machine-readable line that compare.sh reads:
--   LT_RESULT requests=.. duration_us=.. non2xx=.. socket_errors=.. p50_us=.. p99_us=..

local bodies_file = os.getenv("LT_BODIES")
local path = os.getenv("LT_PATH") or "/"
local run = os.getenv("LT_RUN") or "run"
local headers = { ["Content-Type"] = "application/json" }

local fixed = {}   -- whole requests, for bodies without the placeholder
local parts = {}   -- bodies split at the placeholder
local n = 0
local i = 0
local counter = 0

function init(args)
  local f = assert(io.open(bodies_file, "r"), "cannot open LT_BODIES " .. tostring(bodies_file))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      if line:find("@@N@@", 1, true) then
        local p, start = {}, 1
        while true do
          local s, e = line:find("@@N@@", start, true)
          if not s then break end
          p[#p + 1] = line:sub(start, s - 1)
          start = e + 1
        end
        p[#p + 1] = line:sub(start)
        parts[n] = p
      else
        fixed[n] = wrk.format("POST", path, headers, line)
      end
    end
  end
  f:close()
  assert(n > 0, "no bodies in " .. bodies_file)
end

function request()
  i = i % n + 1
  local req = fixed[i]
  if req then return req end
  counter = counter + 1
  local p = parts[i]
  local token = run .. "." .. counter
  local buf = { p[1] }
  for k = 2, #p do
    buf[#buf + 1] = token
    buf[#buf + 1] = p[k]
  end
  return wrk.format("POST", path, headers, table.concat(buf))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LT_RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
