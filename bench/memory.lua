-- wrk script for scripts/memory.sh: Group.CallbackAfterGroupInfoChanged callbacks with a
-- unique GroupId per request (MEMORY_RUN .. thread .. counter), so every event in the topic
-- can be told apart. No token: the relay under test runs without Sign checking.
--
-- Environment: MEMORY_RUN (a marker for this run), MEMORY_PATH (default /callback).
-- done() prints: MEMORY_RESULT requests=N ok=N full=N other=N

local threads = {}
local counter = 0
ok, full, other = 0, 0, 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local path, prefix, pad

function init(args)
  path = (os.getenv("MEMORY_PATH") or "/callback")
    .. "?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged"
    .. "&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI"
  prefix = "@TGS#" .. (os.getenv("MEMORY_RUN") or "mem") .. "_" .. id .. "_"
  -- A realistic body size (~700 bytes, like bench/callback.lua's largest shape).
  pad = string.rep("周末羽毛球群 🏸 每周六上午十点，南山体育馆见。", 8)
end

function request()
  counter = counter + 1
  local body = '{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"'
    .. prefix .. counter .. '","Type":"Public","Operator_Account":"user_' .. counter
    .. '","EventTime":' .. os.time() * 1000 .. ',"Introduction":"' .. pad .. '"}'
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 and body and body:find('"ActionStatus":"OK"', 1, true) then
    ok = ok + 1
  elseif status == 503 then
    full = full + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local o, f, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o, f, x = o + t:get("ok"), f + t:get("full"), x + t:get("other")
  end
  io.write(string.format("MEMORY_RESULT requests=%d ok=%d full=%d other=%d\n", summary.requests, o, f, x))
end
