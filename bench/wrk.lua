-- wrk script of `make bench` (bench/run.sh): one kind of request under load,
-- configured through the environment, every request text prepared in init()
-- so that request() only hands out strings.
--
--   BENCH_MODE     get        GET BENCH_PATH, no token (health, trivial handler)
--                  token      GET BENCH_PATH with a bearer token, round robin
--                             over the tokens (profile, subscription)
--                  redeem     POST /redeem, each request a fresh code
--                  login      POST /api/login, round robin over the users
--                  mixed      the memory run: profile, subscription, the own
--                             subscription by id, health, and /redeem of a
--                             code already used (409), in turn
--   BENCH_THREADS  wrk's -t (the threads split the work by line number)
--   BENCH_TOKENS   file of "user_id token" lines
--   BENCH_CODES    file of codes, one a line; BENCH_OFFSET lines are skipped
--                  (used by earlier runs), BENCH_LIMIT lines are available
--   BENCH_LOGINS   file of "email password" lines
--   BENCH_PREFIX   path prefix of the API (RedeemBasePath), default ""
--
--   BENCH_HIST     file to which done() appends the run's latencies, one
--                  "microseconds count" line per value (wrk's histogram,
--                  corrected as its percentiles are): table.pl's p50 and p99
--                  of a row are over all its runs' requests
--
-- done() prints one line for run.sh:
--   BENCH_RESULT requests= seconds= rps= p50_ms= p99_ms= connect= read= write=
--   status= timeout= used=
-- status counts responses >= 400 (wrk's own rule); used is the largest
-- number of codes one thread handed out (the next run starts past
-- BENCH_OFFSET + threads * used).

local mode = os.getenv("BENCH_MODE") or "get"
local path = os.getenv("BENCH_PATH") or "/"
local prefix = os.getenv("BENCH_PREFIX") or ""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function lines_of(file, first, count, stride, phase)
  -- Lines first+1 .. first+count of file whose index within that range is
  -- phase modulo stride.
  local out, n = {}, 0
  for line in io.lines(file) do
    n = n + 1
    if n > first + count then break end
    if n > first and (n - first - 1) % stride == phase then
      out[#out + 1] = line
    end
  end
  return out
end

local json_headers = { ["Content-Type"] = "application/json" }

local function bearer(token, extra)
  local h = { ["Authorization"] = "Bearer " .. token }
  if extra then for k, v in pairs(extra) do h[k] = v end end
  return h
end

local function read_tokens(stride, phase)
  local out = {}
  for _, line in ipairs(lines_of(os.getenv("BENCH_TOKENS"), 0, math.huge, stride, phase)) do
    local id, token = line:match("^(%d+) (%S+)$")
    out[#out + 1] = { id = id, token = token }
  end
  return out
end

function init(args)
  local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  items, used = {}, 0
  if mode == "get" then
    items[1] = wrk.format("GET", prefix .. path)
  elseif mode == "token" then
    for _, t in ipairs(read_tokens(stride, id)) do
      items[#items + 1] = wrk.format("GET", prefix .. path, bearer(t.token))
    end
  elseif mode == "redeem" then
    local tokens = read_tokens(1, 0)
    local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
    local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
    local codes = lines_of(os.getenv("BENCH_CODES"), offset, limit, stride, id)
    for i, code in ipairs(codes) do
      local t = tokens[((i - 1) * stride + id) % #tokens + 1]
      items[i] = wrk.format("POST", prefix .. "/redeem", bearer(t.token, json_headers),
        '{"card_code":"' .. code .. '"}')
    end
  elseif mode == "login" then
    for _, line in ipairs(lines_of(os.getenv("BENCH_LOGINS"), 0, math.huge, stride, id)) do
      local email, password = line:match("^(%S+) (%S+)$")
      items[#items + 1] = wrk.format("POST", prefix .. "/api/login", json_headers,
        '{"email":"' .. email .. '","password":"' .. password .. '"}')
    end
  elseif mode == "mixed" then
    local used_code = os.getenv("BENCH_USED_CODE")
    for _, t in ipairs(read_tokens(stride, id)) do
      items[#items + 1] = wrk.format("GET", prefix .. "/api/profile", bearer(t.token))
      items[#items + 1] = wrk.format("GET", prefix .. "/api/subscription", bearer(t.token))
      items[#items + 1] = wrk.format("GET", prefix .. "/subscription/" .. t.id, bearer(t.token))
      items[#items + 1] = wrk.format("GET", prefix .. "/api/health")
      items[#items + 1] = wrk.format("POST", prefix .. "/redeem", bearer(t.token, json_headers),
        '{"card_code":"' .. used_code .. '"}')
    end
  else
    error("BENCH_MODE: unknown mode " .. mode)
  end
  if #items == 0 then error("bench: no requests for mode " .. mode) end
  single = (mode == "get")
  next_item = 0
end

function request()
  if single then return items[1] end
  next_item = next_item + 1
  if next_item > #items then
    -- Round again. For /redeem that means a code used before, which
    -- answers 409 and counts as an error: run.sh gives wrk three times the
    -- codes the last rate needed, so that it does not come to this.
    next_item = 1
  end
  if next_item > used then used = next_item end
  return items[next_item]
end

function done(summary, latency, requests)
  local hist = os.getenv("BENCH_HIST")
  if hist and hist ~= "" then
    local f = assert(io.open(hist, "a"))
    for i = 1, #latency do
      local value, count = latency(i) -- the i-th distinct value and its count
      f:write(string.format("%d %d\n", value, count))
    end
    f:close()
  end
  local most = 0
  for _, thread in ipairs(threads) do
    local u = thread:get("used") or 0
    if u > most then most = u end
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f connect=%d read=%d write=%d status=%d timeout=%d used=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, most))
end
