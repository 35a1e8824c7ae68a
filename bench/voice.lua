-- wrk script of bench/voice_bench.py: Cloudonix voice-application webhooks, closed loop.
--
-- Arguments (after `--`): max_requests_per_thread run_tag mode replay_set seed threads
--   max_requests_per_thread: every thread stops after that many answers (a bound on top of -d)
--   run_tag: goes into every CallSid, so that each run's calls can be found in the database
--   mode: "new" (every request a new call: a CallSid never used before) or "replay" (the
--     CallSids "vb<tag>r0" .. "vb<tag>r<replay_set - 1>" in turn: the idempotent path)
--   seed: the random seed (each thread adds its own number to it)
--   threads: how many threads wrk runs (-t), to split the replay set between them
-- Environment:
--   WRK_PORTS="18201 18202": thread i talks to 127.0.0.1:ports[i % #ports] (one thread per
--     server process, so the connections are split evenly)
--   VB_TO_FILE: the tracking numbers, one per line ("To": uniform over them)
--   VB_REPEAT_FILE: callers who called before, one per line
--   VB_NEW_PREFIX_FILE: 7-digit prefixes ("+1617201") of new callers' numbers
--   VB_REPEAT_SHARE: share of calls from a repeat caller (the rest: a random new number)
--   VB_TOKEN, VB_DOMAIN: the webhook token and the voice domain
-- Each answer is classified: 200 with <Dial> (forwarded), 200 without, or another status.
-- done() prints one line "BENCHJSON {...}" that the Python harness parses.

local threads = {}

local ports = {}
for p in string.gmatch(os.getenv("WRK_PORTS") or "", "%d+") do
   table.insert(ports, p)
end

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
   if #ports > 0 then
      local port = ports[((#threads - 1) % #ports) + 1]
      thread.addr = wrk.lookup("127.0.0.1", port)[1]
   end
end

local function read_lines(path)
   local out = {}
   for line in io.lines(path) do
      if #line > 0 then
         table.insert(out, line)
      end
   end
   return out
end

function init(args)
   max_requests = tonumber(args[1]) or 10000000
   tag = args[2] or "x"
   mode = args[3] or "new"
   replay_set = tonumber(args[4]) or 1000
   local seed = tonumber(args[5]) or os.time()
   threads_total = tonumber(args[6]) or 1
   math.randomseed(seed + (thread_id or 0) * 1000003)
   to_numbers = read_lines(os.getenv("VB_TO_FILE"))
   repeat_callers = read_lines(os.getenv("VB_REPEAT_FILE"))
   new_prefixes = read_lines(os.getenv("VB_NEW_PREFIX_FILE"))
   repeat_share = tonumber(os.getenv("VB_REPEAT_SHARE")) or 0.2
   domain = os.getenv("VB_DOMAIN")
   sent = 0
   ok = 0
   dial = 0
   other = 0
   answered = 0
   token = os.getenv("VB_TOKEN")
   wrk.method = "POST"
   wrk.path = "/webhooks/cloudonix/voice"
end

function request()
   sent = sent + 1
   local sid
   if mode == "replay" then
      -- Thread i takes the CallSids i, i + threads, i + 2 * threads, ...: the first pass
      -- over the set stores each call once, every later request is a replay.
      local index = ((thread_id - 1) + (sent - 1) * threads_total) % replay_set
      sid = "vb" .. tag .. "r" .. tostring(index)
   else
      sid = "vb" .. tag .. "t" .. tostring(thread_id) .. "n" .. tostring(sent)
   end
   local to = to_numbers[math.random(#to_numbers)]
   local from
   if math.random() < repeat_share then
      from = repeat_callers[math.random(#repeat_callers)]
   else
      from = new_prefixes[math.random(#new_prefixes)] .. string.format("%04d", math.random(0, 9999))
   end
   -- Lua's clock has whole seconds: the call started up to 1 s before now, as far as we say.
   local start_ms = os.time() * 1000
   local body = '{"CallSid":"' .. sid .. '","Session":"' .. sid .. '","From":"' .. from
      .. '","To":"' .. to .. '","CallerName":"Bench Caller","Direction":"inbound",'
      .. '"CallStatus":"in-progress","Domain":"' .. domain .. '","AccountSid":"' .. domain
      .. '","ApiVersion":"1","ApplicationSid":"calltrack","SessionData":{"token":"' .. sid
      .. '","status":"processing","callStartTime":' .. string.format("%d", start_ms)
      .. ',"profile":{"trunk-sip-headers":{"X-Carrier":"bench"}}},'
      .. '"Application":{"name":"calltrack","url":"http://calltrack.bench/"}}'
   -- wrk.format uses this table instead of wrk.headers (it adds Host and Content-Length).
   local headers = {}
   headers["Content-Type"] = "application/json"
   headers["Authorization"] = "Bearer " .. token
   headers["User-Agent"] = "Cloudonix APP.Core/5.3.673"
   headers["X-CX-Domain"] = domain
   headers["X-CX-Source"] = "trunk"
   headers["X-CX-Session"] = sid
   headers["X-CX-From"] = from
   headers["X-CX-To"] = to
   return wrk.format(nil, nil, headers, body)
end

function response(status, headers, body)
   answered = answered + 1
   if status == 200 then
      ok = ok + 1
      if string.find(body, "<Dial", 1, true) then
         dial = dial + 1
      end
   else
      other = other + 1
   end
   if answered >= max_requests then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local s, o, d, x = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      s = s + (thread:get("sent") or 0)
      o = o + (thread:get("ok") or 0)
      d = d + (thread:get("dial") or 0)
      x = x + (thread:get("other") or 0)
   end
   local e = summary.errors
   local pct = {}
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      table.insert(pct, string.format('"%s":%d', tostring(p), latency:percentile(p)))
   end
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"sent":%d,"ok":%d,"dial":%d,"other":%d,'
         .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":{%s}}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      s, o, d, x,
      latency.min, latency.max, latency.mean, latency.stdev, table.concat(pct, ",")
   ))
end
