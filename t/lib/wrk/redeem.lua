-- wrk script for t/faults/killed.t: every request redeems a different code for one of many users.
-- The pairs file holds "token code" lines; thread n takes lines n, n+T, ...
local pairs_file = os.getenv("BENCH_PAIRS")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  items = {}
  local n, total = 0, tonumber(os.getenv("BENCH_THREADS"))
  for line in io.lines(pairs_file) do
    if n % total == id then
      local token, code = line:match("^(%S+) (%S+)$")
      table.insert(items, wrk.format("POST", "/redeem", {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
      }, '{"card_code":"' .. code .. '"}'))
    end
    n = n + 1
  end
  next_item = 0
  ok_count, other_count = 0, 0
end

function request()
  next_item = next_item + 1
  if next_item > #items then next_item = 1 end -- wraps: repeats answer 409
  return items[next_item]
end

function response(status)
  if status == 200 then ok_count = ok_count + 1 else other_count = other_count + 1 end
end

function done(summary, latency, requests)
  local ok_total, other_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok_count")
    other_total = other_total + thread:get("other_count")
  end
  io.write(string.format("redeemed (200): %d, other: %d, redemptions/s: %.0f, p50 %.2f ms, p99 %.2f ms\n",
    ok_total, other_total, ok_total / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
