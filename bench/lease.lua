-- wrk script of bench/lease_bench.py: POST /get_tracking_number as closed-loop clients.
--
-- Arguments (after `--`): max_requests_per_thread pool_name
--   every thread stops after max_requests_per_thread answers (a bound on top of -d).
-- Environment: WRK_PORTS="8101 8102": thread i talks to 127.0.0.1:ports[i % #ports]
--   (one thread per server process, so the connections are split evenly).
-- Each answer is classified by its body: tracked ("tracked":true), fallback
-- ("tracked":false) or other (any non-200 status or unexpected body). Tracked answers
-- are also counted per 10 s bucket of wall-clock time (the soak trend).
-- done() prints one line "BENCHJSON {...}" that the Python harness parses.

local threads = {}

-- setup() runs in the main Lua state before the threads start and gets no script
-- arguments, so the server ports come from the WRK_PORTS environment variable.
local ports = {}
for p in string.gmatch(os.getenv("WRK_PORTS") or "", "%d+") do
   table.insert(ports, p)
end

function setup(thread)
   table.insert(threads, thread)
   if #ports > 0 then
      local port = ports[((#threads - 1) % #ports) + 1]
      thread.addr = wrk.lookup("127.0.0.1", port)[1]
   end
end

function init(args)
   max_requests = tonumber(args[1]) or 10000000
   local pool = args[2] or "bench"
   tracked = 0
   fallback = 0
   other = 0
   answered = 0
   started = os.time()
   buckets = {}
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = '{"pool":"' .. pool .. '"}'
end

function response(status, headers, body)
   answered = answered + 1
   if status == 200 and string.find(body, '"tracked":true', 1, true) then
      tracked = tracked + 1
      local b = math.floor((os.time() - started) / 10) + 1
      buckets[b] = (buckets[b] or 0) + 1
   elseif status == 200 and string.find(body, '"tracked":false', 1, true) then
      fallback = fallback + 1
   else
      other = other + 1
   end
   if answered >= max_requests then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local t, f, o = 0, 0, 0
   local merged = {}
   local nb = 0
   for _, thread in ipairs(threads) do
      t = t + (thread:get("tracked") or 0)
      f = f + (thread:get("fallback") or 0)
      o = o + (thread:get("other") or 0)
      local b = thread:get("buckets") or {}
      for k, v in pairs(b) do
         merged[k] = (merged[k] or 0) + v
         if k > nb then
            nb = k
         end
      end
   end
   local bucket_list = {}
   for k = 1, nb do
      table.insert(bucket_list, tostring(merged[k] or 0))
   end
   local e = summary.errors
   local pct = {}
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      table.insert(pct, string.format('"%s":%d', tostring(p), latency:percentile(p)))
   end
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"tracked":%d,"fallback":%d,"other":%d,'
         .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":{%s}},'
         .. '"tracked_per_10s":[%s]}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      t, f, o,
      latency.min, latency.max, latency.mean, latency.stdev, table.concat(pct, ","),
      table.concat(bucket_list, ",")
   ))
end
