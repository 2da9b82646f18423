-- A mix of the API's operations for the soak (bench/soak/run.sh), in a fixed cycle of 20:
-- one signIn, four refreshSession (each refresh token used once, the new one queued), four
-- updateProfile, eleven me. A refresh with an empty queue asks `me` instead.
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local tokens, emails, queue, n = nil, nil, {}, 0
local cycle = { "signin", "refresh", "me", "profile", "me", "refresh", "me", "profile", "me", "me",
                "refresh", "me", "profile", "me", "me", "refresh", "me", "profile", "me", "me" }
function init(args)
  tokens = read_lines(os.getenv("LOAD_WORK") .. "/access.txt")
  emails = read_lines(os.getenv("LOAD_WORK") .. "/emails.txt")
  local all = read_lines(os.getenv("LOAD_WORK") .. "/refresh.txt")
  local threads = tonumber(os.getenv("LOAD_THREADS") or "2")
  for i, token in ipairs(all) do
    if (i - 1) % threads == id then table.insert(queue, token) end
  end
  n = id * 7
end
function request()
  n = n + 1
  local op = cycle[(n % #cycle) + 1]
  local access = tokens[(n % #tokens) + 1]
  if op == "refresh" and #queue > 0 then
    return graphql('{"query":"mutation($t: String!) { refreshSession(refreshToken: $t) { refreshToken } }","variables":{"t":"' .. table.remove(queue, 1) .. '"}}')
  elseif op == "signin" then
    return graphql('{"query":"mutation($e: String!) { signIn(input: {email: $e, password: \\"correct horse battery staple\\"}) { accessToken } }","variables":{"e":"' .. emails[(n % #emails) + 1] .. '"}}')
  elseif op == "profile" then
    return graphql('{"query":"mutation($m: JSON) { updateProfile(input: {name: \\"Soak ' .. n .. '\\", metadata: $m}) { id } }","variables":{"m":{"n":' .. n .. '}}}', access)
  end
  return graphql('{"query":"{ me { id name { display } emails { primary } } }"}', access)
end
function response(status, headers, body)
  count_errors(status, body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if token then table.insert(queue, token) end
end
