-- signUp with a new address per request (rate limits off in the run).
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  local email = string.format("load-%s-%d-%d@example.com", os.getenv("LOAD_RUN") or "x", id, n)
  return graphql('{"query":"mutation($e: String!) { signUp(input: {email: $e, password: \\"correct horse battery staple\\"}) { accessToken } }","variables":{"e":"' .. email .. '"}}')
end
function response(status, headers, body) count_errors(status, body) end
