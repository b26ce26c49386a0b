-- wrk script: MCP tools/call of get_execution over streamable HTTP, every request with its own JSON-RPC id.
--
--   wrk -t1 -c16 -d10s -s bench/mcp_call.lua <url> -- <era> <token|-> <sessions file|-> <execution id> <threads>
--
-- era 2025-11-25: requests carry Mcp-Session-Id, rotating over this thread's share of the sessions in the
-- file (opened beforehand, one per connection). era 2026-07-28: stateless, the _meta envelope in each body.
-- Every response is checked: HTTP 200, the JSON-RPC id of a request this thread sent and has not seen
-- answered yet, a successful tool result, and the execution asked for. done() prints one JSON line.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  era, token, sessions_file, execution, nthreads = args[1], args[2], args[3], args[4], tonumber(args[5])
  sessions = {}
  if sessions_file ~= "-" then
    local k = 0
    for line in io.lines(sessions_file) do
      if k % nthreads == index then table.insert(sessions, line) end
      k = k + 1
    end
  end
  next_id, turn, pending, bad, bad_sample = 0, 0, {}, 0, ""
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = era,
  }
  if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
  if era == "2026-07-28" then
    headers["Mcp-Method"] = "tools/call"
    headers["Mcp-Name"] = "get_execution"
    meta = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
      .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"0"},'
      .. '"io.modelcontextprotocol/clientCapabilities":{}}'
  else
    meta = ""
  end
  expected = '"' .. execution .. '"'
end

function request()
  -- ids are unique across threads: index, index + n, index + 2n, ...
  local id = index + nthreads * next_id
  next_id = next_id + 1
  pending[id] = true
  if #sessions > 0 then
    turn = turn % #sessions + 1
    headers["Mcp-Session-Id"] = sessions[turn]
  end
  local body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"get_execution",'
    .. '"arguments":{"id":"' .. execution .. '"}' .. meta .. '}}'
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  local id = tonumber(string.match(body, '"jsonrpc":"2.0","id":(%d+)') or string.match(body, '"id":(%d+)'))
  local ok = status == 200 and id ~= nil and pending[id]
    and string.find(body, '"isError":false', 1, true) ~= nil
    and string.find(body, expected, 1, true) ~= nil
  if id ~= nil then pending[id] = nil end
  if not ok then
    bad = bad + 1
    if bad_sample == "" then bad_sample = status .. " " .. string.sub(body, 1, 300) end
  end
end

local function quote(text)
  return '"' .. string.gsub(text, '[%c"\\]', " ") .. '"'
end

function done(summary, latency, requests)
  local total_bad, sample = 0, ""
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
    if sample == "" then sample = thread:get("bad_sample") end
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bad":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"sample":%s}\n',
    -- non-2xx answers reach response() and count as bad; errors.status would count them twice
    summary.requests, summary.duration, total_bad, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, quote(sample)))
end
