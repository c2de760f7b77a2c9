-- wrk script for scripts/bench.sh: Tencent IM Group.CallbackAfterGroupInfoChanged callbacks.
--
-- Environment (set by bench/run.py right before each wrk run):
--   BENCH_SIGN          lowercase hex SHA-256(token .. BENCH_REQUEST_TIME)
--   BENCH_REQUEST_TIME  Unix seconds (the relay refuses one more than 60 s off its clock)
--   BENCH_APP_ID        SdkAppid (default 1400000000)
--   BENCH_PATH          callback path (default /callback)
--   BENCH_GROUPS        distinct GroupIds, @TGS#bench<n> (default 10000)
--   BENCH_MIX           1: a mix of commands instead of GroupInfoChanged alone (per ten
--                       requests: 4 GroupInfoChanged, 2 group messages, 1 member joined,
--                       1 member exited, 1 C2C message (other topic), 1 before-callback)
--   BENCH_DUMP          a file: init() writes every request there as PATH<TAB>BODY lines and
--                       exits wrk before its load starts (bench/openloop sends those
--                       requests): `wrk -t1 -c1 -d1s -s bench/callback.lua URL`, where URL
--                       must be listening (wrk opens one test connection before init())
--
-- Each thread builds every request once in init() (one per GroupId, bodies shaped like
-- Tencent's examples, with Chinese text and emoji) and then cycles through them, so the
-- load generator spends its time on the wire, not on string building. Keep-alive is wrk's
-- default. response() counts every answer that is not 200 with ActionStatus OK as an error,
-- and done() prints one machine-readable line: BENCH_RESULT {json}.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then
    if default == nil then
      error("callback.lua: " .. name .. " is not set")
    end
    return default
  end
  return v
end

-- Minimal JSON string escaping (for the bodies and for the error sample in done()).
local function q(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

local names = { "周末羽毛球群 🏸", "产品讨论组", "Family 家人 ❤️", "深圳跑团 🏃‍♀️ 2024", "读书会 📚" }
local intros = {
  "每周六上午十点，南山体育馆见。欢迎新朋友！",
  "Product discussion: 需求评审、设计稿和上线计划都在这里 ✅",
  "这里只聊读书 📖，请勿发广告。",
}
local notices = {
  "本周活动改到周日下午三点 ⏰，请大家互相转告。",
  "群公告：新版本 3.2 已发布 🎉 更新内容见群文件。",
  "",
}

-- One callback body for group n; four shapes, as in Tencent's documented examples.
local function body_for(n, event_time)
  local fields = {
    '"CallbackCommand":"Group.CallbackAfterGroupInfoChanged"',
    '"GroupId":' .. q("@TGS#bench" .. n),
    '"Type":' .. q(({ "Public", "Private", "ChatRoom", "Work" })[n % 4 + 1]),
    '"Operator_Account":' .. q("user_" .. (n * 7919 % 100000)),
    '"EventTime":' .. (event_time + n % 1000),
  }
  local shape = n % 4
  if shape == 0 then
    table.insert(fields, '"Notification":' .. q(notices[n % #notices + 1]))
  elseif shape == 1 then
    table.insert(fields, '"UserDefinedDataList":[{"Key":"Level","Value":' .. q("等级 " .. (n % 9 + 1) .. " ⭐") .. "}]")
  else
    table.insert(fields, '"Name":' .. q(names[n % #names + 1]))
    table.insert(fields, '"Introduction":' .. q(intros[n % #intros + 1]))
    table.insert(fields, '"Notification":' .. q(notices[n % #notices + 1]))
    table.insert(fields, '"FaceUrl":' .. q("https://im.example.com/avatar/group/" .. n .. ".png"))
    if shape == 3 then
      table.insert(
        fields,
        '"UserDefinedDataList":['
          .. '{"Key":"Level","Value":' .. q("等级 " .. (n % 9 + 1) .. " ⭐") .. "},"
          .. '{"Key":"City","Value":' .. q(({ "深圳", "北京", "上海", "成都" })[n % 4 + 1]) .. "},"
          .. '{"Key":"Tags","Value":' .. q("羽毛球,周末,🏸,新手友好") .. "}]"
      )
    end
  end
  return "{" .. table.concat(fields, ",") .. "}"
end

-- The mixed load: (command, body) for request n; GroupInfoChanged keeps the shapes above.
local function mixed_for(n, event_time)
  local g = q("@TGS#bench" .. n)
  local t = event_time + n % 1000
  local k = n % 10
  if k < 4 then
    return "Group.CallbackAfterGroupInfoChanged", body_for(n, event_time)
  elseif k < 6 then
    return "Group.CallbackAfterSendMsg", '{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":' .. g
      .. ',"Type":"Public","From_Account":' .. q("user_" .. n % 1000) .. ',"Operator_Account":"","Random":' .. n
      .. ',"MsgSeq":' .. n .. ',"MsgTime":' .. math.floor(t / 1000) .. ',"OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":'
      .. q(intros[n % #intros + 1]) .. '}}],"CloudCustomData":"","EventTime":' .. t .. "}"
  elseif k == 6 then
    return "Group.CallbackAfterNewMemberJoin", '{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":' .. g
      .. ',"Type":"Public","JoinType":"Apply","Operator_Account":"admin","NewMemberList":[{"Member_Account":'
      .. q("user_" .. n % 1000) .. '}],"EventTime":' .. t .. "}"
  elseif k == 7 then
    return "Group.CallbackAfterMemberExit", '{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":' .. g
      .. ',"Type":"Public","ExitType":"Quit","Operator_Account":"admin","ExitMemberList":[{"Member_Account":'
      .. q("user_" .. n % 1000) .. '}],"EventTime":' .. t .. "}"
  elseif k == 8 then
    return "C2C.CallbackAfterSendMsg", '{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":'
      .. q("user_" .. n % 1000) .. ',"To_Account":' .. q("user_" .. (n + 1) % 1000) .. ',"MsgSeq":' .. n
      .. ',"MsgRandom":' .. n .. ',"MsgTime":' .. math.floor(t / 1000)
      .. ',"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi 👋"}}],"EventTime":' .. t .. "}"
  else
    return "Group.CallbackBeforeSendMsg", '{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":' .. g
      .. ',"Type":"Public","From_Account":' .. q("user_" .. n % 1000)
      .. ',"Operator_Account":"","Random":' .. n .. ',"OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}'
  end
end

local requests = {}
local next_index = 1
-- Globals, read by done() through thread:get.
errors = 0
sample_status = 0
sample_body = ""
body_min, body_max, body_sum = math.huge, 0, 0

function init(args)
  local app_id = env("BENCH_APP_ID", "1400000000")
  local request_time = env("BENCH_REQUEST_TIME")
  local sign = env("BENCH_SIGN")
  local groups = tonumber(env("BENCH_GROUPS", "10000"))
  local mix = env("BENCH_MIX", "0") == "1"
  local function path(command)
    return env("BENCH_PATH", "/callback")
      .. "?SdkAppid=" .. app_id
      .. "&CallbackCommand=" .. command .. "&contenttype=json"
      .. "&ClientIP=127.0.0.1&OptPlatform=RESTAPI"
      .. "&Sign=" .. sign .. "&RequestTime=" .. request_time
  end
  local headers = { ["Content-Type"] = "application/json" }
  local event_time = tonumber(request_time) * 1000
  local dump = os.getenv("BENCH_DUMP")
  local dump_file = nil
  if dump ~= nil and dump ~= "" then
    dump_file = assert(io.open(dump, "w"))
  end
  for n = 0, groups - 1 do
    local command, body = "Group.CallbackAfterGroupInfoChanged", nil
    if mix then
      command, body = mixed_for(n, event_time)
    else
      body = body_for(n, event_time)
    end
    body_min, body_max, body_sum = math.min(body_min, #body), math.max(body_max, #body), body_sum + #body
    if dump_file then
      -- q() escapes control characters, so a body never holds a tab or a newline.
      dump_file:write(path(command), "\t", body, "\n")
    else
      requests[n + 1] = wrk.format("POST", path(command), headers, body)
    end
  end
  if dump_file then
    assert(dump_file:close())
    os.exit(0)
  end
  body_mean = math.floor(body_sum / groups + 0.5)
  -- Threads start at different GroupIds so they do not send the same group in lockstep.
  next_index = (thread_index * 7919) % groups + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function response(status, headers, body)
  if status ~= 200 or not (body and body:find('"ActionStatus":"OK"', 1, true)) then
    errors = errors + 1
    if sample_status == 0 then
      sample_status = status
      sample_body = body or ""
    end
  end
end

function done(summary, latency, _)
  local non200, status, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    non200 = non200 + t:get("errors")
    if status == 0 and t:get("sample_status") ~= 0 then
      status = t:get("sample_status")
      sample = t:get("sample_body")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,"non200":%d,"non2xx3xx":%d,'
      .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"body_min":%d,"body_max":%d,"body_mean":%d,"sample_status":%d,"sample_body":%s}\n',
    summary.duration, summary.requests, summary.bytes, non200, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    threads[1]:get("body_min"), threads[1]:get("body_max"), threads[1]:get("body_mean"),
    status, q(sample:sub(1, 300))
  ))
end
