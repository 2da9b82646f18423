-- Shared by the wrk scripts of bench/load: GraphQL POSTs, GraphQL errors counted per
-- thread (wrk counts only HTTP errors), summed and printed in done().
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  thread:set("errors", 0)
  counter = counter + 1
  table.insert(threads, thread)
end

function graphql(body, token)
  local headers = { ["Content-Type"] = "application/json" }
  if token then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", "/graphql", headers, body)
end

function count_errors(status, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
    if errors == 1 then io.stderr:write("first error: " .. status .. " " .. string.sub(body, 1, 300) .. "\n") end
  end
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do table.insert(lines, line) end
  return lines
end

function done(summary, latency, requests)
  local errors = 0
  for _, thread in ipairs(threads) do errors = errors + thread:get("errors") end
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d http_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errors,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

-- Paced runs (bench/soak): LOAD_DELAY_MS is the pause of each connection between requests.
local pause = tonumber(os.getenv("LOAD_DELAY_MS") or "0")
if pause > 0 then function delay() return pause end end
