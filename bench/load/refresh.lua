-- refreshSession: every refresh token is used once; the answer's new one goes back in the
-- thread's queue (one refresh token per session, sessions split between the threads).
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local queue = {}
function init(args)
  local all = read_lines(os.getenv("LOAD_WORK") .. "/refresh.txt")
  local threads = tonumber(os.getenv("LOAD_THREADS") or "2")
  for i, token in ipairs(all) do
    if (i - 1) % threads == id then table.insert(queue, token) end
  end
end
function request()
  local token = table.remove(queue, 1)
  if not token then token = "exhausted" end
  return graphql('{"query":"mutation($t: String!) { refreshSession(refreshToken: $t) { refreshToken } }","variables":{"t":"' .. token .. '"}}')
end
function response(status, headers, body)
  count_errors(status, body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if token then table.insert(queue, token) end
end
