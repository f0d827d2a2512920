-- wrk script for bench/webhook.ts: POSTs msg_type 2 pushes of 10 rows, the same bodies as the
-- autocannon path (push number n: device n % 100, ten rows in that device's own minute slot), so
-- every point is distinct. One wrk thread (-t1): the push counter is that thread's own.
local seq = 0
local DEVICES = 100
-- 2025-01-01 00:00 in UTC+8 (the platform zone), as the vendor writes it
local T0 = os.time({ year = 2025, month = 1, day = 1, hour = 0, min = 0, sec = 0, isdst = false })
local TZ_FIX = os.time(os.date("!*t", T0)) - T0 -- os.time read the table as local time: undo that
T0 = T0 - TZ_FIX
local minuteKey, minuteText = -1, ""

local function minutePrefix(m)
  if m ~= minuteKey then
    minuteKey = m
    minuteText = os.date("!%Y-%m-%dT%H-%M-", T0 + m * 60)
  end
  return minuteText
end

local headers = { ["Content-Type"] = "application/json" }
local rows = {}

request = function()
  local s = seq
  seq = seq + 1
  local dev = string.format("bench-%03d", s % DEVICES)
  local minute = minutePrefix(math.floor(s / DEVICES))
  for k = 0, 9 do
    rows[k + 1] = string.format('{"timestamp":"%s%02d-000","temp":%s,"hum":%d,"on":%s}', minute, k * 6,
      tostring(((s * 7 + k) % 400) / 10), (s + k) % 100, (k % 2 == 0) and "true" or "false")
  end
  local body = '{"msg_type":"2","device_id":"' .. dev .. '","device_key":"key-' .. dev .. '","data":[' .. table.concat(rows, ",") .. ']}'
  return wrk.format("POST", nil, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
